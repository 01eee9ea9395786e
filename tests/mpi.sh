#!/bin/sh
# mpi.sh — data-parallel `char-rnn train` under mpirun with 2 ranks
# (--with-mpi builds), against one process with the same global batch:
#   - the loss curve (every step, and val_loss) matches within 1e-4, for
#     shuffle and streams batching; rank 0 alone prints; the weights hash
#     alike on both ranks after every epoch (the run checks, XXH64);
#   - --resume at an epoch boundary and after a mid-epoch stop (SIGUSR1 to
#     mpirun, which forwards it) continues bit for bit: the final weights
#     hash equals the uninterrupted run's; one process resumes it too;
#   - with --dropout too (each rank draws its rows' part of the mask);
#   - errors: batch not divisible by the ranks, different corpora on the
#     ranks: one clear message, clean exit; a rank killed, or stopped (with
#     --peer-timeout 2): the job ends with an error instead of hanging
#     (each run here has a 120 s watchdog).
top=$(cd "${top_builddir:-.}" && pwd) || exit 1
bin="$top/examples/char-rnn"
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
mpirun="${MPIRUN:-mpirun} ${MPIRUN_FLAGS-}"
# Open MPI leaves allocations behind at exit: in a sanitizer build LeakSanitizer
# would fail every rank. Leak checks off here; ASan and UBSan stay on.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export ASAN_OPTIONS
. "$(cd "$(dirname "$0")" && pwd)/lib.sh" || exit 1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mpi.XXXXXX") || exit 1
pid=""
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    [ -n "${stopped:-}" ] && kill -KILL "$stopped" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
cd "$tmp" || exit 1

quiet() { "$@" > /dev/null; }

make_corpus 400 > corpus.txt
head -c 12000 corpus.txt > other.txt

# run_bg OUT ERR CMD...: starts CMD in the background (pid in $pid).
run_bg() { out=$1 err=$2; shift 2; "$@" > "$out" 2> "$err" & pid=$!; }
# wait_exit: the exit status of $pid; a watchdog SIGKILLs it after 120 s.
wait_exit() {
    sh -c 'sleep 120 & s=$!; trap "kill \$s; exit 0" TERM; wait $s; kill -KILL '"$pid" >/dev/null 2>&1 &
    watchdog=$!
    wait "$pid"
    rc=$?
    kill "$watchdog" 2>/dev/null
    wait "$watchdog" 2>/dev/null
    pid=""
    return $rc
}
# run OUT ERR CMD...: runs CMD with the watchdog; returns its status.
run() { run_bg "$@"; wait_exit; }
# wait_for PATTERN FILE: polls FILE for up to 120 s while $pid runs.
wait_for() {
    i=0
    while [ $i -lt 12000 ]; do
        grep -aq "$1" "$2" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.01
        i=$((i + 1))
    done
    return 1
}
# same_losses A.csv B.csv: the same steps, losses and val_losses within 1e-4;
# prints the largest difference.
same_losses() {
    [ "$(wc -l < "$1")" -eq "$(wc -l < "$2")" ] && [ "$(wc -l < "$1")" -gt 2 ] &&
    paste -d, "$1" "$2" | awk -F, 'NR > 1 {
        if ($1 != $5 || $2 != $6 || ($3 == "") != ($7 == "") || ($4 == "") != ($8 == "")) bad++
        d = $3 - $7; if (d < 0) d = -d; if (d > m) m = d
        d = $4 - $8; if (d < 0) d = -d; if (d > m) m = d
    } END { printf "%g", m; exit !(bad == 0 && m <= 1e-4) }'
}
# hash OUT EPOCH: the weights hash the run printed after that epoch.
hash() { grep -a '^Weights XXH64 ' "$1" | sed -n "${2}s/^Weights XXH64 \([0-9a-f]*\) .*/\1/p"; }

small="--data corpus.txt --hidden 32 --embed 8 --seq 20 --batch 8 --threads 1"

