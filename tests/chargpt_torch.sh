#!/bin/sh
# chargpt_torch.sh — the loss and every gradient of one full char-gpt
# training step equal PyTorch's in float64 on the same weights and batch
# (tests/chargpt_torch.py), to 1e-4 relative, on a tiny config. Needs
# /usr/bin/python3 with torch and numpy; without them it says so and skips
# (exit 77, automake's SKIP).
top=$(cd "${top_builddir:-.}" && pwd) || exit 1
here=$(cd "$(dirname "$0")" && pwd)
bin="$top/examples/char-gpt"
python=/usr/bin/python3
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
if ! [ -x "$python" ] || ! "$python" -c 'import torch, numpy' > /dev/null 2>&1; then
    echo "chargpt_torch: skipped: PyTorch not installed ($python -c 'import torch, numpy' fails)"
    exit 77
fi
. "$here/lib.sh" || exit 1
enter_scratch chargpt_torch

make_corpus 200 > corpus.txt
# 2 layers, 3 heads of width 4 (head_dim != n_head catches a transposed split), block 16, batch 3
"$bin" grads --data corpus.txt --n-layer 2 --n-head 3 --n-embd 12 --block 16 --batch 3 --seed 11 --out . > grads.txt 2>&1 || {
    echo "FAIL: char-gpt grads: $(cat grads.txt)"; exit 1; }
"$python" "$here/chargpt_torch.py" . --n-head 3
