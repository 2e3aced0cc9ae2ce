#!/bin/sh
# fuzz-replay.sh BUILD_DIR: replays every fuzz target's committed corpus and regressions
# (tests/fuzz/) through BUILD_DIR/tests/fuzz_replay_NAME, a build without libFuzzer by the
# normal compiler (with the build's sanitizers), so make check proves that every input that
# once broke a property still passes. Fails if a binary is missing or any input fails.
set -u
dir=$1
failed=""
for src in tests/fuzz/fuzz_*.cc; do
    target=$(basename "$src" .cc)
    bin=$dir/tests/fuzz_replay_${target#fuzz_}
    if [ ! -x "$bin" ]; then
        echo "fuzz-replay: $bin is not built"
        failed="$failed $target"
        continue
    fi
    inputs=""
    for d in tests/fuzz/corpus/$target tests/fuzz/regressions/$target; do
        [ -d "$d" ] && inputs="$inputs $d"
    done
    # shellcheck disable=SC2086 # one directory per word, none with spaces
    printf '%s: ' "$target"
    "$bin" $inputs || failed="$failed $target"
done
if [ -n "$failed" ]; then
    echo "fuzz-replay: FAILED:$failed"
    exit 1
fi
