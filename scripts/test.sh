#!/usr/bin/env bash
# Installs what is missing, builds runway and runs every test through ctest:
# the normal build (warnings are errors) runs all tests, an ASan/UBSan build
# runs the unit and stress tests again, and a TSan build runs the ring and
# hand-over stress tests. Exits non-zero on any failure.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
cd "$RUNWAY_ROOT"

install_packages "${RUNWAY_PACKAGES[@]}"

status=0
run_ctest() {
  local name=$1
  shift
  log "ctest ($name)"
  if ! ctest --test-dir "$@" --output-on-failure --timeout 600; then
    status=1
  fi
}

log "build (warnings are errors)"
configure_and_build build -DRUNWAY_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_ctest "all tests" build

log "build with AddressSanitizer and UndefinedBehaviorSanitizer"
configure_and_build build-asan -DRUNWAY_WERROR=ON -DRUNWAY_ASAN=ON -DCMAKE_BUILD_TYPE=Debug
run_ctest "unit and stress tests under ASan/UBSan" build-asan -L 'unit|stress'

log "build with ThreadSanitizer"
configure_and_build build-tsan -DRUNWAY_WERROR=ON -DRUNWAY_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_ctest "ring stress tests under TSan" build-tsan -L tsan

if [ $status -ne 0 ]; then
  log "FAILED: see the ctest output above"
else
  log "all test runs passed"
fi
exit $status
