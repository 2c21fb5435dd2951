# Shared by the benchmarks' smoke checks (run with cmake -P): running a
# benchmark, reading its output as JSON objects, one per line, and checking
# field types. Timings are never asserted.

# bench_run(<out_var> TIMEOUT <s> [SKIP_77] COMMAND <cmd>...): runs the command
# and sets <out_var> to its output. A non-zero exit fails the check; with
# SKIP_77, exit 77 (the benchmark cannot run here) prints "runway-bench-skip"
# for ctest's SKIP_REGULAR_EXPRESSION and sets <out_var> to SKIP.
function(bench_run out_var)
  cmake_parse_arguments(RUN "SKIP_77" "TIMEOUT" "COMMAND" ${ARGN})
  execute_process(COMMAND ${RUN_COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err TIMEOUT ${RUN_TIMEOUT})
  if(RUN_SKIP_77 AND rc EQUAL 77)
    message("runway-bench-skip (exit 77): ${err}")
    set(${out_var} SKIP PARENT_SCOPE)
    return()
  endif()
  if(NOT rc EQUAL 0)
    string(JOIN " " shown ${RUN_COMMAND})
    message(FATAL_ERROR "${shown} exited with ${rc}:\n${err}${out}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

# bench_json_lines(<lines_var> <out>): the output's lines as a list; fails
# unless every line is a JSON object.
function(bench_json_lines lines_var out)
  # Lines become a CMake list; these characters would split or nest it.
  if(out MATCHES "[][;]")
    message(FATAL_ERROR "unexpected [, ] or ; in the output:\n${out}")
  endif()
  string(REGEX REPLACE "\n$" "" out "${out}")
  string(REPLACE "\n" ";" lines "${out}")
  foreach(line IN LISTS lines)
    string(JSON type ERROR_VARIABLE jerr TYPE "${line}")
    if(jerr OR NOT type STREQUAL "OBJECT")
      message(FATAL_ERROR "not a JSON object (${jerr}): ${line}")
    endif()
  endforeach()
  set(${lines_var} "${lines}" PARENT_SCOPE)
endfunction()

# bench_require_type(<line> <TYPE> <field>...): each field is there, of TYPE
# (NUMBER, BOOLEAN, STRING ...).
function(bench_require_type line type)
  foreach(field ${ARGN})
    string(JSON got ERROR_VARIABLE jerr TYPE "${line}" ${field})
    if(jerr OR NOT got STREQUAL "${type}")
      message(FATAL_ERROR "field \"${field}\" is missing or not a ${type}: ${line}")
    endif()
  endforeach()
endfunction()
