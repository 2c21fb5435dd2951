# The language bindings' example workers in real slots (it_worker_bindings.c,
# built once per runtime), and the ABI check against the installed header.
# Included from tests/integration/CMakeLists.txt, after runway_integration_test.
if(RUNWAY_ASAN OR RUNWAY_TSAN OR RUNWAY_FUZZ)
  return()
endif()

if(RUNWAY_PYTHON3 AND TARGET runway-worker)
  add_executable(it_python_worker it_worker_bindings.c)
  target_link_libraries(it_python_worker PRIVATE runway_it_harness)
  target_compile_definitions(it_python_worker PRIVATE RWT_PYTHON="${RUNWAY_PYTHON3}"
    RWT_SOURCE_DIR="${PROJECT_SOURCE_DIR}" RWT_WORKER_LIB="$<TARGET_FILE:runway-worker>")
  add_dependencies(it_python_worker runway-worker)
  add_test(NAME it_python_worker COMMAND it_python_worker)
  set_tests_properties(it_python_worker PROPERTIES TIMEOUT 200 LABELS "integration;python"
    ENVIRONMENT "JACK_NO_AUDIO_RESERVATION=1" SKIP_RETURN_CODE 77)
endif()

if(TARGET runway-go-gain)
  add_executable(it_go_worker it_worker_bindings.c)
  target_link_libraries(it_go_worker PRIVATE runway_it_harness)
  target_compile_definitions(it_go_worker PRIVATE
    RWT_GO_GAIN="${CMAKE_BINARY_DIR}/bin/runway-go-gain")
  add_dependencies(it_go_worker runway-go-gain)
  add_test(NAME it_go_worker COMMAND it_go_worker)
  set_tests_properties(it_go_worker PROPERTIES TIMEOUT 200 LABELS "integration;go"
    ENVIRONMENT "JACK_NO_AUDIO_RESERVATION=1" SKIP_RETURN_CODE 77)
endif()

# Every stated size and offset of <runway/worker.h>, against the installed
# header and library (abi_install.cmake, abi_check.c).
find_program(RUNWAY_CXX NAMES c++ g++ clang++)
if(TARGET runway-worker)
  add_test(NAME sdk_abi
    COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${CMAKE_BINARY_DIR}
      -DSOURCE=${CMAKE_CURRENT_SOURCE_DIR}/abi_check.c -DCC=${CMAKE_C_COMPILER}
      -DCXX=${RUNWAY_CXX} -DWORK=${CMAKE_BINARY_DIR}/sdk-abi-test
      -P ${CMAKE_CURRENT_SOURCE_DIR}/abi_install.cmake)
  set_tests_properties(sdk_abi PROPERTIES LABELS integration TIMEOUT 120)
endif()
