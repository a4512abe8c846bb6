#!/usr/bin/python3
"""PyTorch twin of `bench_chen_step`: the GIH model TF(M, H, d, D) of Chen et al. (2024), same
params, same 9000 sequences, same math, plain SGD.

    /usr/bin/python3 bench/torch_chen_step.py --dump DIR --steps N [--warmup W] [--threads T]

Reads DIR/inputs.safetensors (written by bench_chen_step: params "w" [H, M], "c" [S], "a" [],
"tokens" [n, L+1] with the target in the last column, and __metadata__["config"]), times N full
steps (zero_grad, loss, backward, SGD step) with torch.set_num_threads(T) and prints
    pytorch_ms=<ms per step>
    loss_first=<loss of step 1> loss_last=<loss of step N>

Written the way a careful PyTorch user would: layer-1 attention weights depend on the position
only, so they are computed once per step ([L+1, M] per head: the softmax over each row's valid
window, rows without a key all zero); no L x L matrices and no [n, L, d] one-hot tensors: the
norms and dot products of the layer-1 outputs come from token-equality masks and gathers, which
depend on the data only and are prepared once (prepare(), outside the timed steps); everything
per step is [n, L] tensor algebra. gih_loss() is also the reference of
tests/torch_check_gih.py (float64 against ihlab's loss and gradients).
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_blas  # noqa: E402 (beside this script)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_smoke_step import read_safetensors  # noqa: E402


def subsets_from_labels(labels):
    """Bit-string labels (leftmost = head 0) -> lists of heads, in the given order."""
    return [[h for h, bit in enumerate(lab) if bit == "1"] for lab in labels]


def layer1_weights(w, L, mode):
    """[H, L+1, M]: attention of position i (0-based, the query slot L included) on window index
    k, i.e. on position i - o_h - 1 - k; zero where that position does not exist."""
    H, M = w.shape
    i = torch.arange(L + 1).unsqueeze(1)  # [L+1, 1]
    k = torch.arange(M).unsqueeze(0)      # [1, M]
    out = []
    for h in range(H):
        o = 0 if mode == "paper" else h
        valid = (i - o - 1 - k) >= 0                                   # [L+1, M]
        # The most negative finite number rather than -inf: a row without keys stays finite (and is
        # zeroed below), so no NaN reaches the backward pass.
        logits = w[h].unsqueeze(0).expand(L + 1, M).masked_fill(~valid, torch.finfo(w.dtype).min)
        att = torch.softmax(logits, dim=-1)
        out.append(torch.where(valid, att, torch.zeros((), dtype=w.dtype)))
    return torch.stack(out)


def prepare(tokens, cfg, H, M):
    """Data-only index tensors, computed once for a fixed training set (outside the timed steps).
    For head h and window index k (offset s = o_h + 1 + k): tok[h][k] [n, L+1] = x_{i-s} (0 where
    i - s < 0; its attention weight is 0 there), and for k < k2 the equality masks
    eq[h][(k, k2)] = [x_{i-s} == x_{i-s2}], which give ||v_i||^2 without one-hot vectors."""
    n, W = tokens.shape
    L = W - 1
    keys = tokens[:, :L]
    prep = {"keys": keys, "target": tokens[:, L], "tok": [], "eq": []}
    for h in range(H):
        o = 0 if cfg["mode"] == "paper" else h
        toks = []
        for k in range(M):
            s = o + 1 + k
            t = torch.zeros(n, L + 1, dtype=torch.int64)
            if s <= L:
                t[:, s:] = keys[:, : L + 1 - s]
            toks.append(t)
        prep["tok"].append(toks)
        prep["eq"].append({(k, k2): (toks[k] == toks[k2]) for k in range(M) for k2 in range(k + 1, M)})
    return prep


def gih_forward(params, prep, cfg):
    """y [n, d]: the model's prediction of the last token of every row.
    Per head, with A [L+1, M] the position-only attention and q = vbar at the query slot:
      ||v_i||^2 = sum_k A_ik^2 + 2 sum_{k<k2} A_ik A_ik2 eq_kk2,   <v_j, q> = sum_k A_jk q[x_{j-s_k}]."""
    w, c, a = params["w"], params["c"], params["a"]
    d = cfg["vocab"]
    keys = prep["keys"]
    n, L = keys.shape
    H, M = w.shape
    dtype = w.dtype
    A = layer1_weights(w, L, cfg["mode"])                             # [H, L+1, M]
    r = []
    for h in range(H):
        toks, eq = prep["tok"][h], prep["eq"][h]
        Ah = A[h]
        # query slot: v_L as a dense [n, d] vector
        vq = torch.zeros(n, d, dtype=dtype)
        for k in range(M):
            vq = vq.scatter_add(1, toks[k][:, L:], Ah[L, k].expand(n, 1))
        q = vq / ((vq * vq).sum(1, keepdim=True).clamp_min(1e-30).sqrt() + 1e-7)
        # keys j < L
        norm2 = (Ah[:L] * Ah[:L]).sum(1).unsqueeze(0).expand(n, L)
        dot = torch.zeros(n, L, dtype=dtype)
        for k in range(M):
            dot = dot + Ah[:L, k] * q.gather(1, toks[k][:, :L])
            for k2 in range(k + 1, M):
                norm2 = norm2 + (2 * Ah[:L, k] * Ah[:L, k2]) * eq[(k, k2)][:, :L]
        # clamp_min: rows without keys (norm 0) get a zero gradient instead of 0 * inf
        r.append(torch.relu(dot / (norm2.clamp_min(1e-30).sqrt() + 1e-7)))
    subsets = subsets_from_labels(cfg["subsets"])
    p = c * c / (c * c).sum()
    F = p[0] * torch.ones(n, L, dtype=dtype) if not subsets[0] else torch.zeros(n, L, dtype=dtype)
    for S, heads in enumerate(subsets):
        if not heads:
            continue
        kappa = r[heads[0]]
        for h in heads[1:]:
            kappa = kappa * r[h]
        F = F + p[S] * kappa
    s = torch.softmax(a * F, dim=-1)                                  # [n, L]
    return torch.zeros(n, d, dtype=dtype).scatter_add(1, keys, s)


def gih_loss(params, prep, cfg, per_sequence=False):
    y = gih_forward(params, prep, cfg)
    t = prep["target"]
    if cfg["loss"] == "nll":
        l = -torch.log(y.gather(1, t.unsqueeze(1)).squeeze(1) + cfg["guard"])
    else:  # ce_on_probs: softmax cross-entropy applied to y itself, as the authors' code
        l = torch.nn.functional.cross_entropy(y, t, reduction="none")
    return l if per_sequence else l.mean()


def make_run(arrays, cfg, dtype):
    params = {n: torch.tensor(arrays[n], dtype=dtype).requires_grad_(True) for n in ("w", "c", "a")}
    opt = torch.optim.SGD(params.values(), lr=cfg["lr"])
    return params, opt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    arrays, meta = read_safetensors(a.dump + "/inputs.safetensors")
    cfg = json.loads(meta["config"])
    if cfg.get("model") != "gih":
        sys.exit(f"torch_chen_step.py: dump holds model {cfg.get('model')!r}, expected 'gih'")
    dtype = torch.float32 if cfg["dtype"] == "float32" else torch.float64
    tokens = torch.tensor(arrays["tokens"])
    H, M = arrays["w"].shape
    prep = prepare(tokens, cfg, H, M)

    def step(params, opt):
        opt.zero_grad(set_to_none=False)
        loss = gih_loss(params, prep, cfg)
        loss.backward()
        opt.step()
        return loss.item()

    warm = make_run(arrays, cfg, dtype)
    for _ in range(a.warmup):
        step(*warm)
    params, opt = make_run(arrays, cfg, dtype)
    t0 = time.perf_counter()
    for s in range(a.steps):
        last = step(params, opt)
        if s == 0:
            first = last
    ms = (time.perf_counter() - t0) * 1000 / a.steps
    print(f"pytorch_ms={ms:.4f}")
    print(f"loss_first={first:.9g} loss_last={last:.9g}")
    print(torch_blas.describe())


if __name__ == "__main__":
    main()
