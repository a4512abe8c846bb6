"""Shared set-up of the module's tests: the module on sys.path, the CLI binary, small configs."""
import os
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("IHLAB_SOURCE_DIR", Path(__file__).resolve().parents[2]))
if not any(Path(p, "ihlab", "__init__.py").exists() for p in sys.path if p):
    sys.path.insert(0, str(ROOT / "build" / "python"))  # run by hand: the release build's module

# A small Olsson-style run: 2-layer attention-only transformer on repeated random tokens.
TINY_TOML = """
name = "tiny"
seed = 3
dtype = "float32"
threads = 1
[task]
name = "repeated-tokens"
vocab = 16
block = 6
repeats = 2
[model]
name = "transformer"
layers = 2
heads = 2
width = 16
positional = "relative"
[data]
mode = "fresh"
batch_size = 8
val_size = 16
[log]
every = 10
checkpoint_every = 20
attention_snapshots = 4
[[stages]]
name = "adamw"
optimizer = "adamw"
lr = 0.003
steps = 40
"""


@pytest.fixture
def tiny_toml(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(TINY_TOML)
    return p


@pytest.fixture
def tiny_config():
    return tomllib.loads(TINY_TOML)


@pytest.fixture(scope="session")
def ihlab_bin():
    b = os.environ.get("IHLAB_BIN") or str(ROOT / "build" / "ihlab")
    if not os.path.exists(b):
        pytest.skip(f"no ihlab binary at {b} (set IHLAB_BIN)")
    return b
