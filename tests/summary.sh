#!/usr/bin/env bash
# summary.sh [--fuzz BUILD_DIR] [BUILD_DIR...] — adds up the results of
# `make check` in each build directory (default: the source tree, which is
# configured in-tree), and of `make fuzz` in the --fuzz directory.
#
# What is expected comes from the build, not from the files that happen to be
# there: `make print-tests` (the TESTS of Makefile.am) and `make
# print-fuzz-targets`. For each expected test:
#   - no .log or .trs, or an empty .log: it did not run, one failure;
#   - a Criterion suite: the numbers of its last synthesis line; "Tested: 0"
#     counts as one failure (a suite that ran nothing proves nothing);
#   - a script test or fuzz harness: every :test-result: line of its .trs
#     (PASS/XFAIL pass, SKIP is skipped, anything else fails);
#   - a sanitizer report (ASan, LSan, UBSan) in the log of a suite that
#     otherwise passed counts as one failure (Criterion does not fail a test
#     whose worker reports a leak only when it exits), and so does a suite
#     whose .trs says FAIL or ERROR while its synthesis line shows none.
# Prints one line per test (prefixed with the build directory after the
# first), then "N passed, N failed" (", N skipped" when some were skipped).
# Exits 1 when anything failed or did not run, 0 otherwise.
root=$(cd "$(dirname "$0")/.." && pwd) || exit 1
dirs=() fuzz_dir=""
while [ $# -gt 0 ]; do
    case $1 in
        --fuzz) fuzz_dir=${2:?--fuzz needs a build directory}; shift 2 ;;
        *) dirs+=("$1"); shift ;;
    esac
done
[ ${#dirs[@]} -eq 0 ] && [ -z "$fuzz_dir" ] && dirs=("$root")
passed=0 failed=0 skipped=0

# did_not_run NAME WHY
did_not_run() {
    echo "$1: FAIL (did not run: $2)"
    failed=$((failed + 1))
}

# sanitizer_report LOG: true when the log holds a sanitizer's error report.
sanitizer_report() {
    grep -a -q -E '^==[0-9]+==ERROR: [A-Za-z]+Sanitizer|: runtime error: ' "$1"
}

# count_criterion NAME LOG TRS LINE: one suite's synthesis line.
count_criterion() {
    local name=$1 log=$2 trs=$3 line=$4 t p f c extra=""
    t=$(echo "$line" | sed -n 's/.*Tested: \([0-9]*\).*/\1/p')
    p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
    f=$(echo "$line" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
    c=$(echo "$line" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0} + ${c:-0}))
    if [ "${t:-0}" -eq 0 ]; then
        extra=" | ran no test"
        failed=$((failed + 1))
    elif [ $((${f:-0} + ${c:-0})) -eq 0 ]; then
        if sanitizer_report "$log"; then
            extra=" | plus a sanitizer report: see $log"
            failed=$((failed + 1))
        elif grep -q '^:test-result: \(FAIL\|ERROR\|XPASS\)' "$trs"; then
            extra=" | but the suite exited with an error status: see $log"
            failed=$((failed + 1))
        fi
    fi
    echo "$name: ${line#*Synthesis: }$extra"
}

# count_results NAME LOG TRS: every :test-result: line of a script or harness.
count_results() {
    local name=$1 log=$2 trs=$3 results result detail n=0
    results=$(sed -n 's/^:test-result: *//p' "$trs")
    detail=$(grep -a -m 1 '^fuzz_[a-z]*: [0-9]* executions' "$log" 2>/dev/null)
    for result in $results; do
        n=$((n + 1))
        case $result in
            PASS|XFAIL) passed=$((passed + 1)) ;;
            SKIP) skipped=$((skipped + 1)) ;;
            *) failed=$((failed + 1)) ;;
        esac
    done
    if [ $n -eq 0 ]; then
        did_not_run "$name" "no result in $trs"
        return
    fi
    echo "$name: $(echo $results)${detail:+ (${detail#*: })}"
}

# count_one NAME BASE: the test whose files are BASE.log and BASE.trs.
count_one() {
    local name=$1 log=$2.log trs=$2.trs line
    [ -f "$log" ] || { did_not_run "$name" "no $log"; return; }
    [ -s "$log" ] || { did_not_run "$name" "$log is empty"; return; }
    [ -f "$trs" ] || { did_not_run "$name" "no $trs"; return; }
    line=$(grep -a "Synthesis: Tested:" "$log" | tail -n 1)
    if [ -n "$line" ]; then
        count_criterion "$name" "$log" "$trs" "$line"
    else
        count_results "$name" "$log" "$trs"
    fi
}

# expected DIR TARGET: the words `make TARGET` prints in DIR (run on its
# own: a parent make's flags would add "Entering directory" lines).
expected() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$1" --no-print-directory "$2" 2>/dev/null
}

first=1
for dir in "${dirs[@]}"; do
    prefix=""
    [ $first -eq 0 ] && prefix="${dir%/}/"
    first=0
    if ! d=$(cd "$dir" 2>/dev/null && pwd); then
        did_not_run "${dir}" "no such build directory"
        continue
    fi
    if ! tests=$(expected "$d" print-tests) || [ -z "$tests" ]; then
        did_not_run "${dir}" "not a configured build directory (make print-tests failed)"
        continue
    fi
    for t in $tests; do
        base=${t%.exe}
        count_one "$prefix${base#tests/}" "$d/$base"
    done
done

if [ -n "$fuzz_dir" ]; then
    if ! d=$(cd "$fuzz_dir" 2>/dev/null && pwd); then
        did_not_run "fuzz" "no such build directory $fuzz_dir"
    elif ! targets=$(expected "$d" print-fuzz-targets) || [ -z "$targets" ]; then
        did_not_run "fuzz" "$fuzz_dir is not a configured build directory"
    else
        for t in $targets; do
            count_one "fuzz_$t" "$d/fuzz/out/fuzz_$t"
        done
    fi
fi

summary="$passed passed, $failed failed"
[ $skipped -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ $failed -eq 0 ]