# ------------------------------------------- same curve as one process
for batching in shuffle streams; do
    epochs=2
    [ $batching = streams ] && epochs=1
    flags="$small --batching $batching --epochs $epochs --val 0.1"
    run one.out one.err "$bin" train $flags --checkpoint-dir one_$batching
    rc1=$?
    run two.out two.err $mpirun -np 2 "$bin" train $flags --checkpoint-dir two_$batching
    rc2=$?
    check "$batching: one process and 2 ranks exit 0 ($rc1, $rc2$(head -c 300 two.err))" [ $rc1 -eq 0 -a $rc2 -eq 0 ]
    diff=$(same_losses one_$batching/losses.csv two_$batching/losses.csv)
    check "$batching: 2 ranks x 4 rows give one process's loss curve, batch 8 (largest difference $diff)" \
        quiet same_losses one_$batching/losses.csv two_$batching/losses.csv
    check "$batching: rank 0 alone prints (one 'Epoch 1/$epochs' line)" [ "$(grep -ac "Epoch 1/$epochs" two.out)" -eq 1 ]
    check "$batching: the run says it is data parallel" grep -aq '^Data parallel: 2 processes x 4 rows per batch' two.out
    check "$batching: identical weights on both ranks after each of $epochs epochs (XXH64 $(hash two.out 1))" \
        [ "$(grep -ac '^Weights XXH64 [0-9a-f]\{16\} on all 2 ranks$' two.out)" -eq $epochs ]
    cp two.out two_$batching.out
done

# ------------------------------------------- resume at an epoch boundary
flags="$small --val 0.1"
run r1.out r1.err $mpirun -np 2 "$bin" train $flags --epochs 1 --checkpoint-dir R
run r2.out r2.err $mpirun -np 2 "$bin" train $flags --epochs 2 --checkpoint-dir R --resume
rc=$?
check "resume: 2 ranks continue from R/ckpt_1 (exit $rc)" grep -aq '^Resumed from R/ckpt_1 (1 epochs done, step 80' r2.out
check "resume: epoch 2 ends with the uninterrupted run's weights ($(hash r2.out 1) = $(hash two_shuffle.out 2))" \
    [ -n "$(hash r2.out 1)" -a "$(hash r2.out 1)" = "$(hash two_shuffle.out 2)" ]

# --------------------------------------- mid-epoch stop (SIGUSR1), resume
# A larger model (2 LSTM layers, about 3 ms per step, 89 steps per epoch)
# and many epochs: only the signal ends this run.
big="--data corpus.txt --hidden 96 --layers 2 --embed 8 --seq 20 --batch 8 --threads 1"
run_bg u.out u.err $mpirun -np 2 "$bin" train $big --epochs 100000 --checkpoint-dir U
if wait_for '^Weights XXH64' u.out; then
    kill -USR1 "$pid"
    wait_exit
    rc=$?
    check "SIGUSR1 to mpirun: the ranks stop together after a step and exit 0 (got $rc)" [ $rc -eq 0 ]
    check "SIGUSR1: one Interrupted line" [ "$(grep -ac '^Interrupted: stopped after step' u.out)" -eq 1 ]
    n=$(sed -n 's|.*Saved checkpoint U/ckpt_\([0-9]*\)$|\1|p' u.out | tail -n 1)
    if [ -n "$n" ] && [ -s "U/ckpt_$n" ]; then
        cp -r U U1
        end=$((n + 1))          # one more epoch, in case the stop came at the end of epoch n
        run ref.out ref.err $mpirun -np 2 "$bin" train $big --epochs $end --checkpoint-dir REF
        run res.out res.err $mpirun -np 2 "$bin" train $big --epochs $end --checkpoint-dir U --resume
        rc=$?
        check "SIGUSR1: 2 ranks resume U/ckpt_$n and train to epoch $end (exit $rc)" [ $rc -eq 0 ]
        want=$(hash ref.out $end) got=$(grep -a '^Weights XXH64' res.out | tail -n 1 | cut -d' ' -f3)
        check "SIGUSR1: the resumed run ends bit for bit as the uninterrupted one ($got = $want)" \
            [ -n "$want" -a "$got" = "$want" ]
        run res1.out res1.err "$bin" train $big --epochs $end --checkpoint-dir U1 --resume
        diff=$(same_losses REF/losses.csv U1/losses.csv)
        check "SIGUSR1: one process resumes the 2-rank checkpoint on the same curve (largest difference $diff)" \
            quiet same_losses REF/losses.csv U1/losses.csv
    else
        fail "SIGUSR1: no checkpoint announced ($(tail -c 300 u.out) $(head -c 300 u.err))"
    fi
