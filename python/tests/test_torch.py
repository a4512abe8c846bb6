"""ihlab.torch.load: the trained transformer as a plain torch.nn.Module, matching ihlab's outputs
to 1e-6 (float32) and 1e-12 (float64), relative to max(1, max |ihlab|), over every option."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ihlab  # noqa: E402
import ihlab.torch  # noqa: E402

F = torch.nn.functional

TOL = {"float32": 1e-6, "float64": 1e-12}
TOKENS = {"name": "repeated-tokens", "vocab": 12, "block": 5, "repeats": 2}
BURSTY = {"name": "bursty", "classes": 16, "labels": 4, "pairs": 4, "dim": 6, "burstiness": 2}
ITEMS = {"name": "item-label", "pairs": 3, "dim": 8}

CASES = [
    ("float32", TOKENS, dict(positional="relative")),
    ("float64", TOKENS, dict(positional="relative", rel_window=3, self_attention=False, norm="none")),
    ("float64", TOKENS, dict(positional="learned", attention_only=False, tied_unembedding=True)),
    ("float64", TOKENS, dict(positional="alibi", heads=3, width=12, attn_bias=True, attention_only=False,
                             mlp_width=10)),
    ("float32", TOKENS, dict(positional="rotary", rope_base=100.0, attention_only=False)),
    ("float64", TOKENS, dict(positional="rotary", self_attention=False)),
    ("float64", BURSTY, dict(positional="none", layers=3)),
    ("float32", ITEMS, dict(positional="learned", norm="none")),
    ("float64", ITEMS, dict(positional="relative")),
]


def train_case(tmp_path, i, dtype, task, model):
    m = {"name": "transformer", "layers": 2, "heads": 2, "width": 8}
    m.update(model)
    cfg = {"seed": 11 + i, "dtype": dtype, "task": task, "model": m, "data": {"batch_size": 8, "val_size": 8},
           "log": {"every": 5, "attention_snapshots": 0},
           "stages": [{"name": "adam", "optimizer": "adam", "lr": 0.01, "steps": 5}]}
    return ihlab.train(cfg, out=tmp_path / f"case{i}")


@pytest.mark.parametrize("i", range(len(CASES)))
def test_module_matches_ihlab(tmp_path, i):
    dtype, task, model = CASES[i]
    run = train_case(tmp_path, i, dtype, task, model)
    ref = run.model()
    batch = ref.task.validation(6, seed=4)
    module = ihlab.torch.load(run.dir)
    assert isinstance(module, torch.nn.Module) and not module.training
    assert set(module.state_dict()) == set(ref.params)
    tokens = torch.from_numpy(batch["tokens"]).long()
    feats = torch.from_numpy(batch["features"]) if "features" in batch else None
    with torch.no_grad():
        out, probs = module(tokens, feats, return_attention=True)
    expected = ref.predict(batch) if "values" in batch else ref.logits(batch)
    assert out.dtype == getattr(torch, dtype) and tuple(out.shape) == expected.shape
    err = np.abs(out.numpy() - expected).max() / max(1.0, np.abs(expected).max())
    print(f"case {i} {dtype} {model}: max relative difference {err:.3g}")
    assert err <= TOL[dtype], err
    for l, p in enumerate(ref.attention_probs(batch)):
        assert np.abs(probs[l].numpy() - p).max() <= 10 * TOL[dtype]
    # The module trains like any other: a gradient flows to every parameter.
    module.train()
    out = module(tokens, feats)
    out.float().pow(2).mean().backward()
    assert all(p.grad is not None for p in module.parameters())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_attn1_module(tmp_path, dtype):
    cfg = {"dtype": dtype, "task": {"name": "previous-token", "vocab": 8, "length": 12},
           "model": {"name": "attn1", "window": 3}, "stages": [{"name": "s", "lr": 0.02, "steps": 5}],
           "log": {"attention_snapshots": 0}}
    run = ihlab.train(cfg, out=tmp_path / "attn1")
    ref = run.model()
    batch = ref.task.validation(6, seed=2)
    module = ihlab.torch.load(run.dir)
    with torch.no_grad():
        logits, (att,) = module(torch.from_numpy(batch["tokens"]).long(), return_attention=True)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(batch["targets"]).long().reshape(-1),
                               ignore_index=-1)
    want = ref.loss(batch)
    print(f"attn1 {dtype}: loss {float(loss)} vs {want}, relative difference {abs(float(loss) - want) / want:.3g}")
    assert abs(float(loss) - want) / max(1.0, abs(want)) <= TOL[dtype]
    for ex in (0, 5):
        assert np.abs(att[ex].numpy() - ref.attention(batch, ex)[0]["weights"]).max() <= 10 * TOL[dtype]


def test_other_models_are_refused(tmp_path):
    cfg = {"task": {"name": "ngram-markov", "length": 10}, "model": {"name": "gih"}, "dtype": "float64",
           "stages": [{"name": "s", "lr": 0.01, "steps": 2}], "log": {"attention_snapshots": 0}}
    ihlab.train(cfg, out=tmp_path / "gih")
    with pytest.raises(ValueError, match="allowed: transformer, attn1"):
        ihlab.torch.load(tmp_path / "gih")
