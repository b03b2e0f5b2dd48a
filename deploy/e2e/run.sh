#!/usr/bin/env bash
# `make e2e-kind`: the provider in a real cluster with no Azure account.
#
# Creates a kind cluster, builds and loads the provider and fake-azure
# images, installs the upstream Secrets Store CSI Driver (pinned chart, with
# charts/secrets-store-csi-driver-values.yaml as docs/install.md does:
# tokenRequests, Secret sync and rotation), runs fake-azure in the
# cluster seeded with the cluster's own service-account issuer, deploys the
# provider from deploy/ (overlay deploy/e2e: local image, HTTPS_PROXY and
# SSL_CERT_FILE pointing at the fake), then plays
#   1. the blog walkthrough (deploy/examples): file, synced Secret, env var,
#      rotation of the file and the Secret, the AADSTS70021 FailedMount event
#      of a service account without federation, clean deletion;
#   2. the scenarios of the driver's test/bats/azure.bats, against the fake;
#   3. final checks: no provider or driver restarts, and no secret value or
#      token in the provider's logs (it runs at -v=5 with JSON logs).
# Every wait is bounded; a failure prints pods, events and logs. The cluster
# is deleted on exit unless KEEP_CLUSTER=1. Prints "N passed, 0 failed".
#
# Needs: docker (running), kind, kubectl, helm; network access for the
# driver chart and the busybox test image. Every kubectl and helm call names
# the kind cluster's context, so no other cluster is touched.
#
# Settings (environment):
#   KIND_CLUSTER          cluster name (akv-csi-e2e); must not exist yet
#   KIND_NODE_IMAGE       node image (default: the installed kind's own, which
#                         kind guarantees to work with it); Kubernetes >= 1.30
#   DRIVER_CHART_VERSION  secrets-store-csi-driver chart (1.6.0; 1.5.6 tests
#                         the old drivers' :authority path)
#   KEEP_CLUSTER=1        keep the cluster afterwards, for debugging
#   SKIP_BUILD=1          use existing akv-csi-provider:e2e / fake-azure:e2e
#   ROTATION_TIMEOUT      seconds to wait for a rotated value (240)
set -euo pipefail

cluster=${KIND_CLUSTER:-akv-csi-e2e}
node_image=${KIND_NODE_IMAGE:-}
chart_version=${DRIVER_CHART_VERSION:-1.6.0}
chart_repo=https://kubernetes-sigs.github.io/secrets-store-csi-driver/charts
provider_image=akv-csi-provider:e2e
fake_image=fake-azure:e2e
rotation_timeout=${ROTATION_TIMEOUT:-240}

context=kind-$cluster
provider_label=app=csi-secrets-store-provider-azure
driver_label=app=secrets-store-csi-driver
# The fake's control API, reached through the API server's service proxy.
fake_api=/api/v1/namespaces/kube-system/services/fake-azure:proxy/proxy/_fake
busybox=registry.k8s.io/e2e-test-images/busybox:1.29-4

work= # a temporary directory, made by main
created_cluster=0
diagnosed=0
passed=0
values=() # every secret value used; none may appear in the provider's logs

k() { kubectl --context "$context" "$@"; }

step() { printf '\n== %s\n' "$*"; }

# === failure handling ===

diagnose() {
  [ "$diagnosed" = 0 ] || return 0
  diagnosed=1
  [ "$created_cluster" = 1 ] || return 0
  echo "---- diagnostics: cluster $context ----" >&2
  {
    k get pods -A -o wide
    for ns in blog-post default test-ns negative-test-ns; do
      k describe pods -n "$ns" 2>/dev/null | tail -n 60
    done
    k describe pods -n kube-system -l "$provider_label"
    k describe pods -n kube-system -l app=fake-azure
    echo "---- events (newest last)"
    k get events -A --sort-by=.lastTimestamp | tail -n 60
    echo "---- provider logs"
    k logs -n kube-system -l "$provider_label" --prefix --tail=200
    echo "---- driver logs"
    k logs -n kube-system -l "$driver_label" -c secrets-store --prefix --tail=100
    echo "---- fake-azure logs"
    k logs -n kube-system -l app=fake-azure --tail=100
  } >&2 2>&1 || true
}

