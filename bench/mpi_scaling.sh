#!/bin/sh
# mpi_scaling.sh — data-parallel char-rnn at the seed size (batch 64, seq 100,
# embed 256, hidden 1024; 21.3 MB of gradients per step) on this machine:
# one process with T threads against T ranks with one thread each (mpirun
# binds one rank per core), same global batch. Prints seconds per step
# (from --profile: the ops' time, all steps but the first, which traces and
# compiles), steps/s, and the allreduce_mean op's ms per step (rank 0's: the
# all-reduce plus any wait for the slower rank). Then the bare all-reduce cost
# (bench/bench_allreduce). Run from the build directory of a --with-mpi build:
#
#      bench/mpi_scaling.sh [--data PATH] [--steps N] [--ranks T] [--repeat R]
#
# Runs alternate (1 x T, T x 1, 1 x T, ...) so that a noisy machine hurts
# both alike; each run is one line.
set -eu
data=../shared/data/tinyshakespeare.txt steps=12 ranks=2 repeat=2
while [ $# -gt 1 ]; do
    case $1 in
        --data) data=$2 ;; --steps) steps=$2 ;; --ranks) ranks=$2 ;; --repeat) repeat=$2 ;;
        *) echo "usage: $0 [--data PATH] [--steps N] [--ranks T] [--repeat R]" >&2; exit 2 ;;
    esac
    shift 2
done
bin=examples/char-rnn
[ -x $bin ] || { echo "run from a build directory (no $bin)" >&2; exit 1; }
mpirun=${MPIRUN:-mpirun}
flags=${MPIRUN_FLAGS:---allow-run-as-root}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mpi_scaling.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
common="--data $data --batch 64 --seq 100 --embed 256 --hidden 1024 --epochs 1 --steps-per-epoch $steps --profile"

# summarise NAME OUT: the step time is the ops' time per step from --profile
# (all steps but the first; rank 0's under mpirun, which includes waiting for
# the slower rank in the all-reduce); the allreduce_mean row; the last loss.
summarise() {
    tr '\r' '\n' < "$2" | awk -v name="$1" '
        /step - loss/ { loss = $NF }
        /^allreduce_mean / { ar = $3 }
        /^Profile over/ { steps = $3; ms = $5; sub(/^\(/, "", ms) }
        END {
            printf "%-22s %6.3f s/step  %5.2f steps/s  allreduce %6s ms/step (%d steps)  loss %s\n",
                   name, ms / 1000, 1000 / ms, ar == "" ? "-" : ar, steps, loss
        }'
}

echo "char-rnn seed size, $steps steps of global batch 64 per run, $(nproc) cores"
r=0
while [ $r -lt "$repeat" ]; do
    $bin train $common --threads "$ranks" --checkpoint-dir "$tmp/one" > "$tmp/one.out" 2>&1
    summarise "1 rank x $ranks threads" "$tmp/one.out"
    $mpirun $flags -np "$ranks" --bind-to core $bin train $common --threads 1 --checkpoint-dir "$tmp/dp" \
        > "$tmp/dp.out" 2>&1
    summarise "$ranks ranks x 1 thread" "$tmp/dp.out"
    r=$((r + 1))
done
echo
$mpirun $flags -np "$ranks" --bind-to core bench/bench_allreduce --reps 20
