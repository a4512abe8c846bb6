#!/usr/bin/env bash
# Times one training step in ihlab and in PyTorch on identical inputs.
#   bash bench/run.sh WORKLOAD          (env: STEPS=200 WARMUP=10 THREADS=2 DUMP=<dir>
#                                         IHLAB_BUILD_DIR=build IHLAB_SKIP_BUILD=0)
# Builds the release tree (scripts/build.sh; skipped with IHLAB_SKIP_BUILD=1, e.g. when
# IHLAB_BUILD_DIR points at another configured release tree), runs the workload's timer from
# $IHLAB_BUILD_DIR, which dumps params + batch, then the workload's PyTorch script on that dump.
# Fails unless both first-step losses agree to 1e-4 relative (a speedup over different math means
# nothing). The transformer workloads also print a "flops:" line (matmul FLOP rate of the ihlab
# step and the measured GEMM peak). Last line of output:
#   WORKLOAD ihlab_ms=<ms> pytorch_ms=<ms> speedup=<pytorch_ms / ihlab_ms> pytorch_blas=<kind>
# The PyTorch side is the best a user has: PyTorch on an optimized BLAS. `scripts/install-deps.sh
# --bench` installs Debian's OpenBLAS (libopenblas0-pthread), which the alternatives system then
# gives to python3-torch; the PyTorch script prints which BLAS it found (pytorch_blas=...,
# bench/torch_blas.py), and a run against Debian's reference BLAS prints no ratio (exit 3).
set -euo pipefail
cd "$(dirname "$0")/.."

# Workload -> ihlab timer, PyTorch twin, and PyTorch step count (its steps are slower, so fewer);
# IHLAB_STEPS lowers ihlab's default of 200 steps for slow workloads.
# A new workload needs a timer (a factory in bench/bench_step.cpp or its own program) and a line in
# each table. edelman-step and wide-step share bench_transformer_step (workload = its first arg).
build_dir=${IHLAB_BUILD_DIR:-build}
declare -A IHLAB_BIN=(
  [smoke-step]=$build_dir/bench_step
  [chen-step]=$build_dir/bench_chen_step
  [edelman-step]=$build_dir/bench_transformer_step
  [wide-step]=$build_dir/bench_transformer_step
  [musat-full-step]=$build_dir/bench_musat_full_step
)
declare -A TORCH_SCRIPT=(
  [smoke-step]=bench/torch_smoke_step.py
  [chen-step]=bench/torch_chen_step.py
  [edelman-step]=bench/torch_transformer_step.py
  [wide-step]=bench/torch_transformer_step.py
  [musat-full-step]=bench/torch_musat_full_step.py
)
declare -A TORCH_STEPS=(
  [smoke-step]=200
  [chen-step]=20
  [edelman-step]=20
  [wide-step]=10
  [musat-full-step]=5
)
# ihlab step count where 200 would take minutes (STEPS= overrides both sides).
declare -A IHLAB_STEPS=(
  [wide-step]=30
  [musat-full-step]=20
)

known=$(printf '%s\n' "${!TORCH_SCRIPT[@]}" | sort | tr '\n' ' ')
if [ $# -ne 1 ] || [ -z "${TORCH_SCRIPT[$1]+x}" ]; then
  echo "bench/run.sh: unknown or missing workload '${1:-}' (known: ${known% })" >&2
  exit 2
fi
workload=$1
steps=${STEPS:-${IHLAB_STEPS[$workload]:-200}} warmup=${WARMUP:-10} threads=${THREADS:-2}
dump=${DUMP:-$build_dir/bench/$workload}
py=/usr/bin/python3  # Debian's python has torch; the pyenv python on PATH does not

if [ "${IHLAB_SKIP_BUILD:-0}" != 1 ]; then
  bash scripts/install-deps.sh --bench >&2  # idempotent; brings python3-torch and OpenBLAS
  if [ "$build_dir" = build ]; then
    bash scripts/build.sh release >&2  # build logs to stderr so stdout stays the results
  else  # another configured tree: build just this timer
    cmake --build "$build_dir" --target "$(basename "${IHLAB_BIN[$workload]}")" >&2
  fi
fi

common=(--dump "$dump" --warmup "$warmup" --threads "$threads")
ihlab_out=$("${IHLAB_BIN[$workload]}" "$workload" "${common[@]}" --steps "$steps")
torch_out=$("$py" "${TORCH_SCRIPT[$workload]}" "${common[@]}" --steps "${STEPS:-${TORCH_STEPS[$workload]}}")
echo "ihlab:   $(echo $ihlab_out)"
echo "pytorch: $(echo $torch_out)"
if grep -q 'flops_per_step=' <<<"$ihlab_out"; then  # the transformer timer also reports its FLOP rate
  echo "flops:   $(grep -o 'flops_per_step=[^ ]* gflops=[^ ]* peak_gflops=[^ ]* fraction_of_peak=[^ ]*' <<<"$ihlab_out")" \
    "$(grep -o 'theoretical_gflops=.*fraction_of_theoretical=[^ ]*' <<<"$ihlab_out")"
fi

# value KEY TEXT: the number after KEY= in TEXT
value() { grep -o "$1=[^ ]*" <<<"$2" | head -1 | cut -d= -f2 || true; }
ihlab_ms=$(value ihlab_ms "$ihlab_out")
torch_ms=$(value pytorch_ms "$torch_out")
l_ihlab=$(value loss_first "$ihlab_out")
l_torch=$(value loss_first "$torch_out")
blas=$(value pytorch_blas "$torch_out")
if [ -z "$ihlab_ms" ] || [ -z "$torch_ms" ]; then
  echo "bench/run.sh: $workload: could not read the timings (outputs above)" >&2
  exit 1
fi

if ! awk -v a="$l_ihlab" -v b="$l_torch" 'BEGIN {
      d = a - b; if (d < 0) d = -d; m = (a < 0 ? -a : a); if ((b < 0 ? -b : b) > m) m = (b < 0 ? -b : b)
      exit !(a == a + 0 && b == b + 0 && d <= 1e-4 * m) }'; then
  echo "bench/run.sh: $workload: first-step losses disagree: ihlab $l_ihlab vs pytorch $l_torch (tolerance 1e-4 relative)" >&2
  exit 1
fi
if [ "$blas" = reference ] || [ -z "$blas" ]; then
  echo "bench/run.sh: $workload: PyTorch runs on Debian's reference BLAS ($(value blas_lib "$torch_out")), not the" \
    "optimized BLAS a user would have; no ratio printed. Install it: bash scripts/install-deps.sh --bench" >&2
  exit 3
fi
awk -v w="$workload" -v a="$ihlab_ms" -v b="$torch_ms" -v blas="$blas" \
  'BEGIN { printf "%s ihlab_ms=%.3g pytorch_ms=%.3g speedup=%.3g pytorch_blas=%s\n", w, a, b, b / a, blas }'
