#!/usr/bin/env bash
# The main job: install dependencies, build, and reproduce the flagship experiment, chen2024-joint
# (Chen et al. 2024: a two-layer transformer learns a generalized induction head), on its embedded
# default configuration, shortened from 50000 to 15000 full-batch steps so it finishes in about
# two minutes on 2 cores. Prints the claims table and ends by pointing at the HTML report.
#   IHLAB_OUT=DIR   run directory (default runs/flagship)
#   IHLAB_FULL=1    the paper's full 50000 steps (about 6 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/build.sh release
out=${IHLAB_OUT:-runs/flagship}
rm -rf "$out"
steps=()
[ "${IHLAB_FULL:-0}" = 1 ] || steps=(stages.0.steps=15000)
./build/ihlab reproduce chen2024-joint --out "$out" "${steps[@]}"
echo
echo "Open the report in a browser: file://$(realpath "$out")/report.html"
echo "(paper-style figures, SVG and PNG: $out/figures/)"
