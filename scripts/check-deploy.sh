#!/usr/bin/env bash
# Static checks of everything that ships beside the Rust code, runnable
# without Docker or a cluster (part of `make test`):
#   - yamllint on every YAML file (.yamllint.yaml);
#   - hadolint on the Dockerfile (both images);
#   - shellcheck on every shell script in scripts/, deploy/e2e/ and .ci/;
#   - deploy/e2e/run_test.sh: the kind e2e's helpers against recorded
#     cluster output;
#   - scripts/manifests.py: every Kustomization under deploy/ renders (and
#     matches `kubectl kustomize` where kubectl exists) and every manifest
#     validates against the Kubernetes schemas, strictly; its own tests first.
# The tools come from scripts/tools.sh (pinned, in .tools/venv).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(scripts/tools.sh)

mapfile -t yaml_files < <(find . \( -path ./target -o -path ./.tools -o -path ./.git \
  -o -path ./demo \) -prune -o \( -name '*.yaml' -o -name '*.yml' \) -print | sort)
"$bin/yamllint" --strict -c .yamllint.yaml "${yaml_files[@]}"
echo "yamllint: ${#yaml_files[@]} files clean"

"$bin/hadolint" Dockerfile
echo "hadolint: Dockerfile clean"

mapfile -t shell_files < <(grep -lE '^#!.*\b(ba)?sh\b' scripts/* deploy/e2e/* .ci/* 2>/dev/null | sort)
"$bin/shellcheck" "${shell_files[@]}"
echo "shellcheck: ${#shell_files[@]} scripts clean (${shell_files[*]})"

if ! result=$(bash deploy/e2e/run_test.sh); then
  echo "deploy/e2e/run_test.sh: $result" >&2
  exit 1
fi
echo "deploy/e2e/run_test.sh: $result"

if ! out=$("$bin/python" scripts/manifests_test.py 2>&1); then
  printf '%s\n' "$out" >&2
  exit 1
fi
echo "manifests_test.py: $(grep -E '^Ran [0-9]+ tests' <<<"$out"), OK"
"$bin/python" scripts/manifests.py check
