# daemon/persist (files): base64 and the state directory (included from tests/CMakeLists.txt).
if(TARGET runwayd_files)
  add_executable(test_persist ${CMAKE_CURRENT_LIST_DIR}/test_persist.c)
  target_link_libraries(test_persist PRIVATE runwayd_files PkgConfig::CMOCKA)
  add_test(NAME test_persist COMMAND test_persist)
  set_tests_properties(test_persist PROPERTIES LABELS unit TIMEOUT 60)
endif()
