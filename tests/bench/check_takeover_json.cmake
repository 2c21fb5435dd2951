# Smoke check for runway-bench-takeover: runs ${BENCH} --quick, requires exit
# status 0 and one JSON object per line: the cases alone, bypass, bypass_gap,
# warming and fading with numeric cycle_ns, alone_ns and ratio, then history
# with history_ns. Timings are not asserted. Usage:
#   cmake -DBENCH=path -P check_takeover_json.cmake
cmake_minimum_required(VERSION 3.19)
include(${CMAKE_CURRENT_LIST_DIR}/json_lines.cmake)

if(NOT BENCH)
  message(FATAL_ERROR "set -DBENCH=<benchmark executable>")
endif()

bench_run(out TIMEOUT 100 COMMAND ${BENCH} --quick)
bench_json_lines(lines "${out}")
set(seen "")
foreach(line IN LISTS lines)
  string(JSON kase GET "${line}" case)
  if(kase STREQUAL "history")
    bench_require_type("${line}" NUMBER frames channels history_ns alone_ns ratio)
  else()
    bench_require_type("${line}" NUMBER frames channels latency cycle_ns alone_ns ratio)
  endif()
  list(APPEND seen "${kase}")
endforeach()
set(want "alone;bypass;bypass_gap;warming;fading;history")
if(NOT seen STREQUAL want)
  message(FATAL_ERROR "cases ${seen}, want ${want}")
endif()
message(STATUS "runway-bench-takeover: ${seen}")
