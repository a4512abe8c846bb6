"""Results on disk: a run directory (Run) and a sweep store (Sweep), read with pandas and numpy."""
import json
import os
import sqlite3
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from . import safetensors


class Run:
    """A run directory written by `ihlab train` / `ihlab reproduce` or ihlab.train.

    Everything is read from disk when asked for, so a Run of a run still training sees its
    latest rows. Layout: README "Run directory (file formats)".
    """

    def __init__(self, dir):
        self.dir = Path(dir)
        if not (self.dir / "config.toml").exists():
            raise FileNotFoundError(f"{self.dir} is not an ihlab run directory (no config.toml)")

    def __repr__(self):
        s = self.summary if (self.dir / "summary.json").exists() else {}
        return f"Run({str(self.dir)!r}, status={s.get('status', '?')!r}, steps={s.get('steps', '?')})"

    @property
    def config(self):
        """The resolved configuration (config.toml) as a dict."""
        with open(self.dir / "config.toml", "rb") as f:
            return tomllib.load(f)

    @property
    def metrics(self):
        """metrics.csv as a DataFrame (one row per logged step; empty cells are NaN)."""
        return pd.read_csv(self.dir / "metrics.csv")

    @property
    def summary(self):
        """summary.json as a dict (status, final metrics, claims, ...)."""
        with open(self.dir / "summary.json") as f:
            return json.load(f)

    @property
    def status(self):
        return self.summary["status"]

    @property
    def final(self):
        """The last metrics row as {metric: value} (summary.json's `final`)."""
        return self.summary.get("final", {})

    @property
    def claims(self):
        """The checked claims as a DataFrame (name, expected, measured, pass, detail); empty for a
        plain training run."""
        return pd.DataFrame(self.summary.get("claims", []), columns=["name", "expected", "measured", "pass", "detail"])

    @property
    def checkpoints(self):
        """Checkpoint files, oldest first (by the step in their metadata)."""
        files = list((self.dir / "checkpoints").glob("*.safetensors"))
        return sorted(files, key=lambda p: (_checkpoint_step(p), p.name))

    def checkpoint_path(self, which=None):
        """which: None = the latest (checkpoints/latest.json), a step number, or a file name."""
        ck = self.dir / "checkpoints"
        if which is None:
            with open(ck / "latest.json") as f:
                return ck / json.load(f)["file"]
        if isinstance(which, (int, np.integer)):
            for p in self.checkpoints:
                if _checkpoint_step(p) == which:
                    return p
            raise KeyError(f"{self.dir}: no checkpoint at step {which} "
                           f"(steps: {[_checkpoint_step(p) for p in self.checkpoints]})")
        return ck / which

    def checkpoint(self, which=None):
        """{name: array} of every tensor of a checkpoint (param.*, opt.*, extra.*) and its
        metadata dict (`ihlab` parsed: step, stage, config, ...) under "__metadata__"."""
        tensors, meta = safetensors.read(self.checkpoint_path(which))
        meta = dict(meta)
        if "ihlab" in meta:
            meta["ihlab"] = json.loads(meta["ihlab"])
        tensors["__metadata__"] = meta
        return tensors

    def params(self, which=None):
        """The model's parameters {name: array} from a checkpoint (default: the latest)."""
        tensors, _ = safetensors.read(self.checkpoint_path(which))
        return {k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}

    def model(self, which=None):
        """An ihlab.Model of this run's configuration with a checkpoint's parameters loaded."""
        from ._ihlab import Model
        m = Model(self.config)
        m.load_checkpoint(os.fspath(self.checkpoint_path(which)))
        return m

    @property
    def attention(self):
        """attention.jsonl: a list of snapshots {step, stage, offset, tokens, maps}, each map
        {layer, head, query_offset, key_offset, weights [queries, keys] array}."""
        out = []
        path = self.dir / "attention.jsonl"
        if not path.exists():
            return out
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                snap = json.loads(line)
                for m in snap.get("maps", []):
                    m["weights"] = np.asarray(m["weights"], dtype=np.float64).reshape(m["queries"], m["keys"])
                out.append(snap)
        return out

    def report(self, figures=False):
        """Writes report.html (and figures/ with figures=True); returns its path."""
        from ._ihlab import write_report
        html, warnings = write_report(os.fspath(self.dir), figures)
        return Path(html)


def _checkpoint_step(path):
    name = path.name
    i = name.rfind("step")
    digits = name[i + 4:].split(".")[0] if i >= 0 else ""
    return int(digits) if digits.isdigit() else -1


class Sweep:
    """A sweep directory's store, DIR/sweep.db (SQLite): its definition and points.

    Sweep(dir).points is a DataFrame with one row per point and the store's columns (id, name,
    dir, overrides, config, config_hash, seed, status, attempts, worker, host, started_at,
    ended_at, wall_s, exit_status, final, claims, error), plus one column per override key (named
    as the key, e.g. "task.vocab") and one per final metric, prefixed "final." (e.g.
    "final.val_loss"). JSON columns (overrides, config, final, claims) are decoded; `dir` is made
    absolute. A sweep split into Slurm shards is read after `ihlab sweep merge DIR`.
    """

    FORMAT = "ihlab-sweep-1"

    def __init__(self, dir):
        self.dir = Path(dir)
        self.db = self.dir / "sweep.db"
        if not self.db.exists():
            raise FileNotFoundError(f"{self.dir} is not an ihlab sweep directory (no sweep.db)")

    def __repr__(self):
        return f"Sweep({str(self.dir)!r})"

    def _connect(self):
        # Read-only: a sweep may be running in another process (WAL lets readers in).
        return sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)

    @property
    def info(self):
        """The sweep table {key: value}: definition (decoded JSON), format, created, shard."""
        with self._connect() as c:
            rows = dict(c.execute("SELECT key, value FROM sweep").fetchall())
        if rows.get("format", self.FORMAT) != self.FORMAT:
            raise ValueError(f"{self.db}: format {rows['format']!r} is not {self.FORMAT!r}")
        if "definition" in rows:
            rows["definition"] = json.loads(rows["definition"])
        return rows

    @property
    def definition(self):
        return self.info.get("definition")

    @property
    def points(self):
        with self._connect() as c:
            df = pd.read_sql_query("SELECT * FROM points ORDER BY id", c)
        for col in ("overrides", "final", "config"):
            if col in df:  # `config` (the resolved configuration) is absent from older stores
                df[col] = [json.loads(v) if isinstance(v, str) and v else {} for v in df[col]]
        df["claims"] = [json.loads(v) if isinstance(v, str) and v else [] for v in df["claims"]]
        df["dir"] = [str(self.dir / d) if isinstance(d, str) and d else str(self.dir / "runs" / n)
                     for d, n in zip(df["dir"], df["name"])]
        keys = _ordered_keys(df["overrides"])
        for k in keys:
            df[k] = [o.get(k) for o in df["overrides"]]
        for k in _ordered_keys(df["final"]):
            df["final." + k] = [f.get(k, np.nan) for f in df["final"]]
        return df

    def runs(self, status="done"):
        """Run objects of the points with this status (None = all), in point order."""
        df = self.points
        if status is not None:
            df = df[df["status"] == status]
        return [Run(d) for d in df["dir"]]


def _ordered_keys(dicts):
    keys = []
    for d in dicts:
        for k in d:
            if k not in keys:
                keys.append(k)
    return keys
