#!/bin/sh
# run-tests.sh BUILD_DIR TEST...: runs each test (a binary in BUILD_DIR/tests, a script
# tests/NAME.sh, or a path to a binding's run-tests.sh, the scripts given BUILD_DIR), reports
# every failure, and exits non-zero if any failed: a crash in one test does not hide the
# others.
set -u
# Sanitizer settings for SAN builds (ignored otherwise):
# - LSan: suppress only third-party leaks, each explained in the file.
# - TSan: third-party suppressions, explained in the file; and a forked child of a multi-threaded parent starts threads in the fork tests, which
#   TSan refuses by default; allow it (its own note: it may miss races in such children).
LSAN_OPTIONS="suppressions=$(pwd)/tests/sanitizers/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
TSAN_OPTIONS="die_after_fork=0:suppressions=$(pwd)/tests/sanitizers/tsan.supp${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
export LSAN_OPTIONS TSAN_OPTIONS
dir=$1
shift
failed=""
for t in "$@"; do
    echo "=== $t"
    case $t in
        */*) "$t" "$dir" ;;  # a binding's test script: bindings/NAME/run-tests.sh
        *.sh) tests/"$t" "$dir" ;;
        *) "$dir/tests/$t" ;;
    esac || failed="$failed $t"
done
if [ -n "$failed" ]; then
    echo "FAILED:$failed"
    exit 1
fi
echo "all tests passed"
