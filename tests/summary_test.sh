#!/usr/bin/env bash
# summary_test.sh — tests/summary.sh on made-up build directories: it must
# count what ran, and report as failures what failed, crashed, ran nothing or
# did not run at all, with a non-zero exit status.
set -u
srcdir=${srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
summary="$srcdir/tests/summary.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/dfsummary.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
failures=0

# fake_build DIR TESTS...: a build directory whose make print-tests lists TESTS.
fake_build() {
    local d=$1
    shift
    mkdir -p "$d/tests" "$d/fuzz/out"
    printf 'print-tests:\n\t@echo %s\nprint-fuzz-targets:\n\t@echo one\n' "$*" > "$d/Makefile"
}

# criterion DIR NAME TESTED PASSING FAILING CRASHING [TRS_RESULT]
criterion() {
    printf '[====] Synthesis: Tested: %s | Passing: %s | Failing: %s | Crashing: %s \n' "$3" "$4" "$5" "$6" \
        > "$1/tests/$2.log"
    printf ':test-result: %s\n' "${7:-PASS}" > "$1/tests/$2.trs"
}

# script DIR NAME RESULT...: a script test's log and its result lines.
script() {
    local d=$1 n=$2
    shift 2
    echo "ran" > "$d/tests/$n.log"
    : > "$d/tests/$n.trs"
    for r in "$@"; do printf ':test-result: %s\n' "$r" >> "$d/tests/$n.trs"; done
}

# expect WHAT STATUS LAST_LINE ARGS...: summary.sh ARGS exits STATUS (0 or
# non-zero) and its last line is LAST_LINE.
expect() {
    local what=$1 want_status=$2 want_line=$3 out status last
    shift 3
    out=$(bash "$summary" "$@" 2>&1)
    status=$?
    last=$(printf '%s\n' "$out" | tail -n 1)
    if [ "$last" != "$want_line" ] || { [ "$want_status" = 0 ] && [ $status -ne 0 ]; } ||
        { [ "$want_status" != 0 ] && [ $status -eq 0 ]; }; then
        echo "FAIL: $what: status $status, last line '$last' (expected status $want_status, '$want_line')"
        printf '%s\n' "$out" | sed 's/^/    /'
        failures=$((failures + 1))
    else
        echo "ok: $what"
    fi
}

d=$work/all_pass
fake_build "$d" tests/test_a tests/b.sh
criterion "$d" test_a 3 3 0 0
script "$d" b.sh PASS
expect "everything passed" 0 "4 passed, 0 failed" "$d"

d=$work/missing_log
fake_build "$d" tests/test_a tests/test_b
criterion "$d" test_a 3 3 0 0
expect "an expected test without a log" 1 "3 passed, 1 failed" "$d"

d=$work/empty_log
fake_build "$d" tests/test_a
criterion "$d" test_a 3 3 0 0
: > "$d/tests/test_a.log"
expect "an empty log" 1 "0 passed, 1 failed" "$d"

d=$work/tested_zero
fake_build "$d" tests/test_a
criterion "$d" test_a 0 0 0 0
expect "a suite that tested nothing" 1 "0 passed, 1 failed" "$d"

d=$work/failing_and_crashing
fake_build "$d" tests/test_a
criterion "$d" test_a 5 2 2 1 FAIL
expect "failing and crashing tests" 1 "2 passed, 3 failed" "$d"

d=$work/last_synthesis
fake_build "$d" tests/test_a
criterion "$d" test_a 2 2 0 0
printf '[====] Synthesis: Tested: 4 | Passing: 3 | Failing: 1 | Crashing: 0 \n' >> "$d/tests/test_a.log"
expect "the last synthesis line counts" 1 "3 passed, 1 failed" "$d"

d=$work/error_status
fake_build "$d" tests/test_a
criterion "$d" test_a 2 2 0 0 ERROR
expect "a suite exiting with an error status" 1 "2 passed, 1 failed" "$d"

d=$work/sanitizer
fake_build "$d" tests/test_a
criterion "$d" test_a 2 2 0 0
echo "==123==ERROR: LeakSanitizer: detected memory leaks" >> "$d/tests/test_a.log"
expect "a sanitizer report" 1 "2 passed, 1 failed" "$d"

d=$work/skip
fake_build "$d" tests/a.sh tests/b.sh
script "$d" a.sh SKIP
script "$d" b.sh PASS
expect "a skipped script" 0 "1 passed, 0 failed, 1 skipped" "$d"

d=$work/several_results
fake_build "$d" tests/a.sh
script "$d" a.sh PASS FAIL
expect "every result line is read" 1 "1 passed, 1 failed" "$d"

d=$work/no_results
fake_build "$d" tests/a.sh
script "$d" a.sh
expect "a .trs without a result" 1 "0 passed, 1 failed" "$d"

mkdir -p "$work/unconfigured/tests"
expect "a directory that is not a configured build" 1 "0 passed, 1 failed" "$work/unconfigured"
expect "a directory that does not exist" 1 "0 passed, 1 failed" "$work/nowhere"

d=$work/fuzz
fake_build "$d" tests/a.sh
script "$d" a.sh PASS
expect "a fuzz harness that did not run" 1 "1 passed, 1 failed" "$d" --fuzz "$d"
echo "fuzz_one: 1000 executions in 60 s, 0 crashes" > "$d/fuzz/out/fuzz_one.log"
echo ":test-result: PASS" > "$d/fuzz/out/fuzz_one.trs"
expect "a fuzz harness that ran" 0 "2 passed, 0 failed" "$d" --fuzz "$d"

d2=$work/second
fake_build "$d2" tests/test_a
criterion "$d2" test_a 1 1 0 0
expect "two build directories add up" 0 "3 passed, 0 failed" "$d" "$d2" --fuzz "$d"

[ $failures -eq 0 ] && echo "summary.sh: all cases ok" && exit 0
echo "summary.sh: $failures cases wrong"
exit 1
