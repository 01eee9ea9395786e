#!/bin/bash
# charrnn_reliability.sh — what a char-rnn training run guarantees about its
# checkpoint directory (issue 16), end to end on a tiny model: one run per
# directory (a second one is refused naming the holder's pid), a new run
# never mixes with another run's checkpoints unless --overwrite, stale temp
# files are removed, the CSV is trimmed to the checkpoint on resume, --resume
# on an empty directory starts a new run, a resume with a flag that changes
# the data order or the model is refused naming it while --learning-rate and
# --epochs are applied and said so, and flags that do not apply are refused.
top=$(cd "${top_builddir:-.}" && pwd) || exit 1
src=$(cd "${srcdir:-.}" && pwd) || exit 1
bin="$top/examples/char-rnn"
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
. "$(cd "$(dirname "$0")" && pwd)/lib.sh" || exit 1
enter_scratch charrnn_rel

make_corpus 200 > corpus.txt
flags="--data corpus.txt --hidden 32 --embed 8 --batch 4 --seq 16 --steps-per-epoch 20 --threads 1"

# expect_error DESCRIPTION NEEDLE COMMAND...: fails with NEEDLE on stderr.
expect_error() {
    d=$1 needle=$2
    shift 2
    "$@" > err.out 2> err.txt
    rc=$?
    if [ "$rc" -eq 0 ]; then fail "$d: exit status 0"
    elif ! has err.txt "$needle"; then fail "$d: '$needle' not in: $(cat err.txt)"
    else pass "$d (exit $rc: $(cat err.txt))"
    fi
}
trained() { [ "$(grep -c '^[0-9]*,[0-9]*,[0-9.]*,$' "$1")" -eq "$2" ]; }

# ---------------------------------------------------- one run per directory
"$bin" train $flags --epochs 1000000 --checkpoint-dir L > l.out 2> l.err &
pid=$!
i=0
while [ ! -s L/ckpt_1 ] && kill -0 $pid 2>/dev/null && [ $i -lt 3000 ]; do sleep 0.01; i=$((i + 1)); done
expect_error "a second train in a directory in use is refused" "in use by another run (process $pid)" \
    "$bin" train $flags --epochs 2 --checkpoint-dir L --resume
kill -KILL $pid
wait $pid 2>/dev/null
pid=""
"$bin" train $flags --epochs 2 --checkpoint-dir L --resume > l2.out 2> l2.err
check "after the holder died the directory is free again (exit $?: $(head -c 200 l2.err))" has l2.out "Resumed from L/ckpt_"

# ------------------------------------------------- a new run never mixes in
"$bin" train $flags --epochs 2 --checkpoint-dir D > d1.out 2>&1
expect_error "a new train into another run's directory is refused" "D already holds a run (up to ckpt_2)" \
    "$bin" train $flags --hidden 16 --epochs 1 --checkpoint-dir D
check "the refused run left the old run alone" sh -c '[ -s D/ckpt_2 ] && [ -s D/ckpt_1 ]'
"$bin" train $flags --hidden 16 --epochs 1 --checkpoint-dir D --overwrite > d2.out 2> d2.err
check "--overwrite replaces it (exit $?)" sh -c '[ -s D/ckpt_1 ] && [ ! -e D/ckpt_2 ] && grep -q "Removing the run in D" d2.out'
"$bin" sample --checkpoint-dir D --length 5 > /dev/null 2>&1 &&
"$bin" train $flags --hidden 16 --epochs 2 --checkpoint-dir D --resume > d3.out 2>&1
check "the overwriting run is the directory's run now (--resume --hidden 16: exit $?)" has d3.out "Resumed from D/ckpt_1"
"$bin" train --help > help.txt
check "--overwrite is in train --help" grep -q -- "--overwrite " help.txt
check "README documents --overwrite" grep -q -- "--overwrite" "$src/README.md"
check "README names the CSV as --help does (CHECKPOINT_DIR/losses.csv)" sh -c \
    'grep -q "CHECKPOINT_DIR/losses.csv" help.txt && grep -q "losses.csv" "$1" && ! grep -q "training_log.csv" "$1"' \
    sh "$src/README.md"

# ----------------------------------------------------- stale temp files go
: > D/ckpt_7.tmp.999999
: > D/ckpt_2.tmp.1
"$bin" train $flags --hidden 16 --epochs 3 --checkpoint-dir D --resume > t.out 2>&1
check "temp files of dead writes are removed at start (left: $(ls D | grep tmp | tr '\n' ' '))" \
    sh -c '! ls D | grep -q "\.tmp\."'

