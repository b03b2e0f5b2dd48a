#!/usr/bin/env bash
# `make fuzz`: runs every cargo-fuzz target in fuzz/ (or those in
# FUZZ_TARGETS) for FUZZ_SECONDS each, FUZZ_PARALLEL at a time (default 1),
# starting from the committed seed corpus (fuzz/corpus/<target>/) and the
# scratch corpus of earlier runs. New inputs go to the scratch corpus under
# target/fuzz/corpus/ (not committed); crashes to fuzz/artifacts/<target>/.
# Prints runs, wall time and peak RSS per target and writes them to
# target/fuzz/summary.txt; exits non-zero if any target failed.
#
#   FUZZ_SECONDS=600 FUZZ_PARALLEL=2 make fuzz
#   FUZZ_TARGETS="params objects" make fuzz
#   FUZZ_SANITIZER=none make fuzz      # without AddressSanitizer
#
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. Installs cargo-fuzz when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
parallel="${FUZZ_PARALLEL:-1}"
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
mkdir -p "$target_dir/corpus" "$target_dir/logs" "$target_dir/results"

# One target: its line goes to results/<target>.txt.
run() {
  local t=$1 scratch="$target_dir/corpus/$1" log="$target_dir/logs/$1.log"
  local dict=() started status=0 elapsed runs peak corpus
  mkdir -p "$scratch"
  [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
  started=$(date +%s)
  cargo fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir" "$t" \
    "$scratch" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 "${dict[@]}" >"$log" 2>&1 || status=$?
  elapsed=$(($(date +%s) - started))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
  corpus=$(find "$scratch" -type f | wc -l)
  echo "$t: ${runs:-?} runs in ${elapsed}s, scratch corpus $corpus, peak RSS ${peak:-?} MB, exit $status" |
    tee "$target_dir/results/$t.txt"
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz target $t failed; the crashing input is in fuzz/artifacts/$t/ (copy it to fuzz/regressions/$t/)" >&2
  fi
  return "$status"
}

failed=0
running=0
for t in $targets; do
  rm -f "$target_dir/results/$t.txt"
  if [ "$running" -ge "$parallel" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
  run "$t" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
for t in $targets; do
  cat "$target_dir/results/$t.txt" 2>/dev/null || echo "$t: no result"
done >"$target_dir/summary.txt"
exit "$failed"
