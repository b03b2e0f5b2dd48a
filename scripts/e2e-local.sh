#!/usr/bin/env bash
# `make e2e-local` (and the last step of `make test`): the real-parts e2e of
# issue 17 for each driver version. The Go test binaries are compiled from
# the driver modules e2e/tools/driver-v* (each links that version's
# pkg/secrets-store and pkg/util/fileutil; the logic is in e2e/suite), then
# run inside the loopback-only network namespace (scripts/netns-run) and a
# private mount namespace, because the driver mounts tmpfs:
#
#   TestContract     the driver's provider client and file writer against
#                    our provider and the fake (seconds);
#   TestWalkthrough  etcd + kube-apiserver + kubectl + the driver binary, our
#                    provider and the fake; the test plays kubelet.
#
# Needs the binaries first: scripts/go-tools.sh (etcd, kube-apiserver,
# kubectl, secrets-store-csi-driver-v*) and target/debug/{akv-csi-provider,
# fake-azure}; the Makefile target builds them. Root (mount namespace).
#
#   E2E_DRIVERS="v1.6.1 v1.5.6"   driver versions to run (default both)
#   E2E_RUN=Contract              only tests matching (go test -run)
#   E2E_KEEP=1                    keep the work directories with every log
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local CGO_ENABLED=0

# Inside the namespaces (the script runs itself there with --inside): one
# test binary per driver version, from its module directory (the tests find
# the repository and the driver's module files from there).
if [ "${1:-}" = --inside ]; then
  shift
  export GOPROXY=off # no network in here; the module cache has everything
  status=0
  for v in "$@"; do
    start=$(date +%s)
    dir=$(cd "e2e/tools/driver-$v" && go list -m -f '{{.Dir}}' sigs.k8s.io/secrets-store-csi-driver)
    echo "=== e2e-local: driver $v (module files $dir)"
    if (cd "e2e/tools/driver-$v" && E2E_DRIVER_MODULE_DIR=$dir \
      "$root/target/e2e/driver-$v.test" -test.v -test.timeout 20m ${E2E_RUN:+-test.run "$E2E_RUN"}); then
      echo "=== e2e-local: driver $v passed in $(($(date +%s) - start)) s"
    else
      echo "=== e2e-local: driver $v FAILED after $(($(date +%s) - start)) s"
      status=1
    fi
  done
  exit "$status"
fi
read -r -a drivers <<<"${E2E_DRIVERS:-v1.6.1 v1.5.6}"
mkdir -p target/e2e

command -v go >/dev/null 2>&1 || { echo "e2e-local: go is required" >&2; exit 1; }
for v in "${drivers[@]}"; do
  dir=e2e/tools/driver-$v
  [ -d "$dir" ] || { echo "e2e-local: no driver module $dir" >&2; exit 1; }
  start=$(date +%s)
  (cd "$dir" && nice -n 5 go test -c -trimpath -o "$root/target/e2e/driver-$v.test" .) || {
    echo "e2e-local: the e2e test for driver $v did not compile; see go's error above" >&2
    exit 1
  }
  echo "e2e-local: test binary for driver $v ready in $(($(date +%s) - start)) s" >&2
done

exec scripts/netns-run unshare -m --propagation private "$root/scripts/e2e-local.sh" --inside "${drivers[@]}"
