#!/usr/bin/python3
"""Cross-check of the "disentangled" model (Musat et al. 2025) and of its pseudo-parameter kernel
against PyTorch autograd, in float64.

    /usr/bin/python3 tests/torch_check_disentangled.py --dumper build/tool_dump_disentangled --dir DIR

For item-label configurations (gaussian / orthonormal vectors; random / fixed / no positions;
uniform / last query; own / answer query position; W3's positional columns masked or trained;
D from 3 to 64), runs the C++ dumper (tests/tool_dump_disentangled.cpp), recomputes here from the
description in src/models/disentangled.h with plain torch ops
    A1[j, k] = softmax_{k<j}(h_k^T W1 h_j),  h' = [h ; A1 h],
    A2[k] = softmax_{k<Q}(h'_k^T W2 h'_Q),   yhat = W3 [h'_Q ; A2 h'],  loss = 1/2 mean ||yhat - y||^2
and compares the loss, predictions, both attention patterns and every gradient; then builds
W(theta) from the 19-entry pseudo-parameter table (written here again from
docs/models/disentangled.md#the-table: alpha on W1, beta on W2, gamma on W3's token-type columns,
key-first so alpha_3 carries M^T) and compares the
Gram-matrix kernel's loss and d loss / d theta with autograd through W(theta).
Requires max |ihlab - torch| / max(1, max |torch|) < 1e-10 for each.
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

TOL = 1e-10

CONFIGS = [
    dict(pairs=3, dim=8, vectors="orthonormal", batch=5, seed=1),
    dict(pairs=2, dim=3, vectors="gaussian", batch=4, seed=2),
    dict(pairs=4, dim=6, vectors="gaussian", positions="fixed", query="last", batch=3, seed=3),
    dict(pairs=3, dim=6, vectors="orthonormal", query_position="answer", readout_positional=True, batch=4, seed=4),
    dict(pairs=5, dim=10, vectors="gaussian", positions="none", batch=3, seed=5, scale=0.3),
    dict(pairs=8, dim=64, vectors="orthonormal", batch=2, seed=6, scale=0.15, rotation_seed=3),
]


def forward(h, W1, W2, W3, D, readout_positional):
    """h: [B, L, 2D] -> yhat [B, D], A1 [B, L, L], A2 [B, L]."""
    B, L, _ = h.shape
    S1 = torch.einsum("bka,ac,bjc->bjk", h, W1, h)  # S1[b, j, k] = h_k^T W1 h_j
    rows = [torch.zeros(B, L, dtype=h.dtype)]  # row 0 has no key
    for j in range(1, L):
        a = torch.softmax(S1[:, j, :j], dim=-1)
        rows.append(torch.cat([a, torch.zeros(B, L - j, dtype=h.dtype)], dim=-1))
    A1 = torch.stack(rows, dim=1)
    h1 = torch.cat([h, A1 @ h], dim=-1)  # [B, L, 4D]
    q = h1[:, -1]
    s2 = torch.einsum("bka,ac,bc->bk", h1[:, :-1], W2, q)
    A2 = torch.cat([torch.softmax(s2, dim=-1), torch.zeros(B, 1, dtype=h.dtype)], dim=-1)
    o2 = torch.einsum("bk,bka->ba", A2, h1)
    mask = torch.ones(8 * D, dtype=h.dtype)
    if not readout_positional:
        for c in range(8):
            if c % 2 == 1:
                mask[c * D:(c + 1) * D] = 0
    y = torch.cat([q, o2], dim=-1) @ (W3 * mask).T
    return y, A1, A2


def pseudo_weights(theta, M, D):
    """W1, W2, W3 = sum_k theta_k B_k for the 19-entry table (blocks key-first)."""
    I = torch.eye(D, dtype=M.dtype)
    W1 = torch.zeros(2 * D, 2 * D, dtype=M.dtype)
    W2 = torch.zeros(4 * D, 4 * D, dtype=M.dtype)
    W3 = torch.zeros(D, 8 * D, dtype=M.dtype)

    def put(W, r, c, blk):
        Z = torch.zeros_like(W)
        Z[r * D:(r + 1) * D, c * D:(c + 1) * D] = blk
        return W + Z

    k = 0
    W1 = put(W1, 0, 0, theta[0] * I)          # alpha_1: tok . tok
    W1 = put(W1, 1, 1, theta[1] * I)          # alpha_2: pos . pos
    W1 = put(W1, 1, 1, theta[2] * M.T)        # alpha_3: key pos^T M^T query pos
    k = 3
    for r, c in [(0, 0), (2, 0), (0, 2), (2, 2)]:  # beta_1..4 on (tok, o1.tok) blocks
        W2 = put(W2, r, c, theta[k] * I)
        k += 1
    for r, c in [(1, 1), (3, 1), (1, 3), (3, 3)]:  # beta_5..12 on (pos, o1.pos) blocks: I, M^T
        W2 = put(W2, r, c, theta[k] * I)
        W2 = put(W2, r, c, theta[k + 1] * M.T)
        k += 2
    for c in [0, 2, 4, 6]:  # gamma_1..4: tok, o1.tok, o2.tok, o2.o1.tok
        W3 = put(W3, 0, c, theta[k] * I)
        k += 1
    assert k == 19
    return W1, W2, W3


def check_config(dumper, path, c):
    subprocess.run([dumper, path, json.dumps(c)], check=True)
    arrs, meta = read_safetensors(path)
    cfg = json.loads(meta["config"])
    D = cfg["dim"]
    t = {k: torch.tensor(v) for k, v in arrs.items()}
    h, y = t["features"], t["values"]
    W = {n: t["param." + n].clone().requires_grad_(True) for n in ("W1", "W2", "W3")}
    yhat, A1, A2 = forward(h, W["W1"], W["W2"], W["W3"], D, cfg["readout_positional"])
    loss = 0.5 * ((yhat - y) ** 2).sum(-1).mean()
    loss.backward()
    theta = t["theta"].clone().requires_grad_(True)
    P1, P2, P3 = pseudo_weights(theta, t["M"], D)
    yp, _, _ = forward(h, P1, P2, P3, D, False)
    ploss = 0.5 * ((yp - y) ** 2).sum(-1).mean()
    ploss.backward()
    pairs = [("loss", t["loss"], loss.detach()), ("pred", t["pred"], yhat.detach()),
             ("attention.l0", t["attention.l0"], A1.detach()), ("attention.l1", t["attention.l1"], A2.detach()),
             ("pseudo_loss", t["pseudo_loss"], ploss.detach()), ("pseudo_grad", t["pseudo_grad"], theta.grad)]
    pairs += [("grad." + n, t["grad." + n], W[n].grad) for n in W]
    failures, worst = [], 0.0
    for name, ours, ref in pairs:
        if ours.shape != ref.shape:
            failures.append(f"{name}: shape {list(ours.shape)} in ihlab but {list(ref.shape)} in torch")
            continue
        err = ((ours - ref).abs().max() / max(1.0, ref.abs().max().item())).item()
        worst = max(worst, err)
        if not err < TOL:
            failures.append(f"{name}: relative error {err:.3e} >= {TOL:g}")
    if theta.grad.abs().max().item() < 1e-6 or W["W2"].grad.abs().max().item() < 1e-6:
        failures.append("degenerate configuration: gradients are zero, the check would prove nothing")
    print(f"  {len(pairs)} tensors, max rel err {worst:.3e}  {'ok' if not failures else 'MISMATCH'}")
    return failures, worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dumper", required=True, help="path to the tool_dump_disentangled executable")
    ap.add_argument("--dir", required=True, help="scratch directory for the dumps")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    torch.set_num_threads(1)
    failures, worst = [], 0.0
    for i, c in enumerate(CONFIGS):
        print("config " + json.dumps(c))
        f, w = check_config(a.dumper, os.path.join(a.dir, f"disentangled_{i}.safetensors"), c)
        failures += [f"config {i} {json.dumps(c)}: {x}" for x in f]
        worst = max(worst, w)
    if failures:
        print("FAIL: ihlab disentangled model disagrees with PyTorch:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"PASS: {len(CONFIGS)} configurations; loss, predictions, attention, all gradients and the pseudo-parameter "
          f"kernel's loss and gradient match PyTorch within {TOL:g} (max rel err {worst:.2e}, float64)")


if __name__ == "__main__":
    main()
