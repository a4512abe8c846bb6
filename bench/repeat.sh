#!/usr/bin/env bash
# Runs bench/run.sh WORKLOAD several times and prints the median and range of each figure: this
# machine is shared and noisy, so one run's ratio is not a result.
#   bash bench/repeat.sh WORKLOAD [RUNS=5]      (env as for bench/run.sh)
# Last line:
#   WORKLOAD runs=<n> ihlab_ms=<median> [<min>, <max>] pytorch_ms=<median> [<min>, <max>]
#            speedup=<median> [<min>, <max>] pytorch_blas=<kind>
set -euo pipefail
cd "$(dirname "$0")/.."
workload=${1:?usage: bench/repeat.sh WORKLOAD [RUNS]}
runs=${2:-5}
lines=()
for i in $(seq 1 "$runs"); do
  # Build (and install) once, before the first run.
  out=$( ([ "$i" -gt 1 ] && export IHLAB_SKIP_BUILD=1; bash bench/run.sh "$workload") | tail -n 1)
  echo "run $i: $out" >&2
  lines+=("$out")
done
printf '%s\n' "${lines[@]}" | python3 -c '
import re, statistics, sys
w, runs = sys.argv[1], sys.argv[2]
rows = [dict(re.findall(r"(\w+)=(\S+)", l)) for l in sys.stdin if l.strip()]
def f(k):
    v = sorted(float(r[k]) for r in rows)
    return f"{k}={statistics.median(v):.3g} [{v[0]:.3g}, {v[-1]:.3g}]"
blas = {r.get("pytorch_blas", "?") for r in rows}
print(w, f"runs={len(rows)}", f("ihlab_ms"), f("pytorch_ms"), f("speedup"), "pytorch_blas=" + ",".join(sorted(blas)))
' "$workload" "$runs"
