#!/usr/bin/env python3
"""Sweeps as processes, for real: `ihlab sweep examples/sweep-smoke.toml` run serially, with a local
worker pool, killed with SIGKILL at several moments (the whole process group, one worker, and the
coordinator inside a store write) and rerun, split into Slurm shards run through the script that
`ihlab sweep sbatch` writes and merged, and under `mpirun --oversubscribe -np 3`. Every way must give
the serial sweep's run directories bit for bit (metrics.csv) with every point done exactly once.

Usage: sweep_check.py --ihlab BUILD/ihlab --examples EXAMPLES_DIR --dir WORK_DIR
"""
import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def rows(out):
    db = sqlite3.connect(os.path.join(out, "sweep.db"))
    db.row_factory = sqlite3.Row
    r = [dict(x) for x in db.execute("SELECT * FROM points ORDER BY id")]
    db.close()
    return r


def metrics(out):
    """{point name: metrics.csv bytes} for every run directory of a sweep."""
    runs = os.path.join(out, "runs")
    if not os.path.isdir(runs):
        return {}
    got = {}
    for name in sorted(os.listdir(runs)):
        path = os.path.join(runs, name, "metrics.csv")
        if os.path.exists(path):
            with open(path, "rb") as f:
                got[name] = f.read()
    return got


