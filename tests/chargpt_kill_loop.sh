#!/bin/bash
# chargpt_kill_loop.sh — `char-gpt train --resume` killed with SIGKILL at
# random moments, again and again (30 rounds), then run to its end: the final
# checkpoint and the loss CSV are byte for byte those of a run that was never
# killed, and no temp file is left. Then 10 rounds of SIGTERM, which stops
# inside an epoch with a checkpoint (so the batches' RNG and place in the
# epoch are resumed too), with the same comparison. A tiny model with
# dropout (its masks follow the optimizer's step counter). DF_KILL_SEED picks
# the kill times (printed, to repeat a failure).
top=$(cd "${top_builddir:-.}" && pwd) || exit 1
bin="$top/examples/char-gpt"
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
. "$(cd "$(dirname "$0")" && pwd)/lib.sh" || exit 1
enter_scratch chargpt_kill_loop

make_corpus 200 > corpus.txt
seed=${DF_KILL_SEED:-$(date +%s)}
echo "kill times from DF_KILL_SEED=$seed"
# About 1 ms a step and 10 ms a checkpoint here: a run of 6000 steps outlasts the rounds, which each train 0.02..0.15 s.
flags="--data corpus.txt --n-layer 1 --n-head 2 --n-embd 8 --block 8 --batch 2 --dropout 0.1
       --iters 6000 --eval-interval 10 --eval-iters 1 --warmup-iters 50 --threads 1"
last=ckpt_600
# delays ROUNDS SALT: ROUNDS kill delays in seconds after a round's first epoch line, 0.02..0.15
delays() { kill_delays "$1" "$seed" "$2" 0.02 0.13; }

"$bin" train $flags --checkpoint-dir ref > ref.out 2>&1 || { fail "the uninterrupted run failed: $(tail -n 3 ref.out)"; exit 1; }

# kill_loop NAME SIGNAL ROUNDS
kill_loop() {
    name=$1 signal=$2 rounds=$3
    killed=0
    for d in $(delays "$rounds" "$rounds$signal"); do
        off=$(cat "$name.out" 2>/dev/null | wc -c)
        "$bin" train $flags --checkpoint-dir "$name" --resume >> "$name.out" 2>&1 &
        pid=$!
        wait_for_text "$name.out" "$off" "Epoch " "$pid"
        sleep "$d"
        kill -"$signal" $pid 2>/dev/null && killed=$((killed + 1))
        wait $pid 2>/dev/null
        pid=""
    done
    "$bin" train $flags --checkpoint-dir "$name" --resume > "$name.last.out" 2>&1
    rc=$?
    resumed=$(grep -c "^Resumed from" "$name.out")
    from=$(sed -n 's/^Resumed from .*, step \([0-9]*\).*/step \1/p' "$name.last.out")
    check "$name: $rounds rounds of SIG$signal ($killed sent, $resumed resumed), then the run ends from ${from:-nothing} (exit $rc)" \
        sh -c '[ $1 -eq 0 ] && [ $2 -ge $(($3 / 2)) ] && [ -s "$4/$5" ]' sh $rc "$resumed" "$rounds" "$name" "$last"
    check "$name: the final checkpoint is the uninterrupted run's, byte for byte" cmp -s "ref/$last" "$name/$last"
    check "$name: the CSV is the uninterrupted run's, byte for byte (each step once)" cmp -s ref/losses.csv "$name/losses.csv"
    check "$name: no temp file left ($(ls "$name" | grep tmp | tr '\n' ' '))" sh -c '! ls "$1" | grep -q "\.tmp\."' sh "$name"
}

kill_loop kill KILL 30
kill_loop term TERM 10
check "SIGTERM stopped inside an epoch with a checkpoint" grep -q "Interrupted" term.out

echo "$((checks - failed)) of $checks checks passed"
[ "$failed" -eq 0 ]
