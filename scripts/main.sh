#!/usr/bin/env bash
# The main job: install dependencies, build, and reproduce the flagship experiment, chen2024-joint
# (Chen et al. 2024: a two-layer transformer learns a generalized induction head), on its embedded
# default configuration: the paper's 50000 full-batch steps, about 1.7 minutes on 2 cores. Prints
# the claims table and ends by pointing at the HTML report.
#   IHLAB_OUT=DIR   run directory (default runs/flagship)
#   IHLAB_SHORT=1   15000 steps (about 35 s), the main job's length before the merged keys
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/build.sh release
out=${IHLAB_OUT:-runs/flagship}
rm -rf "$out"
steps=()
[ "${IHLAB_SHORT:-0}" = 1 ] && steps=(stages.0.steps=15000)
./build/ihlab reproduce chen2024-joint --out "$out" "${steps[@]}"
echo
echo "Open the report in a browser: file://$(realpath "$out")/report.html"
echo "(paper-style figures, SVG and PNG: $out/figures/)"
