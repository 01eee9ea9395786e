#!/bin/bash
# dagflow_bench.sh — tools/dagflow-bench at tiny shapes: every usage error
# (unknown subcommand, op or attribute, bad or mismatched shapes, a missing
# attribute, --backward of an op without gradient, bad numbers) is exit 2
# with a message naming the problem on stderr; a run prints its rates from
# the op's cost model (the JSON's FLOP count is the hand-computed one) and
# list shows no op without one; the suite's --save and --compare flag a
# synthetic faster baseline (exit 1, "SLOWER") and pass a slower one, by
# min (the default) and by --stat median, each statistic on its own; a
# baseline without mins (an older file) compares by median and is refused
# by min with a message saying what to do; check
# and model run (charrnn at tiny sizes, also through bench/bench_train, with
# its flags and JSON keys). The suite itself is not timed here.
top=$(cd "${top_builddir:-.}" && pwd) || exit 1
src=$(cd "$(dirname "$0")/.." && pwd) || exit 1
. "$(dirname "$0")/lib.sh"
bin="$top/tools/dagflow-bench"
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
enter_scratch dagflow_bench

# usage DESCRIPTION NEEDLE ARGS...: exit 2 with NEEDLE on stderr.
usage() {
    local d=$1 needle=$2 rc
    shift 2
    timeout 60 "$bin" "$@" > out.txt 2> err.txt < /dev/null
    rc=$?
    if [ $rc -eq 2 ] && has err.txt "$needle"; then pass "$d (exit 2: $(head -n 1 err.txt | head -c 140))"
    else fail "$d: exit $rc, stderr: $(head -c 300 err.txt)"
    fi
}
# runs DESCRIPTION NEEDLE ARGS...: exit 0 with NEEDLE on stdout.
runs() {
    local d=$1 needle=$2 rc
    shift 2
    timeout 120 "$bin" "$@" > out.txt 2> err.txt < /dev/null
    rc=$?
    if [ $rc -eq 0 ] && has out.txt "$needle"; then pass "$d"
    else fail "$d: exit $rc, stdout: $(head -c 300 out.txt) stderr: $(head -c 300 err.txt)"
    fi
}

# ------------------------------------------------------------ parsing
usage "no subcommand" "a subcommand is needed"
usage "unknown subcommand" "unknown subcommand 'bogus'" bogus
usage "op without a name" "op needs a NAME" op
usage "unknown op" "unknown op 'nosuchop'" op nosuchop --shape 2x2
usage "gradient op on its own" "cannot be built on its own" op lstm_grad --shape 2x2
usage "missing --shape" "needs --shape" op matmul
usage "shape with an empty dimension" "input 1 is not a shape" op relu --shape 2xx3
usage "shape with a zero dimension" "input 1 is not a shape" op relu --shape 2x0
usage "shape that is not a number" "input 2 is not a shape" op add --shape 2x3,abc
usage "shape of rank 5" "input 1 is not a shape" op relu --shape 2x2x2x2x2
usage "trailing comma" "input 3 is not a shape" op add --shape 2x3,2x3,
usage "too few inputs" "takes 2 input shapes" op matmul --shape 2x3
usage "too many inputs" "takes 1 input shape" op relu --shape 2x3,2x3
usage "shapes the op rejects" "inner dimensions" op matmul --shape 2x3,4x5
usage "unknown attribute" "has no attribute 'foo' (its attributes: transpose_a, transpose_b)" \
    op matmul --shape 2x3,3x4 --attr foo=1
usage "attribute value not a number" "'yes' is not a number" op matmul --shape 2x3,3x4 --attr transpose_a=yes
usage "attribute without =" "is not NAME=VALUE" op matmul --shape 2x3,3x4 --attr transpose_a
usage "missing required attribute" "op 'pow' needs --attr p=VALUE" op pow --shape 2x3
usage "--backward without a gradient" "op 'cast' has no gradient" op cast --shape 2x3 --backward
usage "--threads 0" "--threads '0'" op relu --shape 2x3 --threads 0
usage "--reps not a number" "--reps needs a positive number" op relu --shape 2x3 --reps many
usage "unknown option" "unknown option '--fast'" op relu --shape 2x3 --fast
usage "suite --size bogus" "--size 'huge'" suite --size huge
usage "suite filter matching nothing" "no op matches" suite --filter nosuchop --size small --reps 1
usage "check filter matching nothing" "no op matches" check --filter nosuchop
usage "model bogus" "model needs charrnn or chargpt" model bogus

