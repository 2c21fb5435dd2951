# clients/runwayctl: argv to request, output, and the tool's exit statuses
# against a fake daemon (included from tests/CMakeLists.txt).
if(TARGET runway_ctl AND TARGET runwayctl)
  add_executable(test_runwayctl ${CMAKE_CURRENT_LIST_DIR}/test_runwayctl.c)
  target_link_libraries(test_runwayctl PRIVATE runway_ctl PkgConfig::CMOCKA Threads::Threads)
  add_test(NAME test_runwayctl COMMAND test_runwayctl $<TARGET_FILE:runwayctl>)
  set_tests_properties(test_runwayctl PROPERTIES LABELS unit TIMEOUT 60)
endif()
