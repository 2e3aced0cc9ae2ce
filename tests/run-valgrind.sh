#!/bin/sh
# run-valgrind.sh BUILD_DIR TEST...: runs each test binary under valgrind memcheck and fails
# if valgrind found, in any process, an invalid access, a use of uninitialised memory or a bad
# free; or, in the test's own process, a leak (definite or indirect).
#
# Forked children are checked for errors but not for leaks: the fork tests' children end with
# _exit() holding what they inherited (the parent's pools, the test's own connections), and
# a child must leave inherited connections alone by design. So valgrind writes one log per
# process (--log-file=...%p) and the test's own pid is told apart from its children's.
# valgrind.supp suppresses third-party reports only, each explained there.
set -u
dir=$1
shift
# Tests too timing-bound for valgrind's speed skip themselves when this is set (util.h).
CONNPOOL_TEST_VALGRIND=1
export CONNPOOL_TEST_VALGRIND
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=""
for t in "$@"; do
    echo "=== valgrind $t"
    mkdir "$logs/$t"
    valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --track-fds=no --num-callers=30 \
        --suppressions="$(pwd)/tests/valgrind.supp" --log-file="$logs/$t/vg.%p" \
        "$dir/tests/$t" &
    pid=$!
    wait $pid || failed="$failed $t"
    for log in "$logs/$t"/vg.*; do
        [ -s "$log" ] || continue
        if [ "$log" = "$logs/$t/vg.$pid" ]; then
            grep -q . "$log" && { cat "$log"; failed="$failed $t(valgrind)"; }
        elif grep -Eq 'Invalid (read|write|free)|uninitialised|Mismatched free|overlap|Syscall param' "$log"; then
            cat "$log"
            failed="$failed $t(valgrind:child)"
        fi
    done
done
if [ -n "$failed" ]; then
    echo "FAILED:$failed"
    exit 1
fi
echo "valgrind: no errors, no leaks"
