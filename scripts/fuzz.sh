#!/usr/bin/env bash
# Fuzzes every parser of outside input with libFuzzer under ASan + UBSan (tests/fuzz/): builds
# the targets with clang in build-fuzz/, seeds them with the repository's own files
# (examples/*.toml, and checkpoints, metrics.csv, attention.jsonl and latest.json as a run writes
# them) and runs each for a share of the time.
#   scripts/fuzz.sh [SECONDS]          the file and config-text parsers (io/ only; default 60 s)
#   scripts/fuzz.sh --all [SECONDS]    also fuzz_config (the real run schema) and fuzz_resume (the
#                                      trainer), which build the whole library with clang first
# Prints executions and crashes per target and ends with "fuzz: N targets, E executions,
# C crashes"; exits 1 if any target crashed. Inputs found interesting stay in build-fuzz/corpus/
# (the next run starts from them); a crashing input is saved in build-fuzz/artifacts/, and
#   build-fuzz/fuzz_NAME build-fuzz/artifacts/NAME-crash-...
# replays it. Every crash fixed gets a test in tests/test_fuzz_regressions.cpp.
set -euo pipefail
cd "$(dirname "$0")/.."

all=0
if [ "${1:-}" = "--all" ]; then
  all=1
  shift
fi
total=${1:-60}
case "$total" in
  '' | *[!0-9]*) echo "scripts/fuzz.sh: SECONDS must be a whole number, got '$total'" >&2; exit 2 ;;
esac

dir=build-fuzz
targets=(toml safetensors checkpoint metrics attention_log latest)
build_target=fuzz
if [ $all = 1 ]; then
  targets+=(config resume)
  build_target=fuzz_all
fi

launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
start=$(date +%s)
CC=clang CXX=clang++ cmake -S . -B "$dir" -G Ninja -DIHLAB_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -gline-tables-only" "${launcher[@]}" >/dev/null
cmake --build "$dir" --parallel "$(nproc)" --target "$build_target"
echo "fuzz: built in $(($(date +%s) - start)) s"

# Seeds, rewritten on every run; the corpora they grow into are kept.
seeds=$dir/seeds
rm -rf "$seeds"
mkdir -p "$seeds"
"$dir/fuzz_seeds" "$seeds"
for name in toml config; do
  mkdir -p "$seeds/$name"
  for f in examples/*.toml; do
    cp "$f" "$seeds/$name/"
    # The same file with command-line overrides after the marker line.
    { cat "$f"; printf '\n%%%%\nstages.0.lr=0.5\nseed=7\nname=a b\nstages[0].steps=3\n'; } \
      >"$seeds/$name/$(basename "$f" .toml)-overrides"
  done
done
if [ $all = 1 ]; then
  IHLAB_FUZZ_WRITE_SEEDS="$seeds/resume" "$dir/fuzz_resume" >/dev/null
fi

dict_for() {
  case "$1" in
    toml | config) echo tests/fuzz/toml.dict ;;
    metrics) echo tests/fuzz/csv.dict ;;
    *) echo tests/fuzz/json.dict ;;
  esac
}

per=$((total / ${#targets[@]}))
[ "$per" -ge 1 ] || per=1
execs_total=0
crashes_total=0
mkdir -p "$dir/logs"
for name in "${targets[@]}"; do
  corpus=$dir/corpus/$name
  artifacts=$dir/artifacts/$name
  log=$dir/logs/$name.log
  rm -rf "$artifacts"
  mkdir -p "$corpus" "$artifacts"
  rc=0
  "$dir/fuzz_$name" -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -close_fd_mask=1 -dict="$(dict_for "$name")" -artifact_prefix="$artifacts/$name-" \
    "$corpus" "$seeds/$name" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs=0
  crashes=$(find "$artifacts" -type f \( -name "$name-crash-*" -o -name "$name-leak-*" -o -name "$name-timeout-*" \
    -o -name "$name-oom-*" \) | wc -l)
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    crashes=1  # died without saving an input (e.g. in its setup): see the log
  fi
  printf 'fuzz_%-14s %3d s  %9d executions  %d crashes\n' "$name" "$per" "$execs" "$crashes"
  if [ "$crashes" -ne 0 ]; then
    grep -m 5 -E 'ERROR|runtime error|property violated|terminate called|what\(\)' "$log" | sed 's/^/    /' || true
    echo "    log: $log; inputs: $artifacts/"
  fi
  execs_total=$((execs_total + execs))
  crashes_total=$((crashes_total + crashes))
done
echo "fuzz: ${#targets[@]} targets, $execs_total executions, $crashes_total crashes ($(($(date +%s) - start)) s with the build)"
[ "$crashes_total" -eq 0 ]
