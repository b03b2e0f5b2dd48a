#!/usr/bin/env bash
# Static checks of everything that ships beside the Rust code, runnable
# without Docker or a cluster (part of `make test`):
#   - yamllint on every YAML file (.yamllint.yaml; not the chart's
#     templates, which are Go templates: helm lint checks those);
#   - hadolint on the Dockerfile (both images, both architectures);
#   - shellcheck on every shell script in scripts/, deploy/e2e/ and .ci/;
#   - actionlint and zizmor on the GitHub workflows (.github/workflows);
#   - cargo deny: the dependency policy in deny.toml (licenses, bans,
#     sources);
#   - deploy/e2e/run_test.sh: the kind e2e's helpers against recorded
#     cluster output;
#   - scripts/manifests.py (its tests first): `helm lint` and `helm template`
#     of charts/akv-csi-provider over every value set, `kubectl kustomize` of
#     every Kustomization under deploy/, the chart's defaults identical to
#     deploy/, the docs' install commands rendered, every manifest validated
#     against the Kubernetes schemas, strictly.
# The tools come from scripts/tools.sh (pinned, checksummed, in .tools/).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(scripts/tools.sh)
export PATH="$PWD/.tools/bin:$bin:$PATH"

mapfile -t yaml_files < <(find . \( -path ./target -o -path ./.tools -o -path ./.git \
  -o -path ./demo -o -path './charts/*/templates' \) -prune -o \
  \( -name '*.yaml' -o -name '*.yml' \) -print | sort)
yamllint --strict -c .yamllint.yaml "${yaml_files[@]}"
echo "yamllint: ${#yaml_files[@]} files clean"

hadolint Dockerfile
echo "hadolint: Dockerfile clean"

mapfile -t shell_files < <(grep -lE '^#!.*\b(ba)?sh\b' scripts/* deploy/e2e/* .ci/* 2>/dev/null | sort)
shellcheck "${shell_files[@]}"
echo "shellcheck: ${#shell_files[@]} scripts clean (${shell_files[*]})"

# actionlint also runs shellcheck (on PATH) over the workflows' run: steps.
actionlint
zizmor --offline --quiet .github/workflows
echo "actionlint $(actionlint --version | head -n 1), zizmor: .github/workflows clean"

nice -n 10 cargo-deny --log-level error check --hide-inclusion-graph licenses bans sources
echo "cargo deny: licenses, bans, sources ok (deny.toml)"

if ! result=$(bash deploy/e2e/run_test.sh); then
  echo "deploy/e2e/run_test.sh: $result" >&2
  exit 1
fi
echo "deploy/e2e/run_test.sh: $result"

if ! out=$(python scripts/manifests_test.py 2>&1); then
  printf '%s\n' "$out" >&2
  exit 1
fi
echo "manifests_test.py: $(grep -E '^Ran [0-9]+ tests' <<<"$out"), OK"
python scripts/manifests.py check
echo "helm $(helm version --template '{{.Version}}'), kubectl $(kubectl version --client | head -n 1)"
