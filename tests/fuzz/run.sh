#!/bin/sh
#
# run.sh SECS NAME... -- run each libFuzzer harness objs/fuzz/fuzz_NAME
# for SECS seconds, one after the other (make fuzz).
#
# The committed seeds (tests/fuzz/corpus/NAME/) are copied into a
# working corpus, objs/fuzz/corpus-NAME, which keeps growing from run to
# run; the seeds stay clean.  tests/fuzz/NAME.dict is used when present.
# Crashes, leaks, timeouts and out-of-memory inputs are written under
# objs/fuzz/crashes/NAME/ and the full output to objs/fuzz/NAME.log.
# Exits 1 if any harness found something.

cd "$(dirname "$0")/../.." || exit 2

secs=$1
shift

out=objs/fuzz
failed=""

for t in "$@"; do
    bin=$out/fuzz_$t
    corpus=$out/corpus-$t
    crashes=$out/crashes/$t
    log=$out/$t.log

    if [ ! -x "$bin" ]; then
        echo "fuzz $t: $bin not built" >&2
        failed="$failed $t"
        continue
    fi

    mkdir -p "$corpus" "$crashes"
    if [ -d "tests/fuzz/corpus/$t" ]; then
        cp -p tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null
    fi

    dict=""
    if [ -f "tests/fuzz/$t.dict" ]; then
        dict="-dict=tests/fuzz/$t.dict"
    fi

    echo "fuzz $t: ${secs}s, corpus $corpus, log $log"

    # -timeout: an input that takes 10 s is a hang; leaks are on (ASan)
    # shellcheck disable=SC2086
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$crashes/" $dict \
        "$corpus" > "$log" 2>&1
    rc=$?

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    files=$(find "$corpus" -type f | wc -l)

    if [ "$rc" -ne 0 ] || [ -n "$(ls -A "$crashes")" ]; then
        echo "fuzz $t: FAILED (exit $rc); inputs in $crashes:" >&2
        ls -1 "$crashes" >&2
        grep -m 3 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|fuzz_)' \
            "$log" >&2
        failed="$failed $t"
    else
        echo "fuzz $t: ok, ${execs:-?} runs, ${speed:-?} exec/s," \
             "corpus $files files"
    fi
done

if [ -n "$failed" ]; then
    echo "make fuzz: failed:$failed (see objs/fuzz/*.log)" >&2
    exit 1
fi