fail() {
  echo "FAIL: $*" >&2
  diagnose
  echo "$passed passed, 1 failed" >&2
  exit 1
}

on_exit() {
  local status=$?
  if [ "$status" != 0 ]; then diagnose; fi
  if [ "$created_cluster" = 1 ]; then
    if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
      echo "keeping cluster $cluster (kind delete cluster --name $cluster)"
    else
      kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
    fi
  fi
  if [[ -n "$work" ]]; then rm -rf "$work"; fi
}

# === assertions ===

# check WHAT CMD...: CMD must succeed now.
check() {
  local what=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "  ok  $what"
  else
    fail "$what"
  fi
}

# eventually SECONDS WHAT CMD...: CMD must succeed within SECONDS.
eventually() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "$what (still false after ${limit}s)"
    sleep 2
  done
  passed=$((passed + 1))
  echo "  ok  $what"
}

quiet() { "$@" >/dev/null 2>&1; }

# file_is NAMESPACE POD PATH VALUE
file_is() {
  local got
  got=$(k exec -n "$1" "$2" -- cat "$3" 2>/dev/null) || return 1
  [ "${got//$'\r'/}" = "$4" ]
}

# env_is NAMESPACE POD NAME VALUE (as `kubectl exec ... -- env` shows it)
env_is() {
  local env
  env=$(k exec -n "$1" "$2" -- env 2>/dev/null) || return 1
  grep -qxF "$3=$4" <<<"${env//$'\r'/}"
}

# secret_is NAMESPACE SECRET KEY VALUE
secret_is() {
  local data
  data=$(k get secret -n "$1" "$2" -o "jsonpath={.data.$3}" 2>/dev/null) || return 1
  [ -n "$data" ] && [ "$(printf '%s' "$data" | base64 -d)" = "$4" ]
}

# label_is NAMESPACE SECRET LABEL-JSONPATH VALUE
label_is() {
  local got
  got=$(k get secret -n "$1" "$2" -o "jsonpath={.metadata.labels.$3}") || return 1
  [ "$got" = "$4" ]
}

# owners_are NAMESPACE SECRET COUNT
owners_are() {
  local uids
  uids=$(k get secret -n "$1" "$2" -o 'jsonpath={.metadata.ownerReferences[*].uid}') || return 1
  [ "$(wc -w <<<"$uids")" -eq "$3" ]
}

# absent NAMESPACE KIND NAME
absent() {
  local found
  found=$(k get -n "$1" "$2" "$3" --ignore-not-found -o name) || return 1
  [ -z "$found" ]
}

# mount_event NAMESPACE POD-PREFIX EXTENDED-REGEX: a FailedMount event of a
# pod whose name starts with POD-PREFIX matches.
mount_event() {
  local events
  events=$(k get events -n "$1" --field-selector reason=FailedMount \
    -o 'jsonpath={range .items[*]}{.involvedObject.name}{"\t"}{.message}{"\n"}{end}') || return 1
  grep -E "^$2[^[:space:]]*"$'\t'".*$3" <<<"$events" >/dev/null
}

# ready NAMESPACE POD SECONDS
ready() {
  k wait -n "$1" --for=condition=Ready "pod/$2" --timeout="$3s" >/dev/null ||
    fail "pod $1/$2 not Ready within $3s"
  passed=$((passed + 1))
  echo "  ok  pod $1/$2 is Ready"
}

# rolled_out NAMESPACE DEPLOYMENT
rolled_out() {
  k rollout status -n "$1" "deployment/$2" --timeout=180s >/dev/null ||
    fail "deployment $1/$2 not available within 180s"
  passed=$((passed + 1))
  echo "  ok  deployment $1/$2 is available"
}

# delete_pod NAMESPACE POD: deleted within 120s.
delete_pod() {
  k delete pod -n "$1" "$2" --wait=false >/dev/null
  k wait -n "$1" --for=delete "pod/$2" --timeout=120s >/dev/null 2>&1 ||
    absent "$1" pod "$2" || fail "pod $1/$2 not deleted within 120s"
  passed=$((passed + 1))
  echo "  ok  pod $1/$2 deleted"
}

