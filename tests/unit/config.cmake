# daemon/persist/config: the configuration file, parsed and applied to the
# options (included from tests/CMakeLists.txt).
if(TARGET runwayd_persist)
  add_executable(test_config ${CMAKE_CURRENT_LIST_DIR}/test_config.c)
  target_link_libraries(test_config PRIVATE runwayd_persist PkgConfig::CMOCKA)
  add_test(NAME test_config COMMAND test_config)
  set_tests_properties(test_config PROPERTIES LABELS unit TIMEOUT 60)
endif()
