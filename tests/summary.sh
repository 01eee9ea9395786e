#!/usr/bin/env bash
# summary.sh [BUILD_DIR...] — adds up the results of `make check` in each build
# directory (default: the source tree, which is configured in-tree):
#   - each Criterion suite's synthesis line (tests/*.log);
#   - one test per script test, from its .trs file;
#   - one test per fuzz harness run by `make fuzz` (fuzz/out/*.trs);
#   - a sanitizer report (ASan, LSan, UBSan) in the log of a suite that
#     otherwise passed counts as one failure (Criterion does not fail a test
#     whose worker reports a leak only when it exits), and so does a suite
#     that reports no failure but exits with an error status.
# Prints one line per suite (prefixed with the build directory after the
# first), then "N passed, N failed" over everything.
root=$(cd "$(dirname "$0")/.." && pwd) || exit 1
[ $# -eq 0 ] && set -- "$root"
passed=0 failed=0
first=1
for dir in "$@"; do
    if ! d=$(cd "$dir" 2>/dev/null && pwd); then
        echo "$dir: no such build directory"
        failed=$((failed + 1))
        continue
    fi
    prefix=""
    [ $first -eq 0 ] && prefix="${dir%/}/"
    first=0
    for log in "$d"/tests/*.log "$d"/fuzz/out/*.log; do
        [ -f "$log" ] || continue
        trs="${log%.log}.trs"
        name="$prefix${log#"$d"/}"
        name=${name/tests\//}
        name=${name/fuzz\/out\//}
        line=$(grep -a "Synthesis: Tested:" "$log" | tail -n 1)
        if [ -n "$line" ]; then
            p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
            f=$(echo "$line" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
            c=$(echo "$line" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
            extra=""
            if [ $((${f:-0} + ${c:-0})) -eq 0 ]; then
                if grep -a -q -E '^==[0-9]+==ERROR: [A-Za-z]+Sanitizer|: runtime error: ' "$log"; then
                    extra=" | plus a sanitizer report: see $log"
                    failed=$((failed + 1))
                elif [ -f "$trs" ] && grep -q '^:test-result: \(FAIL\|ERROR\)' "$trs"; then
                    extra=" | but the suite exited with an error status: see $log"
                    failed=$((failed + 1))
                fi
            fi
            echo "$name: ${line#*Synthesis: }$extra"
            passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0} + ${c:-0}))
        elif [ -f "$trs" ]; then
            result=$(sed -n 's/^:test-result: //p' "$trs" | head -n 1)
            detail=$(grep -a -m 1 '^fuzz_[a-z]*: [0-9]* executions' "$log" 2>/dev/null)
            echo "$name: $result${detail:+ (${detail#*: })}"
            case $result in
                PASS|XFAIL) passed=$((passed + 1)) ;;
                SKIP) ;;
                *) failed=$((failed + 1)) ;;
            esac
        fi
    done
done
echo "$passed passed, $failed failed"
