#!/usr/bin/env bash
# format_test.sh CLANG_FORMAT ROOT: every C source and header of runway is as
# .clang-format lays it out. Lists the files that are not, with the first lines
# clang-format would change, and exits 1; `clang-format -i FILE` mends one.
set -euo pipefail
clang_format=$1
root=$2
cd "$root"
bad=0
checked=0
while IFS= read -r -d '' f; do
  checked=$((checked + 1))
  if ! out=$("$clang_format" --style=file "$f" | diff -u "$f" - 2>&1); then
    bad=$((bad + 1))
    echo "not formatted: $f"
    printf '%s\n' "$out" | sed -n '3,14p'
  fi
done < <(find base shm proto daemon worker clients tests -type f \( -name '*.c' -o -name '*.h' \) \
  -not -path 'tests/fuzz/corpus/*' -print0 | sort -z)
echo "$checked files checked, $bad not formatted"
[ "$bad" -eq 0 ]
