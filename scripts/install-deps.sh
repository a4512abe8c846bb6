#!/usr/bin/env bash
# Installs the Debian packages ihlab needs. Idempotent and quiet when everything is present.
#   scripts/install-deps.sh          what building and running need
#   scripts/install-deps.sh --test   also what the test suite needs (headless Chromium for the
#                                    report check; clang, its sanitizer and libFuzzer runtimes and
#                                    its OpenMP for scripts/fuzz.sh; pytest, nbconvert and
#                                    ipykernel for the Python module's tests)
#   scripts/install-deps.sh --bench  also an optimized BLAS (OpenBLAS) for the PyTorch side of
#                                    bench/run.sh: python3-torch's libblas.so.3 is Debian's
#                                    unoptimized reference BLAS until one is installed
set -euo pipefail

packages=(
  build-essential cmake ninja-build git
  libgtest-dev libgmock-dev libbenchmark-dev
  libeigen3-dev
  libsundials-dev  # CVODE: the stiff (BDF) integrator for gradient flow of small models
  libtomlplusplus-dev libcli11-dev nlohmann-json3-dev libfmt-dev
  libsqlite3-dev sqlite3  # the sweep store (DIR/sweep.db) and the shell to read it
  libopenmpi-dev openmpi-bin  # sweeps across MPI ranks (mpirun -np P ihlab sweep ...)
  python3 python3-numpy python3-torch python3-matplotlib
  pybind11-dev python3-dev python3-pandas  # the Python module (python/)
  time  # GNU time: wall and CPU seconds in bench/reproductions.sh
)
if [ "${1:-}" = "--bench" ]; then
  packages+=(libopenblas0-pthread)
fi
if [ "${1:-}" = "--test" ]; then
  packages+=(chromium clang-format clang libclang-rt-14-dev libomp-dev)
  packages+=(python3-pytest python3-nbconvert python3-ipykernel)  # the module's tests and notebook
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The report's charting library comes from npm at build time; Debian's npm brings node with it.
# A node/npm installed some other way is used as it is.
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "ihlab: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
