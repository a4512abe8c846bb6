"""ihlab models as plain PyTorch modules: `ihlab.torch.load(run_dir)`.

The module is written from the model's definition (src/models/transformer.h), not traced from
the C++ code; its state_dict keys are ihlab's parameter names ("embed.E", "layer0.attn.Wq", ...),
so checkpoints load as they are. Outputs match ihlab's to 1e-6 in float32 and 1e-12 in float64
(tested in python/tests/test_torch.py). Provided: `transformer` and the smoke model `attn1`. The
paper models (gih, disentangled, attention-circuit) are fused kernels whose natural PyTorch form
is the independent twins in tests/torch_check_*.py, not a reusable module.
"""
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from . import safetensors

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def alibi_slopes(heads):
    """ALiBi slopes m_0..m_{H-1}: 2^(-8 (i+1) / n) for a power of two n; otherwise those of the
    largest power of two n < H followed by every other slope of 2n."""
    def geometric(n):
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]
    n = 1
    while n * 2 <= heads:
        n *= 2
    slopes = geometric(n)
    extra = geometric(2 * n)
    i = 0
    while len(slopes) < heads:
        slopes.append(extra[i])
        i += 2
    return slopes


def rotate(x, base):
    """Rotary embedding in the half-split layout: pair (c, c + dh/2) of position i is rotated by
    i * base^(-2c / dh). x: [B, H, L, dh]."""
    L, dh = x.shape[-2], x.shape[-1]
    half = dh // 2
    freq = base ** (-2.0 * torch.arange(half, dtype=torch.float64) / dh)
    ang = torch.arange(L, dtype=torch.float64)[:, None] * freq[None, :]          # [L, dh/2]
    cos = torch.cat([ang.cos(), ang.cos()], -1).to(x.dtype)
    sin = torch.cat([ang.sin(), ang.sin()], -1).to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Transformer(torch.nn.Module):
    """ihlab's `transformer` (src/models/transformer.h) in eval mode (no dropout).

    forward(tokens [B, L] long, features [B, L, F] or None) -> logits [B, L, V], or for a
    regression task (value_dim > 0) the prediction [B, Dv] read from the last position.
    forward(..., return_attention=True) also returns the attention probabilities per layer,
    [B, H, L, L] each.
    """

    def __init__(self, model_cfg, vocab, max_len, feature_dim=0, value_dim=0, dtype=torch.float32):
        super().__init__()
        c = dict(model_cfg)
        self.cfg = c
        self.vocab, self.max_len, self.feature_dim, self.value_dim = vocab, max_len, feature_dim, value_dim
        D, H = c["width"], c["heads"]
        self.D, self.H, self.dh = D, H, D // H
        self.pre_norm = c["norm"] == "pre"
        self.positional = c["positional"]
        self.lo = 0 if c["self_attention"] else 1
        M = c["mlp_width"] or 4 * D
        K = c["rel_window"] or max_len - self.lo
        z = lambda *s: torch.zeros(*s, dtype=dtype)  # noqa: E731 (shapes only: weights come from a checkpoint)
        shapes = {"embed.E": (vocab, D)}
        if feature_dim > 0:
            shapes["embed.W_in"] = (feature_dim, D)
        if self.positional == "learned":
            shapes["pos.P"] = (max_len, D)
        for l in range(c["layers"]):
            a, m = f"layer{l}.attn", f"layer{l}.mlp"
            if self.pre_norm:
                shapes[a + ".ln_g"], shapes[a + ".ln_b"] = (D,), (D,)
            for n in ("Wq", "Wk", "Wv", "Wo"):
                shapes[f"{a}.{n}"] = (D, D)
            if c["attn_bias"]:
                for n in ("bq", "bk", "bv", "bo"):
                    shapes[f"{a}.{n}"] = (D,)
            if self.positional == "relative":
                shapes[f"layer{l}.rpe.w"] = (H, K)
            if not c["attention_only"]:
                if self.pre_norm:
                    shapes[m + ".ln_g"], shapes[m + ".ln_b"] = (D,), (D,)
                shapes[m + ".W1"], shapes[m + ".b1"] = (D, M), (M,)
                shapes[m + ".W2"], shapes[m + ".b2"] = (M, D), (D,)
        if self.pre_norm:
            shapes["unembed.ln_g"], shapes["unembed.ln_b"] = (D,), (D,)
        if not c["tied_unembedding"]:
            shapes["unembed.U"] = (D, value_dim if value_dim > 0 else vocab)
        self._names = list(shapes)
        for name, s in shapes.items():
            _register(self, name, torch.nn.Parameter(z(*s)))

    def p(self, name):
        """The parameter of an ihlab name, e.g. p("layer0.attn.Wq")."""
        obj = self
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj

    def has(self, name):
        return name in self._names

    def _ln(self, x, prefix):
        if not self.pre_norm:
            return x
        return F.layer_norm(x, (self.D,), self.p(prefix + ".ln_g"), self.p(prefix + ".ln_b"), eps=self.cfg["ln_eps"])

    def _lin(self, x, W, b):
        y = x @ self.p(W)
        return y + self.p(b) if self.has(b) else y

    def forward(self, tokens, features=None, return_attention=False):
        B, L = tokens.shape
        D, H, dh = self.D, self.H, self.dh
        x = self.p("embed.E")[tokens]                                               # [B, L, D]
        if self.feature_dim > 0:
            x = x + features.to(x.dtype) @ self.p("embed.W_in")
        if self.positional == "learned":
            x = x + self.p("pos.P")[:L]
        off = torch.arange(L)[:, None] - torch.arange(L)[None, :]                  # query i - key j
        allowed = off >= self.lo
        if self.positional == "relative":
            K = self.p("layer0.rpe.w").shape[1]                                     # offsets lo .. lo+K-1
            allowed = allowed & (off <= self.lo + K - 1)
        has_key = allowed.any(-1, keepdim=True)                                     # [L, 1]
        zero = torch.zeros((), dtype=x.dtype)
        probs = []
        for l in range(self.cfg["layers"]):
            a = f"layer{l}.attn"
            h = self._ln(x, a)
            q, k, v = (self._lin(h, f"{a}.W{n}", f"{a}.b{n}").reshape(B, L, H, dh).transpose(1, 2) for n in "qkv")
            if self.positional == "rotary":
                q, k = rotate(q, self.cfg["rope_base"]), rotate(k, self.cfg["rope_base"])
            s = q @ k.transpose(-1, -2) / math.sqrt(dh)                             # [B, H, L, L]
            if self.positional == "relative":
                w = self.p(f"layer{l}.rpe.w")
                s = s + torch.where(allowed, w[:, (off - self.lo).clamp(0, w.shape[1] - 1)], zero)
            elif self.positional == "alibi":
                m = torch.tensor(alibi_slopes(H), dtype=x.dtype)
                s = s - m[:, None, None] * off.to(x.dtype)
            s = torch.where(has_key, s.masked_fill(~allowed, float("-inf")), zero)
            att = torch.where(has_key, torch.softmax(s, -1), zero)                 # row 0 without keys: 0
            probs.append(att)
            o = (att @ v).transpose(1, 2).reshape(B, L, D)
            x = x + self._lin(o, f"{a}.Wo", f"{a}.bo")
            if not self.cfg["attention_only"]:
                m_ = f"layer{l}.mlp"
                x = x + self._lin(F.gelu(self._lin(self._ln(x, m_), f"{m_}.W1", f"{m_}.b1")), f"{m_}.W2", f"{m_}.b2")
        x = self._ln(x, "unembed")
        U = self.p("embed.E").T if self.cfg["tied_unembedding"] else self.p("unembed.U")
        out = x[:, -1] @ U if self.value_dim > 0 else x @ U
        return (out, probs) if return_attention else out


