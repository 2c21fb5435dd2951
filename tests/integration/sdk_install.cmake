# Installs the build into a scratch prefix and builds the example worker
# against the installed SDK only (pkg-config runway-worker): headers, library
# and .pc are where the .pc says. Usage:
#   cmake -DBUILD_DIR=dir -DSOURCE=example.c -DCC=compiler -DWORK=scratch -P sdk_install.cmake
cmake_minimum_required(VERSION 3.18)

file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK}/prefix
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${rc}):\n${err}")
endif()
file(GLOB_RECURSE pc ${WORK}/prefix/*/runway-worker.pc)
if(NOT pc)
  message(FATAL_ERROR "no runway-worker.pc was installed")
endif()
get_filename_component(pcdir ${pc} DIRECTORY)
set(ENV{PKG_CONFIG_PATH} ${pcdir})
execute_process(COMMAND pkg-config --cflags --libs runway-worker
                RESULT_VARIABLE rc OUTPUT_VARIABLE flags ERROR_VARIABLE err
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config runway-worker failed:\n${err}")
endif()
execute_process(COMMAND pkg-config --variable=libdir runway-worker
                OUTPUT_VARIABLE libdir OUTPUT_STRIP_TRAILING_WHITESPACE)
separate_arguments(flags UNIX_COMMAND "${flags}")
# The example itself uses powf: -lm is its own, not the SDK's.
execute_process(COMMAND ${CC} -std=c11 -Wall -Wextra -Werror ${SOURCE} ${flags} -lm
                        -Wl,-rpath,${libdir} -o ${WORK}/example
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the example does not build against the installed SDK:\n${err}")
endif()
execute_process(COMMAND ldd ${WORK}/example OUTPUT_VARIABLE deps)
if(NOT deps MATCHES "${WORK}/prefix")
  message(FATAL_ERROR "the example does not use the installed library:\n${deps}")
endif()
message(STATUS "the example builds and links against the SDK installed in ${WORK}/prefix")
