# Smoke check for a benchmark: runs ${BENCH} --quick, requires exit status 0
# and one JSON object per line, one line per entry of FRAMES (in order), each
# with numeric frames, ring_ns, memcpy_ns, ratio, target_ns and a boolean pass.
# Timings are not asserted. Usage:
#   cmake -DBENCH=path -DFRAMES="64;128;1024" -P check_json_lines.cmake
cmake_minimum_required(VERSION 3.19)
include(${CMAKE_CURRENT_LIST_DIR}/json_lines.cmake)

if(NOT BENCH)
  message(FATAL_ERROR "set -DBENCH=<benchmark executable>")
endif()

bench_run(out TIMEOUT 100 COMMAND ${BENCH} --quick)
bench_json_lines(lines "${out}")
set(seen "")
foreach(line IN LISTS lines)
  bench_require_type("${line}" NUMBER frames channels iterations ring_ns memcpy_ns ratio target_ns)
  bench_require_type("${line}" BOOLEAN pass)
  string(JSON frames GET "${line}" frames)
  list(APPEND seen ${frames})
endforeach()

if(DEFINED FRAMES AND NOT "${seen}" STREQUAL "${FRAMES}")
  message(FATAL_ERROR "expected cases for frames ${FRAMES}, got ${seen}:\n${out}")
endif()
list(LENGTH lines n)
message(STATUS "${n} valid JSON lines from ${BENCH}")
