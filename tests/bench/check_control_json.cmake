# Smoke check for runway-bench-control: runs ${BENCH} --quick, requires exit
# status 0 and two JSON objects, one per line: param_set_rtt (numeric
# median, p99, baseline_median, baseline_p99, ratio_median, ratio_p99) and
# param_audible (numeric period, latency_frames, median_frames, p99_frames,
# min_frames, max_frames, median_ms, p99_ms), each with a boolean pass.
# Timings and pass are not asserted. Usage:
#   cmake -DBENCH=path -P check_control_json.cmake
cmake_minimum_required(VERSION 3.19)
include(${CMAKE_CURRENT_LIST_DIR}/json_lines.cmake)

if(NOT BENCH)
  message(FATAL_ERROR "set -DBENCH=<runway-bench-control>")
endif()

bench_run(out TIMEOUT 110 COMMAND ${BENCH} --quick)
bench_json_lines(lines "${out}")
set(seen "")
foreach(line IN LISTS lines)
  string(JSON measure ERROR_VARIABLE jerr GET "${line}" measure)
  if(measure STREQUAL "param_set_rtt")
    bench_require_type("${line}" NUMBER n median p99 baseline_median baseline_p99 ratio_median ratio_p99)
  elseif(measure STREQUAL "param_audible")
    bench_require_type("${line}" NUMBER n period latency_frames median_frames p99_frames min_frames
                      max_frames median_ms p99_ms)
  else()
    message(FATAL_ERROR "not a bench_control line: ${line}")
  endif()
  bench_require_type("${line}" BOOLEAN pass)
  list(APPEND seen ${measure})
endforeach()

if(NOT "${seen}" STREQUAL "param_set_rtt;param_audible")
  message(FATAL_ERROR "expected param_set_rtt and param_audible, got ${seen}:\n${out}")
endif()
message(STATUS "valid JSON lines from ${BENCH}:\n${out}")