# ------------------------------------------------------------ runs
runs "--help is the manual" "SYNOPSIS" --help
# (2,3) @ (3,4): 2*2*4*3 = 48 FLOPs = 4.8e-08 GFLOP; with transpose_b the same product
runs "matmul JSON counts 2MNK" '"gflop": 4.8e-08,' op matmul --shape 2x3,3x4 --reps 3 --json
runs "matmul transpose_b" '"gflop": 4.8e-08,' op matmul --shape 2x3,4x3 --attr transpose_b=1 --reps 3 --json
# forward + backward: y = a @ b, da = dy @ b^T, db = a^T @ dy: 3 products
runs "matmul --backward counts the gradient's products" '"gflop": 1.44e-07,' \
    op matmul --shape 2x3,3x4 --backward --reps 3 --json
runs "text report names the bound" "-bound:" op relu --shape 4x8 --reps 3
# every op declares its cost (a new op without one would print "-" for its rates)
runs "cast runs with its cost model" "rate    " op cast --shape 4x8 --reps 3
timeout 60 "$bin" list > out.txt 2>&1
if ! has out.txt "no cost model" && has out.txt "global_norm_scale"; then pass "list: every op has a cost model"
else fail "list: ops without a cost model: $(grep 'no cost model' out.txt | head -c 400)"
fi
runs "list shows attributes and defaults" "attrs causal=0 scale=0" list
runs "peak prints the CPU and the FMA peak" "fp32 FMA" peak

# ------------------------------------------------------------ baseline compare
runs "suite --save" "relu" suite --filter relu --size small --reps 3 --save base.jsonl
lines=$(wc -l < base.jsonl)
check "--save wrote forward and backward of relu ($lines lines)" test "$lines" -eq 2
# baseline FILE MEDIAN MIN: base.jsonl with every case's median ("ms") and
# min ("ms_min") set; "-" drops the min, as a file from before it was saved.
baseline() {
    local min_edit="s/\"ms_min\": [0-9.]+/\"ms_min\": $3/"
    [ "$3" = - ] && min_edit='s/"ms_min": [0-9.]+, //'
    sed -E -e "s/\"ms\": [0-9.]+/\"ms\": $2/" -e "$min_edit" base.jsonl > "$1"
}
# compares DESCRIPTION FILE EXIT NEEDLE [ARGS...]: suite --compare FILE exits EXIT with NEEDLE.
compares() {
    local d=$1 file=$2 want=$3 needle=$4 rc
    shift 4
    timeout 60 "$bin" suite --filter relu --size small --reps 3 --compare "$file" "$@" > out.txt 2> err.txt
    rc=$?
    if [ $rc -eq "$want" ] && has out.txt "$needle"; then pass "$d (exit $rc)"
    else fail "$d: exit $rc, wanted $want and '$needle': $(cat out.txt err.txt | head -c 400)"
    fi
}
# a baseline 10^6 times faster than anything: this run is slower, by either statistic
baseline fast_base.jsonl 0.000001 0.000001
compares "a faster baseline flags the run by its min (the default)" fast_base.jsonl 1 \
    "2 slower than the baseline by more than 10% (min ms)"
has out.txt "SLOWER" || fail "no case marked SLOWER: $(head -c 300 out.txt)"
compares "a faster baseline flags the run by its median" fast_base.jsonl 1 \
    "2 slower than the baseline by more than 10% (median ms)" --stat median