first_pod() { # NAMESPACE LABEL
  k get pod -n "$1" -l "$2" --field-selector=status.phase=Running \
    -o 'jsonpath={.items[0].metadata.name}'
}

no_unmount_errors() {
  local logs
  logs=$(k logs -n kube-system -l "$driver_label" -c secrets-store --tail=-1) || return 1
  ! grep -q 'failed to clean and unmount target path' <<<"$logs"
}

# set_secret VAULT NAME VALUE: a new current version in the fake.
set_secret() {
  printf '{"value":"%s"}' "$3" >"$work/put.json"
  k replace --raw "$fake_api/vaults/$1/secrets/$2" -f "$work/put.json" >/dev/null ||
    fail "could not set $1/$2 in fake-azure"
  values+=("$3")
}

fresh_value() { printf '%s-%s-%s' "$1" "$(date +%s)" "$RANDOM"; }

# === steps ===

preflight() {
  step "preflight"
  local tool
  for tool in docker kind kubectl helm; do
    command -v "$tool" >/dev/null || fail "$tool is required (see README, 'The kind e2e')"
  done
  docker info >/dev/null 2>&1 || fail "docker is installed but its daemon does not answer"
  if grep -qxF "$cluster" <<<"$(kind get clusters 2>/dev/null)"; then
    fail "kind cluster $cluster exists; delete it (kind delete cluster --name $cluster) or set KIND_CLUSTER"
  fi
}

build_images() {
  if [ "${SKIP_BUILD:-0}" = 1 ]; then
    step "using existing images $provider_image and $fake_image"
    return
  fi
  step "building $provider_image and $fake_image"
  docker build -t "$provider_image" . || fail "docker build of the provider failed"
  docker build --target fake-azure -t "$fake_image" . || fail "docker build of fake-azure failed"
}

create_cluster() {
  step "creating kind cluster $cluster (${node_image:-the default node image of this kind})"
  local image_args=()
  if [[ -n "$node_image" ]]; then image_args=(--image "$node_image"); fi
  created_cluster=1
  kind create cluster --name "$cluster" "${image_args[@]}" \
    --config deploy/e2e/kind.yaml --wait 180s || fail "kind create cluster failed"
  local version
  version=$(k version -o json | sed -n 's/.*"gitVersion": *"\(v[^"]*\)".*/\1/p' | tail -n 1) || true
  echo "  Kubernetes $version (server)"
  kind load docker-image --name "$cluster" "$provider_image" "$fake_image" ||
    fail "kind load docker-image failed"
  # Pulled once here so that pod start-up waits below measure mounts, not pulls.
  if ! { docker pull -q "$busybox" >/dev/null && kind load docker-image --name "$cluster" "$busybox"; }; then
    echo "  (could not preload $busybox; pods will pull it)"
  fi
}

install_driver() {
  step "installing the Secrets Store CSI Driver (chart $chart_version, charts/secrets-store-csi-driver-values.yaml, rotation every 30s)"
  # The documented install (docs/install.md): the driver's chart with our
  # values file (tokenRequests, Secret sync, rotation), the poll made shorter
  # so rotation is seen within the test's wait.
  helm upgrade --install csi-secrets-store secrets-store-csi-driver \
    --repo "$chart_repo" --version "$chart_version" \
    --kube-context "$context" --namespace kube-system \
    -f charts/secrets-store-csi-driver-values.yaml \
    --set rotationPollInterval=30s \
    --wait --timeout 5m || fail "helm install of the driver failed"
  check "CSIDriver requests tokens for api://AzureADTokenExchange and api://AKSIdentityBinding" \
    test "$(k get csidriver secrets-store.csi.k8s.io -o 'jsonpath={.spec.tokenRequests[*].audience}')" \
    = "api://AzureADTokenExchange api://AKSIdentityBinding"
  case "$chart_version" in
    1.5.*)
      # Chart 1.5.x: the rotation reconciler requests the tokens itself and
      # needs this role, which the chart creates only with tokenRequests set.
      check "chart $chart_version created the token-request ClusterRole" \
        k get clusterrole secretprovidertokenrequest-role
      ;;
  esac
}

