# Smoke check for bench_dsp_load.sh: runs ${SCRIPT} --quick --bin-dir ${BIN_DIR},
# requires exit status 0 and four JSON objects, one per line: the configs
# idle, chain8 and runwayd8 (numeric load_avg, load_max, load_stddev) and the
# verdict (numeric target, ratio a number or null, boolean pass). Timings and
# the verdict are not asserted. When the script exits 77 (no jackd), prints
# "runway-bench-skip" for ctest's SKIP_REGULAR_EXPRESSION. Usage:
#   cmake -DSCRIPT=path -DBIN_DIR=dir -P check_dsp_load_json.cmake
cmake_minimum_required(VERSION 3.19)
include(${CMAKE_CURRENT_LIST_DIR}/json_lines.cmake)

if(NOT SCRIPT OR NOT BIN_DIR)
  message(FATAL_ERROR "set -DSCRIPT=<bench_dsp_load.sh> and -DBIN_DIR=<dir of the programs>")
endif()

bench_run(out TIMEOUT 110 SKIP_77 COMMAND ${SCRIPT} --quick --bin-dir ${BIN_DIR})
if(out STREQUAL "SKIP")
  return()
endif()
bench_json_lines(lines "${out}")
set(seen "")
foreach(line IN LISTS lines)
  string(JSON bench GET "${line}" bench)
  if(NOT bench STREQUAL "dsp_load")
    message(FATAL_ERROR "not a dsp_load line: ${line}")
  endif()
  string(JSON config ERROR_VARIABLE jerr GET "${line}" config)
  if(jerr)
    bench_require_type("${line}" NUMBER target idle_avg chain8_avg runwayd8_avg)
    bench_require_type("${line}" BOOLEAN pass pass_idle_subtracted)
    string(JSON type TYPE "${line}" ratio)
    if(NOT type MATCHES "^(NUMBER|NULL)$")
      message(FATAL_ERROR "field \"ratio\" is not a number or null: ${line}")
    endif()
    list(APPEND seen verdict)
  else()
    bench_require_type("${line}" NUMBER load_avg load_max load_min load_stddev samples)
    list(APPEND seen ${config})
  endif()
endforeach()

if(NOT "${seen}" STREQUAL "idle;chain8;runwayd8;verdict")
  message(FATAL_ERROR "expected idle, chain8, runwayd8 and the verdict, got ${seen}:\n${out}")
endif()
message(STATUS "valid JSON lines from ${SCRIPT}:\n${out}")
