#!/usr/bin/env bash
# Time per training step against the size of the work, with the fitted exponent:
#   bash bench/scaling.sh [chen-step|edelman-step|musat-full-step|all]      (default all)
#   env: IHLAB_BUILD_DIR=build THREADS=2 REPEATS=3 TARGET_MS=2000 WARMUP=5 STEPS=<auto>
#        IHLAB_SKIP_BUILD=0 (1: use the timers already in $IHLAB_BUILD_DIR)
# For each workload, one axis at a time with the other at its default:
#   chen-step     (bench_chen_step: GIH model, full batch, SGD)
#     length      L in 50 100 200 400, 9000 sequences, float32 and float64
#     sequences   2250 4500 9000 18000 sequences, L = 100, float32 and float64
#   edelman-step  (bench_transformer_step: 2-layer attention-only transformer, AdamW)
#     length      tokens per sequence 51 101 201 401, batch 64
#     batch       16 32 64 128 sequences per step, length 101
#   musat-full-step  (bench_musat_full_step: the full disentangled model of Musat et al., float64, SGD)
#     length      L = 2N + 1 in 17 33 65 129 (N = 8 .. 64), D = 128, batch 256
#     batch       64 128 256 512 sequences per step, L = 65 (N = 32), D = 128
# Every size runs REPEATS times; the table shows the median ms per step (each run's mean over its
# steps, ihlab_ms) and the min-max over the runs. The step count per size comes from a short pilot
# run (3 steps) so that a run takes about TARGET_MS (10..5000 steps); STEPS fixes it instead.
# Each table is followed by the least-squares fit of ln(ms) on ln(size): time ~ size^k with k's 95%
# interval (Student t, 2 dof for 4 sizes) and R^2 (bench/scaling_fit.py), and a line
#   scaling <workload> <axis> k=<k> [lo, hi] r2=<r2>
# repeated together at the end.
# Timings on a shared machine are noisy: the script prints `uptime` before and after. With libgomp,
# other busy processes on the same cores can make every parallel region wait for a time slice (a
# flat floor of ~100 ms per step, whatever the size), so the script sets OMP_WAIT_POLICY=passive
# unless the caller set it (measured: edelman-step at L = 101, 116 ms with the default policy on a
# busy machine, 5.4 ms passive, 5.3 ms with 1 thread); the environment passes through to the timers.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

build_dir=${IHLAB_BUILD_DIR:-build}
threads=${THREADS:-2} repeats=${REPEATS:-3} target_ms=${TARGET_MS:-2000} warmup=${WARMUP:-5}
py=/usr/bin/python3

workload=${1:-all}
case "$workload" in
  chen-step | edelman-step | musat-full-step) workloads=("$workload") ;;
  all) workloads=(chen-step edelman-step musat-full-step) ;;
  *)
    echo "bench/scaling.sh: unknown workload '$workload' (known: chen-step edelman-step musat-full-step all)" >&2
    exit 2
    ;;
esac
if [ $# -gt 1 ]; then
  echo "bench/scaling.sh: one workload at most (got $*)" >&2
  exit 2
fi

if [ "${IHLAB_SKIP_BUILD:-0}" != 1 ]; then
  ninja -C "$build_dir" bench_chen_step bench_transformer_step bench_musat_full_step >&2
fi
chen=$build_dir/bench_chen_step tf=$build_dir/bench_transformer_step musat=$build_dir/bench_musat_full_step
for b in "$chen" "$tf" "$musat"; do
  [ -x "$b" ] || { echo "bench/scaling.sh: $b is missing (build it, or unset IHLAB_SKIP_BUILD)" >&2; exit 1; }
done

dump=$(mktemp -d "${TMPDIR:-/tmp}/ihlab-scaling.XXXXXX")
trap 'rm -rf "$dump"' EXIT

# ms CMD...: the ihlab_ms a timer prints
ms() {
  local out
  out=$("$@" --dump "$dump" --threads "$threads") || { echo "bench/scaling.sh: failed: $*" >&2; exit 1; }
  grep -o 'ihlab_ms=[^ ]*' <<<"$out" | head -1 | cut -d= -f2
}

summary=()
# axis WORKLOAD AXIS COLUMN TITLE OPTION SIZES -- CMD...: one table, CMD + OPTION SIZE per point
axis() {
  local wl=$1 ax=$2 col=$3 title=$4 opt=$5 sizes=$6
  shift 7
  local points=() size steps pilot runs r
  for size in $sizes; do
    if [ -n "${STEPS:-}" ]; then
      steps=$STEPS
    else
      pilot=$(ms "$@" "$opt" "$size" --steps 3 --warmup 1)
      steps=$(awk -v t="$target_ms" -v p="$pilot" 'BEGIN { s = int(t / p + 0.5); if (s < 10) s = 10; if (s > 5000) s = 5000; print s }')
    fi
    runs=""
    for ((r = 0; r < repeats; ++r)); do
      runs+="${runs:+,}$(ms "$@" "$opt" "$size" --steps "$steps" --warmup "$warmup")"
    done
    echo "  $wl $ax $size: steps $steps, ms $runs" >&2
    points+=("$size:$steps:$runs")
  done
  local table
  table=$("$py" bench/scaling_fit.py "$wl" "$ax" "$col" "$title" "${points[@]}")
  grep -v '^scaling ' <<<"$table"
  summary+=("$(grep '^scaling ' <<<"$table")")
}

echo "uptime before: $(uptime)"
echo "cores: $(nproc), threads: $threads, repeats: $repeats, OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-<unset>}," \
  "timers from $build_dir"
echo
for wl in "${workloads[@]}"; do
  echo "### $wl"
  echo
  case "$wl" in
    chen-step)
      for dt in float32 float64; do
        axis chen-step "length-$dt" L "chen-step, sequence length L (9000 sequences, $dt, $threads threads)" \
          --length "50 100 200 400" -- "$chen" chen-step --dtype "$dt"
        axis chen-step "sequences-$dt" sequences "chen-step, batch = training sequences (L = 100, $dt, $threads threads)" \
          --sequences "2250 4500 9000 18000" -- "$chen" chen-step --dtype "$dt"
      done
      ;;
    edelman-step)
      axis edelman-step length L "edelman-step, tokens per sequence L (batch 64, float32, $threads threads)" \
        --length "51 101 201 401" -- "$tf" edelman-step
      axis edelman-step batch batch "edelman-step, batch (L = 101, float32, $threads threads)" \
        --batch "16 32 64 128" -- "$tf" edelman-step
      ;;
    musat-full-step)
      axis musat-full-step length L "musat-full-step, tokens per sequence L = 2N + 1 (D = 128, batch 256, float64, $threads threads)" \
        --length "17 33 65 129" -- "$musat" musat-full-step
      axis musat-full-step batch batch "musat-full-step, batch (L = 65, D = 128, float64, $threads threads)" \
        --batch "64 128 256 512" -- "$musat" musat-full-step
      ;;
  esac
done
echo "uptime after: $(uptime)"
printf '%s\n' "${summary[@]}"
