# daemon/events: event subscriptions over a real control server (included from tests/CMakeLists.txt).
if(TARGET runway_control)
  add_executable(test_events ${CMAKE_CURRENT_LIST_DIR}/test_events.c
    ${CMAKE_CURRENT_LIST_DIR}/control_client.c)
  target_link_libraries(test_events PRIVATE runway_control PkgConfig::CMOCKA)
  add_test(NAME test_events COMMAND test_events)
  set_tests_properties(test_events PROPERTIES LABELS unit TIMEOUT 60)
endif()
