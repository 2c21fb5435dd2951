# PipeWire: what a slot costs there, against plain filter nodes and against
# runwayd under pw-jack, in one run (bench_pw_load.c). It starts its own
# headless PipeWire through the integration tests' harness, so it is included
# from tests/integration/CMakeLists.txt once the harness is defined.
add_executable(runway-bench-pw-load ${PROJECT_SOURCE_DIR}/tests/bench/bench_pw_load.c)
target_link_libraries(runway-bench-pw-load PRIVATE runway_it_harness runway_base PkgConfig::PIPEWIRE)
target_compile_definitions(runway-bench-pw-load PRIVATE
  "RUNWAY_BENCH_BUILD=\"$<CONFIG>\"" RWB_PW_JACK_DIR="${RUNWAY_PW_JACK_DIR}")
add_test(NAME bench_pw_load_smoke COMMAND runway-bench-pw-load --quick)
set_tests_properties(bench_pw_load_smoke PROPERTIES LABELS "bench;pipewire" TIMEOUT 180)

# Where an impulse a period off comes from, under load: runwayd native against
# runwayd under pw-jack, with a measuring client of PipeWire's own. Run by hand.
add_executable(runway-bench-pw-early ${PROJECT_SOURCE_DIR}/tests/bench/bench_pw_early.c
  ${PROJECT_SOURCE_DIR}/tests/integration/pw_probe.c)
target_link_libraries(runway-bench-pw-early PRIVATE runway_it_harness PkgConfig::PIPEWIRE)
target_compile_definitions(runway-bench-pw-early PRIVATE
  "RUNWAY_BENCH_BUILD=\"$<CONFIG>\"" RWB_PW_JACK_DIR="${RUNWAY_PW_JACK_DIR}")
