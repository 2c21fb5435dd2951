# README.md's generated sections: each lies between
#   <!-- BEGIN NAME ... -->   and   <!-- END NAME -->
# and is what `TOOL NAME` prints (clients/readme_commands.c, from the command
# table). MODE=update rewrites them; MODE=check fails when one differs.
#   cmake -DMODE=check|update -DTOOL=runway-readme-commands -DREADME=README.md -P readme.cmake
# Through the build: `cmake --build build --target readme`, and the test readme_commands.
cmake_minimum_required(VERSION 3.18)

if(NOT MODE MATCHES "^(check|update)$" OR NOT TOOL OR NOT README)
  message(FATAL_ERROR "usage: cmake -DMODE=check|update -DTOOL=<runway-readme-commands> "
                      "-DREADME=<README.md> -P readme.cmake")
endif()

file(READ "${README}" text)
set(rest "${text}")
set(out "")
set(sections 0)
while(TRUE)
  string(FIND "${rest}" "<!-- BEGIN " begin)
  if(begin EQUAL -1)
    string(APPEND out "${rest}")
    break()
  endif()
  string(SUBSTRING "${rest}" 0 ${begin} before)
  string(SUBSTRING "${rest}" ${begin} -1 tail)
  # The marker line: "<!-- BEGIN NAME (how to regenerate) -->".
  string(FIND "${tail}" "-->" close)
  if(close EQUAL -1)
    message(FATAL_ERROR "${README}: a BEGIN marker without its -->")
  endif()
  math(EXPR close "${close} + 3")
  string(SUBSTRING "${tail}" 0 ${close} marker)
  if(NOT marker MATCHES "^<!-- BEGIN ([a-z-]+)")
    message(FATAL_ERROR "${README}: a BEGIN marker without a section name: ${marker}")
  endif()
  set(name "${CMAKE_MATCH_1}")
  set(end_marker "<!-- END ${name} -->")
  string(FIND "${tail}" "${end_marker}" end)
  if(end EQUAL -1)
    message(FATAL_ERROR "${README}: section ${name} has no ${end_marker}")
  endif()
  execute_process(COMMAND "${TOOL}" "${name}" OUTPUT_VARIABLE generated RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${TOOL} ${name} failed (${rc})")
  endif()
  string(APPEND out "${before}${marker}\n${generated}${end_marker}")
  string(LENGTH "${end_marker}" end_len)
  math(EXPR after "${end} + ${end_len}")
  string(SUBSTRING "${tail}" ${after} -1 rest)
  math(EXPR sections "${sections} + 1")
endwhile()

if(sections EQUAL 0)
  message(FATAL_ERROR "${README} has no generated sections (<!-- BEGIN NAME --> markers)")
endif()
if(out STREQUAL text)
  message(STATUS "${README}: ${sections} generated sections up to date")
elseif(MODE STREQUAL "update")
  file(WRITE "${README}" "${out}")
  message(STATUS "${README}: generated sections rewritten")
else()
  message(FATAL_ERROR "${README}'s generated sections (the command list) are out of date: "
                      "run `cmake --build <build dir> --target readme` and commit README.md")
endif()
