#!/usr/bin/env bash
# Wall and CPU time of every reproduction's full form, one after another, and its claims.
#   bash bench/reproductions.sh [OUT_ROOT] [extra reproduce arguments, e.g. --controls --workers 2]
#     (env: IHLAB_BIN=build/ihlab; NAMES="olsson2022-repeated-tokens reddy2023-bursty" for a subset;
#      KEEP=1 continues in the OUT_ROOT/NAME directories of an earlier run instead of starting afresh:
#      with --controls on finished runs only the controls run, and the times are theirs)
# Each reproduction runs as `ihlab reproduce NAME --out OUT_ROOT/NAME --seeds 1 [extra...]` (one seed:
# the figure is the cost of one reproduction, whatever its default seed count), timed by GNU time.
# Prints one line per reproduction and ends with
#   total wall_s=<seconds> cpu_s=<seconds> claims_failed=<count>
# where claims_failed counts the claims (and controls) reported FAIL or NOT EVALUATED in the full runs.
# The output directories stay, with each run's report.html and summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."

out_root=${1:-runs/bench-reproductions}
shift || true
bin=${IHLAB_BIN:-build/ihlab}
[ -x "$bin" ] || { echo "bench/reproductions.sh: no ihlab binary at $bin (build first: bash scripts/build.sh)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/reproductions.sh: GNU time is missing (apt-get install time)" >&2; exit 2; }
names=${NAMES:-$("$bin" list | awk '/^reproductions/ {on = 1; next} on && NF {print $1}')}
mkdir -p "$out_root"

total_wall=0 total_cpu=0 failed=0
printf '%-30s %9s %9s %8s  %s\n' reproduction wall_s cpu_s failed "all claims"
for name in $names; do
  out="$out_root/$name"
  [ "${KEEP:-0}" = 1 ] || rm -rf "$out"
  set +e
  /usr/bin/time -f '%e %U %S' -o "$out.time" "$bin" reproduce "$name" --out "$out" --seeds 1 "$@" > "$out.log" 2>&1
  rc=$?
  set -e
  read -r wall user sys < "$out.time"
  cpu=$(python3 -c "print(round($user + $sys, 1))")
  n_failed=$(grep -cE ' (FAIL|NOT EVALUATED)$|^  must fail .*: (HELD|not evaluated)$' "$out.log" || true)
  verdict=$(tail -n 1 "$out.log")
  [ $rc -eq 0 ] || { verdict="exit status $rc: $verdict"; n_failed=$((n_failed + 1)); }
  printf '%-30s %9.1f %9.1f %8d  %s\n' "$name" "$wall" "$cpu" "$n_failed" "$verdict"
  total_wall=$(python3 -c "print(round($total_wall + $wall, 1))")
  total_cpu=$(python3 -c "print(round($total_cpu + $cpu, 1))")
  failed=$((failed + n_failed))
done
echo "total wall_s=$total_wall cpu_s=$total_cpu claims_failed=$failed"
