"""ihlab.Task and ihlab.Model: batches as numpy arrays, parameters viewed without copies,
losses, gradients, attention, predictions."""
import numpy as np
import pytest

import ihlab

TASK = {"name": "repeated-tokens", "vocab": 16, "block": 6, "repeats": 2}


def model_config(dtype="float64", **model):
    m = {"name": "transformer", "layers": 2, "heads": 2, "width": 8}
    m.update(model)
    return {"seed": 5, "dtype": dtype, "task": TASK, "model": m}


def test_task_sampling_is_a_pure_function():
    t = ihlab.Task(TASK)
    assert t.name == "repeated-tokens" and t.vocab == 17 and t.length == 1 + 6 * 2  # BOS + the block twice
    a, b = t.batch(4, seed=1, step=7), t.batch(4, seed=1, step=7)
    assert a["tokens"].shape == (4, t.length) and a["tokens"].dtype == np.int32
    assert np.array_equal(a["tokens"], b["tokens"]) and np.array_equal(a["targets"], b["targets"])
    assert not np.array_equal(a["tokens"], t.batch(4, seed=1, step=8)["tokens"])
    assert np.array_equal(a["tokens"], t.sample(4, seed=1, stream="data", index=8)["tokens"])
    refs = a["reference_losses"]
    assert set(refs) >= {"ref.uniform"} and np.isfinite(list(refs.values())).all()
    assert refs == t.reference_losses(a)
    assert t.config["block_min"] >= 0  # resolved: defaults filled in
    with pytest.raises(ihlab.Error, match="stream"):
        t.sample(2, stream="train")


def test_params_are_views_and_loss_follows_them():
    m = ihlab.Model(model_config())
    assert m.name == "transformer" and m.dtype == "float64"
    p = m.params
    E = p["embed.E"]
    assert np.shares_memory(E, m.params["embed.E"])  # no copy: the same storage each time
    batch = m.task.batch(4, seed=0, step=0)
    before = m.loss(batch)
    E *= 2.0  # writing into the view changes the model
    assert m.loss(batch) != before
    E /= 2.0
    assert m.loss(batch) == before
    m.set_params({"embed.E": np.zeros_like(E)})
    assert np.all(m.params["embed.E"] == 0)
    with pytest.raises(ihlab.Error, match="shape"):
        m.set_params({"embed.E": np.zeros((2, 2))})
    with pytest.raises(ihlab.Error, match="no parameter"):
        m.set_params({"nope": np.zeros(1)})
    assert set(m.groups.values()) >= {"embed", "layer0.attn", "unembed"}


def test_gradients_match_finite_differences():
    m = ihlab.Model(model_config(attention_only=False, positional="learned"))
    batch = m.task.batch(3, seed=2, step=1)
    loss, grads = m.loss_and_grad(batch)
    assert loss == pytest.approx(m.loss(batch), rel=1e-14)
    rng = np.random.default_rng(0)
    for name in ("embed.E", "layer1.attn.Wq", "layer0.mlp.W1", "unembed.U"):
        w = m.params[name]
        for _ in range(3):
            i = tuple(rng.integers(0, s) for s in w.shape)
            h, old = 1e-6, w[i]
            w[i] = old + h
            up = m.loss(batch)
            w[i] = old - h
            down = m.loss(batch)
            w[i] = old
            assert grads[name][i] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9), name


def test_predictions_attention_and_probs():
    m = ihlab.Model(model_config(dtype="float32"))
    batch = m.task.validation(5, seed=1)
    logits = m.logits(batch)
    assert logits.shape == (5, m.task.length, m.task.vocab) and logits.dtype == np.float32
    probs = m.next_token_probs(batch)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    assert np.allclose(probs, e / e.sum(-1, keepdims=True), atol=1e-6)
    maps = m.attention(batch, example=2)
    assert [(a["layer"], a["head"]) for a in maps] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    att = m.attention_probs(batch)
    assert np.allclose(maps[3]["weights"], att[1][2, 1], atol=1e-6)
    assert np.allclose(maps[0]["weights"].sum(-1), 1, atol=1e-5)
    assert "val_acc" in {"val_" + k for k in m.evaluate(batch)}
    assert m.ov_circuit(0, 1).shape == (m.task.vocab, m.task.vocab)


def test_other_models_and_errors():
    smoke = ihlab.Model({"task": {"name": "previous-token", "vocab": 8, "length": 16},
                         "model": {"name": "attn1", "width": 16, "window": 4}})
    b = smoke.task.batch(4, seed=0, step=0)
    assert np.isfinite(smoke.loss(b)) and smoke.attention(b)[0]["weights"].shape == (16, 16)
    with pytest.raises(ihlab.Error, match="only the 'transformer'"):
        smoke.logits(b)
    with pytest.raises(ihlab.ConfigError, match="model.heads"):
        ihlab.Model(model_config(heads=3))
    with pytest.raises(ihlab.ConfigError, match="model.name"):
        ihlab.Model({"task": TASK, "model": {"name": "no-such-model"}})
    assert "transformer" in ihlab.list_models() and "repeated-tokens" in ihlab.list_tasks()
    assert "smoke" in ihlab.list_reproductions()


EVERY_MODEL = [
    {"task": {"name": "previous-token"}, "model": {"name": "attn1"}},
    {"task": {"name": "ngram-markov", "length": 20}, "model": {"name": "gih"}},
    {"task": {"name": "ngram-markov", "length": 20}, "model": {"name": "gih-full"}},
    {"task": {"name": "item-label", "pairs": 3, "dim": 8}, "model": {"name": "disentangled"}},
    {"task": {"name": "item-label", "pairs": 3, "dim": 8}, "model": {"name": "disentangled-reduced"}},
    {"task": {"name": "icl-mc", "length": 20}, "model": {"name": "transformer"}},
    "wang2024-mixed-target.toml",
]


@pytest.mark.parametrize("config", EVERY_MODEL, ids=lambda c: c if isinstance(c, str) else c["model"]["name"])
def test_every_registered_model(config):
    """Each registered model builds from a dict (or a shipped TOML file) and its gradient agrees
    with central differences of its loss in float64."""
    from conftest import ROOT
    if isinstance(config, str):
        m = ihlab.Model(ROOT / "examples" / config, overrides=["dtype=float64"])
    else:
        m = ihlab.Model(dict(config, dtype="float64"))
    assert m.name in ihlab.list_models()
    batch = m.task.batch(4, seed=0, step=0)
    loss, grads = m.loss_and_grad(batch)
    assert np.isfinite(loss) and set(grads) == set(m.params)
    name = max(grads, key=lambda k: np.abs(grads[k]).max())  # the parameter the loss feels most
    w = m.params[name]
    i = np.unravel_index(np.abs(grads[name]).argmax(), w.shape)
    old, h = w[i], 1e-6 * max(1.0, abs(w[i]))
    w[i] = old + h
    up = m.loss(batch)
    w[i] = old - h
    down = m.loss(batch)
    w[i] = old
    assert grads[name][i] == pytest.approx((up - down) / (2 * h), rel=1e-5), name
