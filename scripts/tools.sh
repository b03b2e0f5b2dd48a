#!/usr/bin/env bash
# Installs the static-check tools (yamllint, hadolint, shellcheck,
# kubernetes-validate; versions pinned in scripts/tools-requirements.txt)
# into .tools/venv, a git-ignored virtual environment, and prints its bin
# directory. Reinstalls only when the requirements change. Needs python3
# with the venv module and access to PyPI the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.tools/venv
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
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-deps --only-binary=:all: -r "$requirements" >&2
  "$venv/bin/python" -m pip check --disable-pip-version-check >&2
  echo "$want" >"$stamp"
fi
echo "$PWD/$venv/bin"
