"""ihlab.Sweep against a store built here with the sweep store's schema (README "Sweeps")."""
import json
import sqlite3

import numpy as np

import ihlab

SCHEMA = """
CREATE TABLE sweep(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE points(id INTEGER PRIMARY KEY, name TEXT UNIQUE, dir TEXT, overrides TEXT, config_hash TEXT,
  seed INTEGER, status TEXT, attempts INTEGER, worker TEXT, host TEXT, started_at TEXT, ended_at TEXT,
  wall_s REAL, exit_status INTEGER, final TEXT, claims TEXT, error TEXT);
"""


def make_store(d):
    d.mkdir()
    c = sqlite3.connect(d / "sweep.db")
    c.execute("PRAGMA journal_mode=WAL")
    c.executescript(SCHEMA)
    definition = {"base": "tiny.toml", "vary": {"task.vocab": [8, 16], "seed": [0, 1]}}
    c.executemany("INSERT INTO sweep VALUES (?, ?)", [("definition", json.dumps(definition)),
                                                     ("format", "ihlab-sweep-1"), ("created", "2026-12-06T07:00:00Z"),
                                                     ("shard", "")])
    rows = []
    for i, (vocab, seed) in enumerate([(8, 0), (8, 1), (16, 0), (16, 1)]):
        name = f"r{i:03d}_task.vocab={vocab}_seed={seed}"
        done = i < 3
        rows.append((i, name, "runs/" + name, json.dumps({"task.vocab": vocab, "seed": seed}), f"h{i}", seed,
                     "done" if done else "failed", 1, "w0", "host", "2026-12-06T07:00:00Z", "2026-12-06T07:01:00Z",
                     1.5 * i, 0 if done else 3, json.dumps({"val_loss": 0.1 * vocab + seed} if done else {}),
                     json.dumps([{"name": "c", "pass": True}] if done else []), None if done else "diverged"))
    c.executemany("INSERT INTO points VALUES (" + ",".join("?" * 17) + ")", rows)
    c.commit()
    c.close()


def test_points_dataframe(tmp_path):
    make_store(tmp_path / "sw")
    s = ihlab.Sweep(tmp_path / "sw")
    assert s.info["format"] == "ihlab-sweep-1" and s.definition["vary"]["seed"] == [0, 1]
    p = s.points
    assert list(p["id"]) == [0, 1, 2, 3]
    assert list(p["task.vocab"]) == [8, 8, 16, 16] and list(p["seed"]) == [0, 1, 0, 1]
    assert np.allclose(p["final.val_loss"][:3], [0.8, 1.8, 1.6]) and np.isnan(p["final.val_loss"][3])
    assert list(p["status"]) == ["done", "done", "done", "failed"] and p["error"][3] == "diverged"
    assert p["dir"][0] == str(tmp_path / "sw" / "runs" / p["name"][0])
    assert p["claims"][0][0]["pass"] and p["overrides"][2] == {"task.vocab": 16, "seed": 0}


def test_a_store_written_by_the_cli(tmp_path, ihlab_bin):
    """The store of a real sweep (examples/sweep-smoke.toml, 12 points) read back: every point done,
    its final metrics equal to its run directory's, the resolved config decoded."""
    import subprocess
    from conftest import ROOT
    out = tmp_path / "smoke"
    p = subprocess.run([ihlab_bin, "sweep", str(ROOT / "examples" / "sweep-smoke.toml"), "--out", str(out), "--quiet"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-400:]
    s = ihlab.Sweep(out)
    pts = s.points
    assert len(pts) == 12 and set(pts["status"]) == {"done"}
    assert sorted(set(pts["task.vocab"])) == [4, 8, 16] and sorted(set(pts["stages.0.lr"])) == [0.01, 0.03]
    assert [c["task"]["vocab"] for c in pts["config"]] == list(pts["task.vocab"])
    assert s.definition["seeds"] == 2
    for (_, row), run in zip(pts.iterrows(), s.runs()):
        assert run.summary["final"]["val_loss"] == row["final"]["val_loss"] == row["final.val_loss"]
        # pandas' default CSV float parser is not round-trip exact: equal to the last digits
        assert abs(run.metrics["val_loss"].iloc[-1] / row["final.val_loss"] - 1) < 1e-12
