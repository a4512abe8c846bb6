#!/usr/bin/env bash
# Configures and builds one flavour of ihlab with CMake + Ninja.
#   scripts/build.sh            release build in build/
#   scripts/build.sh asan       ASan + UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

flavour=${1:-release}
case "$flavour" in
  release) dir=build;      args=(-DCMAKE_BUILD_TYPE=Release) ;;
  # The sanitizer flavour keeps warnings as warnings: ASan/UBSan instrumentation at -O1 changes
  # GCC's flow analysis (-Wmaybe-uninitialized and friends), and the release build is the one held
  # to -Werror.
  asan)    dir=build-asan; args=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1" -DIHLAB_SANITIZE=ON -DIHLAB_WERROR=OFF) ;;
  *) echo "scripts/build.sh: unknown flavour '$flavour' (allowed: release, asan)" >&2; exit 2 ;;
esac

cmake -S . -B "$dir" -G Ninja "${args[@]}" >/dev/null
cmake --build "$dir" --parallel "$(nproc)"
