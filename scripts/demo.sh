#!/usr/bin/env bash
# `make demo`: the blog walkthrough on the bundled Azure fake. Starts the fake
# (seeded with vault kv-blogpost-jx01, secret MySecretPassword and the
# federated identity of blog-post/kv-access-account), starts the provider on a
# unix socket with the fake as its HTTPS proxy, mounts the blog's
# SecretProviderClass as the CSI driver would, and prints the files written
# under ./demo/mnt/secrets-store. Everything stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/debug
run=demo/run
out=demo/mnt/secrets-store
issuer=https://oidc.blog-post.demo/issuer
rm -rf demo
mkdir -p "$run" "$out"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_for() { # path, what
  for _ in $(seq 1 100); do [ -e "$1" ] && return 0; sleep 0.1; done
  echo "demo: $2 did not start; see $run/*.log" >&2
  exit 1
}

echo "== starting the Azure fake (Entra ID + Key Vault on 127.0.0.1)"
"$bin/fake-azure" --blog-walkthrough --issuer "$issuer" --listen 127.0.0.1:0 \
  --ca-out "$run/ca.pem" --ready-file "$run/proxy-url" >"$run/fake-azure.log" 2>&1 &
pids+=($!)
wait_for "$run/proxy-url" "fake-azure"
proxy=$(cat "$run/proxy-url")
echo "   proxy $proxy, CA $run/ca.pem"

echo "== starting akv-csi-provider on unix://$PWD/$run/azure.sock"
env -i PATH="$PATH" HTTPS_PROXY="$proxy" SSL_CERT_FILE="$run/ca.pem" \
  "$bin/akv-csi-provider" --endpoint "unix://$PWD/$run/azure.sock" \
  --admin-bind-address=127.0.0.1 --healthz-port=0 --prometheus-port=0 >"$run/provider.log" 2>&1 &
pids+=($!)
wait_for "$run/azure.sock" "akv-csi-provider"

echo "== mounting deploy/examples/secretproviderclass-sync.yaml as the CSI driver would"
"$bin/examples/driver" --socket "$run/azure.sock" \
  --spc deploy/examples/secretproviderclass-sync.yaml \
  --namespace blog-post --pod busybox-secrets-store-inline \
  --service-account kv-access-account --issuer "$issuer" --out "$out"

echo "== files under $out"
for f in "$out"/*; do
  printf '%s (mode %s): %s\n' "$f" "$(stat -c %a "$f")" "$(cat "$f")"
done
echo "== what the pod sees"
echo "   cat /mnt/secrets-store/MySecretPassword -> $(cat "$out/MySecretPassword")"
echo "   env PASSWORD (Secret secret-blog-post, key Password) -> $(cat demo/mnt/secrets/secret-blog-post/Password)"
echo "== provider log"
cat "$run/provider.log"
