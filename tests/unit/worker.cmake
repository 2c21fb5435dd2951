# Worker SDK and built-in plugin tests; included from tests/CMakeLists.txt.
if(TARGET runway-worker)
  pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
  add_executable(test_worker_sdk ${CMAKE_CURRENT_LIST_DIR}/test_worker_sdk.c
    ${CMAKE_CURRENT_LIST_DIR}/worker_rig.c)
  target_link_libraries(test_worker_sdk PRIVATE
    runway-worker runway_shm PkgConfig::CMOCKA PkgConfig::JANSSON Threads::Threads m)
  add_test(NAME test_worker_sdk COMMAND test_worker_sdk)
  set_tests_properties(test_worker_sdk PROPERTIES LABELS unit TIMEOUT 60)
endif()

if(TARGET runway_plugins)
  add_executable(test_plugins ${CMAKE_CURRENT_LIST_DIR}/test_plugins.c)
  target_link_libraries(test_plugins PRIVATE runway_plugins PkgConfig::CMOCKA m)
  add_test(NAME test_plugins COMMAND test_plugins)
  set_tests_properties(test_plugins PROPERTIES LABELS unit TIMEOUT 60)
endif()

if(TARGET runway-worker)
  add_executable(test_worker_state ${CMAKE_CURRENT_LIST_DIR}/test_worker_state.c
    ${CMAKE_CURRENT_LIST_DIR}/worker_rig.c)
  target_link_libraries(test_worker_state PRIVATE
    runway-worker runway_shm PkgConfig::CMOCKA Threads::Threads m)
  add_test(NAME test_worker_state COMMAND test_worker_state)
  set_tests_properties(test_worker_state PROPERTIES LABELS unit TIMEOUT 60)
endif()

if(TARGET runway-worker)
  add_executable(test_worker_wake ${CMAKE_CURRENT_LIST_DIR}/test_worker_wake.c
    ${CMAKE_CURRENT_LIST_DIR}/worker_rig.c)
  target_link_libraries(test_worker_wake PRIVATE
    runway-worker runway_shm PkgConfig::CMOCKA Threads::Threads m)
  add_test(NAME test_worker_wake COMMAND test_worker_wake)
  set_tests_properties(test_worker_wake PROPERTIES LABELS unit TIMEOUT 60)
endif()
