#!/bin/bash
# lstm_onednn.sh — dagflow's fused LSTM op forward + backward (bench_ops,
# "forward_backward B64 T100 H1024 (all 4 grads)") against Intel oneDNN's LSTM
# primitive at the same shape with a tiny input (recurrent work only, as
# bench_ops's case), in alternating runs; medians and their ratio.
#
#   bench/lstm_onednn.sh [--rounds 5] [--anchor ../shared/anchors/onednn_lstm.c]
#
# Run from the build directory; needs libdnnl-dev (gcc ... -ldnnl), else it
# says so and exits 0.
set -eu
rounds=5
anchor=../shared/anchors/onednn_lstm.c
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift ;;
        --anchor) anchor=$2; shift ;;
        --help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "lstm_onednn.sh: unknown flag $1" >&2; exit 2 ;;
    esac
    shift
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! gcc -O2 "$anchor" -o "$tmp/onednn_lstm" -ldnnl 2>"$tmp/cc.err"; then
    echo "lstm_onednn.sh: oneDNN anchor not built (libdnnl-dev missing?): $(head -1 "$tmp/cc.err")"
    exit 0
fi
for r in $(seq "$rounds"); do
    ./bench/bench_ops --only lstm | grep '"case": "forward_backward' | sed -n 's/.*"ms": \([0-9.]*\).*/\1/p' >>"$tmp/dagflow"
    "$tmp/onednn_lstm" --input 8 --steps 3 --warmup 1 --gen 1 2>/dev/null |
        sed -n 's/.*"step_ms":\([0-9.]*\).*/\1/p' >>"$tmp/onednn"
done
median() { sort -g "$1" | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
d=$(median "$tmp/dagflow") o=$(median "$tmp/onednn")
echo "# LSTM forward+backward B64 T100 H1024, medians of $rounds alternating rounds; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "dagflow lstm op ms:      $d   (runs: $(tr '\n' ' ' <"$tmp/dagflow"))"
echo "oneDNN primitive ms:     $o   (runs: $(tr '\n' ' ' <"$tmp/onednn"))"
awk -v d="$d" -v o="$o" 'BEGIN {printf "oneDNN / dagflow:        %.2fx\n", o / d}'
