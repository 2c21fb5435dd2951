# Smoke check for bench_dsp_load.sh: runs ${SCRIPT} --quick --bin-dir ${BIN_DIR},
# requires exit status 0 and four JSON objects, one per line: the configs
# idle, chain8 and runwayd8 (numeric load_avg, load_max, load_stddev) and the
# verdict (numeric target, ratio a number or null, boolean pass). Timings and
# the verdict are not asserted. When the script exits 77 (no jackd), prints
# "runway-bench-skip" for ctest's SKIP_REGULAR_EXPRESSION. Usage:
#   cmake -DSCRIPT=path -DBIN_DIR=dir -P check_dsp_load_json.cmake
cmake_minimum_required(VERSION 3.19)

if(NOT SCRIPT OR NOT BIN_DIR)
  message(FATAL_ERROR "set -DSCRIPT=<bench_dsp_load.sh> and -DBIN_DIR=<dir of the programs>")
endif()

execute_process(COMMAND ${SCRIPT} --quick --bin-dir ${BIN_DIR}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 110)
if(rc EQUAL 77)
  message("runway-bench-skip (exit 77): ${err}")
  return()
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${SCRIPT} --quick exited with ${rc}:\n${err}${out}")
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
  string(JSON bench GET "${line}" bench)
  if(NOT bench STREQUAL "dsp_load")
    message(FATAL_ERROR "not a dsp_load line: ${line}")
  endif()
  string(JSON config ERROR_VARIABLE jerr GET "${line}" config)
  if(jerr)
    require_type("${line}" NUMBER target idle_avg chain8_avg runwayd8_avg)
    require_type("${line}" BOOLEAN pass pass_idle_subtracted)
    string(JSON type TYPE "${line}" ratio)
    if(NOT type MATCHES "^(NUMBER|NULL)$")
      message(FATAL_ERROR "field \"ratio\" is not a number or null: ${line}")
    endif()
    list(APPEND seen verdict)
  else()
    require_type("${line}" NUMBER load_avg load_max load_min load_stddev samples)
    list(APPEND seen ${config})
  endif()
endforeach()

if(NOT "${seen}" STREQUAL "idle;chain8;runwayd8;verdict")
  message(FATAL_ERROR "expected idle, chain8, runwayd8 and the verdict, got ${seen}:\n${out}")
endif()
message(STATUS "valid JSON lines from ${SCRIPT}:\n${out}")
