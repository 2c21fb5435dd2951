#!/usr/bin/env bash
# debian/librunway-worker1.symbols lists exactly the SDK's exported functions,
# so the package's dependency on the library follows its ABI.
# usage: symbols_test.sh SYMBOLS_FILE LIBRARY
set -euo pipefail
symbols=$1
library=$2
want=$(nm -D --defined-only "$library" | awk '$2 == "T" { print $3 }' | sort)
have=$(awk '/^ / { sub(/@.*/, "", $1); print $1 }' "$symbols" | sort)
if [ "$want" != "$have" ]; then
  echo "symbols_test: $symbols and the exports of ${library##*/} differ (< exported, > listed):"
  diff <(echo "$want") <(echo "$have") | grep '^[<>]'
  echo "update the file: one ' NAME@Base VERSION' line per exported function"
  exit 1
fi
echo "symbols_test: $(echo "$want" | wc -l) exported functions, all listed"
