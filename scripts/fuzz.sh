#!/usr/bin/env bash
# `make fuzz`: runs every cargo-fuzz target in fuzz/ (or those in
# FUZZ_TARGETS) for FUZZ_SECONDS each, one after another, starting from the
# committed seed corpus (fuzz/corpus/<target>/). New inputs go to a scratch
# corpus under target/fuzz/corpus/ (not committed); crashes to
# fuzz/artifacts/<target>/ and stop the run. Prints runs and corpus size per
# target and writes them to target/fuzz/summary.txt.
#
#   FUZZ_SECONDS=600 FUZZ_TARGETS="params objects" make fuzz
#   FUZZ_SANITIZER=none make fuzz      # without AddressSanitizer
#
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. Installs cargo-fuzz when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
sanitizer="${FUZZ_SANITIZER:-address}"
targets="${FUZZ_TARGETS:-$(find fuzz/fuzz_targets -name '*.rs' -printf '%f\n' | sed 's/\.rs$//' | sort | tr '\n' ' ')}"
target_dir="$PWD/target/fuzz"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

cd fuzz
for t in $targets; do
  cargo fuzz build --sanitizer "$sanitizer" --target-dir "$target_dir" "$t"
done
mkdir -p "$target_dir/corpus" "$target_dir/logs"
summary="$target_dir/summary.txt"
: >"$summary"
for t in $targets; do
  scratch="$target_dir/corpus/$t"
  mkdir -p "$scratch"
  log="$target_dir/logs/$t.log"
  dict=()
  [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
  started=$(date +%s)
  status=0
  cargo fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir" "$t" \
    "$scratch" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 "${dict[@]}" >"$log" 2>&1 || status=$?
  elapsed=$(( $(date +%s) - started ))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
  corpus=$(find "$scratch" -type f | wc -l)
  line="$t: ${runs:-?} runs in ${elapsed}s, scratch corpus $corpus, peak RSS ${peak:-?} MB, exit $status"
  echo "$line" | tee -a "$summary"
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz target $t failed; the crashing input is in fuzz/artifacts/$t/ (copy it to fuzz/regressions/$t/)" >&2
    exit "$status"
  fi
done
