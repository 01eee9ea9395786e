#!/bin/bash
# kill_loop.sh — `char-rnn train --resume` killed with SIGKILL at random
# moments, again and again (30 rounds with the fit loop, 10 with the custom
# loop), then run to its end: the final checkpoint and the loss CSV are byte
# for byte those of a run that was never killed, and no temp file is left.
# DF_KILL_SEED picks the kill times (printed, to repeat a failure).
top=$(cd "${top_builddir:-.}" && pwd) || exit 1
bin="$top/examples/char-rnn"
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
. "$(cd "$(dirname "$0")" && pwd)/lib.sh" || exit 1
enter_scratch kill_loop

make_corpus 200 > corpus.txt
seed=${DF_KILL_SEED:-$(date +%s)}
echo "kill times from DF_KILL_SEED=$seed"
flags="--data corpus.txt --hidden 32 --embed 8 --batch 4 --seq 16 --steps-per-epoch 20 --val 0.1 --threads 1"
# delays ROUNDS SALT: ROUNDS kill delays in seconds, 0.01..0.25
delays() { kill_delays "$1" "$seed" "$2" 0.01 0.24; }

# kill_loop NAME ROUNDS EPOCHS LOOP-FLAGS...
kill_loop() {
    name=$1 rounds=$2 epochs=$3
    shift 3
    "$bin" train $flags --epochs "$epochs" "$@" --checkpoint-dir "$name.ref" > "$name.ref.out" 2>&1 ||
        { fail "$name: the uninterrupted run failed: $(tail -n 3 "$name.ref.out")"; return; }
    killed=0
    for d in $(delays "$rounds" "$rounds$epochs"); do
        "$bin" train $flags --epochs "$epochs" "$@" --checkpoint-dir "$name" --resume >> "$name.out" 2>&1 &
        pid=$!
        sleep "$d"
        kill -KILL $pid 2>/dev/null && killed=$((killed + 1))
        wait $pid 2>/dev/null
        pid=""
    done
    "$bin" train $flags --epochs "$epochs" "$@" --checkpoint-dir "$name" --resume > "$name.last.out" 2>&1
    rc=$?
    last="ckpt_$epochs"
    check "$name: $rounds rounds ($killed killed mid-run), then the run ends (exit $rc)" \
        sh -c '[ $1 -eq 0 ] && [ -s "$2/$3" ]' sh $rc "$name" "$last"
    check "$name: the final checkpoint is the uninterrupted run's, byte for byte" cmp -s "$name.ref/$last" "$name/$last"
    check "$name: the CSV is the uninterrupted run's, byte for byte (each step once)" \
        cmp -s "$name.ref/losses.csv" "$name/losses.csv"
    check "$name: no temp file left ($(ls "$name" | grep tmp | tr '\n' ' '))" sh -c '! ls "$1" | grep -q "\.tmp\."' sh "$name"
}

kill_loop fit 30 200
kill_loop custom 10 60 --loop custom --checkpoint-every 1

echo "$((checks - failed)) of $checks checks passed"
[ "$failed" -eq 0 ]
