#!/bin/sh
# run-tests.sh BUILD_DIR TEST...: runs each test (a binary in BUILD_DIR/tests, or a script
# tests/NAME.sh given BUILD_DIR), reports every failure, and exits non-zero if any failed: a
# crash in one test does not hide the others.
set -u
dir=$1
shift
failed=""
for t in "$@"; do
    echo "=== $t"
    case $t in
        *.sh) tests/"$t" "$dir" ;;
        *) "$dir/tests/$t" ;;
    esac || failed="$failed $t"
done
if [ -n "$failed" ]; then
    echo "FAILED:$failed"
    exit 1
fi
echo "all tests passed"
