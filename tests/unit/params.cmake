# daemon/slots/params: parameter tables from the catalog and from a worker's
# info block (included from tests/CMakeLists.txt).
if(TARGET runwayd_slots)
  add_executable(test_params ${CMAKE_CURRENT_LIST_DIR}/test_params.c)
  target_link_libraries(test_params PRIVATE runwayd_slots PkgConfig::CMOCKA m)
  add_test(NAME test_params COMMAND test_params)
  set_tests_properties(test_params PROPERTIES LABELS unit TIMEOUT 60)
endif()