# ------------------------------------------------ the CSV trimmed on resume
"$bin" train $flags --epochs 2 --checkpoint-dir C > c1.out 2>&1
cp C/losses.csv straight.csv
rm C/ckpt_2                   # as if killed after epoch 2's rows, before its checkpoint
: > C/losses.csv.tmp.999999   # a resume killed while it rewrote the CSV (no such process)
: > C/losses.csv.tmp.$$       # one of a live process (this shell): not ours to remove
"$bin" train $flags --epochs 2 --checkpoint-dir C --resume > c2.out 2>&1
csv_once() { trained C/losses.csv 40 && cmp -s C/losses.csv straight.csv; }
check "resume keeps each step once in the CSV (40 rows, the straight run's)" csv_once
check "the CSV temp file of a dead process is removed, a live one's kept" \
    sh -c '[ ! -e C/losses.csv.tmp.999999 ] && [ -e C/losses.csv.tmp.$1 ]' sh $$

# ------------------------------------------- --resume on an empty directory
"$bin" train $flags --epochs 1 --checkpoint-dir E --resume > e.out 2> e.err
rc=$?
check "--resume with no checkpoint yet starts a new run (exit $rc)" sh -c \
    '[ $1 -eq 0 ] && grep -q "No checkpoint in E yet: starting a new run" e.out && [ -s E/ckpt_1 ]' sh $rc

# ------------------------------------ what a resume may and may not change
"$bin" train $flags --epochs 1 --val 0.1 --checkpoint-dir R > r1.out 2>&1
expect_error "--resume with another --val is refused" "--val 0.1, this run has --val 0.2" \
    "$bin" train $flags --epochs 2 --val 0.2 --checkpoint-dir R --resume
expect_error "--resume with another --seed is refused" "--seed 42, this run has --seed 7" \
    "$bin" train $flags --epochs 2 --val 0.1 --seed 7 --checkpoint-dir R --resume
expect_error "--resume with another --shuffle-buffer is refused" "--shuffle-buffer 10000, this run has --shuffle-buffer 50" \
    "$bin" train $flags --epochs 2 --val 0.1 --shuffle-buffer 50 --checkpoint-dir R --resume
expect_error "--resume with another --steps-per-epoch is refused" "--steps-per-epoch 20, this run has --steps-per-epoch 10" \
    "$bin" train $flags --epochs 2 --val 0.1 --steps-per-epoch 10 --checkpoint-dir R --resume
make_corpus 210 > other.txt
expect_error "--resume on another corpus (the same characters) is refused naming --data" \
    "its --data differs (the corpus's XXH64: " "$bin" train $flags --epochs 2 --val 0.1 --data other.txt --checkpoint-dir R --resume
expect_error "--resume with another --hidden is refused" "hidden=32, this run has hidden=16" \
    "$bin" train $flags --epochs 2 --val 0.1 --hidden 16 --checkpoint-dir R --resume
"$bin" train $flags --epochs 3 --val 0.1 --learning-rate 0.002 --checkpoint-dir R --resume > r2.out 2> r2.err
check "--resume with another --learning-rate applies it and says so (exit $?)" \
    has r2.out "learning rate 0.002 from --learning-rate; the checkpoint had 0.001)"
check "--resume with more --epochs trains them" sh -c 'grep -q "^Epoch 3/3" r2.out && [ -s R/ckpt_3 ]'
"$bin" train $flags --epochs 4 --val 0.1 --learning-rate 0.002 --checkpoint-dir R --resume > r3.out 2>&1
check "the applied rate is the run's from then on" has r3.out "learning rate 0.002 from the checkpoint)"

# ------------------------------------------------------ writes are checked
expect_error "an unwritable --plot fails before the first step" "cannot write the loss curve /nonexistent/x.svg" \
    "$bin" train $flags --epochs 1 --checkpoint-dir P --plot /nonexistent/x.svg
check "... and trained nothing" [ ! -e P/ckpt_1 ]
if [ -w /dev/full ]; then
    expect_error "a CSV that cannot be written (/dev/full) is an error" "cannot write the CSV log /dev/full" \
        "$bin" train $flags --epochs 1 --checkpoint-dir F --csv /dev/full --plot ''
else
    echo "skip: /dev/full is not writable here"
fi

# ------------------------------------------------ flags that do not apply
expect_error "--reset-after with --cell lstm is refused" "--reset-after applies to --cell gru only" \
    "$bin" train $flags --reset-after false --checkpoint-dir X
check "... and nothing was trained" [ ! -e X ]
expect_error "--momentum without sgd is refused" "--momentum" "$bin" train $flags --momentum 0.9 --checkpoint-dir X

echo "$((checks - failed)) of $checks checks passed"
[ "$failed" -eq 0 ]
