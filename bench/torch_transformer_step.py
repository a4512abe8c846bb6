#!/usr/bin/python3
"""PyTorch twin of `bench_transformer_step` (workloads edelman-step and wide-step): the decoder-only
transformer of src/models/transformer.h, written here from that description, same params, same
batches, same optimizer recipe.

    /usr/bin/python3 bench/torch_transformer_step.py --dump DIR --steps N [--warmup W] [--threads T]

Reads DIR/inputs.safetensors (written by bench_transformer_step: every parameter under its ihlab
name, "tokens" and "targets" I64 [S, B, L] = one fresh batch per step, targets -1 = none, and
__metadata__["config"]), times N full steps on batches 0..N-1 (zero_grad, loss, backward,
clip_grad_norm_, AdamW step) with torch.set_num_threads(T) and prints
    pytorch_ms=<ms per step, mean> pytorch_min_ms=<fastest single step> torch_threads=<n> blas_threads=<n>
    loss_first=<loss of step 1> loss_last=<loss of step N>

The model (row-vector convention, weights [in, out]):
    x = E[tokens] (+ P[0:L] with positional = learned)
    per layer:  x = x + MHA(LN1(x)) W_O;   x = x + GELU(LN2(x) W_1 + b_1) W_2 + b_2  (unless attention-only)
    logits = LNf(x) U;  loss = mean cross-entropy over positions with target >= 0
MHA: head h owns columns h*dh..h*dh+dh-1 of W_Q, W_K, W_V; query i attends to keys j <= i with
softmax_j(q_i . k_j / sqrt(dh) + bias_h(i - j)); with positional = relative, bias_h(o) = rpe.w[h, o]
(offsets 0..K-1, K = the table's width; keys beyond the window are masked).

Written the way a careful PyTorch user would on CPU: W_Q | W_K | W_V are one [D, 3D] leaf (as in
nn.Linear(D, 3D); AdamW and the clip are elementwise/global, so the math is the same as three
separate leaves), the causal mask and the relative-offset index are built once, the bias is one
gather per layer, and F.layer_norm / F.gelu / F.cross_entropy are the fused ATen kernels. (This
PyTorch, 1.13, has no scaled_dot_product_attention.) AdamW uses PyTorch's default CPU path; pass
--foreach 1 to try the multi-tensor path instead.

Threads: Debian's torch does its matmuls in OpenBLAS (pthreads build, BLAS_INFO=generic), whose
thread pool torch.set_num_threads does not control. With T = 2 on a 2-core machine, torch's
OpenMP workers and OpenBLAS's workers (both spin-waiting) then share two cores, and step times
jump between about 1x and 2x-6x of the best one. So that the comparison is with PyTorch at its best
on T cores, the script (--tune-threads 1, the default) times a few warm-up steps under each
arrangement that uses T cores without oversubscribing them -- (torch T, OpenBLAS 1) and
(torch 1, OpenBLAS T) -- plus the library defaults (torch T, OpenBLAS T), and times the run with
the fastest (by mean step time); with T = 1 it runs (torch 1, OpenBLAS 1). It prints the choice
as torch_threads=... blas_threads=.... --tune-threads 0 keeps torch.set_num_threads(T) and the
library defaults.
"""
import argparse
import ctypes
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_blas  # noqa: E402 (beside this script)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_smoke_step import read_safetensors  # noqa: E402


