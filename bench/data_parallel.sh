#!/usr/bin/env bash
# Data-parallel speedup of one training run (train/data_parallel.h): the full disentangled model of
# musat2025-full-scaling at N = 24 (D = 48, fresh batches of 1024, float64, SGD), STEPS steps with
# data.shards = RANKS, trained in one process (one thread) and under `mpirun -np RANKS` (one thread
# per rank), RUNS times each; prints the median and range of each wall time and of the speedup, and
# fails unless every run's metrics.csv is the one-process run's, bit for bit.
#   bash bench/data_parallel.sh [RUNS=3] [RANKS=2]     (env: IHLAB_BIN, STEPS=60, PAIRS=24)
# Last line:
#   data-parallel ranks=<P> runs=<n> one_process_s=<median> [<min>, <max>] mpi_s=... speedup=...
# On one machine the ranks share its cores: RANKS above the core count measures contention, not
# scaling. Across machines the same command runs under the cluster's mpirun / srun.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3} ranks=${2:-2}
bin=${IHLAB_BIN:-build/ihlab} steps=${STEPS:-60} pairs=${PAIRS:-24}
[ -x "$bin" ] || bash scripts/build.sh release >&2
command -v mpirun >/dev/null || { echo "bench/data_parallel.sh: mpirun not found (scripts/install-deps.sh installs openmpi-bin)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # containers run as root
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/dp.toml" <<EOF
name = "data-parallel-bench"
seed = 0
dtype = "float64"
threads = 1
[task]
name = "item-label"
pairs = $pairs
dim = $((2 * pairs))
vectors = "orthonormal"
positions = "random"
query = "last"
[model]
name = "disentangled"
[data]
mode = "fresh"
batch_size = 1024
val_size = 512
shards = $ranks
[log]
every = 20
attention_snapshots = 0
head_scores = 0
checkpoint_every = 0
[[stages]]
name = "gd"
optimizer = "sgd"
lr = $(awk -v n="$pairs" 'BEGIN { print n / 2 }')
steps = $steps
EOF
wall() { python3 -c "import json, sys; print(json.load(open(sys.argv[1] + '/summary.json'))['wall_seconds'])" "$1"; }
lines=()
for i in $(seq 1 "$runs"); do
  "$bin" train "$work/dp.toml" --out "$work/one-$i" >/dev/null
  mpirun --oversubscribe -np "$ranks" "$bin" train "$work/dp.toml" --out "$work/mpi-$i" >/dev/null
  for d in "one-$i" "mpi-$i"; do
    cmp -s "$work/one-1/metrics.csv" "$work/$d/metrics.csv" ||
      { echo "bench/data_parallel.sh: $d's metrics.csv differs from one process's" >&2; exit 1; }
  done
  line="one_process_s=$(wall "$work/one-$i") mpi_s=$(wall "$work/mpi-$i")"
  echo "run $i: $line" >&2
  lines+=("$line")
done
printf '%s\n' "${lines[@]}" | python3 -c '
import re, statistics, sys
rows = [dict((k, float(v)) for k, v in re.findall(r"(\w+)=(\S+)", l)) for l in sys.stdin if l.strip()]
for r in rows:
    r["speedup"] = r["one_process_s"] / r["mpi_s"]
def f(k):
    v = sorted(r[k] for r in rows)
    return f"{k}={statistics.median(v):.3g} [{v[0]:.3g}, {v[-1]:.3g}]"
print(f"data-parallel ranks={sys.argv[1]} runs={len(rows)}", f("one_process_s"), f("mpi_s"), f("speedup"))
' "$ranks"