start_fake() {
  step "starting fake-azure in the cluster, trusting the cluster's service-account issuer and keys"
  local discovery issuer
  discovery=$(k get --raw /.well-known/openid-configuration) ||
    fail "cannot read the cluster's OIDC discovery document"
  issuer=$(sed -n 's/.*"issuer":"\([^"]*\)".*/\1/p' <<<"$discovery")
  [ -n "$issuer" ] || fail "no issuer in the OIDC discovery document: $discovery"
  echo "  issuer $issuer"
  # The fake verifies assertions with the cluster's real keys, as Entra ID
  # would fetch them from the issuer.
  local jwks
  jwks=$(k get --raw /openid/v1/jwks | tr -d '\n') || fail "cannot read the cluster's JWKS"
  grep -q '"keys"' <<<"$jwks" || fail "the cluster's JWKS has no keys: $jwks"
  sed -e "s|__ISSUER__|$issuer|g" -e "s|\"__JWKS__\"|$jwks|" deploy/e2e/seed.json >"$work/seed.json"
  k create configmap fake-azure-seed -n kube-system --from-file=seed.json="$work/seed.json" >/dev/null
  k apply -k deploy/e2e/fake-azure >/dev/null || fail "applying deploy/e2e/fake-azure failed"
  k rollout status -n kube-system deployment/fake-azure --timeout=120s >/dev/null ||
    fail "fake-azure not available within 120s"
  k get --raw "$fake_api/ca.pem" >"$work/ca.pem" || fail "cannot read the fake's CA"
  grep -q 'BEGIN CERTIFICATE' "$work/ca.pem" || fail "the fake's CA is not PEM"
  k create configmap fake-azure-ca -n kube-system --from-file=ca.pem="$work/ca.pem" >/dev/null
}

deploy_provider() {
  step "deploying the provider: kubectl apply -k deploy/e2e (deploy/provider + local image + fake)"
  k apply -k deploy/e2e >/dev/null || fail "applying deploy/e2e failed"
  k rollout status -n kube-system daemonset/csi-secrets-store-provider-azure --timeout=180s >/dev/null ||
    fail "provider DaemonSet not ready within 180s"
  passed=$((passed + 1))
  echo "  ok  provider pods are Ready (liveness and readiness probes pass)"
}

blog_walkthrough() {
  step "blog walkthrough (deploy/examples)"
  local ns=blog-post pod=busybox-secrets-store-inline
  local value rotated
  value=$(fresh_value blog)
  set_secret kv-blogpost-jx01 MySecretPassword "$value"

  k apply -f deploy/examples/setup.yaml -f deploy/examples/secretproviderclass.yaml >/dev/null
  k apply -f deploy/examples/pod.yaml >/dev/null
  ready "$ns" "$pod" 300
  check "cat /mnt/secrets-store/MySecretPassword prints the Key Vault value" \
    file_is "$ns" "$pod" /mnt/secrets-store/MySecretPassword "$value"
  delete_pod "$ns" "$pod"

  k apply -f deploy/examples/secretproviderclass-sync.yaml >/dev/null
  check "no Secret secret-blog-post before a pod mounts the volume" \
    absent "$ns" secret secret-blog-post
  k apply -f deploy/examples/pod-with-env.yaml >/dev/null
  ready "$ns" "$pod" 180
  check "file still reads the value" \
    file_is "$ns" "$pod" /mnt/secrets-store/MySecretPassword "$value"
  eventually 60 "Secret secret-blog-post has Password = the value" \
    secret_is "$ns" secret-blog-post Password "$value"
  check "env shows PASSWORD = the value" env_is "$ns" "$pod" PASSWORD "$value"
  check "secret-blog-post is labelled secrets-store.csi.k8s.io/managed=true" \
    label_is "$ns" secret-blog-post 'secrets-store\.csi\.k8s\.io/managed' true

  step "rotation: a new version in the fake reaches the file and the synced Secret"
  rotated=$(fresh_value rotated)
  set_secret kv-blogpost-jx01 MySecretPassword "$rotated"
  eventually "$rotation_timeout" "the file reads the rotated value" \
    file_is "$ns" "$pod" /mnt/secrets-store/MySecretPassword "$rotated"
  eventually 120 "secret-blog-post has the rotated value" \
    secret_is "$ns" secret-blog-post Password "$rotated"
  echo "  (env PASSWORD keeps the old value until the pod restarts: Kubernetes sets env at start)"

  step "wrong service account: FailedMount with AADSTS70021"
  k apply -f deploy/e2e/manifests/blog-wrong-identity.yaml >/dev/null
  eventually 120 "FailedMount event of busybox-wrong-identity names AADSTS70021" \
    mount_event "$ns" busybox-wrong-identity AADSTS70021
  check "busybox-wrong-identity is not running" \
    test "$(k get pod -n "$ns" busybox-wrong-identity -o 'jsonpath={.status.phase}')" = Pending

  step "deleting the blog's objects"
  k delete namespace "$ns" --timeout=180s >/dev/null || fail "namespace $ns not deleted within 180s"
  check "namespace $ns is gone" absent default namespace "$ns"
}

