#!/usr/bin/env bash
# Installs what is missing, builds runway and runs every test through ctest:
# the normal build (warnings are errors) runs all tests (the Python and Go
# bindings' unit tests and example workers among them, and the integration
# tests of audio on PipeWire as well as on JACK), then the integration tests
# once more under load (below), an ASan/UBSan build runs the unit, stress and
# bad-input tests again, a TSan build runs the ring and hand-over stress tests
# and a daemon scenario against a TSan-built runwayd, and a clang build fuzzes
# the control protocol and the segment readers for a short while
# (RUNWAY_FUZZ_SECONDS per target, default 30). Exits non-zero on any failure.
#
# Under load: the integration tests run again with RUNWAY_TEST_LOAD_LOOPS
# (default 1) busy loops of a shell at normal priority beside them and jackd
# without real-time scheduling (RUNWAY_TEST_NO_REALTIME=1), as on virtual
# machines that refuse SCHED_FIFO: the graph and the measuring clients then
# run late, and the tests must wait that out, not fail on it (nor pass on no
# audio). RUNWAY_TEST_LOAD_LOOPS=0 leaves that pass out.
#
#   RUNWAY_TEST_LOAD=1 scripts/test.sh    the normal build and the loaded pass only
#
# jackd is required: without it the integration tests fail here
# (RUNWAY_TEST_REQUIRE_JACKD=1) instead of reporting a skip.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
cd "$RUNWAY_ROOT"

install_packages "${RUNWAY_PACKAGES[@]}"
export RUNWAY_TEST_REQUIRE_JACKD=1
load_loops=${RUNWAY_TEST_LOAD_LOOPS:-1}

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
# The PipeWire backend is named here: its absence must fail the build, not skip its tests.
configure_and_build build -DRUNWAY_WERROR=ON -DRUNWAY_PIPEWIRE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo

# The integration tests with busy loops beside them, jackd without real-time scheduling.
run_loaded() {
  if [ "$load_loops" -le 0 ]; then
    return 0
  fi
  start_busy_loops "$load_loops"
  # On JACK only: the PipeWire runs of the same tests are the slow half of the matrix.
  RUNWAY_TEST_NO_REALTIME=1 run_ctest "integration tests beside $load_loops busy loop(s), jackd not real-time" \
    build -L integration -LE pipewire
  stop_busy_loops
}

if [ -n "${RUNWAY_TEST_LOAD:-}" ] && [ "${RUNWAY_TEST_LOAD}" != 0 ]; then
  [ "$load_loops" -gt 0 ] || load_loops=1
  run_loaded
  if [ $status -ne 0 ]; then
    log "FAILED: see the ctest output above"
  else
    log "the integration tests passed under load"
  fi
  exit $status
fi

run_ctest "all tests" build
run_loaded

log "build with AddressSanitizer and UndefinedBehaviorSanitizer"
configure_and_build build-asan -DRUNWAY_WERROR=ON -DRUNWAY_ASAN=ON -DCMAKE_BUILD_TYPE=Debug
run_ctest "unit, stress and bad-input tests under ASan/UBSan (JACK)" build-asan -L 'unit|stress|asan' -LE pipewire

log "build with ThreadSanitizer"
configure_and_build build-tsan -DRUNWAY_WERROR=ON -DRUNWAY_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_ctest "ring stress tests and a TSan-built runwayd under TSan (JACK)" build-tsan -L tsan -LE pipewire

# libFuzzer needs clang; only the fuzz targets are built. The seed corpora are
# replayed once (ctest -L fuzz), then each target fuzzes from a copy of its
# corpus in a temporary directory, so a run never changes the repository.
# Crashing inputs are kept in build-fuzz/artifacts.
log "build the fuzz targets with clang (libFuzzer, ASan, UBSan)"
cmake -S "$RUNWAY_ROOT" -B "$RUNWAY_ROOT/build-fuzz" -DCMAKE_C_COMPILER=clang -DRUNWAY_FUZZ=ON \
  -DRUNWAY_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$RUNWAY_ROOT/build-fuzz" -j"$(nproc)" --target fuzz_request fuzz_segment
run_ctest "fuzz corpus replay" build-fuzz -L fuzz
fuzz_seconds=${RUNWAY_FUZZ_SECONDS:-30}
mkdir -p "$RUNWAY_ROOT/build-fuzz/artifacts"
for target in fuzz_request fuzz_segment; do
  corpus=$(mktemp -d)
  cp -R "$RUNWAY_ROOT/tests/fuzz/corpus/$target/." "$corpus"
  dict=()
  if [ -f "$RUNWAY_ROOT/tests/fuzz/$target.dict" ]; then
    dict=(-dict="$RUNWAY_ROOT/tests/fuzz/$target.dict")
  fi
  log "fuzz $target for $fuzz_seconds s"
  if ! "$RUNWAY_ROOT/build-fuzz/bin/$target" -max_total_time="$fuzz_seconds" -timeout=10 \
      -print_final_stats=1 -artifact_prefix="$RUNWAY_ROOT/build-fuzz/artifacts/$target-" \
      "${dict[@]}" "$corpus" 2>"$corpus.log"; then
    tail -n 60 "$corpus.log" >&2
    log "$target found a crash; the input is in build-fuzz/artifacts"
    status=1
  else
    grep -E '^(#[0-9]+ +DONE|stat::)' "$corpus.log" >&2 || true
  fi
  rm -rf "$corpus" "$corpus.log"
done

if [ $status -ne 0 ]; then
  log "FAILED: see the ctest output above"
else
  log "all test runs passed"
fi
exit $status
