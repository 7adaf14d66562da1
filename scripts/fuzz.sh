#!/usr/bin/env bash
# Runs each fuzz target for a while, one after the other and niced (make fuzz FUZZ_SECONDS=N).
#   scripts/fuzz.sh BUILD_DIR SECONDS TARGET...
# Each target's working corpus is BUILD_DIR/corpus/<target>, seeded from fuzz/corpus/<target>/ and
# fuzz/regressions/<target>/ (read only); crashes land in BUILD_DIR/artifacts/<target>/ and the
# log in BUILD_DIR/fuzz-<target>.log. Nothing is written into the source tree. Prints one row per
# target for the table in docs/testing.md, and fails when a target found a crash.
set -euo pipefail
build=$1
seconds=$2
shift 2
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rows=()
status=0
for t in "$@"; do
  corpus="$build/corpus/$t"
  artifacts="$build/artifacts/$t"
  log="$build/fuzz-$t.log"
  mkdir -p "$corpus" "$artifacts"
  seeds=("$root/fuzz/corpus/$t")
  [ -d "$root/fuzz/regressions/$t" ] && seeds+=("$root/fuzz/regressions/$t")
  dict=()
  [ -f "$root/fuzz/$t.dict" ] && dict=("-dict=$root/fuzz/$t.dict")
  echo "fuzz: $t for ${seconds}s (log: $log)"
  if ! nice -n 10 "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 \
    -timeout=30 "${dict[@]}" -artifact_prefix="$artifacts/" "$corpus" "${seeds[@]}" \
    >"$log" 2>&1; then
    echo "fuzz: $t FAILED: see $log and $artifacts/"
    status=1
  fi
  # "#1234 DONE cov: 567 ft: 890 corp: 12/345b ..." and "stat::average_exec_per_sec: 6789"
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$last")
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log")
  eps=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$log")
  rows+=("| $t | ${runs:-?} | ${eps:-?} | ${corp:-?} | ${cov:-?} | ${ft:-?} |")
done
echo
echo "| target | runs | exec/s | corpus (units/bytes) | cov | ft |"
echo "|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
exit $status
