#!/bin/bash
# busy.sh — dagflow on a shared machine: char-rnn sample (and with --train the
# seed train step) quiet and with one busy process on the machine
# (sh -c 'while :; do :; done'), on 1 and 2 threads, with the load-adapted
# thread count (src/team.c) on and, for comparison, off (DF_TEAM_ADAPT=0).
# Runs alternate within each round; each figure is the median over the rounds.
#
#   bench/busy.sh [--rounds 5] [--length 300] [--train] [--checkpoint FILE]
#
# Run from the build directory. Without --checkpoint a model is made with
# one train step (the sampling speed does not depend on the weights).
set -eu
rounds=5
length=300
train=0
ckpt=
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift ;;
        --length) length=$2; shift ;;
        --train) train=1 ;;
        --checkpoint) ckpt=$2; shift ;;
        --help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "busy.sh: unknown flag $1" >&2; exit 2 ;;
    esac
    shift
done
charrnn=./examples/char-rnn
[ -x "$charrnn" ] || { echo "busy.sh: run from the build directory (no $charrnn)" >&2; exit 2; }
tmp=$(mktemp -d)
busy_pid=
cleanup() { [ -n "$busy_pid" ] && kill "$busy_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
if [ -z "$ckpt" ]; then
    "$charrnn" train --epochs 1 --steps-per-epoch 1 --checkpoint-dir "$tmp/ck" --csv '' --plot '' >/dev/null
    ckpt=$tmp/ck/ckpt_1
fi

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# one sample run: wall ms
sample_ms() {
    local t0; t0=$(now_ms)
    env DF_TEAM_ADAPT="$2" "$charrnn" sample --checkpoint "$ckpt" --length "$length" --threads "$1" >/dev/null
    echo $(( $(now_ms) - t0 ))
}
# one bench_train run: median ms per step
train_ms() {
    env DF_TEAM_ADAPT="$2" ./bench/bench_train --steps 3 --warmup 1 --gen 0 --threads "$1" 2>/dev/null |
        sed -n 's/.*"ms_per_step": \([0-9.]*\).*/\1/p'
}
start_busy() { sh -c 'while :; do :; done' & busy_pid=$!; sleep 0.5; }
stop_busy() { kill "$busy_pid"; wait "$busy_pid" 2>/dev/null || true; busy_pid=; }

configs="1:1 2:1 2:0"          # threads:adapt
for r in $(seq "$rounds"); do
    for load in quiet busy; do
        [ $load = busy ] && start_busy
        for c in $configs; do
            th=${c%:*} ad=${c#*:}
            echo "$(sample_ms "$th" "$ad")" >>"$tmp/sample.$load.$th.$ad"
            [ $train = 1 ] && echo "$(train_ms "$th" "$ad")" >>"$tmp/train.$load.$th.$ad"
        done
        [ $load = busy ] && stop_busy
    done
done

median() { sort -g "$1" | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
     "medians of $rounds rounds; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-8s %-7s %18s' load threads adapt "sample $length ch ms"
[ $train = 1 ] && printf ' %14s' "train ms/step"
echo
for load in quiet busy; do
    for c in $configs; do
        th=${c%:*} ad=${c#*:}
        printf '%-6s %-8s %-7s %18s' $load "$th" "$([ "$ad" = 1 ] && echo on || echo off)" "$(median "$tmp/sample.$load.$th.$ad")"
        [ $train = 1 ] && printf ' %14s' "$(median "$tmp/train.$load.$th.$ad")"
        echo
    done
done
