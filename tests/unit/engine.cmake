# daemon/rt: the engine's whole-table and per-slot entries (included from tests/CMakeLists.txt).
if(TARGET runwayd_rt)
  add_executable(test_engine ${CMAKE_CURRENT_LIST_DIR}/test_engine.c ${CMAKE_CURRENT_LIST_DIR}/plain_io.c)
  target_link_libraries(test_engine PRIVATE runwayd_rt PkgConfig::CMOCKA)
  add_test(NAME test_engine COMMAND test_engine)
  set_tests_properties(test_engine PROPERTIES LABELS unit TIMEOUT 60)
endif()
# daemon/rt: bypass and takeover, sample by sample.
if(TARGET runwayd_rt)
  add_executable(test_takeover ${CMAKE_CURRENT_LIST_DIR}/test_takeover.c ${CMAKE_CURRENT_LIST_DIR}/plain_io.c)
  target_link_libraries(test_takeover PRIVATE runwayd_rt PkgConfig::CMOCKA)
  add_test(NAME test_takeover COMMAND test_takeover)
  set_tests_properties(test_takeover PROPERTIES LABELS unit TIMEOUT 60)
endif()
