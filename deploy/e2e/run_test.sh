#!/usr/bin/env bash
# Tests of run.sh's assertion helpers, with kubectl replaced by a stub that
# answers recorded cluster output: the parts of the kind e2e that read what
# the cluster says (exec output with CRs, base64 Secret data, owner lists,
# FailedMount event texts as the driver writes them, restart counts, logs)
# are checked on every `make test`, without a cluster.
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=deploy/e2e/run.sh
source ./run.sh

# The stub: `k ARGS...` prints stub["ARGS..."] or fails like kubectl would.
declare -A stub=()
k() {
  local key="$*"
  [[ -v "stub[$key]" ]] || return 1
  printf '%s' "${stub[$key]}"
}

ok=0
bad=0
expect() { # yes|no WHAT CMD...
  local want=$1 what=$2 got=no
  shift 2
  if "$@" >/dev/null 2>&1; then got=yes; fi
  if [[ "$got" == "$want" ]]; then
    ok=$((ok + 1))
  else
    bad=$((bad + 1))
    echo "FAIL: $what (expected $want, got $got)" >&2
  fi
}

stub["exec -n blog-post p -- cat /mnt/secrets-store/MySecretPassword"]=$'s3cr3t\r'
expect yes "file_is strips a trailing CR" file_is blog-post p /mnt/secrets-store/MySecretPassword s3cr3t
expect no "file_is compares the whole value" file_is blog-post p /mnt/secrets-store/MySecretPassword s3cr
expect no "file_is fails when exec fails" file_is blog-post q /mnt/secrets-store/MySecretPassword s3cr3t

stub["exec -n blog-post p -- env"]=$'PATH=/bin\r\nPASSWORD=s3cr3t\r\nHOME=/root\r\n'
expect yes "env_is finds the variable" env_is blog-post p PASSWORD s3cr3t
expect no "env_is compares whole lines" env_is blog-post p PASSWORD s3cr
expect no "env_is needs the variable" env_is blog-post p SECRET_USERNAME s3cr3t

stub["get secret -n blog-post secret-blog-post -o jsonpath={.data.Password}"]=$(printf 's3cr3t' | base64)
stub["get secret -n default empty -o jsonpath={.data.username}"]=""
expect yes "secret_is decodes base64" secret_is blog-post secret-blog-post Password s3cr3t
expect no "secret_is compares the value" secret_is blog-post secret-blog-post Password other
expect no "secret_is rejects missing data" secret_is default empty username ""

stub["get secret -n default foosecret -o jsonpath={.metadata.labels.secrets-store\\.csi\\.k8s\\.io/managed}"]=true
expect yes "label_is reads an escaped label key" \
  label_is default foosecret 'secrets-store\.csi\.k8s\.io/managed' true

stub["get secret -n default foosecret -o jsonpath={.metadata.ownerReferences[*].uid}"]="u1 u2"
expect yes "owners_are counts owner uids" owners_are default foosecret 2
expect no "owners_are compares the count" owners_are default foosecret 1

stub["get -n default secret gone --ignore-not-found -o name"]=""
stub["get -n default secret here --ignore-not-found -o name"]="secret/here"
expect yes "absent when kubectl finds nothing" absent default secret gone
expect no "not absent when kubectl finds it" absent default secret here
expect no "not absent when kubectl fails" absent default secret unknown

events=$'busybox-wrong-identity\tMountVolume.SetUp failed for volume "secrets-store-inline" : rpc error: code = Unknown desc = failed to mount secrets store objects for pod blog-post/busybox-wrong-identity, err: rpc error: code = Unknown desc = failed to mount objects, error: failed to get a Key Vault token for workload identity (tenant t, client id c) from https://login.microsoftonline.com/t/oauth2/v2.0/token: 400 invalid_grant: AADSTS70021: No matching federated identity record found for presented assertion.\n'
events+=$'busybox-deployment-6b7f9c-x2x4q\tMountVolume.SetUp failed for volume "secrets-store-inline" : rpc error: code = Unknown desc = failed to get secretproviderclass negative-test-ns/azure-sync, error: SecretProviderClass.secrets-store.csi.x-k8s.io "azure-sync" not found\n'
events_query='get events -n NS --field-selector reason=FailedMount -o jsonpath={range .items[*]}{.involvedObject.name}{"\t"}{.message}{"\n"}{end}'
stub["${events_query/NS/blog-post}"]=$events
stub["${events_query/NS/negative-test-ns}"]=$events
expect yes "mount_event finds AADSTS70021 for the pod" mount_event blog-post busybox-wrong-identity AADSTS70021
expect no "mount_event is per pod" mount_event blog-post busybox-secrets-store-inline AADSTS70021
expect yes "mount_event matches the driver's not-found text by pod prefix" \
  mount_event negative-test-ns busybox-deployment \
  'failed to get secretproviderclass negative-test-ns/azure-sync.*not found'
expect no "mount_event needs a matching message" mount_event negative-test-ns busybox-deployment AADSTS70021

stub["logs -n kube-system -l app=secrets-store-csi-driver -c secrets-store --tail=-1"]=$'I1126 mounted\nI1126 unmounted\n'
expect yes "no_unmount_errors on clean logs" no_unmount_errors
stub["logs -n kube-system -l app=secrets-store-csi-driver -c secrets-store --tail=-1"]+=$'E1126 failed to clean and unmount target path /x\n'
expect no "no_unmount_errors spots the driver's error" no_unmount_errors

restart_query='get pods -n kube-system -l app=x -o jsonpath={range .items[*]}{range .status.containerStatuses[*]}{.restartCount}{" "}{end}{end}'
stub["$restart_query"]="0 1 0 2 "
expect yes "restarts adds every container's count" test "$(restarts app=x)" = 3

log=$(mktemp)
trap 'rm -f "$log"' EXIT
printf 'mount ok pod=p objects=1\ntoken eyJhbGciOi.eyJzdWIiOi.sig\n' >"$log"
expect yes "lacks: absent value" lacks -F -- s3cr3t "$log"
expect no "lacks: present JWT" lacks -E 'eyJ[A-Za-z0-9_-]*\.eyJ' "$log"

tries=0
flaky() { tries=$((tries + 1)); ((tries >= 2)); }
expect yes "eventually retries until the check holds" eventually 10 "flaky" flaky
expect no "eventually gives up after its limit" bash -c 'source ./run.sh; sleep() { :; }; eventually 0 never false'
expect no "check fails the run" bash -c 'source ./run.sh; check never false'

printf '%s passed, %s failed\n' "$ok" "$bad"
[[ "$bad" == 0 ]]
