# The LV2 host, driven block by block (test_lv2host) against Debian's plugins
# (mda-lv2, x42-plugins) and the test plugins of tests/lv2, which are built
# here into a bundle of their own: build/lv2/runway-test.lv2. Tests find
# plugins through RUNWAY_LV2_PATH: that bundle first, then the system's.
# Included from tests/CMakeLists.txt; the integration tests use the bundle too.
if(TARGET runway_lv2host)
  pkg_check_modules(LV2 REQUIRED IMPORTED_TARGET lv2>=1.18)
  set(RUNWAY_LV2_SYSTEM_PATH
    "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/lv2:/usr/lib/lv2:/usr/local/lib/lv2"
    CACHE STRING "Where the LV2 tests look for installed plugins (after their own bundle)")
  set(RUNWAY_LV2_TEST_DIR ${CMAKE_BINARY_DIR}/lv2)
  set(RUNWAY_LV2_PATH "${RUNWAY_LV2_TEST_DIR}:${RUNWAY_LV2_SYSTEM_PATH}")
  set(bundle ${RUNWAY_LV2_TEST_DIR}/runway-test.lv2)
  set(src ${PROJECT_SOURCE_DIR}/tests/lv2)

  add_library(runway_test_lv2 MODULE ${src}/runway_test.c)
  add_library(runway_test_lv2_unloadable MODULE ${src}/runway_test_unloadable.c)
  foreach(t runway_test_lv2 runway_test_lv2_unloadable)
    target_link_libraries(${t} PRIVATE PkgConfig::LV2)
    set_target_properties(${t} PROPERTIES PREFIX "" LIBRARY_OUTPUT_DIRECTORY ${bundle})
  endforeach()
  set_target_properties(runway_test_lv2 PROPERTIES OUTPUT_NAME runway_test)
  set_target_properties(runway_test_lv2_unloadable PROPERTIES OUTPUT_NAME runway_test_unloadable)
  configure_file(${src}/manifest.ttl ${bundle}/manifest.ttl COPYONLY)
  configure_file(${src}/runway_test.ttl ${bundle}/runway_test.ttl COPYONLY)

  add_executable(test_lv2host ${CMAKE_CURRENT_LIST_DIR}/test_lv2host.c)
  target_link_libraries(test_lv2host PRIVATE runway_lv2host PkgConfig::CMOCKA m)
  target_compile_definitions(test_lv2host PRIVATE RWT_LV2_PATH="${RUNWAY_LV2_PATH}")
  add_dependencies(test_lv2host runway_test_lv2 runway_test_lv2_unloadable)
  add_test(NAME test_lv2host COMMAND test_lv2host)
  set_tests_properties(test_lv2host PROPERTIES LABELS unit TIMEOUT 120)
endif()
