# The language bindings' unit tests (clients/python, clients/go), included
# from tests/CMakeLists.txt. They drive librunway-worker through their FFIs
# against runway-test-rig, the daemon's side of a slot behind a plain C
# interface (slot_rig.h), built here and never installed.
# A sanitizer build's library cannot be loaded into a plain interpreter.
if(NOT TARGET runway-worker OR RUNWAY_ASAN OR RUNWAY_FUZZ)
  return()
endif()

add_library(runway-test-rig SHARED ${CMAKE_CURRENT_LIST_DIR}/slot_rig.c)
target_link_libraries(runway-test-rig PRIVATE runway_shm)
set_target_properties(runway-test-rig PROPERTIES C_VISIBILITY_PRESET hidden)

# Debian's python3 (scripts/lib/common.sh installs it, with numpy for the zero-copy views).
find_program(RUNWAY_PYTHON3 NAMES python3 HINTS /usr/bin)
if(RUNWAY_PYTHON3)
  add_test(NAME python_unittest
    COMMAND ${RUNWAY_PYTHON3} -m unittest discover -s ${PROJECT_SOURCE_DIR}/clients/python/tests
      -t ${PROJECT_SOURCE_DIR}/clients/python -v)
  set_tests_properties(python_unittest PROPERTIES LABELS "unit;python" TIMEOUT 120
    ENVIRONMENT "PYTHONPATH=${PROJECT_SOURCE_DIR}/clients/python;RUNWAY_WORKER_LIB=$<TARGET_FILE:runway-worker>;RUNWAY_TEST_RIG=$<TARGET_FILE:runway-test-rig>;PYTHONDONTWRITEBYTECODE=1")
  add_test(NAME python_pip_install
    COMMAND ${CMAKE_COMMAND} -DPYTHON=${RUNWAY_PYTHON3} -DSOURCE=${PROJECT_SOURCE_DIR}/clients/python
      -DLIB=$<TARGET_FILE:runway-worker> -DWORK=${CMAKE_BINARY_DIR}/python-install-test
      -P ${PROJECT_SOURCE_DIR}/tests/integration/python_install.cmake)
  set_tests_properties(python_pip_install PROPERTIES LABELS "unit;python" TIMEOUT 120)
else()
  message(STATUS "python3 not found: the Python binding's tests are not registered")
endif()

# go vet, and go test with the rig (build tag runway_rig: internal/testrig
# links runway-test-rig), in the Go environment of clients/go/CMakeLists.txt.
if(RUNWAY_GO AND RUNWAY_GO_ENV)
  set(rig_dir $<TARGET_FILE_DIR:runway-test-rig>)
  add_test(NAME go_vet
    COMMAND ${CMAKE_COMMAND} -E env ${RUNWAY_GO_ENV} CGO_CFLAGS=-I${CMAKE_CURRENT_LIST_DIR}
      "CGO_LDFLAGS=-L${rig_dir} -Wl,-rpath,${rig_dir}" ${RUNWAY_GO} vet -tags runway_rig ./...
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/clients/go)
  add_test(NAME go_test
    COMMAND ${CMAKE_COMMAND} -E env ${RUNWAY_GO_ENV} CGO_CFLAGS=-I${CMAKE_CURRENT_LIST_DIR}
      "CGO_LDFLAGS=-L${rig_dir} -Wl,-rpath,${rig_dir}" ${RUNWAY_GO} test -count=1 -v
      -tags runway_rig ./...
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/clients/go)
  set_tests_properties(go_vet go_test PROPERTIES LABELS "unit;go" TIMEOUT 300)
endif()
