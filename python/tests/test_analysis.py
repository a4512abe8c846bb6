"""ihlab.analysis: the C++ instruments on numpy inputs, checked on hand-built cases and against
what the trainer logged."""
import numpy as np
import pytest

import ihlab
from ihlab import analysis


def induction_head(tokens):
    """[L, L]: each query attends to the position after the previous copy of its token (else BOS)."""
    L = len(tokens)
    A = np.zeros((L, L))
    for q in range(L):
        prev = [j for j in range(q) if tokens[j] == tokens[q]]
        A[q, prev[-1] + 1 if prev else 0] = 1.0
    return A


def test_head_scores_on_hand_built_heads():
    tokens = np.array([9, 1, 2, 3, 4, 1, 2, 3, 4], dtype=np.int32)
    assert analysis.prefix_matching_score(induction_head(tokens), tokens) == pytest.approx(1.0)
    prev = np.eye(9, k=-1)
    prev[0, 0] = 1
    assert analysis.previous_token_score(prev) == pytest.approx(1.0)
    assert analysis.prefix_matching_score(prev, tokens) == pytest.approx(0.0)
    scores = analysis.head_scores(np.stack([induction_head(tokens), prev])[None, None], tokens[None])
    assert scores["pm.l0.h0"] == pytest.approx(1.0) and scores["prev.l0.h1"] == pytest.approx(1.0)


def test_head_scores_equal_the_logged_columns(tmp_path, tiny_config):
    run = ihlab.train(tiny_config, out=tmp_path / "r")
    last = run.metrics.iloc[-1]
    model = run.model()
    n = run.config["log"]["head_scores"]
    val = model.task.validation(run.config["data"]["val_size"], seed=run.config["seed"])
    att = np.stack([np.stack([a["weights"] for a in model.attention(val, s)]) for s in range(n)])
    att = att.reshape(n, 2, 2, *att.shape[-2:])
    scores = analysis.head_scores(att, val["tokens"][:n])
    for k, v in scores.items():
        assert last[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k  # metrics.csv keeps 7+ digits


def test_chi_square_mi_prefers_the_true_parents():
    s = analysis.chi_square_mi_survey(vocab=3, parents=[-1, -2], alpha=0.1, n_kernels=50)
    assert s["best"] == [-1, -2]
    assert s["ranked"][0]["mean"] > s["ranked"][1]["mean"] > 0
    assert [r["subset"] for r in s["ranked"]].count([]) == 1


def test_emergence_phases_and_fits():
    t = np.linspace(0, 10, 101)
    y = 1 / (1 + np.exp(-(t - 4)))
    assert analysis.first_reach(t, y, 0.5) == pytest.approx(4.0, abs=1e-3)
    assert analysis.emergence_order(["a", "b", "c"], [3.0, float("nan"), 1.0]) == ["c", "a", "b"]
    # A loss curve on log axes: fall, plateau at 1 from t = 10 to 100, drop to 0.01, convergence.
    tt = np.logspace(0, 4, 400)
    u = np.log10(tt)
    v = np.where(u < 1, -u + 1, np.where(u < 2, 0, np.where(u < 2.5, -4 * (u - 2), -2 - 0.1 * (u - 2.5))))
    seg = analysis.segment_phases(tt, 10 ** v)
    assert seg["found"] and len(seg["plateaus"]) == 1
    assert np.log10(seg["plateaus"][0]["start"]) == pytest.approx(1, abs=0.1)
    assert np.log10(seg["plateaus"][0]["end"]) == pytest.approx(2, abs=0.1)
    # t_ICL of a drop from 1 to 0.01 centred (in ln t) at t = 200: the midpoint crossing.
    icl = analysis.icl_time(tt, 0.01 + 0.99 / (1 + (tt / 200) ** 4))
    assert icl["found"] and icl["t_icl"] == pytest.approx(200, rel=0.02)
    f = analysis.fit_line([0, 1, 2, 3], [1, 3, 5, 7])
    assert f["slope"] == pytest.approx(2) and f["intercept"] == pytest.approx(1) and f["r2"] == pytest.approx(1)
    x = np.array([4, 8, 16, 32, 64.0])
    s = analysis.scaling_fit(x, 3 * x ** 2 * (1 + 0.01 * np.array([1, -1, 1, -1, 1])), "N", "t")
    assert s["fit"]["slope"] == pytest.approx(2, abs=0.02) and s["fit"]["slope_lo"] < 2 < s["fit"]["slope_hi"]
    assert analysis.spearman([1, 2, 3], [10, 20, 15]) == pytest.approx(0.5)
    assert analysis.ov_scores(np.eye(5))["ov_eig_positivity"] == pytest.approx(1.0)
