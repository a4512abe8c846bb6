"""TransformerLens export (`ihlab export ... --format transformer-lens` and
ihlab.export_transformer_lens): loaded into a reference implementation of HookedTransformer's
forward pass written here from TransformerLens's documented layout, the logits match ihlab's."""
import json
import math
import subprocess

import numpy as np
import pytest

import ihlab
from ihlab import safetensors

TASK = {"name": "repeated-tokens", "vocab": 12, "block": 5, "repeats": 2}


def gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def rotary(x, base):
    """TransformerLens rotary with rotary_adjacent_pairs = False (GPT-NeoX half split); x [B, L, H, dh]."""
    L, dh = x.shape[1], x.shape[-1]
    freq = base ** (-np.arange(dh // 2) / (dh / 2))
    ang = np.arange(L)[:, None] * freq[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, -1)[None, :, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, -1)[None, :, None, :]
    rot = np.concatenate([-x[..., dh // 2:], x[..., :dh // 2]], -1)
    return x * cos + rot * sin


def hooked_transformer_logits(sd, cfg, tokens):
    """HookedTransformer.forward(tokens) -> logits [B, L, V] for the exported fields, in float64."""
    sd = {k: v.astype(np.float64) for k, v in sd.items()}
    B, L = tokens.shape
    ln = cfg["normalization_type"] == "LN"
    resid = sd["embed.W_E"][tokens]
    if cfg["positional_embedding_type"] == "standard":
        resid = resid + sd["pos_embed.W_pos"][:L]
    causal = np.tril(np.ones((L, L), dtype=bool))
    for l in range(cfg["n_layers"]):
        b = f"blocks.{l}."
        x = layer_norm(resid, sd[b + "ln1.w"], sd[b + "ln1.b"], cfg["eps"]) if ln else resid
        q, k, v = (np.einsum("bld,hde->blhe", x, sd[b + f"attn.W_{n}"]) + sd[b + f"attn.b_{n}"] for n in "QKV")
        if cfg["positional_embedding_type"] == "rotary":
            q, k = rotary(q, cfg["rotary_base"]), rotary(k, cfg["rotary_base"])
        scores = np.einsum("bqhe,bkhe->bhqk", q, k) / cfg["attn_scale"]
        scores = np.where(causal, scores, -np.inf)
        pattern = np.exp(scores - scores.max(-1, keepdims=True))
        pattern /= pattern.sum(-1, keepdims=True)
        z = np.einsum("bhqk,bkhe->bqhe", pattern, v)
        resid = resid + np.einsum("bqhe,hed->bqd", z, sd[b + "attn.W_O"]) + sd[b + "attn.b_O"]
        if not cfg["attn_only"]:
            x = layer_norm(resid, sd[b + "ln2.w"], sd[b + "ln2.b"], cfg["eps"]) if ln else resid
            resid = resid + gelu(x @ sd[b + "mlp.W_in"] + sd[b + "mlp.b_in"]) @ sd[b + "mlp.W_out"] + sd[b + "mlp.b_out"]
    if ln:
        resid = layer_norm(resid, sd["ln_final.w"], sd["ln_final.b"], cfg["eps"])
    return resid @ sd["unembed.W_U"] + sd["unembed.b_U"]


def train(tmp_path, name, dtype, **model):
    m = {"name": "transformer", "layers": 2, "heads": 2, "width": 8, "positional": "learned"}
    m.update(model)
    cfg = {"seed": 2, "dtype": dtype, "task": TASK, "model": m, "data": {"batch_size": 8, "val_size": 8},
           "log": {"every": 5, "attention_snapshots": 0},
           "stages": [{"name": "adam", "optimizer": "adam", "lr": 0.01, "steps": 5}]}
    return ihlab.train(cfg, out=tmp_path / name)


@pytest.mark.parametrize("dtype,model", [
    ("float64", dict()),
    ("float64", dict(attention_only=False, attn_bias=True, tied_unembedding=True, heads=4)),
    ("float64", dict(positional="rotary", rope_base=50.0, attention_only=False, mlp_width=12)),
    ("float64", dict(positional="none", norm="none")),
    ("float32", dict(attention_only=False)),
])
def test_export_matches_ihlab_logits(tmp_path, ihlab_bin, dtype, model):
    run = train(tmp_path, "run", dtype, **model)
    subprocess.run([ihlab_bin, "export", str(run.dir), "--format", "transformer-lens", "--out",
                    str(tmp_path / "cli")], check=True, capture_output=True)
    r = ihlab.export_transformer_lens(run.dir, tmp_path / "py")
    assert (tmp_path / "cli" / "model.safetensors").read_bytes() == (tmp_path / "py" / "model.safetensors").read_bytes()
    assert json.loads((tmp_path / "cli" / "config.json").read_text()) == r["config"]
    sd, _ = safetensors.read(r["safetensors"])
    cfg = r["config"]
    D, H = cfg["d_model"], cfg["n_heads"]
    assert sd["blocks.0.attn.W_Q"].shape == (H, D, cfg["d_head"]) and sd["blocks.1.attn.W_O"].shape == (H, cfg["d_head"], D)
    assert sd["embed.W_E"].dtype == (np.float64 if dtype == "float64" else np.float32)
    ref = run.model()
    batch = ref.task.validation(5, seed=1)
    want = ref.logits(batch)
    got = hooked_transformer_logits(sd, cfg, batch["tokens"])
    err = np.abs(got - want).max() / max(1.0, np.abs(want).max())
    print(f"{dtype} {model}: max relative difference {err:.3g}")
    assert err <= (1e-12 if dtype == "float64" else 1e-6), err
    torch = pytest.importorskip("torch")
    pt = torch.load(tmp_path / "cli" / "model.pt")
    assert set(pt) == set(sd) and all(np.array_equal(pt[k].numpy(), sd[k]) for k in sd)


@pytest.mark.parametrize("model,key", [
    (dict(positional="relative"), "model.positional"),
    (dict(positional="alibi"), "model.positional"),
    (dict(self_attention=False), "model.self_attention"),
])
def test_export_refuses_what_transformer_lens_cannot_express(tmp_path, ihlab_bin, model, key):
    run = train(tmp_path, "run", "float64", **model)
    r = subprocess.run([ihlab_bin, "export", str(run.dir), "--out", str(tmp_path / "cli")], capture_output=True,
                       text=True)
    assert r.returncode == 2 and key in r.stderr and "TransformerLens" in r.stderr
    with pytest.raises(ihlab.Error, match=key.replace(".", r"\.")):
        ihlab.export_transformer_lens(run.dir, tmp_path / "py")
    assert not (tmp_path / "cli" / "model.safetensors").exists()
