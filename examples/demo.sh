#!/usr/bin/env bash
# demo.sh — the tutorial at full size: model summary, one epoch of training
# (172 steps of batch 64 x 100 chars), then 1000 sampled characters; then a
# short char-gpt run and its sample.
# EPOCHS, DATA and CKPT_DIR override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-../shared/data/tinyshakespeare.txt}
epochs=${EPOCHS:-1}
dir=${CKPT_DIR:-runs/demo}
mkdir -p runs
echo "== char-rnn summary"
examples/char-rnn summary --data "$data"
echo "== char-rnn train: $epochs epoch(s) of the tutorial's configuration (a few minutes per epoch on 2 cores)"
examples/char-rnn train --data "$data" --epochs "$epochs" --checkpoint-dir "$dir" \
    --csv runs/demo_losses.csv --plot runs/demo_loss.svg --overwrite
echo "== char-rnn sample: 1000 characters from the checkpoint"
examples/char-rnn sample --checkpoint-dir "$dir" --length 1000 --start "ROMEO: "
echo "== char-gpt: nanoGPT's character model, 250 steps (about 15 s on 2 cores), then 300 characters"
examples/char-gpt train --data "$data" --iters 250 --eval-interval 250 --eval-iters 20 \
    --checkpoint-dir runs/chargpt --overwrite
examples/char-gpt sample --checkpoint-dir runs/chargpt --length 300
