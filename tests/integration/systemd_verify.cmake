# Run by ctest (systemd_verify): cmake -DSYSTEMD_ANALYZE=... -DDIR=... -DSYSUSERS=...
# -DTMPFILES=... -P systemd_verify.cmake
#
# 1. `systemd-analyze verify` on DIR/system/runwayd.service and, as --user, on
#    DIR/user/runwayd.service. It exits 0 even for unknown keys or bad values, so any
#    output fails the test, except a warning about some other unit file (a dependency
#    such as basic.target on an odd host), which is shown and ignored.
# 2. The sysusers and tmpfiles snippets applied to a scratch root: for real when run
#    as root (the runway user and /var/lib/runway 0750 must come out), else a dry run
#    of sysusers only.

set(failed FALSE)

function(check_output what output)
  string(REPLACE "\n" ";" lines "${output}")
  foreach(line IN LISTS lines)
    if(line STREQUAL "")
      continue()
    endif()
    # "/lib/systemd/system/foo.target:12: ..." about a unit that is not ours.
    if(line MATCHES "^/[^:]*\\.(service|target|socket|slice|mount|timer|path):"
       AND NOT line MATCHES "runwayd")
      message(STATUS "${what}: ignoring a warning about another unit: ${line}")
      continue()
    endif()
    message(SEND_ERROR "${what}: ${line}")
    set(failed TRUE PARENT_SCOPE)
  endforeach()
endfunction()

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out
                  TIMEOUT 30)
  if(NOT rc EQUAL 0)
    message(SEND_ERROR "${what}: exit ${rc}\n${out}")
    set(failed TRUE PARENT_SCOPE)
    return()
  endif()
  set(failed FALSE)
  check_output("${what}" "${out}")
  if(failed)
    set(failed TRUE PARENT_SCOPE)
  else()
    message(STATUS "${what}: ok")
  endif()
endfunction()

# --man=no: the units name no man pages, and none of runway's are installed here.
run("verify system unit"
  ${SYSTEMD_ANALYZE} verify --man=no ${DIR}/system/runwayd.service)
# A user manager needs XDG_RUNTIME_DIR to resolve RuntimeDirectory=, and reads unit
# directories under the home directory: give it empty ones of its own.
file(REMOVE_RECURSE ${DIR}/xdg-runtime ${DIR}/home)
file(MAKE_DIRECTORY ${DIR}/xdg-runtime ${DIR}/home)
run("verify user unit"
  ${CMAKE_COMMAND} -E env XDG_RUNTIME_DIR=${DIR}/xdg-runtime HOME=${DIR}/home
    XDG_CONFIG_HOME=${DIR}/home/.config XDG_DATA_HOME=${DIR}/home/.local/share
  ${SYSTEMD_ANALYZE} --user verify --man=no ${DIR}/user/runwayd.service)

# The snippets, applied to a scratch root. systemd-sysusers reports what it creates
# ("Creating user ...", "Would write ...") on stderr; anything else is a complaint.
function(check_snippet what output)
  string(REPLACE "\n" ";" lines "${output}")
  foreach(line IN LISTS lines)
    if(NOT line STREQUAL "" AND NOT line MATCHES "^(Creating|Would write) ")
      message(SEND_ERROR "${what}: ${line}")
      set(failed TRUE PARENT_SCOPE)
    endif()
  endforeach()
endfunction()

find_program(SYSUSERS_BIN systemd-sysusers)
find_program(TMPFILES_BIN systemd-tmpfiles)
execute_process(COMMAND id -u OUTPUT_VARIABLE uid OUTPUT_STRIP_TRAILING_WHITESPACE)
set(root ${DIR}/root)
file(REMOVE_RECURSE ${root})
file(MAKE_DIRECTORY ${root}/etc)
if(SYSUSERS_BIN AND TMPFILES_BIN AND uid STREQUAL "0")
  execute_process(COMMAND ${SYSUSERS_BIN} --root=${root} ${SYSUSERS}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out TIMEOUT 30)
  check_snippet("sysusers" "${out}")
  file(READ ${root}/etc/passwd passwd)
  file(READ ${root}/etc/group group)
  set(runway_uid "")
  if(passwd MATCHES "(^|\n)runway:x:([0-9]+):[0-9]+:[^:]*:/var/lib/runway:")
    set(runway_uid ${CMAKE_MATCH_2})
  endif()
  if(NOT rc EQUAL 0 OR runway_uid STREQUAL "" OR NOT group MATCHES "(^|\n)audio:x:[0-9]+:runway\n")
    message(SEND_ERROR "sysusers: exit ${rc}, passwd:\n${passwd}group:\n${group}")
    set(failed TRUE)
  else()
    message(STATUS "sysusers: ok (runway is uid ${runway_uid} in the scratch root, in audio)")
  endif()
  execute_process(COMMAND ${TMPFILES_BIN} --root=${root} --create ${TMPFILES}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out TIMEOUT 30)
  execute_process(COMMAND stat -c "%a %u" ${root}/var/lib/runway
                  OUTPUT_VARIABLE mode_owner OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(NOT rc EQUAL 0 OR NOT out STREQUAL "" OR NOT mode_owner STREQUAL "750 ${runway_uid}")
    message(SEND_ERROR "tmpfiles: exit ${rc}, /var/lib/runway is \"${mode_owner}\"\n${out}")
    set(failed TRUE)
  else()
    message(STATUS "tmpfiles: ok (/var/lib/runway 0750 runway)")
  endif()
elseif(SYSUSERS_BIN)
  # Not root: a dry run still parses the snippet.
  execute_process(COMMAND ${SYSUSERS_BIN} --root=${root} --dry-run ${SYSUSERS}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out TIMEOUT 30)
  check_snippet("sysusers (dry run)" "${out}")
  if(NOT rc EQUAL 0)
    message(SEND_ERROR "sysusers (dry run): exit ${rc}")
    set(failed TRUE)
  else()
    message(STATUS "sysusers (dry run): ok")
  endif()
  message(STATUS "tmpfiles: not checked (needs root to give the directory to runway)")
endif()

if(failed)
  message(FATAL_ERROR "systemd units or snippets have problems (see above)")
endif()
