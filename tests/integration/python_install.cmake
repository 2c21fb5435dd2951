# `pip install clients/python` as a user runs it, offline: the package builds
# with its own standard-library backend and imports from where pip put it.
# Usage: cmake -DPYTHON=python3 -DSOURCE=clients/python -DLIB=librunway-worker.so.1
#              -DWORK=scratch -P python_install.cmake
cmake_minimum_required(VERSION 3.18)

file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${PYTHON} -m pip install --no-index --no-deps --no-cache-dir
                        --disable-pip-version-check --target ${WORK}/site ${SOURCE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pip install ${SOURCE} failed (${rc}):\n${out}\n${err}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env PYTHONPATH=${WORK}/site RUNWAY_WORKER_LIB=${LIB}
                        ${PYTHON} -c
  "import runway_worker as rw; print(rw.__file__); rw.library(); print(rw.Param('x', 0, 1, 0))"
                WORKING_DIRECTORY ${WORK}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the installed runway_worker does not import:\n${out}\n${err}")
endif()
if(NOT out MATCHES "${WORK}/site/runway_worker/__init__.py")
  message(FATAL_ERROR "runway_worker was imported from elsewhere:\n${out}")
endif()
message(STATUS "pip installed runway_worker into ${WORK}/site:\n${out}")
