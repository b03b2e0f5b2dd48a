#!/usr/bin/env bash
# The pure modules (parsing, validation, conversion) must not do I/O or know
# the runtime: they may not name tokio, reqwest, tonic, hyper, std::fs or
# std::net. See docs/design.md, "Module map".
set -euo pipefail
cd "$(dirname "$0")/.."

pure=(crates/core/src)
status=0
while IFS= read -r hit; do
  echo "layer violation (pure module does I/O): $hit" >&2
  status=1
done < <(grep -rnE '\b(tokio|reqwest|tonic|hyper)::|\bstd::(fs|net)\b|use (tokio|reqwest|tonic|hyper)\b' "${pure[@]}" 2>/dev/null | grep -v '^\s*//' || true)
exit "$status"
