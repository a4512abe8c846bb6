#!/usr/bin/env python3
"""A reproduction's main run and its variants trained at the same time give what they give one after
the other: `ihlab reproduce chen2024-three-stage --quick` with `--workers 1` (the main run with the
config's threads, then its variant) and with `--workers 2` (the main run on one thread in the
coordinating process beside the variant's worker process). The main run's and the variant's
metrics.csv must be equal bit for bit, the claims the same, and the concurrent run must say that it
ran the variant beside the main run.

Usage: reproduce_workers_check.py --ihlab BUILD/ihlab --dir WORK_DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

FAILURES = []
NAME = "chen2024-three-stage"
VARIANT = "three-parents"


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ihlab", required=True)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.dir, ignore_errors=True)
    os.makedirs(a.dir)
    out = {}
    for workers in ("1", "2"):
        d = os.path.join(a.dir, "workers-" + workers)
        p = subprocess.run([a.ihlab, "reproduce", NAME, "--quick", "--out", d, "--workers", workers],
                           capture_output=True, text=True, timeout=600)
        check(p.returncode == 0, f"--workers {workers} exits 0 ({p.stderr[-300:]})")
        beside = "training beside the main run" in p.stdout
        check(beside == (workers == "2"), f"--workers {workers}: variant beside the main run: {beside}")
        out[workers] = d
    if FAILURES:
        return 1
    for rel in ("metrics.csv", os.path.join("runs", VARIANT, "metrics.csv")):
        check(read(os.path.join(out["1"], rel)) == read(os.path.join(out["2"], rel)), f"{rel} equal bit for bit")
    claims = [json.load(open(os.path.join(out[w], "summary.json")))["claims"] for w in ("1", "2")]
    verdicts = [[(c["name"], c["pass"], c["measured"]) for c in cl] for cl in claims]
    check(verdicts[0] == verdicts[1] and len(verdicts[0]) > 0, f"the same {len(verdicts[0])} claims, measured values and verdicts")
    if not FAILURES:
        shutil.rmtree(a.dir, ignore_errors=True)
    print("FAILED: " + "; ".join(FAILURES) if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