class Twin:
    """Params (torch leaves) and the forward pass of the transformer described in the docstring."""

    def __init__(self, arrays, cfg):
        self.cfg = cfg
        D, H = cfg["width"], cfg["heads"]
        self.D, self.H, self.dh = D, H, D // H
        t = lambda n: torch.tensor(arrays[n])  # noqa: E731
        p = {"E": t("embed.E"), "U": t("unembed.U"), "lnf_g": t("unembed.ln_g"), "lnf_b": t("unembed.ln_b")}
        if cfg["positional"] == "learned":
            p["P"] = t("pos.P")
        self.layers = []
        for l in range(cfg["layers"]):
            a, m = f"layer{l}.attn", f"layer{l}.mlp"
            y = {"ln1_g": t(a + ".ln_g"), "ln1_b": t(a + ".ln_b"),
                 "Wqkv": torch.cat([t(a + ".Wq"), t(a + ".Wk"), t(a + ".Wv")], dim=1), "Wo": t(a + ".Wo")}
            if cfg["positional"] == "relative":
                y["rpe"] = t(f"layer{l}.rpe.w")
            if not cfg["attention_only"]:
                y.update({"ln2_g": t(m + ".ln_g"), "ln2_b": t(m + ".ln_b"), "W1": t(m + ".W1"), "b1": t(m + ".b1"),
                          "W2": t(m + ".W2"), "b2": t(m + ".b2")})
            self.layers.append(y)
        self.p = p
        for v in self.params():
            v.requires_grad_(True)
        # Constant, data-independent pieces (built once).
        L = cfg["length"]
        i = torch.arange(L).unsqueeze(1)
        j = torch.arange(L).unsqueeze(0)
        off = i - j
        allowed = off >= 0
        if cfg["positional"] == "relative":
            K = cfg["rpe_size"]
            allowed = allowed & (off < K)
            self.off_idx = off.clamp(0, K - 1)  # [L, L] index into the bias table
        self.neg_mask = torch.zeros(L, L).masked_fill(~allowed, float("-inf"))  # additive mask [L, L]
        self.pos_ids = torch.arange(L)

    def params(self):
        out = list(self.p.values())
        for y in self.layers:
            out.extend(y.values())
        return out

    def loss(self, tokens, targets):
        cfg, D, H, dh = self.cfg, self.D, self.H, self.dh
        B, L = tokens.shape
        eps = cfg["ln_eps"]
        x = F.embedding(tokens, self.p["E"])                               # [B, L, D]
        if cfg["positional"] == "learned":
            x = x + self.p["P"][:L]
        for y in self.layers:
            h = F.layer_norm(x, (D,), y["ln1_g"], y["ln1_b"], eps)
            qkv = (h @ y["Wqkv"]).view(B, L, 3, H, dh).permute(2, 0, 3, 1, 4)  # [3, B, H, L, dh]
            q, k, v = qkv[0], qkv[1], qkv[2]
            s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(dh))          # [B, H, L, L]
            if cfg["positional"] == "relative":
                s = s + (y["rpe"][:, self.off_idx] + self.neg_mask)         # [H, L, L]
            else:
                s = s + self.neg_mask
            att = torch.softmax(s, dim=-1)
            o = (att @ v).transpose(1, 2).reshape(B, L, D)                 # heads back to columns
            x = x + o @ y["Wo"]
            if not cfg["attention_only"]:
                h = F.layer_norm(x, (D,), y["ln2_g"], y["ln2_b"], eps)
                x = x + F.gelu(h @ y["W1"] + y["b1"]) @ y["W2"] + y["b2"]
        z = F.layer_norm(x, (D,), self.p["lnf_g"], self.p["lnf_b"], eps) @ self.p["U"]  # [B, L, V]
        return F.cross_entropy(z.reshape(B * L, -1), targets.reshape(-1), ignore_index=-1)


def find_openblas():
    """The loaded OpenBLAS (ctypes handle with openblas_set_num_threads), or None."""
    seen = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "blas" not in path or not path.startswith("/") or path in seen:
                continue
            seen.add(path)
            try:
                lib = ctypes.CDLL(path)
                lib.openblas_set_num_threads  # noqa: B018 (raises AttributeError if absent)
                return lib
            except (OSError, AttributeError):
                continue
    return None


def set_threads(blas, torch_threads, blas_threads):
    torch.set_num_threads(torch_threads)
    if blas is not None and blas_threads is not None:
        blas.openblas_set_num_threads(blas_threads)


