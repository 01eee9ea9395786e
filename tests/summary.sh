#!/usr/bin/env bash
# summary.sh — adds up the results of `make check`: Criterion's synthesis line
# of each suite, and one test per script test (from its .trs file).
cd "$(dirname "$0")/.." || exit 1
passed=0 failed=0
for log in tests/*.log; do
    [ -f "$log" ] || continue
    trs="${log%.log}.trs"
    line=$(grep -a "Synthesis: Tested:" "$log" | tail -n 1)
    if [ -n "$line" ]; then
        echo "${log#tests/}: ${line#*Synthesis: }"
        p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
        f=$(echo "$line" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
        c=$(echo "$line" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
        passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0} + ${c:-0}))
    elif [ -f "$trs" ]; then
        result=$(sed -n 's/^:test-result: //p' "$trs" | head -n 1)
        echo "${log#tests/}: $result"
        if [ "$result" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    fi
done
echo "$passed passed, $failed failed"