else
    fail "SIGUSR1: the run did not get through an epoch: $(head -c 500 u.err)"
fi

# ------------------------------------------------------------------ errors
run e.out e.err $mpirun -np 2 "$bin" train $small --batch 9 --checkpoint-dir E
rc=$?
check "--batch 9 over 2 ranks: fails (exit $rc) with one message" \
    sh -c '[ $1 -ne 0 ] && [ "$(grep -c "cannot be split evenly over 2 processes" e.err)" -eq 1 ]' sh $rc
run d.out d.err $mpirun -np 1 "$bin" train $small --checkpoint-dir D : -np 1 "$bin" train $small --data other.txt --checkpoint-dir D
rc=$?
check "different corpora on the ranks: fails (exit $rc) naming them once" \
    sh -c '[ $1 -ne 0 ] && [ "$(grep -c "corpora (--data) differ between the ranks" d.err)" -eq 1 ]' sh $rc

# --dropout: each rank draws its rows' part of the one-process mask.
flags="$small --dropout 0.3 --epochs 1 --val 0.1"
run o1.out o1.err "$bin" train $flags --checkpoint-dir O1
rc1=$?
run o2.out o2.err $mpirun -np 2 "$bin" train $flags --checkpoint-dir O2
rc2=$?
check "--dropout 0.3: one process and 2 ranks exit 0 ($rc1, $rc2$(head -c 300 o2.err))" [ $rc1 -eq 0 -a $rc2 -eq 0 ]
diff=$(same_losses O1/losses.csv O2/losses.csv)
check "--dropout 0.3: 2 ranks give one process's loss curve (largest difference $diff)" \
    quiet same_losses O1/losses.csv O2/losses.csv

# A rank killed or stopped mid-training: the job ends, with an error.
for sig in KILL STOP; do
    run_bg k$sig.out k$sig.err $mpirun -np 2 "$bin" train $big --epochs 100000 --checkpoint-dir K$sig --peer-timeout 2
    if wait_for '^Epoch 2/' k$sig.out; then
        victim=$(ps -o pid= --ppid "$pid" | sort -n | tail -n 1 | tr -d ' ')      # a rank: mpirun's child
        if [ -z "$victim" ]; then
            fail "SIG$sig: no rank found among mpirun's children"
            kill -KILL "$pid"
            wait_exit
            continue
        fi
        [ $sig = STOP ] && stopped=$victim
        kill -$sig "$victim"
        start=$(date +%s)
        wait_exit
        rc=$?
        took=$(($(date +%s) - start))
        check "SIG$sig to a rank: mpirun exits with an error (status $rc) after ${took} s instead of hanging" \
            [ $rc -ne 0 -a $took -lt 60 ]
        if [ $sig = KILL ]; then
            check "SIGKILL: mpirun names the rank that died" grep -q 'exited on signal 9' k$sig.err
        else
            check "SIGSTOP: the other rank says its peer died or hung" \
                grep -q 'no reply from the other rank within 2 s: a peer has died or hung' k$sig.err
            kill -KILL "$stopped" 2>/dev/null
            stopped=""
        fi
    else
        fail "SIG$sig: the run did not get going: $(head -c 500 k$sig.err)"
    fi
done

echo "$((checks - failed)) of $checks checks passed"
[ "$failed" -eq 0 ]
