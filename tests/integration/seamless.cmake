# Seamless replacement, bypass, top and the latency advisor (issue 12).
# Included from CMakeLists.txt.
#
# it_seamless and it_bypass run runwayd under the RT-rules checker, whose
# interposers fight the sanitizers', so they run in the normal build only.
if(NOT RUNWAY_ASAN AND NOT RUNWAY_TSAN)
  runway_integration_test(seamless 120
    DEFS RWT_RTCHECK="$<TARGET_FILE:runway-rtcheck>"
    DEPS runway-rtcheck)
endif()
if(NOT RUNWAY_ASAN AND NOT RUNWAY_TSAN)
  runway_integration_test(bypass 120
    DEFS RWT_RTCHECK="$<TARGET_FILE:runway-rtcheck>"
    DEPS runway-rtcheck)
endif()