# the statistic compared is the one asked for: a fast min alone flags min only, a fast median median only
baseline fast_min.jsonl 1000000 0.000001
compares "a faster min alone: flagged by min" fast_min.jsonl 1 "2 slower than the baseline"
compares "a faster min alone: passes by median" fast_min.jsonl 0 "0 slower than the baseline" --stat median
baseline fast_median.jsonl 0.000001 1000000
compares "a faster median alone: passes by min" fast_median.jsonl 0 "0 slower than the baseline"
compares "a faster median alone: flagged by median" fast_median.jsonl 1 "2 slower than the baseline" --stat median
# a baseline 10^6 ms per case: this run is faster (exit 0)
baseline slow_base.jsonl 1000000 1000000
compares "a slower baseline passes by min" slow_base.jsonl 0 "0 slower than the baseline"
! has out.txt "SLOWER" || fail "a case marked SLOWER against a slower baseline"
compares "a slower baseline passes by median" slow_base.jsonl 0 "0 slower than the baseline" --stat median
# a file saved before the min was: compared by median, refused by min with what to do
baseline old_base.jsonl 1000000 -
check "the old-format file has no ms_min" test "$(grep -c ms_min old_base.jsonl)" -eq 0
compares "an old-format file compares by median" old_base.jsonl 0 "0 slower than the baseline" --stat median
usage "an old-format file is refused by min" "2 of the 2 cases in 'old_base.jsonl' have no min time" \
    suite --filter relu --size small --reps 3 --compare old_base.jsonl
has err.txt "compare with --stat median, or save a new baseline" || fail "the refusal says no way out: $(cat err.txt)"
usage "--stat of an unknown statistic" "--stat 'mean': min or median" suite --filter relu --compare base.jsonl --stat mean
# the threshold: with --threshold 1e12 even that baseline passes
baseline tiny_base.jsonl 0.000001 0.000001
timeout 60 "$bin" suite --filter relu --size small --reps 3 --compare tiny_base.jsonl --threshold 1e12 > out.txt 2> err.txt
rc=$?
if [ $rc -eq 0 ]; then pass "--threshold raises the bar"
else fail "--threshold 1e12: exit $rc: $(cat out.txt | head -c 300)"
fi
usage "--compare with a file of no results" "holds no results" suite --filter relu --compare /dev/null
usage "--compare with a missing file" "cannot read" suite --filter relu --compare "$tmp/missing.jsonl"

# ------------------------------------------------------------ check, model
runs "check of matmul on every GEMM path" "openblas" check --filter matmul --seeds 1
runs "model chargpt runs a step" "model chargpt" model chargpt --steps 1 --warmup 0
runs "model charrnn at tiny sizes, text" "% of the fp32 FMA peak" \
    model charrnn --steps 1 --warmup 0 --batch 2 --seq 4 --embed 4 --hidden 8 --gen 3 --sgemm-reps 1
runs "model charrnn --json has bench_train's keys" '"batch": 2, "seq": 4, "embed": 4, "hidden": 8,' \
    model charrnn --steps 1 --warmup 0 --batch 2 --seq 4 --embed 4 --hidden 8 --gen 3 --sgemm-reps 1 --json
usage "model charrnn --hidden 0" "--hidden '0' is not a whole number" model charrnn --hidden 0
usage "model charrnn unknown option" "unknown option '--fast'" model charrnn --fast
# bench/bench_train is dagflow-bench model charrnn --json with its flags (= form too)
out=$(cd "$top" && timeout 120 "$src/bench/bench_train" --steps 1 --warmup 0 --batch=2 --seq 4 --embed 4 --hidden 8 \
      --gen 3 --sgemm-reps 1 --data /nonexistent 2> "$tmp/err.txt")
case "$out" in
    *'"engine": "dagflow"'*'"batch": 2,'*'"data": "random"'*'"pct_of_fma_peak"'*) pass "bench/bench_train wraps model charrnn" ;;
    *) fail "bench/bench_train: $out $(head -c 300 "$tmp/err.txt")" ;;
esac

echo "$checks checks, $failed failed"
[ "$failed" -eq 0 ]
