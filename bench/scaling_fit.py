#!/usr/bin/env python3
"""One scaling table of bench/scaling.sh: time per step against the size of the work.

  scaling_fit.py WORKLOAD AXIS COLUMN TITLE SIZE:STEPS:MS[,MS...] ...

Prints a markdown table (size | steps | ms per step, median of the runs | range min-max), the
least-squares fit of ln(ms) = ln(c) + k ln(size) over the medians with k's 95% interval
(Student t, n - 2 degrees of freedom) and R^2, then the summary line
  scaling WORKLOAD AXIS k=<k> [lo, hi] r2=<r2>
Plain Python (no numpy), so it runs on any python3.
"""
import math
import statistics
import sys

# 97.5% quantiles of Student's t, dof 1..30 (two-sided 95% interval).
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t975(dof):
    return T975[dof - 1] if dof <= len(T975) else 1.96 + 2.4 / dof  # within 0.01 of the exact value beyond 30


def fit(sizes, ms):
    """k, (lo, hi) or None, r2, c of ms = c * size^k (least squares in log-log)."""
    x = [math.log(s) for s in sizes]
    y = [math.log(m) for m in ms]
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    syy = sum((b - my) ** 2 for b in y)
    k = sxy / sxx
    b0 = my - k * mx
    sse = sum((b - b0 - k * a) ** 2 for a, b in zip(x, y))
    r2 = 1 - sse / syy if syy > 0 else 1.0
    ci = None
    if n > 2:
        se = math.sqrt(sse / (n - 2) / sxx)
        h = t975(n - 2) * se
        ci = (k - h, k + h)
    return k, ci, r2, math.exp(b0)


def main(argv):
    if len(argv) < 6:
        sys.exit(__doc__)
    workload, axis, column, title = argv[1:5]
    rows = []
    for arg in argv[5:]:
        size, steps, runs = arg.split(":")
        vals = [float(v) for v in runs.split(",")]
        rows.append((float(size), int(steps), vals))
    rows.sort()
    print(f"#### {title}\n")
    print(f"| {column} | steps | ms per step (median of {len(rows[0][2])}) | range (min-max) |")
    print("|---:|---:|---:|---|")
    for size, steps, vals in rows:
        print(f"| {size:g} | {steps} | {statistics.median(vals):.3f} | {min(vals):.3f}-{max(vals):.3f} |")
    sizes = [r[0] for r in rows]
    med = [statistics.median(r[2]) for r in rows]
    print()
    if len(rows) < 2:
        print(f"scaling {workload} {axis} k=nan [nan, nan] r2=nan")
        return
    k, ci, r2, c = fit(sizes, med)
    lo, hi = ci if ci else (float("nan"), float("nan"))
    print(f"Fit (least squares on ln ms vs ln {column}, {len(rows)} points, {len(rows) - 2} dof): "
          f"time ~ {column}^k, k = {k:.3f}, 95% interval [{lo:.3f}, {hi:.3f}], R^2 = {r2:.4f}; "
          f"ms per step ~ {c:.4g} x {column}^{k:.3f}\n")
    print(f"scaling {workload} {axis} k={k:.3f} [{lo:.3f}, {hi:.3f}] r2={r2:.4f}")


if __name__ == "__main__":
    main(sys.argv)
