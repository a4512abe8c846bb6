#!/usr/bin/python3
"""Data-parallel training under MPI, for real (train/data_parallel.h): the disentangled model on
item-label retrieval (float64, fresh batches of 64 in 4 shards, 30 SGD steps, probes and validation
logged every 5 steps) trained

  1. in one process,
  2. under `mpirun --oversubscribe -np 2` (2 shards per rank),
  3. under `mpirun --oversubscribe -np 4` (1 shard per rank),
  4. under `mpirun -np 2` with a checkpoint at step 15, set back to it and resumed in ONE process;

every metrics.csv must equal the one-process run's bit for bit. Also: 4 shards differ from 1 shard
only by rounding (the same mean gradient, added in another order), and a shard count that the
ranks do not divide exits 2 naming data.shards.

Usage: data_parallel_check.py --ihlab BUILD/ihlab --dir WORK_DIR
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys

FAILURES = []


def check(ok, what):
    if ok and " (" in what and what.endswith(")") and "\n" in what:  # a process's output: only on failure
        what = what[:what.index(" (")]
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        FAILURES.append(what)


CONFIG = """
name = "data-parallel-check"
seed = 3
dtype = "float64"
threads = 1
[task]
name = "item-label"
pairs = 4
dim = 8
vectors = "orthonormal"
[model]
name = "disentangled"
[data]
mode = "fresh"
batch_size = 64
val_size = 32
shards = 4
[log]
every = 5
attention_snapshots = 0
head_scores = 0
[[stages]]
name = "gd"
optimizer = "sgd"
lr = 2.0
steps = 30
"""


def rows(run_dir):
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return list(csv.reader(f))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ihlab", required=True)
    p.add_argument("--dir", required=True)
    a = p.parse_args()
    shutil.rmtree(a.dir, ignore_errors=True)
    os.makedirs(a.dir)
    cfg = os.path.join(a.dir, "dp.toml")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    d = lambda name: os.path.join(a.dir, name)  # noqa: E731

    def train(out, *extra, np_=0):
        cmd = [a.ihlab, "train", cfg, *extra, "--out", out]
        env = dict(os.environ)
        if np_:
            env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                       OMPI_MCA_rmaps_base_oversubscribe="1")
            cmd = [shutil.which("mpirun"), "--oversubscribe", "-np", str(np_), *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)

    r = train(d("one"))
    check(r.returncode == 0, f"one process exits 0 ({r.stderr[-300:]})")
    ref = rows(d("one"))
    check(len(ref) == 8, f"7 logged rows and a header ({len(ref)} lines)")
    # The whole metrics row (loss, validation loss, 19 pseudo-parameters, ...) has moved.
    loss = ref[0].index("loss")
    check(float(ref[-1][loss]) < float(ref[1][loss]), f"the loss falls ({ref[1][loss]} -> {ref[-1][loss]})")

    r = train(d("one-shard"), "data.shards=1")
    one_shard = rows(d("one-shard"))
    diff = max(abs(float(x) - float(y)) / max(1.0, abs(float(y)))
               for rx, ry in zip(one_shard[1:], ref[1:]) for x, y in zip(rx, ry)
               if x not in ("", "nan") and y not in ("", "nan"))
    check(r.returncode == 0 and 0 <= diff < 1e-9,
          f"1 shard and 4 shards agree to rounding (largest relative difference {diff:.3g})")

    if not shutil.which("mpirun"):
        check(False, "mpirun is installed (scripts/install-deps.sh installs openmpi-bin)")
    else:
        for n in (2, 4):
            r = train(d(f"np{n}"), np_=n)
            check(r.returncode == 0, f"mpirun -np {n} exits 0 ({r.stderr[-300:]})")
            if r.returncode == 0:
                check(rows(d(f"np{n}")) == ref, f"mpirun -np {n}: metrics.csv equals one process bit for bit")
        # A run started under MPI resumes in one process: train under mpirun -np 2 with a checkpoint
        # at step 15, point latest.json back at it (as if the run had stopped there; the resume
        # drops the metrics rows after it), resume in one process.
        r = train(d("mpi-resume"), "log.checkpoint_every=15", np_=2)
        check(r.returncode == 0, f"mpirun -np 2 with checkpoints exits 0 ({r.stderr[-300:]})")
        ck = os.path.join(d("mpi-resume"), "checkpoints")
        mid = "step00000015.safetensors"
        check(os.path.exists(os.path.join(ck, mid)), f"a checkpoint at step 15 ({sorted(os.listdir(ck))})")
        with open(os.path.join(ck, "latest.json")) as f:
            latest = json.load(f)
        latest["file"], latest["step"] = mid, 15
        with open(os.path.join(ck, "latest.json"), "w") as f:
            json.dump(latest, f)
        r = subprocess.run([a.ihlab, "train", "--resume", d("mpi-resume")], capture_output=True, text=True)
        check(r.returncode == 0, f"the one-process resume exits 0 ({r.stderr[-300:]})")
        check(rows(d("mpi-resume")) == ref, "mpirun -np 2 to step 15, then one process: metrics.csv equals one "
              "process bit for bit")

    # Bad input: 4 shards over 3 ranks.
    if shutil.which("mpirun"):
        r = train(d("bad"), np_=3)
        check(r.returncode != 0 and "data.shards" in r.stderr and "multiple of the 3" in r.stderr,
              f"4 shards over 3 ranks: an error naming data.shards ({r.stderr.strip()[:200]})")
    r = train(d("bad1"), "data.shards=5")
    check(r.returncode == 2 and "data.shards" in r.stderr and "divide" in r.stderr,
          f"5 shards of a batch of 64: exit 2 naming data.shards ({r.stderr.strip()[:200]})")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
