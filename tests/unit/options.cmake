# daemon/options: runwayd's command line (included from tests/CMakeLists.txt).
if(TARGET runwayd_program)
  add_executable(test_options ${CMAKE_CURRENT_LIST_DIR}/test_options.c)
  target_link_libraries(test_options PRIVATE runwayd_program PkgConfig::CMOCKA)
  target_compile_definitions(test_options PRIVATE
    RUNWAY_WORKER_INSTALLED="${CMAKE_INSTALL_FULL_BINDIR}/runway-worker")
  add_test(NAME test_options COMMAND test_options)
  set_tests_properties(test_options PROPERTIES LABELS unit TIMEOUT 60)
endif()
