#!/usr/bin/python3
"""PyTorch twin of `bench_step smoke-step`: same params, same batch, same math, same optimizer.

    /usr/bin/python3 bench/torch_smoke_step.py --dump DIR --steps N [--warmup W] [--threads T]

Reads DIR/inputs.safetensors (written by bench_step), times N full steps (zero_grad, loss,
backward, Adam step) and prints, like bench_step:
    pytorch_ms=<ms per step>
    loss_first=<loss of step 1> loss_last=<loss of step N>
The model is OneLayerAttention::logits (src/models/one_layer_attention.cpp) written in torch ops.
Warm-up runs on a copy of the params so the timed run starts from the dumped ones.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_blas  # noqa: E402 (beside this script)

_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


def read_safetensors(path):
    """(tensors: name -> numpy array, metadata: dict). Layout: u64 header size, JSON header, data."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, e in header.items():
        lo, hi = e["data_offsets"]
        arr = np.frombuffer(data[lo:hi], dtype=_DTYPES[e["dtype"]])
        out[name] = arr.reshape(e["shape"]).copy()  # copy: writable, owns its memory
    return out, meta


def attn1_logits(p, tokens, cfg, return_attention=False):
    """logits [B, L, V] of the one-layer attention model; p maps ParamStore names to tensors."""
    L, D, K = cfg["length"], cfg["width"], cfg["window"]
    x = p["embed.E"][tokens]                                  # [B, L, D]
    q, k, v = x @ p["attn.Wq"], x @ p["attn.Wk"], x @ p["attn.Wv"]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)         # [B, L, L]
    i = torch.arange(L).unsqueeze(1)
    j = torch.arange(L).unsqueeze(0)
    rel = i - j                                               # offset of key j from query i
    band = (rel >= 0) & (rel < K)                             # causal window, self included
    bias = torch.where(band, p["rpe.w"][0][rel.clamp(0, K - 1)], torch.zeros((), dtype=scores.dtype))
    att = torch.softmax((scores + bias).masked_fill(~band, float("-inf")), dim=-1)
    h = x + (att @ v) @ p["attn.Wo"]                          # residual
    logits = h @ p["embed.U"]
    return (logits, att) if return_attention else logits


def attn1_loss(p, tokens, targets, cfg):
    z = attn1_logits(p, tokens, cfg)
    # Mean over positions with a target (ihlab: target >= 0; the tasks use -1 for "none").
    return torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]), targets.reshape(-1), ignore_index=-1)


def make_run(arrays, cfg, names):
    params = {n: torch.tensor(arrays[n]).requires_grad_(True) for n in names}
    opt = torch.optim.Adam(params.values(), lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"])
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
    if cfg.get("model") != "attn1":
        sys.exit(f"torch_smoke_step.py: dump holds model {cfg.get('model')!r}, expected 'attn1'")
    tokens = torch.tensor(arrays["tokens"])
    targets = torch.tensor(arrays["targets"])
    names = [n for n in arrays if n not in ("tokens", "targets")]

    def step(params, opt):
        opt.zero_grad(set_to_none=False)  # ihlab zero-fills its grad buffers too
        loss = attn1_loss(params, tokens, targets, cfg)
        loss.backward()
        opt.step()
        return loss.item()

    warm = make_run(arrays, cfg, names)
    for _ in range(a.warmup):
        step(*warm)
    params, opt = make_run(arrays, cfg, names)
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
