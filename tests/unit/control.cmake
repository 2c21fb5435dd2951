# daemon/control: the control server on a real socket (included from tests/CMakeLists.txt).
if(TARGET runway_control)
  add_executable(test_control ${CMAKE_CURRENT_LIST_DIR}/test_control.c
    ${CMAKE_CURRENT_LIST_DIR}/control_client.c)
  target_link_libraries(test_control PRIVATE runway_control PkgConfig::CMOCKA)
  # Lets a test play a kernel without SO_PEERGROUPS.
  target_link_options(test_control PRIVATE -Wl,--wrap=getsockopt)
  add_test(NAME test_control COMMAND test_control)
  set_tests_properties(test_control PROPERTIES LABELS unit TIMEOUT 60)
endif()