# The scenarios of the driver's test/bats/azure.bats, in order, with the
# fake's vault secrets-store-csi-e2e / secret1 in place of a real vault.
bats_scenarios() {
  local value ns=default pod
  value=$(fresh_value bats)
  set_secret secrets-store-csi-e2e secret1 "$value"
  local m=deploy/e2e/manifests

  step "azure.bats: CSI inline volume test with pod portability"
  k apply -n "$ns" -f "$m/bats-inline.yaml" >/dev/null
  check "SecretProviderClass azure exists" quiet k get -n "$ns" secretproviderclass azure
  ready "$ns" secrets-store-inline-crd 300
  check "pod reads secret1" file_is "$ns" secrets-store-inline-crd /mnt/secrets-store/secret1 "$value"
  delete_pod "$ns" secrets-store-inline-crd
  sleep 10 # let the driver's logs catch up, as azure.bats does
  check "driver logged no 'failed to clean and unmount target path'" no_unmount_errors

  step "azure.bats: Sync with K8s secrets"
  k apply -n "$ns" -f "$m/bats-sync-spc.yaml" >/dev/null
  k apply -n "$ns" -f "$m/bats-deployment.yaml" -f "$m/bats-deployment-two.yaml" >/dev/null
  rolled_out "$ns" busybox-deployment
  rolled_out "$ns" busybox-deployment-two
  pod=$(first_pod "$ns" app=busybox) || fail "no running busybox pod in $ns"
  check "file secretalias" file_is "$ns" "$pod" /mnt/secrets-store/secretalias "$value"
  check "Secret foosecret username" secret_is "$ns" foosecret username "$value"
  check "env SECRET_USERNAME" env_is "$ns" "$pod" SECRET_USERNAME "$value"
  check "label environment=test" label_is "$ns" foosecret environment test
  check "label secrets-store.csi.k8s.io/managed=true" \
    label_is "$ns" foosecret 'secrets-store\.csi\.k8s\.io/managed' true
  eventually 60 "foosecret has 2 owners" owners_are "$ns" foosecret 2
  k delete -n "$ns" -f "$m/bats-deployment.yaml" >/dev/null
  eventually 60 "foosecret has 1 owner after deleting one Deployment" owners_are "$ns" foosecret 1
  k delete -n "$ns" -f "$m/bats-deployment-two.yaml" >/dev/null
  eventually 60 "foosecret deleted with its last owner" absent "$ns" secret foosecret
  k delete -n "$ns" -f "$m/bats-sync-spc.yaml" >/dev/null

  step "azure.bats: Namespaced scope SecretProviderClass"
  k create namespace test-ns >/dev/null
  k apply -f "$m/bats-namespaced-spc.yaml" >/dev/null
  k apply -n test-ns -f "$m/bats-deployment.yaml" >/dev/null
  rolled_out test-ns busybox-deployment
  pod=$(first_pod test-ns app=busybox) || fail "no running busybox pod in test-ns"
  check "test-ns: file secretalias" file_is test-ns "$pod" /mnt/secrets-store/secretalias "$value"
  check "test-ns: Secret foosecret username" secret_is test-ns foosecret username "$value"
  check "test-ns: env SECRET_USERNAME" env_is test-ns "$pod" SECRET_USERNAME "$value"
  eventually 60 "test-ns: foosecret has 1 owner" owners_are test-ns foosecret 1
  k delete -n test-ns -f "$m/bats-deployment.yaml" >/dev/null
  eventually 60 "test-ns: foosecret deleted" absent test-ns secret foosecret

  step "azure.bats: no SecretProviderClass in the pod's namespace"
  k create namespace negative-test-ns >/dev/null
  k apply -n negative-test-ns -f "$m/bats-deployment.yaml" >/dev/null
  eventually 120 "FailedMount: secretproviderclass negative-test-ns/azure-sync not found" \
    mount_event negative-test-ns busybox-deployment \
    'failed to get secretproviderclass negative-test-ns/azure-sync.*not found'
  k delete namespace negative-test-ns --timeout=180s >/dev/null

  step "azure.bats: multiple SecretProviderClasses in one pod"
  k apply -n "$ns" -f "$m/bats-multiple-spc.yaml" >/dev/null
  k apply -n "$ns" -f "$m/bats-pod-multiple-spc.yaml" >/dev/null
  pod=secrets-store-inline-multiple-crd
  ready "$ns" "$pod" 120
  check "file in volume 0" file_is "$ns" "$pod" /mnt/secrets-store-0/secretalias "$value"
  check "file in volume 1" file_is "$ns" "$pod" /mnt/secrets-store-1/secretalias "$value"
  check "Secret foosecret-0" secret_is "$ns" foosecret-0 username "$value"
  check "Secret foosecret-1" secret_is "$ns" foosecret-1 username "$value"
  check "env SECRET_USERNAME_0" env_is "$ns" "$pod" SECRET_USERNAME_0 "$value"
  check "env SECRET_USERNAME_1" env_is "$ns" "$pod" SECRET_USERNAME_1 "$value"
  eventually 60 "foosecret-0 has 1 owner" owners_are "$ns" foosecret-0 1
  eventually 60 "foosecret-1 has 1 owner" owners_are "$ns" foosecret-1 1
  delete_pod "$ns" "$pod"
  k delete -n "$ns" -f "$m/bats-multiple-spc.yaml" -f "$m/bats-inline.yaml" --ignore-not-found >/dev/null
  k delete -f "$m/bats-namespaced-spc.yaml" --ignore-not-found >/dev/null
  k delete namespace test-ns --timeout=180s >/dev/null
}

