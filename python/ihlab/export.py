"""A trained transformer in TransformerLens's layout (`ihlab export RUN_DIR --format
transformer-lens --out DIR` does the same from the command line).

Loading the export with TransformerLens (not a dependency of ihlab):

    import json, torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    cfg = json.load(open("DIR/config.json"))
    cfg["dtype"] = getattr(torch, cfg["dtype"])            # "float32" / "float64" -> torch dtype
    model = HookedTransformer(HookedTransformerConfig(**cfg))
    missing, unexpected = model.load_state_dict(torch.load("DIR/model.pt"), strict=False)
    # missing: only TransformerLens's own buffers (blocks.*.attn.mask, .IGNORE, rotary tables)

The state dict holds the weights exactly, without TransformerLens's weight processing (no folded
LayerNorm, no centering), so use load_state_dict, not from_pretrained / load_and_process_state_dict.
"""
import os
from pathlib import Path

from . import _ihlab, safetensors


def export_transformer_lens(run_dir, out, checkpoint=None, pt=True):
    """Writes OUT/model.safetensors, OUT/config.json (HookedTransformerConfig fields) and, with
    pt=True and torch importable, OUT/model.pt. Returns {"safetensors", "config_path", "pt",
    "config", "names"}. Raises ihlab.Error for another model or an option with no
    TransformerLens equivalent (relative or ALiBi position biases, self_attention = false,
    continuous feature inputs, regression read-outs), naming the key."""
    ck = "" if checkpoint is None else os.fspath(checkpoint)
    if ck and not os.path.isabs(ck) and not os.path.exists(ck):
        ck = os.path.join(os.fspath(run_dir), "checkpoints", ck)
    r = _ihlab.export_transformer_lens(os.fspath(run_dir), os.fspath(out), ck)
    r["pt"] = None
    if pt:
        try:
            import torch
        except ImportError:
            return r
        tensors, _ = safetensors.read(r["safetensors"])
        path = Path(out) / "model.pt"
        torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, path)
        r["pt"] = str(path)
    return r
