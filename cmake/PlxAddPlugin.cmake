# plx_add_plugin(NAME <kind>-<name> SOURCES ... [LIBS ...])
# Builds a dlopen-able MODULE named plexa-<kind>-<name>.so into the plugin
# directory of the build tree and installs it into <libdir>/plexa/plugins.
# The plugin boundary: a plugin's include path is include/ (the public
# ABI) plus what its LIBS pass on -- plugins/common's libraries, which
# carry core/base's libc-only helpers and nothing else of core.
# Tests load the built module through the plugin loader, as the programs
# do (PLX_PLUGIN_PATH points at the build tree's plugin directory).
function(plx_add_plugin)
  cmake_parse_arguments(P "" "NAME" "SOURCES;LIBS" ${ARGN})
  set(target plexa-${P_NAME})
  add_library(${target} MODULE ${P_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    LIBRARY_OUTPUT_DIRECTORY ${PLX_PLUGIN_BUILD_DIR}
    C_VISIBILITY_PRESET hidden)
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR}/include ${CMAKE_BINARY_DIR}/include)
  target_link_libraries(${target} PRIVATE ${P_LIBS})
  install(TARGETS ${target} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/${PLX_PLUGIN_SUBDIR})
endfunction()
