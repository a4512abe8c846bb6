#!/usr/bin/python3
"""PyTorch twin of `bench_musat_full_step`: Musat et al. 2025's full disentangled model, same
weights, same batches, same math, float64, plain SGD with step eta = D / 4.

    /usr/bin/python3 bench/torch_musat_full_step.py --dump DIR --steps N [--warmup W] [--threads T]

Reads DIR/inputs.safetensors (W1 [2D, 2D], W2 [4D, 4D], W3 [D, 8D], mask [D, 8D], features
[K, B, L, 2D], values [K, B, D]; step i uses batch i mod K), times N full steps (zero_grad, loss,
backward, SGD step) with torch.set_num_threads(T) and prints
    pytorch_ms=<ms per step>
    loss_first=<loss of step 1> loss_last=<loss of step N>
    pytorch_blas=...

Written the way a careful PyTorch user would: batched matmuls over the whole batch, layer 2 only at
the query row, the strictly causal mask as a constant built once.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_blas  # noqa: E402 (beside this script)
from torch_smoke_step import read_safetensors  # noqa: E402


def disentangled_loss(W1, W2, W3m, h, y, causal):
    """1/2 mean_b ||W3m [h'_Q ; o2] - y||^2 for h [B, L, 2D] (docs/models/disentangled.md)."""
    s1 = torch.einsum("bjd,bkd->bjk", h @ W1.T, h)  # S1[j, k] = h_k^T W1 h_j
    s1 = s1.masked_fill(~causal, float("-inf"))
    a1 = torch.nan_to_num(torch.softmax(s1, dim=-1))  # row 0 has no key: zeros, as in ihlab
    h1 = torch.cat([h, a1 @ h], dim=-1)  # [B, L, 4D]
    hq = h1[:, -1, :]  # [B, 4D]
    s2 = torch.einsum("bkd,bd->bk", h1[:, :-1, :], hq @ W2.T)  # keys k < Q
    a2 = torch.softmax(s2, dim=-1)
    o2 = torch.einsum("bk,bkd->bd", a2, h1[:, :-1, :])
    yhat = torch.cat([hq, o2], dim=-1) @ W3m.T
    return 0.5 * ((yhat - y) ** 2).sum(dim=-1).mean()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dump", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    t, meta = read_safetensors(os.path.join(a.dump, "inputs.safetensors"))
    cfg = json.loads(meta["config"])
    lr = float(cfg["lr"])
    feats = torch.from_numpy(t["features"])
    vals = torch.from_numpy(t["values"])
    mask = torch.from_numpy(t["mask"])
    K, L = feats.shape[0], feats.shape[2]
    causal = torch.tril(torch.ones(L, L, dtype=torch.bool), diagonal=-1)

    def fresh():
        return [torch.from_numpy(t[n].copy()).requires_grad_(True) for n in ("W1", "W2", "W3")]

    def step(w, i):
        for x in w:
            x.grad = None
        loss = disentangled_loss(w[0], w[1], w[2] * mask, feats[i % K], vals[i % K], causal)
        loss.backward()
        with torch.no_grad():
            for x in w:
                x -= lr * x.grad
        return loss.item()

    warm = fresh()
    for i in range(a.warmup):
        step(warm, i)
    w = fresh()
    first = last = None
    t0 = time.perf_counter()
    for i in range(a.steps):
        last = step(w, i)
        if i == 0:
            first = last
    ms = (time.perf_counter() - t0) * 1e3 / a.steps
    print(f"pytorch_ms={ms:.4f}")
    print(f"loss_first={first:.12g} loss_last={last:.12g}")
    print(torch_blas.describe())


if __name__ == "__main__":
    main()
