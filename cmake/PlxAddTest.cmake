# Registering tests, in one place (used by tests/*/CMakeLists.txt).
#
# Labels say what a test touches, so that a run can pick them:
#   unit         in-process, no other process, no socket
#   component    one part driven for real: sockets on loopback, a spawned
#                ipengine, a loaded plugin, a fake peer
#   integration  a whole cluster of real processes
#   launchers    real sshd, OpenMPI, Slurm, Grid Engine, PBS
#   security     the threat model, with local users (root only)
#   bench        the benchmark script's smoke run
# and, beside those, the area (tls, engine, client, plugin, controller,
# python) for `ctest -L tls` and the like.
#
# plx_add_test(<ctest name> SOURCES <file>... [TARGET <exe>] [LIBS <lib>...]
#              [LABELS <label>...] [TIMEOUT <s>] [ENV <VAR=value>...]
#              [DEPENDS <target>...] [DEFS <definition>...] [PLUGINS])
# A cmocka program from SOURCES, with the shared main (tests/common:
# plx_test.h), written to <build>/tests/<exe> (default: the first source's
# name). PLUGINS points PLX_PLUGIN_PATH at the build tree's plugins and
# builds the tcp and tls transports first.
function(plx_add_test name)
  cmake_parse_arguments(T "PLUGINS" "TARGET;TIMEOUT"
                        "SOURCES;LIBS;LABELS;ENV;DEPENDS;DEFS" ${ARGN})
  if(NOT T_SOURCES)
    message(FATAL_ERROR "plx_add_test(${name}): SOURCES is required")
  endif()
  if(NOT T_TARGET)
    list(GET T_SOURCES 0 first)
    get_filename_component(T_TARGET ${first} NAME_WE)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${T_TARGET} ${T_SOURCES})
  target_link_libraries(${T_TARGET} PRIVATE ${T_LIBS} plexa_testmain)
  target_compile_definitions(${T_TARGET} PRIVATE ${T_DEFS})
  set_target_properties(${T_TARGET} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  if(T_PLUGINS)
    list(APPEND T_DEPENDS plexa-transport-tcp plexa-transport-tls)
    list(APPEND T_ENV "PLX_PLUGIN_PATH=${PLX_PLUGIN_BUILD_DIR}")
  endif()
  if(T_DEPENDS)
    add_dependencies(${T_TARGET} ${T_DEPENDS})
  endif()
  add_test(NAME ${name} COMMAND ${T_TARGET})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT})
  if(T_ENV)
    set_tests_properties(${name} PROPERTIES ENVIRONMENT "${T_ENV}")
  endif()
endfunction()

# plx_add_pytests(<prefix> GLOB <pattern> [LABELS ...] [TIMEOUT s]
#                 [ENV <VAR=value>...] [RESOURCE_LOCK <name>])
# One ctest per matching pytest file, named <prefix>.<file name>, run by
# the Python that sees Debian's packages, against this build tree
# (PLX_BUILD_DIR, PYTHONPATH).
function(plx_add_pytests prefix)
  cmake_parse_arguments(T "" "GLOB;TIMEOUT;RESOURCE_LOCK" "LABELS;ENV" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  file(GLOB files CONFIGURE_DEPENDS ${T_GLOB})
  foreach(src ${files})
    get_filename_component(stem ${src} NAME_WE)
    plx_add_pytest(${prefix}.${stem} ${src} LABELS ${T_LABELS} TIMEOUT ${T_TIMEOUT}
                   ENV ${T_ENV} RESOURCE_LOCK ${T_RESOURCE_LOCK})
  endforeach()
endfunction()

# plx_add_pytest(<ctest name> <file or directory> [LABELS ...] [TIMEOUT s]
#                [ENV ...] [RESOURCE_LOCK <name>])
function(plx_add_pytest name path)
  cmake_parse_arguments(T "" "TIMEOUT;RESOURCE_LOCK" "LABELS;ENV" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  set(env "PLX_BUILD_DIR=${CMAKE_BINARY_DIR}" "PYTHONPATH=${CMAKE_BINARY_DIR}/python" ${T_ENV})
  # A test that runs for 240 s is taken to hang: every thread's stack is
  # printed (the run goes on until ctest's timeout), so that a hang in CI
  # says where it is.
  add_test(NAME ${name}
           COMMAND ${Python3_EXECUTABLE} -m pytest -q -p no:cacheprovider
                   -o faulthandler_timeout=240 ${path})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "${env}")
  if(T_RESOURCE_LOCK)
    set_tests_properties(${name} PROPERTIES RESOURCE_LOCK ${T_RESOURCE_LOCK})
  endif()
endfunction()
