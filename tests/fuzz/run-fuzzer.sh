#!/bin/sh
# run-fuzzer.sh FUZZ_DIR TARGET SECONDS MAX_LEN: runs FUZZ_DIR/TARGET (a libFuzzer binary) for
# SECONDS over a scratch corpus FUZZ_DIR/corpus/TARGET, kept between runs, plus the committed
# tests/fuzz/corpus/TARGET and tests/fuzz/regressions/TARGET, which libFuzzer only reads (it
# writes new inputs into the first directory only), so CI never adds files to the repository.
# Prints the target's figures; on a crash or a broken property prints the end of the log and
# where the input was saved, and exits non-zero.
set -u
dir=$1 target=$2 seconds=$3 max_len=$4
scratch=$dir/corpus/$target
artifacts=$dir/artifacts/$target
log=$dir/$target.log
mkdir -p "$scratch" "$artifacts"
inputs="$scratch"
for d in tests/fuzz/corpus/$target tests/fuzz/regressions/$target; do
    [ -d "$d" ] && inputs="$inputs $d"
done
# Leaks count as failures (libFuzzer's default); only third-party ones are suppressed.
export LSAN_OPTIONS="suppressions=$(pwd)/tests/sanitizers/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# shellcheck disable=SC2086 # $inputs: one directory per word, none with spaces
"$dir/$target" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" $inputs >"$log" 2>&1
rc=$?
# "#N DONE cov: C ft: F corp: ..." and the final stat:: lines.
seeds=$(sed -n 's/.*INFO: seed corpus: files: \([0-9]*\).*/\1/p' "$log" | head -n 1)
done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
per_sec=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
echo "$target: ${seconds}s budget, ${seeds:-?} seed inputs, ${execs:-?} execs (${per_sec:-?}/s), peak RSS ${rss:-?} MB"
[ -n "$done_line" ] && echo "$target: $done_line"
if [ $rc -ne 0 ]; then
    echo "$target: FAILED (exit $rc); the end of $log:"
    tail -n 40 "$log"
    ls "$artifacts" | sed "s|^|$target: saved input: $artifacts/|"
    exit 1
fi
