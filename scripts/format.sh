#!/usr/bin/env bash
# Formats the project's C++ sources with the repository's .clang-format (Debian's clang-format).
#   scripts/format.sh           rewrite every file in place
#   scripts/format.sh --check   change nothing; list the files that differ and exit 1 if any do
set -euo pipefail
cd "$(dirname "$0")/.."

command -v clang-format >/dev/null || { echo "scripts/format.sh: clang-format is missing (apt-get install clang-format)" >&2; exit 2; }
mapfile -t files < <(git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h' 'bench/*.cpp' 'bench/*.h' 'python/src/*.cpp' 'python/src/*.h')
if [ "${1:-}" = "--check" ]; then
  bad=()
  for f in "${files[@]}"; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done
  if [ ${#bad[@]} -gt 0 ]; then
    echo "format: ${#bad[@]} of ${#files[@]} files differ from .clang-format (run scripts/format.sh):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
  fi
  echo "format: ${#files[@]} files match .clang-format"
else
  clang-format -i "${files[@]}"
fi
