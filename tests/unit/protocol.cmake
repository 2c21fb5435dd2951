# proto/protocol: the control protocol (included from tests/CMakeLists.txt).
if(TARGET runway_protocol)
  add_executable(test_protocol ${CMAKE_CURRENT_LIST_DIR}/test_protocol.c)
  target_link_libraries(test_protocol PRIVATE runway_protocol PkgConfig::CMOCKA)
  add_test(NAME test_protocol COMMAND test_protocol)
  set_tests_properties(test_protocol PROPERTIES LABELS unit TIMEOUT 60)
endif()
