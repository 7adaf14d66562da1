#!/usr/bin/env bash
# Builds Gatehouse with sanitizers in a directory of its own and runs the whole suite (unit tests,
# integration tests, fuzz replays, script tests) against the sanitized binaries.
#   scripts/test-sanitized.sh BUILD_DIR SANITIZERS      (make test-asan, make test-tsan)
# SANITIZERS is "address,undefined" or "thread" (CMake's GATEHOUSE_SANITIZE). Every sanitized
# process writes its reports into BUILD_DIR/sanitizer-reports/ instead of stderr, so that a report
# from a gateway a test stops with SIGTERM, or from one whose exit status no test reads, is still
# seen: the run fails when the suite fails or when any report was written.
set -euo pipefail
build=$1
sanitizers=$2
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# -O1 -g1: a fraction of -O2's build time, line numbers in the reports, asserts kept.
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DGATEHOUSE_SANITIZE="$sanitizers"
fi
cmake --build "$build" -j "${JOBS:-2}"

reports="$(cd "$build" && pwd)/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
suppressions="$root/tests/sanitizers"
export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:check_initialization_order=1:strict_init_order=1"
export LSAN_OPTIONS="suppressions=$suppressions/lsan.supp"
export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="log_path=$reports/tsan:second_deadlock_stack=1:suppressions=$suppressions/tsan.supp"

status=0
(cd "$build" && ctest --output-on-failure --timeout 1800) || status=1
shopt -s nullglob
found=("$reports"/*)
if ((${#found[@]})); then
  echo "sanitizers: ${#found[@]} report(s) in $reports:"
  for f in "${found[@]}"; do
    echo "==== $f"
    head -n 80 "$f"
  done
  status=1
fi
exit $status