class Sweep:
    def __init__(self, ihlab, sweep_file):
        self.ihlab, self.file = ihlab, sweep_file

    def cmd(self, out, *extra):
        return [self.ihlab, "sweep", self.file, "--out", out, "--threads", "1", "--quiet", *extra]

    def run(self, out, *extra, env=None, timeout=600):
        p = subprocess.run(self.cmd(out, *extra), capture_output=True, text=True, env=env, timeout=timeout)
        return p

    def start(self, out, *extra, env=None):
        # A session of its own, so the test can kill the whole group like a node going down.
        return subprocess.Popen(self.cmd(out, *extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                start_new_session=True)


def same_as_reference(out, ref_rows, ref_metrics, label):
    r = rows(out)
    check(len(r) == len(ref_rows) and all(x["status"] == "done" for x in r),
          f"{label}: all {len(ref_rows)} points done ({[x['status'] for x in r]})")
    got = metrics(out)
    differ = [n for n in ref_metrics if got.get(n) != ref_metrics[n]]
    check(not differ and len(got) == len(ref_metrics),
          f"{label}: every metrics.csv bit-identical to the serial sweep (differ: {differ[:3]})")
    check([x["final"] for x in r] == [x["final"] for x in ref_rows], f"{label}: the store's final metrics equal")
    return r


def wait_for(predicate, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def done_count(out):
    try:
        return sum(x["status"] == "done" for x in rows(out))
    except Exception:
        return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ihlab", required=True)
    ap.add_argument("--examples", required=True)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.dir, ignore_errors=True)
    os.makedirs(a.dir)
    sw = Sweep(a.ihlab, os.path.join(a.examples, "sweep-smoke.toml"))
    d = lambda name: os.path.join(a.dir, name)

    # 1. The serial reference.
    p = sw.run(d("serial"))
    check(p.returncode == 0, f"serial sweep exits 0 (got {p.returncode}: {p.stderr[-300:]})")
    ref_rows, ref_metrics = rows(d("serial")), metrics(d("serial"))
    check(len(ref_rows) == 12 and all(x["status"] == "done" and x["attempts"] == 1 for x in ref_rows),
          "serial: 12 points, each done in one attempt")
    db = sqlite3.connect(os.path.join(d("serial"), "sweep.db"))
    check(db.execute("PRAGMA journal_mode").fetchone()[0] == "wal", "the store is in WAL mode")
    check(db.execute("SELECT value FROM sweep WHERE key='format'").fetchone()[0] == "ihlab-sweep-1", "store format")
    db.close()
    for x in ref_rows:
        with open(os.path.join(d("serial"), x["dir"], "summary.json")) as f:
            s = json.load(f)
        if s["status"] != "finished" or json.loads(x["final"])["val_loss"] != s["final"]["val_loss"]:
            check(False, f"run directory {x['dir']} is an ordinary finished run matching the store")
            break
    else:
        check(True, "every run directory is an ordinary finished run whose final metrics the store holds")
    st = subprocess.run([a.ihlab, "sweep", "status", d("serial")], capture_output=True, text=True)
    check(st.returncode == 0 and "12 done" in st.stdout, f"sweep status: {st.stdout.strip()[:120]}")

    # 2. A local pool of two workers.
    p = sw.run(d("workers"), "--workers", "2")
    check(p.returncode == 0, f"--workers 2 exits 0 ({p.stderr[-300:]})")
    r = same_as_reference(d("workers"), ref_rows, ref_metrics, "--workers 2")
    check(len({x["worker"] for x in r}) == 2, f"two workers shared the points ({sorted({x['worker'] for x in r})})")

    # 3. SIGKILL to the whole process group at several moments, then the same command again.
    for label, extra, delay in [("serial", [], 0.7), ("serial", [], 2.5), ("workers", ["--workers", "2"], 1.0),
                                ("workers", ["--workers", "2"], 3.0)]:
        out = d(f"kill_{label}_{delay}")
        proc = sw.start(out, *extra)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        before = {x["id"]: x for x in rows(out)} if os.path.exists(os.path.join(out, "sweep.db")) else {}
        finished_before = {i: x for i, x in before.items() if x["status"] == "done"}
        p = sw.run(out, *extra)
        check(p.returncode == 0, f"kill -9 after {delay} s ({label}): rerun exits 0 ({p.stderr[-200:]})")
        r = same_as_reference(out, ref_rows, ref_metrics, f"kill -9 after {delay} s ({label})")
        kept = all(r[i]["ended_at"] == x["ended_at"] and r[i]["attempts"] == x["attempts"]
                   for i, x in finished_before.items())
        check(kept, f"kill -9 after {delay} s ({label}): the {len(finished_before)} points done before the kill "
                    "were not run again")

    # 4. Killed inside a store transaction (after its writes, before COMMIT), several times over.
    out = d("kill_in_write")
    for n in (3, 6, 9):
        env = dict(os.environ, IHLAB_TEST_KILL_IN_STORE_WRITE=str(n))
        p = sw.run(out, env=env)
        check(p.returncode == -signal.SIGKILL, f"the store-write hook killed the sweep (write {n}, rc {p.returncode})")
        db = sqlite3.connect(os.path.join(out, "sweep.db"))
        check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", f"store intact after the kill in write {n}")
        db.close()
    p = sw.run(out)
    check(p.returncode == 0, f"after kills inside store writes the rerun exits 0 ({p.stderr[-200:]})")
    same_as_reference(out, ref_rows, ref_metrics, "killed inside store writes")

    # 5. One worker killed mid-point: the sweep puts its point back and finishes by itself.
    out = d("kill_worker")
    proc = sw.start(out, "--workers", "2")
    victim = None

    def running_rows(worker=None):
        try:
            return [x for x in rows(out) if x["status"] == "running" and x["worker"].startswith("pid ")
                    and (worker is None or x["worker"] == worker)]
        except Exception:  # the store is being created
            return []

    # Kill a worker while the store says it runs a point (read again right before the kill: a
    # point of the smoke sweep takes about a second, so the worker may have moved on).
    deadline = time.time() + 60
    while victim is None and time.time() < deadline and proc.poll() is None:
        rr = running_rows()
        if not rr:
            time.sleep(0.05)
            continue
        time.sleep(0.2)
        now = running_rows(rr[0]["worker"])
        if now:
            try:
                os.kill(int(now[0]["worker"].split()[1]), signal.SIGKILL)
                victim = now[0]
            except ProcessLookupError:
                pass
    _, err = proc.communicate(timeout=600)
    check(proc.returncode == 0, f"a worker killed with -9: the sweep still exits 0 ({err[-200:].decode()})")
    r = same_as_reference(out, ref_rows, ref_metrics, "one worker killed")
    check(victim is not None and r[victim["id"]]["attempts"] >= 2,
          f"the killed worker's point was taken again (attempts {victim and r[victim['id']]['attempts']})")

    # 6. A second coordinator on a running sweep is refused.
    out = d("locked")
    proc = sw.start(out, "--workers", "2")
    wait_for(lambda: os.path.exists(os.path.join(out, "sweep.db")), 30)
    time.sleep(0.3)
    p = sw.run(out)
    check(p.returncode == 2 and "another process" in p.stderr, f"a second sweep on the same store is refused "
                                                               f"({p.returncode}: {p.stderr.strip()[:120]})")
    proc.communicate(timeout=600)

    # 7. Slurm job array: the script `ihlab sweep sbatch` writes, run once per task id, then merge.
    out = d("slurm")
    p = subprocess.run([a.ihlab, "sweep", "sbatch", sw.file, "--out", out, "--array", "3"], capture_output=True,
                       text=True)
    check(p.returncode == 0 and "#SBATCH --array=0-2" in open(os.path.join(out, "sweep.sbatch")).read(),
          "sweep sbatch writes a 3-task job-array script")
    for k in range(3):
        env = dict(os.environ, SLURM_ARRAY_TASK_ID=str(k), SLURM_ARRAY_TASK_COUNT="3", SLURM_ARRAY_TASK_MIN="0")
        p = subprocess.run(["bash", os.path.join(out, "sweep.sbatch")], capture_output=True, text=True, env=env)
        check(p.returncode == 0 and os.path.exists(os.path.join(out, f"shard-{k}-of-3.db")),
              f"array task {k} ran its shard ({p.stderr[-200:]})")
    p = subprocess.run([a.ihlab, "sweep", "merge", out], capture_output=True, text=True)
    check(p.returncode == 0, f"sweep merge exits 0 ({p.stderr[-200:]})")
    same_as_reference(out, ref_rows, ref_metrics, "3 shards merged")

    # 8. MPI: rank 0 hands out points to ranks 1 and 2.
    mpirun = shutil.which("mpirun")
    if mpirun:
        out = d("mpi")
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OMPI_MCA_rmaps_base_oversubscribe="1")
        p = subprocess.run([mpirun, "--oversubscribe", "-np", "3", *sw.cmd(out)], capture_output=True, text=True,
                           env=env, timeout=600)
        check(p.returncode == 0, f"mpirun -np 3 exits 0 ({p.stderr[-300:]})")
        r = same_as_reference(out, ref_rows, ref_metrics, "mpirun -np 3")
        check({x["worker"] for x in r} <= {"rank 1", "rank 2"} and len({x["worker"] for x in r}) == 2,
              f"ranks 1 and 2 trained ({sorted({x['worker'] for x in r})})")
    else:
        check(False, "mpirun is installed (scripts/install-deps.sh installs openmpi-bin)")

    # 9. Bad sweep files exit 2 with the key, the value and what is allowed.
    bad = os.path.join(a.dir, "bad.toml")
    with open(bad, "w") as f:
        f.write('base = "%s"\n[[axis]]\nkey = "stages.0.lr"\nlogspace = { from = 0.0, to = 0.1, num = 3 }\n'
                % os.path.abspath(os.path.join(a.examples, "smoke.toml")))
    p = subprocess.run([a.ihlab, "sweep", bad, "--out", d("bad")], capture_output=True, text=True)
    check(p.returncode == 2 and "axis[0].logspace" in p.stderr and "from > 0" in p.stderr,
          f"a bad sweep file: exit 2 naming the key ({p.stderr.strip()[:160]})")

    # 10. A reproduction's seeds (reproduce --seeds 3) in two worker processes equal a serial run:
    # the same claims over seeds, the same seed directories; a rerun trains nothing.
    outs = {}
    for label, extra in [("serial", ["--workers", "1"]), ("workers", ["--workers", "2"])]:
        out = d(f"repro_seeds_{label}")
        p = subprocess.run([a.ihlab, "reproduce", "smoke", "--quick", "--seeds", "3", "--out", out, *extra],
                           capture_output=True, text=True)
        check(p.returncode == 0, f"reproduce smoke --quick --seeds 3 ({label}) exits 0 ({p.stderr[-300:]})")
        with open(os.path.join(out, "summary.json")) as f:
            outs[label] = json.load(f)
    # Without --workers: one worker per core (auto), the same results again.
    out = d("repro_seeds_auto")
    p = subprocess.run([a.ihlab, "reproduce", "smoke", "--quick", "--seeds", "3", "--out", out],
                       capture_output=True, text=True)
    check(p.returncode == 0, f"reproduce smoke --quick --seeds 3 (default workers) exits 0 ({p.stderr[-300:]})")
    with open(os.path.join(out, "summary.json")) as f:
        outs["auto"] = json.load(f)
    check([c.get("seeds") for c in outs["auto"]["claims"]] == [c.get("seeds") for c in outs["serial"]["claims"]],
          "reproduce --seeds 3 without --workers (one per core): the same per-seed values as serially")
    ser, wrk = outs["serial"], outs["workers"]
    check([c.get("seeds") for c in ser["claims"]] == [c.get("seeds") for c in wrk["claims"]] and
          all(c.get("seeds") and len(c["seeds"]["values"]) == 3 for c in ser["claims"]),
          "reproduce --seeds 3: per-seed values and intervals equal with --workers 2 and serially")
    db = sqlite3.connect(os.path.join(d("repro_seeds_workers"), "seeds.db"))
    ws = [r[0] for r in db.execute("SELECT worker FROM points WHERE status = 'done'")]
    db.close()
    check(len(ws) == 2 and all(w.startswith("pid") for w in ws), f"the 2 further seeds ran in worker processes ({ws})")
    seed1 = os.path.join(d("repro_seeds_workers"), wrk["seeds"]["runs"][0]["dir"], "metrics.csv")
    before = os.path.getmtime(seed1)
    p = subprocess.run([a.ihlab, "reproduce", "smoke", "--quick", "--seeds", "3", "--workers", "2", "--out",
                        d("repro_seeds_workers")], capture_output=True, text=True)
    check(p.returncode == 0 and
          os.path.getmtime(seed1) == before,
          f"rerunning reproduce --seeds trains no finished seed again ({p.stderr[-200:]})")

    print(f"\n{len(FAILURES)} check(s) failed" if FAILURES else "\nall sweep checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
