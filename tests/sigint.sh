#!/bin/bash
# sigint.sh — Ctrl-C during `char-rnn train`.
#   One SIGINT: the step finishes, a checkpoint is written, "Interrupted" is
#   printed, exit status 0, and `char-rnn sample` can use the checkpoint.
#   SIGTERM and SIGHUP do the same.
#   Two SIGINTs in a row: exit status 130 at once, no checkpoint written, and
#   the checkpoint already on disk is byte for byte what it was.
#   Resuming from the interrupt's checkpoint ends where an uninterrupted run
#   ends, byte for byte.
# The run is a tiny model on a synthetic corpus with far more steps than it
# will get to do; SIGINT is sent once a progress line shows training started.
top=$(cd "${top_builddir:-.}" && pwd) || exit 1
bin="$top/examples/char-rnn"
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
. "$(cd "$(dirname "$0")" && pwd)/lib.sh" || exit 1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sigint.XXXXXX") || exit 1
pid=""
cleanup() { [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
cd "$tmp" || exit 1


# About 8 KB of text over 25 characters (tests/lib.sh).
make_corpus 200 > corpus.txt
# A tiny model (110 steps per epoch) for the custom loop, which checkpoints
# only every 10^6 epochs here, so any checkpoint in C/ comes from the
# interrupt; and a larger one for the fit loop (epochs of ~30 steps of ~130 ms,
# 51 MB checkpoints: steps of a few ms let the checkpoint be written before a
# second Ctrl-C polled at 10 ms arrives), so an interrupt lands in epoch 1 and a second Ctrl-C
# finds the run still busy with its step or its checkpoint. 10^6 epochs is
# hours of work: only a signal ends these runs.
custom="--data corpus.txt --hidden 16 --embed 4 --batch 4 --seq 16 --epochs 1000000 --threads 1
        --loop custom --checkpoint-every 1000000 --checkpoint-dir C --csv c.csv --plot c.svg"
fit="--data corpus.txt --hidden 1024 --embed 8 --batch 1 --seq 256 --steps-per-epoch 100 --threads 1
     --csv f.csv --plot f.svg"
progress='^[0-9][0-9]*/[0-9][0-9]* - '

# start_train OUT ERR PATTERN FLAGS...: starts training in the background
# (pid in $pid) and waits up to 120 s for a line matching PATTERN on stdout.
start_train() {
    out=$1 err=$2 pattern=$3
    shift 3
    "$bin" train "$@" > "$out" 2> "$err" &
    pid=$!
    wait_for "$pattern" "$out"
}

# wait_for PATTERN FILE: polls FILE every 10 ms, for up to 120 s, while $pid runs.
wait_for() {
    i=0
    while [ $i -lt 12000 ]; do
        grep -q "$1" "$2" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.01
        i=$((i + 1))
    done
    return 1
}

# wait_exit: the exit status of $pid, SIGKILLing it if it still runs after
# 120 s. (bash, not sh: dash's `wait` can miss a child that exits at the wrong
# moment and block until some other child exits.)
wait_exit() {
    local i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 12000 ]; do
        sleep 0.01
        i=$((i + 1))
    done
    kill -0 "$pid" 2>/dev/null && { echo "char-rnn still runs 120 s after the signal: killing it"; kill -KILL "$pid"; }
    wait "$pid"
    local rc=$?
    pid=""
    return $rc
}

# The checkpoints in a directory (temp files left by a killed write are not).
checkpoints() { ls "$1" 2>/dev/null | grep -v '\.tmp\.' | tr '\n' ' '; }
handled='finishing this step and writing a checkpoint'
interrupted='^Interrupted: stopped after step [0-9]* with a checkpoint'

# ------------------------------------------------ custom loop, one SIGINT
if start_train c1.out c1.err '^Epoch [0-9]* Batch 0 Loss' $custom; then
    pass "custom-loop train started ($(grep -m 1 '^Epoch [0-9]* Batch' c1.out))"
    kill -INT "$pid"
    wait_exit
    rc=$?
    check "custom loop, one SIGINT: exit status 0 (got $rc)" [ "$rc" -eq 0 ]
    check "custom loop, one SIGINT: says it is finishing the step" grep -q "$handled" c1.err
    check "custom loop, one SIGINT: prints Interrupted" grep -q "$interrupted" c1.out
    check "custom loop, one SIGINT: names Ctrl-C for the second one" grep -q "(Ctrl-C again to quit now)" c1.err
    check "custom loop, one SIGINT: names --resume" grep -q "$interrupted; --resume continues from there\$" c1.out
    saved=$(sed -n 's|^Saved checkpoint \(C/ckpt_[0-9]*\)$|\1|p' c1.out)
    check "custom loop, one SIGINT: wrote exactly the checkpoint it announced (C: $(checkpoints C); announced: $saved)" \
        sh -c '[ -n "$1" ] && [ "$2" = "${1#C/} " ] && [ -s "$1" ]' sh "$saved" "$(checkpoints C)"
    step=$(sed -n 's/^Interrupted: stopped after step \([0-9]*\) .*/\1/p' c1.out)
    "$bin" sample --checkpoint-dir C --length 20 --start "the " --seed 1 > sample.out 2> sample.err
    rc=$?
    check "custom loop: sample from the interrupt's checkpoint exits 0 (got $rc$(cat sample.err))" [ "$rc" -eq 0 ]
    check "custom loop: sample prints the start text + 20 chars" [ "$(wc -c < sample.out)" -eq 25 ]
    "$bin" train $custom --epochs 1 --resume > c2.out 2> c2.err
    check "custom loop: --resume starts at the interrupted step ($step)" \
        grep -q "^Resumed from $saved (.*step $step[,)]" c2.out
else
    fail "custom-loop train did not start: $(tail -n 3 c1.out c1.err)"
fi

# ----------------------------- custom loop, SIGTERM and SIGHUP as SIGINT
for sig in TERM HUP; do
    if start_train "$sig.out" "$sig.err" '^Epoch [0-9]* Batch 0 Loss' ${custom/C/$sig}; then
        kill -"$sig" "$pid"
        wait_exit
        rc=$?
        check "custom loop, SIG$sig: exit status 0 (got $rc)" [ "$rc" -eq 0 ]
        check "custom loop, SIG$sig: prints Interrupted" grep -q "$interrupted" "$sig.out"
        check "custom loop, SIG$sig: one whole checkpoint, no temp file ($sig: $(ls "$sig" | tr '\n' ' '))" \
            sh -c 'f=$(ls "$1"); [ "$(echo "$f" | wc -l)" -eq 1 ] && case $f in ckpt_[0-9]*) [ -s "$1/$f" ] ;; *) false ;; esac' \
            sh "$sig"
    else
        fail "custom-loop train for SIG$sig did not start: $(tail -n 3 "$sig.out" "$sig.err")"
    fi
done

# --------------------------------------------------- fit loop, one SIGINT
if start_train f1.out f1.err "$progress" $fit --epochs 1000000 --checkpoint-dir F; then
    pass "fit-loop train started ($(grep -m 1 "$progress" f1.out))"
    kill -INT "$pid"
    wait_exit
    rc=$?
    check "fit loop, one SIGINT: exit status 0 (got $rc)" [ "$rc" -eq 0 ]
    check "fit loop, one SIGINT: prints Interrupted" grep -q "$interrupted" f1.out
    check "fit loop, one SIGINT: checkpoint of the interrupted epoch 1 is the only one (F: $(checkpoints F))" \
        sh -c '[ "$1" = "ckpt_1 " ] && grep -q "^Saved checkpoint F/ckpt_1\$" f1.out' sh "$(checkpoints F)"
    "$bin" sample --checkpoint-dir F --length 5 --start "the " > /dev/null 2> f1sample.err
    rc=$?
    check "fit loop: sample from F/ckpt_1 exits 0 (got $rc$(cat f1sample.err))" [ "$rc" -eq 0 ]
else
    fail "fit-loop train did not start: $(tail -n 3 f1.out f1.err)"
fi

# ----------------------------------------------------------- two SIGINTs
# The same run resumed in F/ (a new one would be refused: F holds a run): a
# finished interrupt would replace F/ckpt_1.
# The second Ctrl-C comes as soon as the first has been handled, while the
# run finishes its step or writes its checkpoint.
if [ -s F/ckpt_1 ]; then
    before=$(cksum < F/ckpt_1)
    if start_train f2.out f2.err "$progress" $fit --epochs 1000000 --checkpoint-dir F --resume; then
        kill -INT "$pid"
        if wait_for "$handled" f2.err; then
            kill -INT "$pid"
        fi
        wait_exit
        rc=$?
        check "two SIGINTs: exit status 130 (got $rc)" [ "$rc" -eq 130 ]
        check "two SIGINTs: no Interrupted line" sh -c '! grep -q "^Interrupted" f2.out'
        check "two SIGINTs: F/ckpt_1 is unchanged" [ "$(cksum < F/ckpt_1)" = "$before" ]
        check "two SIGINTs: no other checkpoint in F ($(checkpoints F))" [ "$(checkpoints F)" = "ckpt_1 " ]
        "$bin" sample --checkpoint-dir F --length 5 --start "the " > /dev/null 2> f2sample.err
        check "F/ckpt_1 still samples after the double interrupt" [ $? -eq 0 ]
    else
        fail "the second fit-loop train did not start: $(tail -n 3 f2.out f2.err)"
    fi

    # ------------------------------------------- resume is bit-identical
    # Epoch 1 finished from the interrupt's checkpoint equals epoch 1 run
    # straight through: the same bytes in ckpt_1.
    "$bin" train $fit --epochs 1 --checkpoint-dir F --resume > f3.out 2> f3.err
    r1=$?
    "$bin" train $fit --epochs 1 --checkpoint-dir S > s.out 2> s.err
    r2=$?
    check "interrupted + resumed epoch 1 and a straight epoch 1 both finish (exit $r1 $r2)" [ "$r1$r2" = 00 ]
    check "interrupted + resumed ckpt_1 is byte for byte the straight run's" cmp -s F/ckpt_1 S/ckpt_1
else
    fail "two SIGINTs: not run, the fit loop left no F/ckpt_1"
fi

echo "$((checks - failed)) of $checks checks passed"
[ "$failed" -eq 0 ]