lacks() { ! grep -q "$@"; } # GREP-ARGS...: no line matches

restarts() { # LABEL: total container restarts of the pods with LABEL
  local counts total=0 n
  counts=$(k get pods -n kube-system -l "$1" \
    -o 'jsonpath={range .items[*]}{range .status.containerStatuses[*]}{.restartCount}{" "}{end}{end}')
  for n in $counts; do total=$((total + n)); done
  echo "$total"
}

final_checks() {
  step "final checks"
  check "provider pods never restarted" test "$(restarts "$provider_label")" = 0
  check "driver pods never restarted" test "$(restarts "$driver_label")" = 0
  local log=$work/provider.log value
  k logs -n kube-system -l "$provider_label" --tail=-1 >"$log" || fail "cannot read provider logs"
  check "provider logs are not empty (-v=5)" test -s "$log"
  for value in "${values[@]}"; do
    check "provider logs do not contain the secret value ${value%%-*}-…" \
      lacks -F -- "$value" "$log"
  done
  check "provider logs contain no JWT (service-account or access token)" \
    lacks -E 'eyJ[A-Za-z0-9_-]*\.eyJ' "$log"
  check "provider logs contain no panic" lacks -F panicked "$log"
  echo "  fake-azure counters: $(k get --raw "$fake_api/counters" | head -c 2000)"
}

main() {
  cd "$(dirname "${BASH_SOURCE[0]}")/../.."
  work=$(mktemp -d)
  trap on_exit EXIT
  trap 'exit 130' INT TERM
  preflight
  build_images
  create_cluster
  install_driver
  start_fake
  deploy_provider
  blog_walkthrough
  bats_scenarios
  final_checks
  printf '\n%s passed, 0 failed\n' "$passed"
}

# Sourced by run_test.sh for its helpers; run when executed.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
