# Smoke check for runway-bench-engine: runs ${BENCH} --quick, requires exit
# status 0 and one JSON object per line, one line per entry of CASES (in
# order). A case is SLOTS/FRAMES, with a trailing "w" for a wake-up line with
# nobody waiting and "W" for the line with a real sleeper ("waiter").
# Every line has numeric slots, frames, cycle_ns, per_slot_ns and a boolean
# wakeups; no-wake lines also iterations, memcpy_ns, ratio, target_ns,
# per_slot_memcpy_ns and booleans spec_target and pass; wake lines
# iterations, memcpy_ns, ratio and wake_ns; waiter lines wake_ns and
# nowake_cycle_ns. Timings are not asserted. Usage:
#   cmake -DBENCH=path -DCASES="1/64;1/128;1/128w;1/128W" -P check_engine_json.cmake
cmake_minimum_required(VERSION 3.19)
include(${CMAKE_CURRENT_LIST_DIR}/json_lines.cmake)

if(NOT BENCH)
  message(FATAL_ERROR "set -DBENCH=<benchmark executable>")
endif()

bench_run(out TIMEOUT 100 COMMAND ${BENCH} --quick)
bench_json_lines(lines "${out}")
set(seen "")
foreach(line IN LISTS lines)
  bench_require_type("${line}" NUMBER slots frames cycle_ns per_slot_ns)
  bench_require_type("${line}" BOOLEAN wakeups)
  string(JSON slots GET "${line}" slots)
  string(JSON frames GET "${line}" frames)
  string(JSON wakeups GET "${line}" wakeups)
  string(JSON waiter ERROR_VARIABLE jerr GET "${line}" waiter)
  if(jerr)
    set(waiter OFF)
  endif()
  if(waiter)
    bench_require_type("${line}" NUMBER wake_ns nowake_cycle_ns)
    list(APPEND seen "${slots}/${frames}W")
  elseif(wakeups)
    bench_require_type("${line}" NUMBER iterations memcpy_ns ratio wake_ns)
    list(APPEND seen "${slots}/${frames}w")
  else()
    bench_require_type("${line}" NUMBER iterations memcpy_ns ratio target_ns per_slot_memcpy_ns)
    bench_require_type("${line}" BOOLEAN spec_target pass)
    list(APPEND seen "${slots}/${frames}")
  endif()
endforeach()

if(DEFINED CASES AND NOT "${seen}" STREQUAL "${CASES}")
  message(FATAL_ERROR "expected cases ${CASES}, got ${seen}:\n${out}")
endif()
list(LENGTH lines n)
message(STATUS "${n} valid JSON lines from ${BENCH}")
