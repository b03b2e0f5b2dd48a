#!/usr/bin/env bash
# The layer rules the compiler cannot check (scripts/check_layers.py): the
# pure core names no runtime, network or filesystem (sources and
# Cargo.toml); no import cycle between the provider's top-level modules; no
# import pointing up the layer table. Its own tests run first (they build
# fixture trees with a deliberate cycle, upward import and core I/O).
# See docs/design.md, "Module map".
set -euo pipefail
cd "$(dirname "$0")/.."

if ! out=$(python3 scripts/check_layers_test.py 2>&1); then
  echo "$out" >&2
  exit 1
fi
exec python3 scripts/check_layers.py
