# The GC-pause benchmark (bench_gc.py): its Go worker (gc_go, a module of its
# own on clients/go, built offline like the binding's example), and a smoke
# run that proves it runs and prints JSON lines. Included from
# tests/bench/CMakeLists.txt.
find_program(RUNWAY_PYTHON3 NAMES python3 HINTS /usr/bin)
find_program(RUNWAY_JACKD jackd)
if(RUNWAY_ASAN OR RUNWAY_FUZZ OR NOT TARGET runwayd OR NOT RUNWAY_PYTHON3 OR NOT RUNWAY_JACKD)
  return()
endif()
set(gc_runtimes python)
if(RUNWAY_GO AND RUNWAY_GO_ENV)
  file(GLOB gc_go_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/gc_go/*.go
    ${CMAKE_CURRENT_LIST_DIR}/gc_go/go.mod ${PROJECT_SOURCE_DIR}/clients/go/*.go)
  add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/bin/runway-bench-gc-go
    COMMAND ${CMAKE_COMMAND} -E env ${RUNWAY_GO_ENV}
      ${RUNWAY_GO} build -o ${CMAKE_BINARY_DIR}/bin/runway-bench-gc-go .
    WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/gc_go
    DEPENDS ${gc_go_sources} runway-worker
    COMMENT "go build tests/bench/gc_go")
  add_custom_target(runway-bench-gc-go ALL DEPENDS ${CMAKE_BINARY_DIR}/bin/runway-bench-gc-go)
  set(gc_runtimes python,go)
endif()
add_test(NAME bench_gc_smoke
  COMMAND ${CMAKE_COMMAND} -DPYTHON=${RUNWAY_PYTHON3}
    "-DARGS=${CMAKE_CURRENT_LIST_DIR}/bench_gc.py;--quick;--latency-ms;20;--runtimes;${gc_runtimes};--bin-dir;$<TARGET_FILE_DIR:runwayd>;--worker-lib;$<TARGET_FILE:runway-worker>"
    -P ${CMAKE_CURRENT_LIST_DIR}/check_gc_json.cmake)
set_tests_properties(bench_gc_smoke PROPERTIES LABELS "bench" TIMEOUT 300)
