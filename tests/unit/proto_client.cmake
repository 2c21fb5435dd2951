# proto/client: the control socket's client (included from tests/CMakeLists.txt).
if(TARGET runway_protocol)
  add_executable(test_proto_client ${CMAKE_CURRENT_LIST_DIR}/test_proto_client.c)
  target_link_libraries(test_proto_client PRIVATE runway_protocol PkgConfig::CMOCKA)
  add_test(NAME test_proto_client COMMAND test_proto_client)
  set_tests_properties(test_proto_client PROPERTIES LABELS unit TIMEOUT 60)
endif()
