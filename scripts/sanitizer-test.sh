#!/usr/bin/env bash
# Runs the tests of a sanitizer build (make asan / make tsan, .ci/run):
#   scripts/sanitizer-test.sh asan|tsan [ctest arguments...]
# The tree must be built (make asan / make tsan build it first).
#
# Every process the tests start (the test binaries, trouped, troupectl,
# troupe-bench, echo_server) inherits the options below and writes each
# report to build/PRESET/sanitizer-reports/report.PID instead of stderr:
# a report from a trouped that a test then SIGKILLs, or from a tool whose
# output a test only greps, would otherwise be lost. The run fails when
# ctest fails or when any report was written; the reports are printed.
set -euo pipefail
cd "$(dirname "$0")/.."

preset="${1:?usage: scripts/sanitizer-test.sh asan|tsan [ctest arguments...]}"
shift
build="build/$preset"
reports="$PWD/$build/sanitizer-reports"
[[ -f "$build/CTestTestfile.cmake" ]] || { echo "sanitizer-test: $build is not built (make $preset)" >&2; exit 1; }
rm -rf "$reports"
mkdir -p "$reports"

case "$preset" in
  asan)
    # UBSan is compiled with -fno-sanitize-recover: the first report aborts.
    export ASAN_OPTIONS="log_path=$reports/report:halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
    export UBSAN_OPTIONS="log_path=$reports/report:print_stacktrace=1:halt_on_error=1"
    ;;
  tsan)
    # tests/tsan.supp: see the comment there (uninstrumented gRPC/absl only).
    export TSAN_OPTIONS="log_path=$reports/report:second_deadlock_stack=1:ignore_noninstrumented_modules=1:suppressions=$PWD/tests/tsan.supp"
    ;;
  *)
    echo "sanitizer-test: unknown preset '$preset' (asan or tsan)" >&2
    exit 2
    ;;
esac

status=0
(cd "$build" && ctest --output-on-failure -j2 --timeout 300 "$@") || status=$?

shopt -s nullglob
found=("$reports"/report.*)
if [[ ${#found[@]} -gt 0 ]]; then
  echo "sanitizer-test: ${#found[@]} sanitizer report(s) in $reports:" >&2
  for f in "${found[@]}"; do
    echo "==== $f" >&2
    cat "$f" >&2
  done
  [[ $status -ne 0 ]] || status=1
fi
exit "$status"
