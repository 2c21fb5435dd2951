# Run by `cmake --install` (systemd/CMakeLists.txt sets the RUNWAY_* variables
# before including it): writes the units for the prefix being installed to and
# installs them with the snippets and the configuration file.
#
# CMAKE_INSTALL_PREFIX is the prefix of this install (`--prefix DIR`, else the
# configured one); file(INSTALL) puts DESTDIR in front of every destination.

# runway_full_path(VAR DIR): DIR as the installed system will see it.
function(runway_full_path var dir)
  if(IS_ABSOLUTE "${dir}")
    set(${var} "${dir}" PARENT_SCOPE)
  else()
    set(${var} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

# The cache variable when set; systemd's directory when installing into
# systemd's prefix; else the same layout under the prefix.
function(runway_unit_dir var)
  if(NOT "${${var}}" STREQUAL "")
    runway_full_path(dir "${${var}}")
  elseif(NOT "${RUNWAY_SD_${var}}" STREQUAL "" AND CMAKE_INSTALL_PREFIX STREQUAL RUNWAY_SYSTEMD_PREFIX)
    set(dir "${RUNWAY_SD_${var}}")
  else()
    runway_full_path(dir "${RUNWAY_SD_${var}_FALLBACK}")
  endif()
  set(${var}_FULL "${dir}" PARENT_SCOPE)
endfunction()

foreach(var RUNWAY_SYSTEM_UNIT_DIR RUNWAY_USER_UNIT_DIR RUNWAY_SYSUSERS_D
            RUNWAY_TMPFILES_D)
  runway_unit_dir(${var})
endforeach()

# What the units name. /etc for the prefixes /usr and /, as GNUInstallDirs
# does at configure time; under any other prefix PREFIX/etc.
runway_full_path(RUNWAY_BINDIR "${RUNWAY_INSTALL_BINDIR}")
if(IS_ABSOLUTE "${RUNWAY_INSTALL_SYSCONFDIR}")
  set(sysconfdir "${RUNWAY_INSTALL_SYSCONFDIR}")
elseif(CMAKE_INSTALL_PREFIX MATCHES "^/(usr/?)?$")
  set(sysconfdir "/${RUNWAY_INSTALL_SYSCONFDIR}")
else()
  set(sysconfdir "${CMAKE_INSTALL_PREFIX}/${RUNWAY_INSTALL_SYSCONFDIR}")
endif()
set(RUNWAY_CONFIG "${sysconfdir}/runway/runwayd.conf")

set(src "${RUNWAY_SYSTEMD_SOURCE_DIR}")
# One directory per destination: installs of one build to two prefixes may run
# at the same time (the tests do).
string(MD5 dest "$ENV{DESTDIR}|${CMAKE_INSTALL_PREFIX}")
set(work "${RUNWAY_SYSTEMD_WORK_DIR}/${dest}")
configure_file("${src}/runwayd.service.in" "${work}/system/runwayd.service" @ONLY)
configure_file("${src}/runwayd.user.service.in" "${work}/user/runwayd.service" @ONLY)
configure_file("${src}/runway-sysusers.conf" "${work}/sysusers/runway.conf" COPYONLY)
configure_file("${src}/runway-tmpfiles.conf" "${work}/tmpfiles/runway.conf" COPYONLY)

file(INSTALL "${work}/system/runwayd.service" DESTINATION "${RUNWAY_SYSTEM_UNIT_DIR_FULL}")
file(INSTALL "${work}/user/runwayd.service" DESTINATION "${RUNWAY_USER_UNIT_DIR_FULL}")
file(INSTALL "${work}/sysusers/runway.conf" DESTINATION "${RUNWAY_SYSUSERS_D_FULL}")
file(INSTALL "${work}/tmpfiles/runway.conf" DESTINATION "${RUNWAY_TMPFILES_D_FULL}")

# The configuration file is the administrator's once installed: an existing one
# is kept (a package manager handles it as a conffile instead).
if(EXISTS "$ENV{DESTDIR}${RUNWAY_CONFIG}")
  message(STATUS "Keeping: $ENV{DESTDIR}${RUNWAY_CONFIG}")
else()
  file(INSTALL "${src}/runwayd.conf" DESTINATION "${sysconfdir}/runway")
endif()
