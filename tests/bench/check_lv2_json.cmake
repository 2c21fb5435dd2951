# Smoke check for runway-bench-lv2: runs ${BENCH} --quick, requires exit
# status 0 (77, no jalv: skipped) and one JSON object per plugin with numeric
# seconds, worker_ms, runwayd_ms, jalv_ms, ratio_worker and ratio_runway.
# Timings are not asserted. Usage:
#   cmake -DBENCH=path -P check_lv2_json.cmake
cmake_minimum_required(VERSION 3.19)
include(${CMAKE_CURRENT_LIST_DIR}/json_lines.cmake)

if(NOT BENCH)
  message(FATAL_ERROR "set -DBENCH=<runway-bench-lv2>")
endif()

bench_run(out TIMEOUT 170 SKIP_77 COMMAND ${BENCH} --quick)
if(out STREQUAL "SKIP")
  return()
endif()
bench_json_lines(lines "${out}")
list(LENGTH lines n)
if(NOT n EQUAL 3)
  message(FATAL_ERROR "expected 3 plugins, got ${n} lines:\n${out}")
endif()
foreach(line IN LISTS lines)
  bench_require_type("${line}" STRING bench plugin uri)
  bench_require_type("${line}" NUMBER seconds worker_ms runwayd_ms jalv_ms ratio_worker ratio_runway)
endforeach()
message(STATUS "valid JSON lines from ${BENCH}:\n${out}")
