# Smoke check for runway-bench-scale: runs ${BENCH} --quick (1 and 2 slots,
# 0.8 s windows, a latency check and a short search) and requires exit status
# 0 and JSON objects, one per line: env, idle (before), plain and runwayd for
# 1 and 2 slots chained and in parallel, idle (between), a latency_probe
# with check true, latency probes of the search and its min_latency. The
# fields the README's table is made of must be there, numbers (or null where
# a measure may be missing). Timings are never asserted. Usage:
#   cmake -DBENCH=path -P check_scale_json.cmake
cmake_minimum_required(VERSION 3.19)
include(${CMAKE_CURRENT_LIST_DIR}/json_lines.cmake)

if(NOT BENCH)
  message(FATAL_ERROR "set -DBENCH=<runway-bench-scale>")
endif()

# field is a number or null
function(require_number_or_null line)
  foreach(field ${ARGN})
    string(JSON type ERROR_VARIABLE jerr TYPE "${line}" ${field})
    if(jerr OR NOT type MATCHES "^(NUMBER|NULL)$")
      message(FATAL_ERROR "field \"${field}\" is missing or not a number or null: ${line}")
    endif()
  endforeach()
endfunction()

bench_run(out TIMEOUT 280 COMMAND ${BENCH} --quick)
bench_json_lines(lines "${out}")
set(seen "")
foreach(line IN LISTS lines)
  string(JSON bench GET "${line}" bench)
  string(JSON kind GET "${line}" kind)
  if(NOT bench STREQUAL "scale")
    message(FATAL_ERROR "not a scale line: ${line}")
  endif()
  if(kind STREQUAL "env")
    bench_require_type("${line}" NUMBER rate period cpus)
    list(APPEND seen env)
    continue()
  endif()
  if(kind STREQUAL "min_latency")
    bench_require_type("${line}" NUMBER slots seconds)
    bench_require_type("${line}" OBJECT probes)
    require_number_or_null("${line}" min_latency_frames)
    list(APPEND seen min_latency)
    continue()
  endif()
  bench_require_type("${line}" NUMBER seconds xruns xruns_driver_late jackd_cpu_pct machine_busy_pct)
  require_number_or_null("${line}" dsp_load_avg dsp_load_max)
  if(kind STREQUAL "idle")
    string(JSON when GET "${line}" when)
    list(APPEND seen idle-${when})
  elseif(kind STREQUAL "plain")
    bench_require_type("${line}" NUMBER slots clients_cpu_pct client_rss_kb)
    string(JSON n GET "${line}" slots)
    string(JSON topo GET "${line}" topology)
    list(APPEND seen plain-${n}-${topo})
  elseif(kind STREQUAL "runwayd" OR kind STREQUAL "latency_probe")
    bench_require_type("${line}" NUMBER slots underruns daemon_cpu_pct daemon_rt_cpu_pct
                       workers_cpu_pct rt_cycles)
    require_number_or_null("${line}" rt_wall_ns_avg rt_wall_ns_p99 rt_wall_ns_max
                           rt_cpu_ns_per_cycle)
    string(JSON n GET "${line}" slots)
    if(kind STREQUAL "runwayd")
      bench_require_type("${line}" NUMBER rss_kb locked_kb rss_kb_per_slot worker_rss_kb)
      require_number_or_null("${line}" idle_xruns dsp_load_ratio cpu_ratio
                             cpu_with_workers_ratio rt_cpu_ratio)
      string(JSON topo GET "${line}" topology)
      list(APPEND seen runwayd-${n}-${topo})
    else()
      bench_require_type("${line}" NUMBER latency_frames)
      bench_require_type("${line}" BOOLEAN check)
      string(JSON check GET "${line}" check)
      if(check)
        list(APPEND seen check-${n})
      else()
        list(APPEND seen probe)
      endif()
    endif()
  else()
    message(FATAL_ERROR "unknown kind ${kind}: ${line}")
  endif()
endforeach()

# The search probes as many L as bisection needs: one or more.
list(REMOVE_DUPLICATES seen)
set(want env idle-before plain-1-chained plain-1-parallel plain-2-chained plain-2-parallel
    idle-between runwayd-1-chained runwayd-1-parallel runwayd-2-chained runwayd-2-parallel
    check-2 probe min_latency)
if(NOT "${seen}" STREQUAL "${want}")
  message(FATAL_ERROR "expected ${want}, got ${seen}:\n${out}")
endif()
message(STATUS "valid JSON lines from ${BENCH}:\n${out}")
