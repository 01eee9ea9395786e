#!/usr/bin/python3
"""chargpt_torch.py DIR [--n-head H] — checks the loss and gradients that
`char-gpt grads --out DIR` wrote against PyTorch in float64 on the same
weights and batch: the model written out here from the anchor's definition
(shared/anchors/torch_chargpt.py: pre-LayerNorm blocks, fused qkv, causal
attention scaled by 1/sqrt(head_dim), exact-erf GELU MLP, final LayerNorm,
head tied to the token embedding, mean cross-entropy).
Each gradient must agree to 1e-4 relative to its tensor's largest entry.
Prints one line per tensor and exits 1 if any differs."""
import math, os, sys
import numpy as np
import torch
import torch.nn.functional as F

TOL = 1e-4
d = sys.argv[1]
n_head = int(sys.argv[sys.argv.index("--n-head") + 1]) if "--n-head" in sys.argv else 2

t = {}
for line in open(os.path.join(d, "manifest.txt")):
    name, file, dtype, *shape = line.split()
    a = np.fromfile(os.path.join(d, file + ".bin"), dtype=np.float32 if dtype == "f32" else np.int32)
    t[name] = a.reshape([int(s) for s in shape])

weights = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in t.items()
           if k not in ("x", "y", "loss") and not k.startswith("grad:")}
x, y = torch.tensor(t["x"], dtype=torch.long), torch.tensor(t["y"], dtype=torch.long)
W = lambda k: weights[k]
B, T = x.shape
C = W("wte/embeddings").shape[1]
L = sum(1 for k in weights if k.endswith("/ln_1/gamma"))
hd = C // n_head


def attention(h, p):
    q, k, v = (h @ W(p + "attn/c_attn/kernel") + W(p + "attn/c_attn/bias")).split(C, dim=2)
    q, k, v = (z.view(B, T, n_head, hd).transpose(1, 2) for z in (q, k, v))
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    out = (F.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
    return out @ W(p + "attn/c_proj/kernel") + W(p + "attn/c_proj/bias")


def mlp(h, p):
    h = F.gelu(h @ W(p + "mlp/c_fc/kernel") + W(p + "mlp/c_fc/bias"))   # exact (erf) form
    return h @ W(p + "mlp/c_proj/kernel") + W(p + "mlp/c_proj/bias")


h = W("wte/embeddings")[x] + W("wpe/embeddings")[torch.arange(T)]
for i in range(L):
    p = f"h_{i}/"
    h = h + attention(F.layer_norm(h, (C,), W(p + "ln_1/gamma"), W(p + "ln_1/beta"), 1e-5), p)
    h = h + mlp(F.layer_norm(h, (C,), W(p + "ln_2/gamma"), W(p + "ln_2/beta"), 1e-5), p)
h = F.layer_norm(h, (C,), W("ln_f/gamma"), W("ln_f/beta"), 1e-5)
logits = h @ W("wte/embeddings").T
loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
loss.backward()

failed = 0
ours = float(t["loss"])
err = abs(ours - loss.item()) / abs(loss.item())
ok = err <= TOL
failed += not ok
print(f"{'ok  ' if ok else 'FAIL'} loss: dagflow {ours:.7f}, torch float64 {loss.item():.7f} (relative {err:.2e})")
worst = 0.0
for k, w in weights.items():
    ref = w.grad.numpy()
    got = t["grad:" + k].astype(np.float64)
    scale = np.abs(ref).max()
    err = np.abs(got - ref).max() / scale if scale > 0 else np.abs(got).max()
    worst = max(worst, err)
    ok = err <= TOL
    failed += not ok
    print(f"{'ok  ' if ok else 'FAIL'} grad {k} {list(ref.shape)}: max |dagflow - torch| / max |torch| = {err:.2e}")
print(f"chargpt_torch: {len(weights) + 1} tensors, {failed} failed (worst gradient {worst:.2e}, tolerance {TOL:g})")
sys.exit(1 if failed else 0)
