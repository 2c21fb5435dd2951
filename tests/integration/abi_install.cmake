# The worker SDK's ABI as a plugin author gets it: installs the build into a
# scratch prefix, then compiles abi_check.c with nothing but pkg-config's
# flags for the installed runway-worker, runs it (every stated size and
# offset against the installed header and the installed library), and
# compiles the installed header as C++ too (its layout checks are
# static_assert there).
# Usage: cmake -DBUILD_DIR=dir -DSOURCE=abi_check.c -DCC=cc -DCXX=c++ -DWORK=scratch -P abi_install.cmake
cmake_minimum_required(VERSION 3.18)

file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK}/prefix
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${rc}):\n${err}")
endif()
file(GLOB_RECURSE pc ${WORK}/prefix/*/runway-worker.pc)
get_filename_component(pcdir "${pc}" DIRECTORY)
set(ENV{PKG_CONFIG_PATH} ${pcdir})
execute_process(COMMAND pkg-config --cflags --libs runway-worker
                RESULT_VARIABLE rc OUTPUT_VARIABLE flags ERROR_VARIABLE err
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config runway-worker failed:\n${err}")
endif()
execute_process(COMMAND pkg-config --variable=libdir runway-worker
                OUTPUT_VARIABLE libdir OUTPUT_STRIP_TRAILING_WHITESPACE)
execute_process(COMMAND pkg-config --variable=includedir runway-worker
                OUTPUT_VARIABLE includedir OUTPUT_STRIP_TRAILING_WHITESPACE)
separate_arguments(flags UNIX_COMMAND "${flags}")

execute_process(COMMAND ${CC} -std=c11 -Wall -Wextra -Werror ${SOURCE} ${flags}
                        -Wl,-rpath,${libdir} -o ${WORK}/abi_check
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "abi_check does not build against the installed SDK:\n${err}")
endif()
execute_process(COMMAND ${WORK}/abi_check RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the stated layout is not the installed one:\n${out}")
endif()
execute_process(COMMAND ldd ${WORK}/abi_check OUTPUT_VARIABLE deps)
if(NOT deps MATCHES "${WORK}/prefix")
  message(FATAL_ERROR "abi_check does not use the installed library:\n${deps}")
endif()

if(CXX)
  file(WRITE ${WORK}/header.cpp "#include <runway/worker.h>\nint main() { return 0; }\n")
  execute_process(COMMAND ${CXX} -std=c++11 -Wall -Wextra -Werror -fsyntax-only -I${includedir}
                          ${WORK}/header.cpp
                  RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the installed header does not compile as C++:\n${err}")
  endif()
endif()
message(STATUS "${out}")
