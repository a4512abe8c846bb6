#!/usr/bin/python3
"""Cross-check of the "transformer" model against PyTorch autograd, in float64.

    /usr/bin/python3 tests/torch_check_transformer.py --dumper build/tool_dump_transformer --dir DIR

For configurations covering every option (positional learned / relative with and without a
window / ALiBi with a power-of-two and another head count / rotary / none; MLP or not; pre-LN or
none; tied or untied; self attention or strictly causal; attention biases; feature inputs;
dropout; head dims 2..64; a batch shorter than the model's length; regression output with the
squared-error and the candidates cross-entropy loss), runs the C++ dumper
(tests/tool_dump_transformer.cpp), rebuilds the model here from the description in
src/models/transformer.h with plain torch ops, and compares the training loss and every gradient
(with the dumped dropout multipliers applied where the description puts dropout), and, without
dropout, the logits, every layer's attention probabilities, the per-position losses and every
head's OV circuit. Requires max |ihlab - torch| / max(1, max |torch|) < 1e-10 for each.
Exit codes: 0 pass, 1 mismatch (names the tensor), 77 torch unavailable (ctest: skipped).
"""
import argparse
import json
import math
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
F = torch.nn.functional

# Model keys plus the task and batch sides (vocab, max_len, feature_dim, batch, length, seed).
CONFIGS = [
    # Edelman et al. 2024's ICL-MC model: the registry defaults.
    dict(vocab=3, max_len=20, batch=6, seed=1),
    dict(vocab=5, max_len=12, layers=2, heads=2, width=8, positional="relative", rel_window=4,
         self_attention=False, norm="none", batch=4, seed=2),
    dict(vocab=6, max_len=10, layers=2, heads=2, width=8, positional="learned", attention_only=False,
         tied_unembedding=True, batch=3, seed=3),
    dict(vocab=4, max_len=9, layers=1, heads=3, width=12, positional="alibi", attn_bias=True,
         attention_only=False, mlp_width=10, batch=3, seed=4),
    dict(vocab=4, max_len=9, layers=2, heads=4, width=8, positional="alibi", self_attention=False,
         batch=2, seed=5),
    dict(vocab=5, max_len=11, layers=2, heads=2, width=16, positional="rotary", attention_only=False,
         rope_base=100.0, batch=3, seed=6),
    dict(vocab=5, max_len=8, layers=2, heads=1, width=8, positional="rotary", self_attention=False,
         tied_unembedding=True, norm="none", batch=3, seed=7),
    dict(vocab=4, max_len=8, feature_dim=3, layers=3, heads=2, width=4, positional="none", batch=3, seed=8),
    dict(vocab=5, max_len=10, feature_dim=2, layers=2, heads=2, width=8, positional="relative", rel_window=3,
         attention_only=False, dropout=0.2, batch=4, seed=9),
    dict(vocab=5, max_len=12, length=9, layers=2, heads=1, width=8, positional="relative", batch=3, seed=10),
    dict(vocab=7, max_len=6, layers=1, heads=1, width=64, positional="rotary", attn_bias=True, batch=2, seed=11),
    dict(vocab=7, max_len=7, layers=1, heads=2, width=64, positional="learned", self_attention=False,
         dropout=0.3, attention_only=False, mlp_width=8, batch=2, seed=12),
    # Regression (item-label retrieval, the mixed target): features in, one vector out per sequence.
    dict(vocab=1, max_len=9, feature_dim=6, value_dim=3, layers=2, heads=2, width=8, positional="learned",
         norm="none", batch=4, seed=13),
    dict(vocab=2, max_len=7, feature_dim=4, value_dim=4, layers=2, heads=1, width=8, positional="relative",
         regression_loss="candidates", candidates=3, dropout=0.2, batch=5, seed=14),
]


def alibi_slopes(n):
    """Press et al. 2022, reference code: geometric slopes; non powers of two interleave."""
    def power_of_2(n):
        start = 2 ** (-2 ** -(math.log2(n) - 3))
        return [start * start ** i for i in range(n)]
    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: n - closest]


