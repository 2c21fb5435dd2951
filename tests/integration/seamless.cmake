# Seamless replacement, bypass, top and the latency advisor.
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

# A worker that stops for a while once per second of audio (the advisor's subject).
add_executable(runway-it-worker-pauser worker_pauser.c)
target_link_libraries(runway-it-worker-pauser PRIVATE runway-worker)
if(TARGET runwayctl)
  runway_integration_test(advise 90
    DEFS RWT_PAUSER="$<TARGET_FILE:runway-it-worker-pauser>" RWT_RUNWAYCTL="$<TARGET_FILE:runwayctl>"
    DEPS runway-it-worker-pauser runwayctl)
endif()
# runwayctl top in a terminal: tmux draws it.
find_program(RUNWAY_TMUX tmux)
if(TARGET runwayctl AND RUNWAY_TMUX)
  runway_integration_test(top 90
    DEFS RWT_RUNWAYCTL="$<TARGET_FILE:runwayctl>"
    DEPS runwayctl)
endif()

# slot replace --lv2: with the LV2 tests' plugins (lv2.cmake defines runway_lv2_test).
if(COMMAND runway_lv2_test)
  runway_lv2_test(replace 120)
endif()