class OneLayerAttention(torch.nn.Module):
    """ihlab's `attn1` (src/models/one_layer_attention.h): one head, learned relative bias over
    offsets 0..window-1. forward(tokens [B, L]) -> logits [B, L, V] (and the attention [B, L, L]
    with return_attention=True)."""

    def __init__(self, model_cfg, vocab, length, dtype=torch.float32):
        super().__init__()
        D, K = model_cfg["width"], model_cfg["window"]
        self.D, self.K = D, K
        shapes = {"embed.E": (vocab, D), "embed.U": (D, vocab), "attn.Wq": (D, D), "attn.Wk": (D, D),
                  "attn.Wv": (D, D), "attn.Wo": (D, D), "rpe.w": (1, K)}
        for name, s in shapes.items():
            _register(self, name, torch.nn.Parameter(torch.zeros(*s, dtype=dtype)))

    def forward(self, tokens, features=None, return_attention=False):
        L = tokens.shape[1]
        x = self.embed.E[tokens]                                                    # [B, L, D]
        off = torch.arange(L)[:, None] - torch.arange(L)[None, :]
        band = (off >= 0) & (off < self.K)
        bias = torch.where(band, self.rpe.w[0][off.clamp(0, self.K - 1)], torch.zeros((), dtype=x.dtype))
        s = (x @ self.attn.Wq) @ (x @ self.attn.Wk).transpose(-1, -2) / math.sqrt(self.D) + bias
        att = torch.softmax(s.masked_fill(~band, float("-inf")), -1)                # [B, L, L]
        h = x + (att @ (x @ self.attn.Wv)) @ self.attn.Wo
        out = h @ self.embed.U
        return (out, [att]) if return_attention else out


def _register(root, name, param):
    *path, leaf = name.split(".")
    obj = root
    for part in path:
        if not hasattr(obj, part):
            obj.add_module(part, torch.nn.Module())
        obj = getattr(obj, part)
    obj.register_parameter(leaf, param)


def load(run_dir, checkpoint=None, dtype=None):
    """A torch.nn.Module of a run's trained `transformer` or `attn1` (eval mode) with a checkpoint's
    weights.

    checkpoint: None = the latest, a step or a file name (as ihlab.Run.checkpoint_path).
    dtype: the run's own (float32 / float64) unless given (a torch dtype or its name).
    """
    from .results import Run
    from ._ihlab import Task
    run = Run(run_dir)
    cfg = run.config
    model = cfg["model"]
    if model["name"] not in ("transformer", "attn1"):
        raise ValueError(f"ihlab.torch.load: model.name = {model['name']!r} has no PyTorch module here "
                         "(allowed: transformer, attn1; the paper models' PyTorch twins are in tests/torch_check_*.py)")
    task = Task(cfg["task"])
    own = _DTYPES[cfg.get("dtype", "float32")]
    dt = _DTYPES.get(dtype, dtype) if dtype is not None else own
    if model["name"] == "attn1":
        module = OneLayerAttention(model, task.vocab, task.length, dtype=dt)
    else:
        module = Transformer(model, task.vocab, task.length, task.feature_dim, task.value_dim, dtype=dt)
    params = run.params(checkpoint)
    state = {k: torch.from_numpy(v).to(dt) for k, v in params.items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"ihlab.torch.load: {Path(run_dir)}: checkpoint and module differ "
                         f"(missing {missing}, unexpected {unexpected})")
    return module.eval()
