#!/usr/bin/env bash
# The whole test suite: install dependencies, build release and sanitizer flavours, run the fast
# subset under ASan + UBSan, a bounded fuzzing run of the parsers (scripts/fuzz.sh: about a
# minute, plus its clang build), then every test in the release build. Ends with ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --test
bash scripts/format.sh --check  # the tree is formatted by the repository's .clang-format
bash scripts/build.sh asan
bash scripts/build.sh release

echo "== sanitizer build (ASan + UBSan), fast tests =="
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest --output-on-failure -L fast --timeout 600)

echo "== fuzzing the parsers (libFuzzer, ASan + UBSan), bounded =="
bash scripts/fuzz.sh 60

echo "== release build, all tests =="
cd build && ctest --output-on-failure --timeout 900
