#!/usr/bin/python3
"""Cross-check of the "full" GIH variant (src/models/gih_full_model.*) against PyTorch autograd,
in float64.

    /usr/bin/python3 tests/torch_check_gih_full.py --dumper build/tool_dump_gih_full --dir DIR

For a set of configs (both modes, both losses, self attention on and off, sequences shorter than
the window, other H/M/D/d, the authors' size), runs the C++ dumper (tests/tool_dump_gih_full.cpp)
and recomputes, from the dumped params and tokens, the mean loss, the per-sequence losses, the
predictions y and the gradients of every parameter with a dense PyTorch model written here from
docs/models/gih.md#the-full-variant-gih-full, sharing no code with ihlab:

  X [n, L+1, d]      one-hot rows of x_0..x_{L-1}; the query row L is the zero vector
  logits_h           X Q_h K_h^T X^T + RPE band, the band being gih's window: key i - (o_h+1+k)
                     gets w[h][k] (o_h = 0 paper mode, h code mode); the diagonal (self attention,
                     no RPE term) is allowed when self_attention is on; everything else masked
  A_h                row softmax over the allowed entries (a row with none: all zero)
  V_h = A_h X OV_h   then U_h = LayerNorm_d(V_h) with the shared affine gamma, beta (eps ln_eps)
  g_h(j)             <U_h[L], U_h[j]> for keys j = 0..L-1; kappa_S = prod_{h in S} ReLU(g_h)
  score_j            a * sum_S p_S kappa_S(j), p_S = c_S^2 / sum c^2
  y                  sum_j softmax(score)_j onehot(x_j);  loss: -log(y[t] + guard) (nll) or
                     softmax cross-entropy applied to y (ce_on_probs)

and requires max |ihlab - torch| / max |torch| < 1e-9 for each tensor.
Exit codes: 0 pass, 1 mismatch (names the tensor), 77 torch unavailable (ctest: skipped).
"""
import argparse
import json
import os
import subprocess
import sys

try:
    import torch
except ImportError as e:
    print(f"SKIP: {sys.executable} cannot import torch ({e})")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from torch_smoke_step import read_safetensors  # noqa: E402

TOL = 1e-9
PARAMS = ("w", "q", "k", "ov", "ln_gamma", "ln_beta", "c", "a")
# (mode, loss, n, L, vocab, heads, window, max_subset, seed, self_attention); even seeds:
# Markov-chain tokens, odd seeds: uniform tokens (some targets unseen).
CONFIGS = [
    ("paper", "nll", 64, 20, 3, 3, 3, 2, 2, 1),
    ("paper", "nll", 64, 20, 3, 3, 3, 2, 3, 0),
    ("paper", "ce_on_probs", 64, 20, 3, 3, 3, 2, 4, 0),
    ("paper", "ce_on_probs", 64, 20, 3, 3, 3, 2, 5, 1),
    ("code", "nll", 64, 20, 3, 3, 3, 2, 6, 1),
    ("code", "nll", 64, 20, 3, 3, 3, 2, 7, 0),
    ("code", "ce_on_probs", 64, 20, 3, 3, 3, 2, 8, 1),
    ("code", "ce_on_probs", 64, 20, 3, 3, 3, 2, 9, 0),
    ("code", "nll", 16, 4, 3, 3, 3, 2, 11, 1),            # the query row's window is truncated
    ("code", "ce_on_probs", 16, 2, 3, 3, 3, 2, 13, 0),    # rows without any key (v = 0)
    ("paper", "nll", 16, 1, 3, 3, 3, 2, 15, 0),           # L = 1: key 0 has no slot at all
    ("paper", "ce_on_probs", 16, 2, 3, 3, 3, 2, 17, 1),
    ("code", "nll", 32, 15, 4, 4, 2, 3, 12, 1),
    ("paper", "ce_on_probs", 32, 9, 2, 2, 5, 1, 19, 0),
    ("paper", "nll", 32, 12, 5, 2, 2, 2, 21, 1),
    ("code", "ce_on_probs", 200, 100, 3, 3, 3, 2, 14, 1),  # the authors' sizes
    ("paper", "nll", 200, 100, 3, 3, 3, 2, 16, 1),
]


def subsets_of(labels):
    return [[h for h, bit in enumerate(lab) if bit == "1"] for lab in labels]


