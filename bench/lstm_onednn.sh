#!/bin/bash
# lstm_onednn.sh — dagflow's fused LSTM op forward + backward (`dagflow-bench
# op lstm --backward` at B64 T100 H1024, all 4 gradients, as bench/bench_ops's
# "forward_backward" case) against Intel oneDNN's LSTM primitive at the same
# shape with a tiny input (recurrent work only), in alternating runs; medians
# and their ratio; and each as a share of the machine's fp32 FMA peak
# (dagflow-bench peak, all threads, measured in the same run) for the 161.3
# GFLOP of recurrent work, with what a target ratio over oneDNN would need.
#
#   bench/lstm_onednn.sh [--rounds 5] [--anchor ../shared/anchors/onednn_lstm.c] [--target 1.2]
#
# Finds tools/dagflow-bench in the build directory it runs from, this
# script's tree or the PATH; needs libdnnl-dev (gcc ... -ldnnl), else it says
# so and exits 0.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
rounds=5
target=1.2
anchor=$here/../../shared/anchors/onednn_lstm.c
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift ;;
        --anchor) anchor=$2; shift ;;
        --target) target=$2; shift ;;
        --help) sed -n '2,14p' "$0"; exit 0 ;;
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
for bin in "$PWD/tools/dagflow-bench" "$here/../tools/dagflow-bench" "$(command -v dagflow-bench)"; do
    [ -x "$bin" ] && break
done
[ -x "$bin" ] || { echo "lstm_onednn.sh: tools/dagflow-bench not found; build it first (make)" >&2; exit 1; }
peak=$("$bin" peak --json | sed -n 's/.*"fp32_fma_gflops_all": \([0-9.]*\).*/\1/p')
for r in $(seq "$rounds"); do
    "$bin" op lstm --shape 64x100x4096,1024x4096,64x1024,64x1024 --backward --seconds 3 --json |
        sed -n 's/.*"ms": \([0-9.]*\).*/\1/p' >>"$tmp/dagflow"
    "$tmp/onednn_lstm" --input 8 --steps 3 --warmup 1 --gen 1 2>/dev/null |
        sed -n 's/.*"step_ms":\([0-9.]*\).*/\1/p' >>"$tmp/onednn"
done
median() { sort -g "$1" | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
d=$(median "$tmp/dagflow") o=$(median "$tmp/onednn")
echo "# LSTM forward+backward B64 T100 H1024, medians of $rounds alternating rounds; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "dagflow lstm op ms:      $d   (runs: $(tr '\n' ' ' <"$tmp/dagflow"))"
echo "oneDNN primitive ms:     $o   (runs: $(tr '\n' ' ' <"$tmp/onednn"))"
awk -v d="$d" -v o="$o" 'BEGIN {printf "oneDNN / dagflow:        %.2fx\n", o / d}'
# forward h_{t-1} @ w_rec, backward dz_t @ w_rec^T and hprev^T @ dz: 3 x 2 x B*T*H*4H
awk -v d="$d" -v o="$o" -v p="$peak" -v x="$target" 'BEGIN {
    f = 3 * 2 * 64 * 100 * 1024 * 4096 / 1e9
    if (p <= 0) { print "fp32 FMA peak:           not measured"; exit }
    printf "fp32 FMA peak:           %.1f GFLOP/s (all threads, this run); %.1f GFLOP of recurrent products\n", p, f
    printf "share of the peak:       dagflow %.1f%%, oneDNN %.1f%%\n", 100 * f / d * 1000 / p, 100 * f / o * 1000 / p
    need = f / (o / x) * 1000
    printf "%.2fx oneDNN would be:   %.0f ms = %.1f%% of the peak (%s)\n", x, o / x, 100 * need / p,
           (need > p) ? "above it: not possible in fp32 here" : "below it"
}'