def rope(x, base):
    """Rotary embedding, Hugging Face "rotate_half" layout. x: [B, H, L, dh]."""
    L, dh = x.shape[-2], x.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, dh, 2, dtype=torch.float64) / dh))
    ang = torch.arange(L, dtype=torch.float64)[:, None] * inv_freq[None, :]   # [L, dh/2]
    emb = torch.cat([ang, ang], dim=-1)
    x1, x2 = x[..., : dh // 2], x[..., dh // 2:]
    return x * emb.cos() + torch.cat([-x2, x1], dim=-1) * emb.sin()


def forward(p, cfg, tokens, feats, masks):
    """Final (normed) residual stream [B, L, D] and the attention probabilities per layer; masks:
    dropout multipliers or None."""
    B, L = tokens.shape
    D, H, V = cfg["width"], cfg["heads"], cfg["vocab"]
    dh = D // H
    pre = cfg["norm"] == "pre"
    pos = cfg["positional"]

    def ln(x, name):
        return F.layer_norm(x, (D,), p[name + ".ln_g"], p[name + ".ln_b"], eps=cfg["ln_eps"]) if pre else x

    def lin(x, W, b=None):
        y = x @ p[W]
        return y + p[b] if b is not None and b in p else y

    x = p["embed.E"][tokens]
    if cfg["feature_dim"] > 0:
        x = x + feats @ p["embed.W_in"]
    if pos == "learned":
        x = x + p["pos.P"][:L]
    lo = 0 if cfg["self_attention"] else 1
    off = torch.arange(L)[:, None] - torch.arange(L)[None, :]           # query i, key j: i - j
    allowed = off >= lo
    if pos == "relative":
        K = p["layer0.rpe.w"].shape[1]                                   # offsets lo .. lo + K - 1
        allowed = allowed & (off <= lo + K - 1)
    any_key = allowed.any(-1, keepdim=True)
    probs = []
    for l in range(cfg["layers"]):
        a_ = f"layer{l}.attn"
        h = ln(x, a_)
        q, k, v = (lin(h, f"{a_}.W{n}", f"{a_}.b{n}").reshape(B, L, H, dh).transpose(1, 2) for n in "qkv")
        if pos == "rotary":
            q, k = rope(q, cfg["rope_base"]), rope(k, cfg["rope_base"])
        s = q @ k.transpose(-1, -2) / math.sqrt(dh)                       # [B, H, L, L]
        if pos == "relative":
            w = p[f"layer{l}.rpe.w"]                                      # [H, K]
            s = s + torch.where(allowed, w[:, (off - lo).clamp(0, w.shape[1] - 1)], torch.zeros((), dtype=s.dtype))
        elif pos == "alibi":
            m = torch.tensor(alibi_slopes(H), dtype=s.dtype)
            s = s - m[:, None, None] * off.to(s.dtype)
        # Rows without a valid key: a finite dummy softmax, then zeroed (no NaN in backward).
        s = torch.where(any_key, s.masked_fill(~allowed, float("-inf")), torch.zeros((), dtype=s.dtype))
        att = torch.where(any_key, torch.softmax(s, dim=-1), torch.zeros((), dtype=s.dtype))
        probs.append(att)
        if masks is not None:
            att = att * masks[f"drop.l{l}.probs"]
        o = (att @ v).transpose(1, 2).reshape(B, L, D)
        br = lin(o, f"{a_}.Wo", f"{a_}.bo")
        if masks is not None:
            br = br * masks[f"drop.l{l}.attn_out"]
        x = x + br
        if not cfg["attention_only"]:
            m_ = f"layer{l}.mlp"
            br = lin(F.gelu(lin(ln(x, m_), f"{m_}.W1", f"{m_}.b1")), f"{m_}.W2", f"{m_}.b2")
            if masks is not None:
                br = br * masks[f"drop.l{l}.mlp_out"]
            x = x + br
    return ln(x, "unembed"), probs


def readout(p, cfg, x):
    """Token logits [B, L, V], or the regression prediction from the last position [B, Dv]."""
    if cfg["value_dim"] > 0:
        return x[:, -1] @ p["unembed.U"]
    return x @ (p["embed.E"].T if cfg["tied_unembedding"] else p["unembed.U"])


def regression_loss(cfg, y, arrays):
    if cfg["regression_loss"] == "mse":
        return 0.5 * ((y - torch.tensor(arrays["values"])) ** 2).sum(-1).mean()
    scores = torch.einsum("bd,bcd->bc", y, torch.tensor(arrays["candidates"]))
    return F.cross_entropy(scores, torch.tensor(arrays["candidate_target"]))


def ov_circuit(p, cfg, l, h):
    D, H = cfg["width"], cfg["heads"]
    dh = D // H
    E = p["embed.E"]
    Wv = p[f"layer{l}.attn.Wv"][:, h * dh:(h + 1) * dh]
    Wo = p[f"layer{l}.attn.Wo"][h * dh:(h + 1) * dh, :]
    U = E.T if cfg["tied_unembedding"] else p["unembed.U"]
    if cfg["norm"] == "pre":
        Wv = p[f"layer{l}.attn.ln_g"][:, None] * Wv
        U = p["unembed.ln_g"][:, None] * U
    return E @ Wv @ Wo @ U


def check_config(dumper, path, c):
    subprocess.run([dumper, path, json.dumps(c)], check=True)
    arrays, meta = read_safetensors(path)
    cfg = json.loads(meta["config"])
    names = [n[len("param."):] for n in arrays if n.startswith("param.")]
    p = {n: torch.tensor(arrays["param." + n]).requires_grad_(True) for n in names}
    tokens = torch.tensor(arrays["tokens"])
    targets = torch.tensor(arrays["targets"])
    feats = torch.tensor(arrays["features"]) if cfg["feature_dim"] > 0 else None
    masks = {k: torch.tensor(v) for k, v in arrays.items() if k.startswith("drop.")} if cfg["dropout"] > 0 else None
    V = cfg["vocab"]

    regression = cfg["value_dim"] > 0

    out_train = readout(p, cfg, forward(p, cfg, tokens, feats, masks)[0])
    if regression:
        loss = regression_loss(cfg, out_train, arrays)
    else:
        loss = F.cross_entropy(out_train.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
    loss.backward()
    with torch.no_grad():
        x, probs = forward(p, cfg, tokens, feats, None)
        out = readout(p, cfg, x)

    pairs = [("loss", arrays["loss"], loss.detach())]
    pairs += [("prediction", arrays["prediction"], out) if regression else ("logits", arrays["logits"], out)]
    pairs += [(f"attention.l{l}", arrays[f"attention.l{l}"], probs[l]) for l in range(cfg["layers"])]
    pairs += [("grad." + n, arrays["grad." + n], p[n].grad if p[n].grad is not None else torch.zeros_like(p[n]))
              for n in names]
    failures, worst = [], 0.0
    if not regression:
        with torch.no_grad():
            pairs += [(f"ov.l{l}.h{h}", arrays[f"ov.l{l}.h{h}"], ov_circuit(p, cfg, l, h))
                      for l in range(cfg["layers"]) for h in range(cfg["heads"])]
            per_pos = F.cross_entropy(out.reshape(-1, V), targets.reshape(-1), ignore_index=-1,
                                      reduction="none").reshape(targets.shape)
            per_pos = torch.where(targets >= 0, per_pos, torch.full_like(per_pos, float("nan")))
        ours_pp = torch.as_tensor(arrays["per_position"])
        if not torch.equal(torch.isnan(ours_pp), torch.isnan(per_pos)):
            failures.append("per_position: NaN pattern differs from the positions without a target")
        else:
            pairs.append(("per_position", torch.nan_to_num(ours_pp), torch.nan_to_num(per_pos)))
    for name, ours, ref in pairs:
        ours = torch.as_tensor(ours)
        if ours.shape != ref.shape:
            failures.append(f"{name}: shape {list(ours.shape)} in ihlab but {list(ref.shape)} in torch")
            continue
        err = ((ours - ref).abs().max() / max(1.0, ref.abs().max().item())).item() if ref.numel() else 0.0
        worst = max(worst, err)
        if not err < TOL:
            failures.append(f"{name}: relative error {err:.3e} >= {TOL:g}")
    print(f"  {len(pairs)} tensors, max rel err {worst:.3e}  {'ok' if not failures else 'MISMATCH'}")
    return failures, worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dumper", required=True, help="path to the tool_dump_transformer executable")
    ap.add_argument("--dir", required=True, help="scratch directory for the dumps")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    torch.set_num_threads(1)
    failures, worst = [], 0.0
    for i, c in enumerate(CONFIGS):
        print("config " + json.dumps(c))
        f, w = check_config(a.dumper, os.path.join(a.dir, f"transformer_{i}.safetensors"), c)
        failures += [f"config {i} {json.dumps(c)}: {x}" for x in f]
        worst = max(worst, w)
    if failures:
        print("FAIL: ihlab transformer disagrees with PyTorch:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"PASS: {len(CONFIGS)} configurations; loss, logits or regression prediction, attention, per-position "
          f"losses, OV circuits and all gradients match PyTorch within {TOL:g} (max rel err {worst:.2e}, float64)")


if __name__ == "__main__":
    main()
