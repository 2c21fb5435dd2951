# LV2 integration tests: runway-worker --lv2 in slots of a real runwayd, against
# Debian's LV2 plugins (mda-lv2, x42-plugins), lv2apply (lilv-utils) as the
# reference host, and the test plugins of tests/lv2 (tests/unit/lv2.cmake
# builds their bundle). Included from tests/integration/CMakeLists.txt.
#
#   ctest -L lv2            all of them (they also carry the integration label)
if(NOT TARGET runway_test_lv2)
  return()
endif()
find_program(RUNWAY_LV2APPLY lv2apply)
pkg_check_modules(LILV REQUIRED IMPORTED_TARGET lilv-0>=0.24)
pkg_check_modules(LV2 REQUIRED IMPORTED_TARGET lv2>=1.18)

add_library(runway_it_lv2_rig STATIC lv2_rig.c)
target_link_libraries(runway_it_lv2_rig PUBLIC runway_it_harness PkgConfig::LILV PkgConfig::LV2
  m)
target_compile_definitions(runway_it_lv2_rig PUBLIC RWT_LV2_PATH="${RUNWAY_LV2_PATH}")
add_dependencies(runway_it_lv2_rig runway_test_lv2 runway_test_lv2_unloadable)

# it_lv2_<name>.c -> ctest it_lv2_<name>, labels integration and lv2.
function(runway_lv2_test name timeout)
  cmake_parse_arguments(IT "" "" "DEFS;DEPS" ${ARGN})
  add_executable(it_lv2_${name} it_lv2_${name}.c)
  target_link_libraries(it_lv2_${name} PRIVATE runway_it_lv2_rig)
  if(IT_DEFS)
    target_compile_definitions(it_lv2_${name} PRIVATE ${IT_DEFS})
  endif()
  if(IT_DEPS)
    add_dependencies(it_lv2_${name} ${IT_DEPS})
  endif()
  add_test(NAME it_lv2_${name} COMMAND it_lv2_${name})
  set_tests_properties(it_lv2_${name} PROPERTIES
    TIMEOUT ${timeout}
    LABELS "integration;lv2"
    ENVIRONMENT "JACK_NO_AUDIO_RESERVATION=1"
    SKIP_RETURN_CODE 77)
endfunction()

if(RUNWAY_LV2APPLY)
  runway_lv2_test(exact 180)
else()
  message(STATUS "lv2apply not found (lilv-utils): it_lv2_exact is not registered")
endif()
runway_lv2_test(midi 180)
runway_lv2_test(state 120)
# The stall watch kills the hanging worker: not under a sanitizer, like it_stall.
if(NOT RUNWAY_ASAN AND NOT RUNWAY_TSAN)
  runway_lv2_test(crash 120)
endif()
runway_lv2_test(refusal 90)
# A worker that writes an absurd plugin latency into its segment.
add_executable(runway-it-worker-latency-liar worker_latency_liar.c)
target_link_libraries(runway-it-worker-latency-liar PRIVATE runway-worker runway_segment)
runway_lv2_test(latency 120
  DEFS RWT_LATENCY_LIAR="$<TARGET_FILE:runway-it-worker-latency-liar>"
  DEPS runway-it-worker-latency-liar)
if(TARGET runwayctl)
  runway_lv2_test(slots 120
    DEFS RWT_RUNWAYCTL="$<TARGET_FILE:runwayctl>"
    DEPS runwayctl)
endif()

# The LV2 benchmark (tests/bench/bench_lv2.c) is built on this rig: worker CPU
# against jalv hosting the same plugin in the same run. ctest only smoke-runs it.
add_executable(runway-bench-lv2 ${PROJECT_SOURCE_DIR}/tests/bench/bench_lv2.c)
target_link_libraries(runway-bench-lv2 PRIVATE runway_it_lv2_rig PkgConfig::JACK)
add_test(NAME bench_lv2_smoke
         COMMAND ${CMAKE_COMMAND} -DBENCH=$<TARGET_FILE:runway-bench-lv2>
                 -P ${PROJECT_SOURCE_DIR}/tests/bench/check_lv2_json.cmake)
set_tests_properties(bench_lv2_smoke PROPERTIES LABELS "bench;lv2" TIMEOUT 180
                     ENVIRONMENT "JACK_NO_AUDIO_RESERVATION=1"
                     SKIP_REGULAR_EXPRESSION "runway-bench-skip")
