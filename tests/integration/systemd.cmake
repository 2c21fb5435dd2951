# systemd integration tests, included at the end of tests/integration/CMakeLists.txt
# (the harness is defined there):
#
#   systemd_verify   systemd-analyze verify on the units of systemd/, plus the sysusers
#                    and tmpfiles snippets applied to a scratch root (label unit)
#   notify_socket    the real runwayd and jackd under a fake service manager: READY=1,
#                    STATUS=, WATCHDOG=1, STOPPING=1 (label integration)

# ---- systemd_verify -------------------------------------------------------------------
find_program(RUNWAY_SYSTEMD_ANALYZE systemd-analyze)
if(RUNWAY_SYSTEMD_ANALYZE)
  # The units as installed, but with ExecStart= naming the runwayd of this build:
  # verify checks that the program exists. Two steps, because the path is a generator
  # expression.
  set(RUNWAY_SD_VERIFY_DIR ${CMAKE_CURRENT_BINARY_DIR}/systemd-verify)
  set(RUNWAY_BINDIR "$<TARGET_FILE_DIR:runwayd>")
  set(RUNWAY_CONFIG "${PROJECT_SOURCE_DIR}/systemd/runwayd.conf")
  foreach(kind system user)
    if(kind STREQUAL "system")
      set(RUNWAY_SD_TEMPLATE ${PROJECT_SOURCE_DIR}/systemd/runwayd.service.in)
    else()
      set(RUNWAY_SD_TEMPLATE ${PROJECT_SOURCE_DIR}/systemd/runwayd.user.service.in)
    endif()
    configure_file(${RUNWAY_SD_TEMPLATE} ${RUNWAY_SD_VERIFY_DIR}/${kind}.in @ONLY)
    file(GENERATE OUTPUT ${RUNWAY_SD_VERIFY_DIR}/${kind}/runwayd.service
         INPUT ${RUNWAY_SD_VERIFY_DIR}/${kind}.in)
  endforeach()
  unset(RUNWAY_BINDIR)
  unset(RUNWAY_CONFIG)

  add_test(NAME systemd_verify
    COMMAND ${CMAKE_COMMAND}
      -DSYSTEMD_ANALYZE=${RUNWAY_SYSTEMD_ANALYZE}
      -DDIR=${RUNWAY_SD_VERIFY_DIR}
      -DSYSUSERS=${PROJECT_SOURCE_DIR}/systemd/runway-sysusers.conf
      -DTMPFILES=${PROJECT_SOURCE_DIR}/systemd/runway-tmpfiles.conf
      -P ${CMAKE_CURRENT_LIST_DIR}/systemd_verify.cmake)
  set_tests_properties(systemd_verify PROPERTIES LABELS unit TIMEOUT 60)
else()
  message(STATUS "systemd-analyze not found: systemd_verify is not registered")
endif()

# ---- notify_socket --------------------------------------------------------------------
add_executable(it_notify_socket ${CMAKE_CURRENT_LIST_DIR}/it_notify_socket.c)
target_link_libraries(it_notify_socket PRIVATE runway_it_harness)
add_test(NAME notify_socket COMMAND it_notify_socket)
set_tests_properties(notify_socket PROPERTIES
  LABELS integration
  TIMEOUT 60
  ENVIRONMENT "JACK_NO_AUDIO_RESERVATION=1"
  SKIP_RETURN_CODE 77)
