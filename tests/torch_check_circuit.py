#!/usr/bin/python3
"""Cross-check of the attention-circuit model (src/models/attention_circuit.*) against PyTorch
autograd, in float64.

    /usr/bin/python3 tests/torch_check_circuit.py --dumper build/tool_dump_circuit --dir DIR

The C++ dumper (tests/tool_dump_circuit.cpp) writes random parameters, a mixed-target batch, the
task loss, the copy-previous objective, the predictions, the error split and every gradient. This
script rebuilds the circuit from the dumped head list with dense masked attention written from the
header's definition (no code shared with ihlab), recomputes all of it with torch autograd and
requires max |ihlab - torch| / max(|torch|, 1e-300) < 1e-10 per tensor.
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
CONFIGS = [("six", 1), ("six", 2), ("mixed", 3), ("mixed", 4)]


def head_params(h, p):
    """(score parameter as a tensor, value weight) of one head; p maps names to leaf tensors."""
    n = h["name"]
    if h["score"] != "dot":
        return p[n + ".slope"], p[n + ".value"]
    kq = p[n + ".wk"] * p[n + ".wq"] if h["kq"] == "product" else p[n + ".wkq"]
    return kq, p[n + ".value"]


def run_circuit(heads, p, feats, L, S, d, top=None):
    """Stream after each layer [n, L, S, d] and the per-head outputs at the last position."""
    n = feats.shape[0]
    x = feats.reshape(n, L, S, d)
    layers = max(h["layer"] for h in heads)
    top = layers if top is None else top
    t = torch.arange(L).unsqueeze(1)  # query
    s = torch.arange(L).unsqueeze(0)  # key
    states, head_out = [x], {}
    pred = torch.zeros(n, d, dtype=torch.float64)
    for layer in range(1, top + 1):
        cur = states[-1]
        slots = [cur[:, :, k, :] for k in range(S)]
        for h in heads:
            if h["layer"] != layer:
                continue
            allowed = (s >= h["first_key"]) & (s <= t - h["min_back"])  # [L, L]
            score_param, wv = head_params(h, p)
            if h["score"] == "dot":
                q, k = cur[:, :, h["query"], :], cur[:, :, h["key"], :]
                z = score_param * torch.einsum("ntj,nsj->nts", q, k)
            else:
                u = (t - h["offset"] - s).to(torch.float64)
                dist = u.clamp(min=0) if h["score"] == "alibi" else u.abs()
                z = (-score_param * dist).expand(n, L, L)
            z = z.masked_fill(~allowed, float("-inf"))
            has_keys = allowed.any(dim=1)  # [L]
            att = torch.softmax(torch.where(has_keys.view(1, L, 1), z, torch.zeros_like(z)), dim=-1)
            att = torch.where(allowed, att, torch.zeros_like(att))
            att = torch.where(has_keys.view(1, L, 1), att, torch.zeros_like(att))
            out = wv * att @ cur[:, :, h["value"], :]  # [n, L, d]
            if h["write"] >= 0:
                slots[h["write"]] = slots[h["write"]] + out
            else:
                head_out[h["name"]] = out[:, L - 1, :]
                pred = pred + out[:, L - 1, :]
        states.append(torch.stack(slots, dim=2))
    return states, pred, head_out


def check_config(dumper, path, which, seed):
    subprocess.run([dumper, path, which, str(seed)], check=True)
    arrays, meta = read_safetensors(path)
    cfg = json.loads(meta["config"])
    heads, task = cfg["model"]["heads"], cfg["task"]
    L, d, S = task["length"], task["dim"], task["slots"]
    feats = torch.tensor(arrays["features"])
    y = torch.tensor(arrays["values"])
    parts = torch.tensor(arrays["parts"])
    names = [k[len("param."):] for k in arrays if k.startswith("param.")]

    def leaves():
        return {nm: torch.tensor(arrays["param." + nm].reshape(()), requires_grad=True) for nm in names}

    worst = 0.0

    def compare(label, ours, ref):
        nonlocal worst
        ours, ref = torch.as_tensor(ours, dtype=torch.float64), ref.detach()
        err = (ours - ref).abs().max().item() / max(ref.abs().max().item(), 1e-300)
        worst = max(worst, err)
        if not err < TOL:
            print(f"MISMATCH {which} seed {seed}: {label}: relative error {err:.3e}")
            sys.exit(1)

    # Task loss, predictions, error split and gradients.
    p = leaves()
    _, pred, head_out = run_circuit(heads, p, feats, L, S, d)
    loss = 0.5 * ((pred - y) ** 2).sum(dim=1).mean()
    loss.backward()
    compare("loss", arrays["loss"], loss)
    compare("yhat", arrays["yhat"], pred)
    for comp, idx in (("4gram", 0), ("induction", 1)):
        part = sum(head_out[h["name"]] for h in heads if h["component"] == comp)
        compare("err_" + comp, arrays["err_" + comp], 0.5 * ((part - parts[:, idx, :]) ** 2).sum(dim=1).mean())
    for nm in names:
        compare("grad." + nm, arrays["grad." + nm].reshape(()), p[nm].grad)

    # The copy-previous objective of layer 1 and its gradients.
    p = leaves()
    states, _, _ = run_circuit(heads, p, feats, L, S, d, top=1)
    ws = heads[0]["write"]
    written = states[1][:, :, ws, :] - states[0][:, :, ws, :]
    r = written[:, 1:, :] - states[0][:, :-1, 0, :]
    copy = (0.5 * (r ** 2).sum(dim=2) / (L - 1)).sum(dim=1).mean()
    copy.backward()
    compare("copy_loss", arrays["copy_loss"], copy)
    for nm in names:
        g = p[nm].grad if p[nm].grad is not None else torch.zeros((), dtype=torch.float64)
        compare("copy_grad." + nm, arrays["copy_grad." + nm].reshape(()), g)
    return worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dumper", required=True)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    worst = 0.0
    for which, seed in CONFIGS:
        worst = max(worst, check_config(a.dumper, os.path.join(a.dir, f"{which}_{seed}.safetensors"), which, seed))
    print(f"torch_check_circuit: {len(CONFIGS)} configurations agree; worst relative error {worst:.2e}")


if __name__ == "__main__":
    main()
