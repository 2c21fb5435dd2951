# Smoke check for a benchmark: runs ${BENCH} --quick, requires exit status 0
# and one JSON object per line, one line per entry of FRAMES (in order), each
# with numeric frames, ring_ns, memcpy_ns, ratio, target_ns and a boolean pass.
# Timings are not asserted. Usage:
#   cmake -DBENCH=path -DFRAMES="64;128;1024" -P check_json_lines.cmake
cmake_minimum_required(VERSION 3.19)

if(NOT BENCH)
  message(FATAL_ERROR "set -DBENCH=<benchmark executable>")
endif()

execute_process(COMMAND ${BENCH} --quick
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 100)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${BENCH} --quick exited with ${rc}:\n${err}${out}")
endif()
# Lines become a CMake list below; these characters would split or nest it.
if(out MATCHES "[][;]")
  message(FATAL_ERROR "unexpected [, ] or ; in the output:\n${out}")
endif()

string(REGEX REPLACE "\n$" "" out "${out}")
string(REPLACE "\n" ";" lines "${out}")
set(seen "")
foreach(line IN LISTS lines)
  string(JSON type ERROR_VARIABLE jerr TYPE "${line}")
  if(jerr OR NOT type STREQUAL "OBJECT")
    message(FATAL_ERROR "not a JSON object (${jerr}): ${line}")
  endif()
  foreach(field frames channels iterations ring_ns memcpy_ns ratio target_ns)
    string(JSON type ERROR_VARIABLE jerr TYPE "${line}" ${field})
    if(jerr OR NOT type STREQUAL "NUMBER")
      message(FATAL_ERROR "field \"${field}\" is missing or not a number: ${line}")
    endif()
  endforeach()
  string(JSON type ERROR_VARIABLE jerr TYPE "${line}" pass)
  if(jerr OR NOT type STREQUAL "BOOLEAN")
    message(FATAL_ERROR "field \"pass\" is missing or not a boolean: ${line}")
  endif()
  string(JSON frames GET "${line}" frames)
  list(APPEND seen ${frames})
endforeach()

if(DEFINED FRAMES AND NOT "${seen}" STREQUAL "${FRAMES}")
  message(FATAL_ERROR "expected cases for frames ${FRAMES}, got ${seen}:\n${out}")
endif()
list(LENGTH lines n)
message(STATUS "${n} valid JSON lines from ${BENCH}")
