#!/usr/bin/env bash
# Builds the real parts the e2e and the differential tests run, from the Go
# modules pinned under e2e/tools/ (go.mod + go.sum), with the ordinary `go`
# client through the Go module proxy, into .tools/go/bin (git-ignored):
#
#   kube-apiserver, kubectl   k8s.io/kubernetes v1.37.2      (e2e/tools/k8s)
#   etcd                      go.etcd.io/etcd/server/v3 v3.7.3 (e2e/tools/etcd)
#   secrets-store-csi-driver-v1.6.1, -v1.5.6                 (e2e/tools/driver-v*)
#   azure-provider-v1.8.2, -v1.5.2  upstream's provider      (e2e/tools/azure-v*)
#
#   scripts/go-tools.sh [name...]   # default: all of them
#
# Nothing of theirs is copied into the repository: go fetches the modules into
# GOMODCACHE and builds them with GOCACHE, both kept between runs where the
# machine keeps them (a warm rebuild takes seconds; a cold one is timed and
# printed). A part that does not build fails the script with go's reason.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/.tools/go/bin
mkdir -p "$bin"

command -v go >/dev/null 2>&1 || {
  echo "go-tools: go is required (apt-get install golang-go, or Go 1.26 from go.dev)" >&2
  exit 1
}
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local CGO_ENABLED=0
export GOPROXY=${GOPROXY:-https://proxy.golang.org,direct}

k8s_version=v1.37.2
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=37"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# build NAME MODULE_DIR PACKAGE LDFLAGS
build() {
  local name=$1 dir=$2 pkg=$3 ldflags=$4 start end
  start=$(date +%s)
  (cd "$root/e2e/tools/$dir" && nice -n 5 go build -trimpath -ldflags "$ldflags" -o "$bin/$name" "$pkg") || {
    echo "go-tools: $name did not build from e2e/tools/$dir ($pkg); see go's error above" >&2
    return 1
  }
  end=$(date +%s)
  echo "go-tools: $name ready in $((end - start)) s ($bin/$name)" >&2
}

part() {
  case $1 in
    kube-apiserver) build kube-apiserver k8s k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags" ;;
    kubectl) build kubectl k8s k8s.io/kubernetes/cmd/kubectl "$k8s_ldflags" ;;
    etcd) build etcd etcd go.etcd.io/etcd/server/v3 "-s -w" ;;
    secrets-store-csi-driver-v1.6.1 | secrets-store-csi-driver-v1.5.6)
      local v=${1##*-}
      build "$1" "driver-$v" sigs.k8s.io/secrets-store-csi-driver/cmd/secrets-store-csi-driver \
        "-s -w -X sigs.k8s.io/secrets-store-csi-driver/pkg/version.BuildVersion=$v"
      ;;
    azure-provider-v1.8.2 | azure-provider-v1.5.2)
      local v=${1##*-}
      build "$1" "azure-$v" github.com/Azure/secrets-store-csi-driver-provider-azure/cmd \
        "-s -w -X github.com/Azure/secrets-store-csi-driver-provider-azure/pkg/version.BuildVersion=$v"
      ;;
    *)
      echo "go-tools: unknown part $1" >&2
      return 2
      ;;
  esac
}

all=(kube-apiserver kubectl etcd secrets-store-csi-driver-v1.6.1 secrets-store-csi-driver-v1.5.6
  azure-provider-v1.8.2 azure-provider-v1.5.2)
[ "$#" -gt 0 ] || set -- "${all[@]}"
for name in "$@"; do
  part "$name"
done
