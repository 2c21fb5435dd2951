# daemon/supervise: the restart and stall policies (included from tests/CMakeLists.txt).
if(TARGET runwayd_supervise)
  add_executable(test_supervisor ${CMAKE_CURRENT_LIST_DIR}/test_supervisor.c)
  target_link_libraries(test_supervisor PRIVATE runwayd_supervise PkgConfig::CMOCKA)
  add_test(NAME test_supervisor COMMAND test_supervisor)
  set_tests_properties(test_supervisor PROPERTIES LABELS unit TIMEOUT 60)
endif()
