# Smoke check for runway-bench-control: runs ${BENCH} --quick, requires exit
# status 0 and two JSON objects, one per line: param_set_rtt (numeric
# median, p99, baseline_median, baseline_p99, ratio_median, ratio_p99) and
# param_audible (numeric period, latency_frames, median_frames, p99_frames,
# min_frames, max_frames, median_ms, p99_ms), each with a boolean pass.
# Timings and pass are not asserted. Usage:
#   cmake -DBENCH=path -P check_control_json.cmake
cmake_minimum_required(VERSION 3.19)

if(NOT BENCH)
  message(FATAL_ERROR "set -DBENCH=<runway-bench-control>")
endif()

execute_process(COMMAND ${BENCH} --quick
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 110)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${BENCH} --quick exited with ${rc}:\n${err}${out}")
endif()
if(out MATCHES "[][;]")
  message(FATAL_ERROR "unexpected [, ] or ; in the output:\n${out}")
endif()

function(require_type line type)
  foreach(field ${ARGN})
    string(JSON got ERROR_VARIABLE jerr TYPE "${line}" ${field})
    if(jerr OR NOT got STREQUAL "${type}")
      message(FATAL_ERROR "field \"${field}\" is missing or not a ${type}: ${line}")
    endif()
  endforeach()
endfunction()

string(REGEX REPLACE "\n$" "" out "${out}")
string(REPLACE "\n" ";" lines "${out}")
set(seen "")
foreach(line IN LISTS lines)
  string(JSON type ERROR_VARIABLE jerr TYPE "${line}")
  if(jerr OR NOT type STREQUAL "OBJECT")
    message(FATAL_ERROR "not a JSON object (${jerr}): ${line}")
  endif()
  string(JSON measure ERROR_VARIABLE jerr GET "${line}" measure)
  if(measure STREQUAL "param_set_rtt")
    require_type("${line}" NUMBER n median p99 baseline_median baseline_p99 ratio_median ratio_p99)
  elseif(measure STREQUAL "param_audible")
    require_type("${line}" NUMBER n period latency_frames median_frames p99_frames min_frames
                 max_frames median_ms p99_ms)
  else()
    message(FATAL_ERROR "not a bench_control line: ${line}")
  endif()
  require_type("${line}" BOOLEAN pass)
  list(APPEND seen ${measure})
endforeach()

if(NOT "${seen}" STREQUAL "param_set_rtt;param_audible")
  message(FATAL_ERROR "expected param_set_rtt and param_audible, got ${seen}:\n${out}")
endif()
message(STATUS "valid JSON lines from ${BENCH}:\n${out}")