def make_run(arrays, cfg, foreach):
    m = Twin(arrays, cfg)
    opt = torch.optim.AdamW(m.params(), lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"],
                            weight_decay=cfg["weight_decay"], foreach=foreach)
    return m, opt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--foreach", type=int, default=None, help="AdamW foreach (default: PyTorch's choice)")
    ap.add_argument("--tune-threads", type=int, default=1,
                    help="1: run with the fastest of the torch/OpenBLAS thread arrangements on T cores")
    ap.add_argument("--tune-steps", type=int, default=5, help="steps timed per arrangement when tuning")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    blas = find_openblas()
    blas_default = blas.openblas_get_num_threads() if blas is not None else None

    arrays, meta = read_safetensors(a.dump + "/inputs.safetensors")
    cfg = json.loads(meta["config"])
    if cfg.get("model") != "transformer":
        sys.exit(f"torch_transformer_step.py: dump holds model {cfg.get('model')!r}, expected 'transformer'")
    if cfg["dtype"] != "float32" or cfg["norm"] != "pre" or not cfg["self_attention"] or cfg["attn_bias"] \
            or cfg["tied_unembedding"] or cfg["positional"] not in ("relative", "learned"):
        sys.exit("torch_transformer_step.py: only float32, pre-LN, self-attention, relative/learned positions, "
                 "no attention biases, untied unembedding")
    tokens = torch.tensor(arrays["tokens"])    # [S, B, L]
    targets = torch.tensor(arrays["targets"])
    n_batches = tokens.shape[0]
    if a.steps > n_batches:
        sys.exit(f"torch_transformer_step.py: --steps {a.steps} but the dump holds {n_batches} batches")
    foreach = None if a.foreach is None else bool(a.foreach)

    def step(m, opt, i):
        opt.zero_grad(set_to_none=False)  # ihlab zero-fills its grad buffers too
        loss = m.loss(tokens[i], targets[i])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.params(), cfg["clip"])
        opt.step()
        return loss.item()

    warm = make_run(arrays, cfg, foreach)
    for s in range(a.warmup):
        step(*warm, s % n_batches)
    T = a.threads
    choice = (T, blas_default)  # library defaults
    if a.tune_threads and blas is not None and T == 1:
        choice = (1, 1)  # one core: OpenBLAS would otherwise start a thread per core
    elif a.tune_threads and blas is not None:
        best = None
        for arr in [(T, blas_default), (T, 1), (1, T)]:
            set_threads(blas, *arr)
            step(*warm, 0)  # untimed: the pools settle after a change
            times = []
            for s in range(max(1, a.tune_steps)):
                ts = time.perf_counter()
                step(*warm, s % n_batches)
                times.append(time.perf_counter() - ts)
            mean = sum(times) / len(times)  # the mean: oversubscription shows as erratic steps
            print(f"tune: torch {arr[0]} blas {arr[1]}: mean {mean * 1000:.2f} ms", file=sys.stderr)
            if best is None or mean < best:
                best, choice = mean, arr
    set_threads(blas, *choice)
    m, opt = make_run(arrays, cfg, foreach)
    min_ms = float("inf")
    t0 = time.perf_counter()
    for s in range(a.steps):
        ts = time.perf_counter()
        last = step(m, opt, s)
        min_ms = min(min_ms, (time.perf_counter() - ts) * 1000)
        if s == 0:
            first = last
    ms = (time.perf_counter() - t0) * 1000 / a.steps
    print(f"pytorch_ms={ms:.4f} pytorch_min_ms={min_ms:.4f} torch_threads={choice[0]} "
          f"blas_threads={choice[1] if choice[1] is not None else 'n/a'}")
    print(f"loss_first={first:.9g} loss_last={last:.9g}")
    print(torch_blas.describe())


if __name__ == "__main__":
    main()
