#!/usr/bin/python3
"""Cross-check of the GIH model (src/models/gih_*) against PyTorch autograd, in float64.

    /usr/bin/python3 tests/torch_check_gih.py --dumper build/tool_dump_gih --dir DIR

For a set of configs (both modes, both losses, both kernels, truncated windows, other H/M/D/d and
the authors' size), runs the C++ dumper (tests/tool_dump_gih.cpp), recomputes the mean loss, the
per-sequence losses, the predictions y and the gradients of w, c and a from the dumped params and
tokens with the PyTorch model of bench/torch_chen_step.py (written from docs/models/gih.md, no code shared
with ihlab), and requires max |ihlab - torch| / max |torch| < 1e-9 for each tensor.
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
from torch_chen_step import gih_forward, gih_loss, prepare  # noqa: E402
from torch_smoke_step import read_safetensors  # noqa: E402

TOL = 1e-9
# (mode, loss, kernel, n, L, vocab, heads, window, max_subset, seed); even seeds: Markov-chain
# tokens, odd seeds: uniform tokens (some targets unseen).
CONFIGS = [
    ("paper", "nll", "table", 64, 20, 3, 3, 3, 2, 2),
    ("paper", "nll", "direct", 64, 20, 3, 3, 3, 2, 3),
    ("paper", "ce_on_probs", "table", 64, 20, 3, 3, 3, 2, 4),
    ("code", "nll", "table", 64, 20, 3, 3, 3, 2, 5),
    ("code", "ce_on_probs", "table", 64, 20, 3, 3, 3, 2, 6),
    ("code", "ce_on_probs", "direct", 64, 20, 3, 3, 3, 2, 7),
    ("code", "nll", "table", 16, 4, 3, 3, 3, 2, 9),          # the query row itself is truncated
    ("paper", "ce_on_probs", "direct", 16, 2, 3, 3, 3, 2, 11),
    ("code", "nll", "auto", 32, 15, 4, 4, 2, 3, 12),
    ("paper", "ce_on_probs", "auto", 32, 9, 2, 2, 5, 1, 13),
    ("code", "ce_on_probs", "auto", 200, 100, 3, 3, 3, 2, 14),  # the authors' sizes
    ("paper", "nll", "auto", 200, 100, 3, 3, 3, 2, 16),
]


def check_config(dumper, path, c):
    subprocess.run([dumper, path] + [str(x) for x in c], check=True)
    arrays, meta = read_safetensors(path)
    cfg = json.loads(meta["config"])
    p = {n: torch.tensor(arrays["param." + n], dtype=torch.float64).requires_grad_(True) for n in ("w", "c", "a")}
    tokens = torch.tensor(arrays["tokens"])
    H, M = arrays["param.w"].shape
    prep = prepare(tokens, cfg, H, M)
    seq = gih_loss(p, prep, cfg, per_sequence=True)
    loss = seq.mean()
    loss.backward()
    with torch.no_grad():
        y = gih_forward(p, prep, cfg)
    pairs = [("loss", arrays["loss"], loss.detach()), ("seq_loss", arrays["seq_loss"], seq.detach()),
             ("y", arrays["y"], y)]
    pairs += [("grad." + n, arrays["grad." + n], p[n].grad) for n in ("w", "c", "a")]
    failures = []
    for name, ours, ref in pairs:
        ours = torch.as_tensor(ours)
        if ours.shape != ref.shape:
            failures.append(f"{name}: shape {list(ours.shape)} in ihlab but {list(ref.shape)} in torch")
            continue
        scale = ref.abs().max().item()
        err = (ours - ref).abs().max().item() / (scale if scale > 0 else 1.0)
        status = "ok" if err < TOL else "MISMATCH"
        print(f"  {name:9s} rel err {err:.3e}  {status}")
        if not err < TOL:
            failures.append(f"{name}: relative error {err:.3e} >= {TOL:g}")
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dumper", required=True, help="path to the tool_dump_gih executable")
    ap.add_argument("--dir", required=True, help="scratch directory for the dumps")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    failures = []
    for i, c in enumerate(CONFIGS):
        print("config mode={} loss={} kernel={} n={} L={} vocab={} heads={} window={} max_subset={} seed={}"
              .format(*c))
        failures += [f"config {c}: {f}" for f in check_config(a.dumper, os.path.join(a.dir, f"gih_{i}.safetensors"), c)]
    if failures:
        print("FAIL: ihlab GIH model disagrees with PyTorch:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"PASS: loss, per-sequence losses, y and the gradients of w, c, a match PyTorch within {TOL:g} (float64)")


if __name__ == "__main__":
    main()