def full_forward(p, tokens, cfg):
    """(y [n, d], target [n]) of the full variant, dense."""
    d, H, M = cfg["vocab"], cfg["heads"], cfg["window"]
    n, W = tokens.shape
    L = W - 1
    dt = torch.float64
    X = torch.nn.functional.one_hot(tokens, d).to(dt)   # [n, L+1, d]
    X[:, L, :] = 0                                        # the query slot's input is zero
    i = torch.arange(L + 1).unsqueeze(1)
    j = torch.arange(L + 1).unsqueeze(0)
    rel = i - j
    U = []
    for h in range(H):
        o = 0 if cfg["mode"] == "paper" else h
        kidx = rel - o - 1
        band = (kidx >= 0) & (kidx < M)
        rpe = torch.where(band, p["w"][h][kidx.clamp(0, M - 1)], torch.zeros((), dtype=dt))
        allowed = band | ((rel == 0) & bool(cfg["self_attention"]))
        logits = X @ p["q"][h] @ p["k"][h].T @ X.transpose(1, 2) + rpe   # [n, L+1, L+1]
        logits = logits.masked_fill(~allowed, torch.finfo(dt).min)
        A = torch.where(allowed, torch.softmax(logits, dim=-1), torch.zeros((), dtype=dt))
        V = A @ X @ p["ov"][h]                                              # [n, L+1, d]
        U.append(torch.nn.functional.layer_norm(V, (d,), p["ln_gamma"], p["ln_beta"], eps=cfg["ln_eps"]))
    r = [torch.relu((u[:, :L, :] * u[:, L:, :]).sum(-1)) for u in U]     # [n, L] per head
    c = p["c"]
    pS = c * c / (c * c).sum()
    F = torch.zeros(n, L, dtype=dt)
    for S, heads in enumerate(subsets_of(cfg["subsets"])):
        kappa = torch.ones(n, L, dtype=dt)
        for h in heads:
            kappa = kappa * r[h]
        F = F + pS[S] * kappa
    s = torch.softmax(p["a"] * F, dim=-1)
    y = (s.unsqueeze(-1) * X[:, :L, :]).sum(1)
    return y, tokens[:, L]


def full_seq_loss(y, t, cfg):
    if cfg["loss"] == "nll":
        return -torch.log(y.gather(1, t.unsqueeze(1)).squeeze(1) + cfg["guard"])
    return torch.logsumexp(y, dim=1) - y.gather(1, t.unsqueeze(1)).squeeze(1)


def check_config(dumper, path, c):
    subprocess.run([dumper, path] + [str(x) for x in c], check=True)
    arrays, meta = read_safetensors(path)
    cfg = json.loads(meta["config"])
    assert cfg["model"] == "gih-full" and cfg["dtype"] == "float64", cfg
    p = {n: torch.tensor(arrays["param." + n], dtype=torch.float64).requires_grad_(True) for n in PARAMS}
    tokens = torch.tensor(arrays["tokens"], dtype=torch.int64)
    y, t = full_forward(p, tokens, cfg)
    seq = full_seq_loss(y, t, cfg)
    loss = seq.mean()
    loss.backward()
    pairs = [("loss", arrays["loss"], loss.detach()), ("seq_loss", arrays["seq_loss"], seq.detach()),
             ("y", arrays["y"], y.detach())]
    pairs += [("grad." + n, arrays["grad." + n], p[n].grad) for n in PARAMS]
    failures, worst = [], 0.0
    for name, ours, ref in pairs:
        ours = torch.as_tensor(ours)
        if ref is None:
            failures.append(f"{name}: torch computed no gradient")
            continue
        if ours.shape != ref.shape:
            failures.append(f"{name}: shape {list(ours.shape)} in ihlab but {list(ref.shape)} in torch")
            continue
        scale = ref.abs().max().item()
        err = (ours - ref).abs().max().item() / (scale if scale > 0 else 1.0)
        worst = max(worst, err)
        status = "ok" if err < TOL else "MISMATCH"
        print(f"  {name:13s} rel err {err:.3e}  (max|torch| {scale:.3e})  {status}")
        if not err < TOL:
            failures.append(f"{name}: relative error {err:.3e} >= {TOL:g}")
    return failures, worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dumper", required=True, help="path to the tool_dump_gih_full executable")
    ap.add_argument("--dir", required=True, help="scratch directory for the dumps")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    failures, worst = [], 0.0
    for i, c in enumerate(CONFIGS):
        print("config mode={} loss={} n={} L={} vocab={} heads={} window={} max_subset={} seed={} self_attention={}"
              .format(*c))
        f, w = check_config(a.dumper, os.path.join(a.dir, f"gih_full_{i}.safetensors"), c)
        failures += [f"config {c}: {x}" for x in f]
        worst = max(worst, w)
    if failures:
        print("FAIL: ihlab gih-full disagrees with PyTorch:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"PASS: loss, per-sequence losses, y and the gradients of {', '.join(PARAMS)} match PyTorch "
          f"within {TOL:g} (float64; worst {worst:.3e} over {len(CONFIGS)} configs)")


if __name__ == "__main__":
    main()
