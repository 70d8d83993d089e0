# emsnode_add_plugin(<target> MANIFEST <plugin.toml> SOURCES <src>... [NO_INSTALL])
#
# Builds a plugin library the way the emsnode host loads it: a module named after the plugin id
# (read from the manifest) with hidden symbol visibility, placed with its manifest in
#   ${EMSNODE_PLUGIN_OUTPUT_DIR}/<id>/   (default: ${CMAKE_BINARY_DIR}/plugins/<id>/)
# and installed to ${EMSNODE_PLUGIN_INSTALL_DIR}/<id>/ (default: lib/emsnode/plugins/<id>/),
# unless NO_INSTALL is given (plugins built only for tests).
#
# The manifest is checked at configure time against this SDK, so a mismatch fails the build
# rather than the node at load: `id` must be [a-z][a-z0-9_-]*, `version` must be present, and
# `abi = "<major>.<minor>"` must name this SDK's major and a minor no newer than its own.
#
# The same file serves the source tree (sdk/cmake/) and an installed SDK
# (lib/cmake/EmsnodeSDK/, included by EmsnodeSDKConfig.cmake, which sets
# EMSNODE_SDK_INCLUDE_DIR first).
include_guard(GLOBAL)

# The ABI version of the headers this SDK ships, read once from plugin_abi.h and kept in global
# properties so that emsnode_add_plugin sees it from any directory.
if(NOT DEFINED EMSNODE_SDK_INCLUDE_DIR)
  set(EMSNODE_SDK_INCLUDE_DIR "${CMAKE_CURRENT_LIST_DIR}/../include")
endif()
file(STRINGS "${EMSNODE_SDK_INCLUDE_DIR}/emsnode/plugin_abi.h" _emsnode_abi_defines
     REGEX "^#define EMSNODE_ABI_(MAJOR|MINOR) [0-9]+$")
foreach(_emsnode_part IN ITEMS MAJOR MINOR)
  if(NOT _emsnode_abi_defines MATCHES "EMSNODE_ABI_${_emsnode_part} ([0-9]+)")
    message(FATAL_ERROR
      "${EMSNODE_SDK_INCLUDE_DIR}/emsnode/plugin_abi.h: no #define EMSNODE_ABI_${_emsnode_part}")
  endif()
  set_property(GLOBAL PROPERTY EMSNODE_SDK_ABI_${_emsnode_part} "${CMAKE_MATCH_1}")
endforeach()
unset(_emsnode_abi_defines)
unset(_emsnode_part)

function(emsnode_add_plugin target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "NO_INSTALL" "MANIFEST" "SOURCES")
  if(NOT arg_MANIFEST)
    message(FATAL_ERROR "emsnode_add_plugin(${target}): MANIFEST <plugin.toml> is required")
  endif()
  if(NOT arg_SOURCES)
    message(FATAL_ERROR "emsnode_add_plugin(${target}): SOURCES <file>... is required")
  endif()
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "emsnode_add_plugin(${target}): unexpected ${arg_UNPARSED_ARGUMENTS}")
  endif()
  get_filename_component(manifest "${arg_MANIFEST}" ABSOLUTE)
  if(NOT EXISTS "${manifest}")
    message(FATAL_ERROR "emsnode_add_plugin(${target}): ${manifest} does not exist")
  endif()

  # Top-level keys only: they come before the first [table] header.
  file(STRINGS "${manifest}" lines)
  set(id "")
  set(version "")
  set(abi "")
  foreach(line IN LISTS lines)
    if(line MATCHES "^[ \t]*\\[")
      break()
    elseif(line MATCHES "^id[ \t]*=[ \t]*\"([^\"]*)\"")
      set(id "${CMAKE_MATCH_1}")
    elseif(line MATCHES "^version[ \t]*=[ \t]*\"([^\"]+)\"")
      set(version "${CMAKE_MATCH_1}")
    elseif(line MATCHES "^abi[ \t]*=[ \t]*\"([0-9]+)\\.([0-9]+)\"")
      set(abi "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}")
      set(abi_major "${CMAKE_MATCH_1}")
      set(abi_minor "${CMAKE_MATCH_2}")
    endif()
  endforeach()
  if(NOT id MATCHES "^[a-z][a-z0-9_-]*$")
    message(FATAL_ERROR "${manifest}: no line id = \"<plugin id>\" (lowercase, digits, '_', '-')")
  endif()
  if(version STREQUAL "")
    message(FATAL_ERROR "${manifest}: no line version = \"<plugin version>\"")
  endif()
  get_property(sdk_major GLOBAL PROPERTY EMSNODE_SDK_ABI_MAJOR)
  get_property(sdk_minor GLOBAL PROPERTY EMSNODE_SDK_ABI_MINOR)
  if(abi STREQUAL "")
    message(FATAL_ERROR "${manifest}: no line abi = \"<major>.<minor>\" "
                        "(this SDK: abi = \"${sdk_major}.${sdk_minor}\")")
  endif()
  if(NOT abi_major EQUAL sdk_major OR abi_minor GREATER sdk_minor)
    message(FATAL_ERROR "${manifest}: abi = \"${abi}\", but this SDK's headers are ABI "
                        "${sdk_major}.${sdk_minor}: the major must be equal and the minor no "
                        "newer. Set abi = \"${sdk_major}.${sdk_minor}\" or build against the "
                        "matching SDK.")
  endif()

  if(NOT DEFINED EMSNODE_PLUGIN_OUTPUT_DIR)
    set(EMSNODE_PLUGIN_OUTPUT_DIR "${CMAKE_BINARY_DIR}/plugins")
  endif()
  if(NOT DEFINED EMSNODE_PLUGIN_INSTALL_DIR)
    set(EMSNODE_PLUGIN_INSTALL_DIR "lib/emsnode/plugins")
  endif()
  set(out "${EMSNODE_PLUGIN_OUTPUT_DIR}/${id}")

  add_library(${target} MODULE ${arg_SOURCES})
  target_link_libraries(${target} PRIVATE EmsnodeSDK::sdk)
  set_target_properties(${target} PROPERTIES
    PREFIX "" OUTPUT_NAME "${id}"
    LIBRARY_OUTPUT_DIRECTORY "${out}"
    C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  # Export the entry point and nothing else. Hidden visibility is not enough: headers such as
  # Boost.Asio's push default visibility, and their weak and STB_GNU_UNIQUE symbols would bind
  # across every plugin in the process (the first library loaded wins, an ODR violation between
  # plugins built against different versions) and keep the library from ever unloading.
  if(UNIX AND NOT APPLE)
    set(exports "${CMAKE_CURRENT_BINARY_DIR}/${target}.exports")
    file(WRITE "${exports}" "{ global: emsnode_plugin_entry; local: *; };\n")
    target_link_options(${target} PRIVATE "LINKER:--version-script=${exports}")
    set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS "${exports}")
  endif()
  # Multi-config generators would otherwise add a <config>/ level the host does not look in.
  foreach(config IN LISTS CMAKE_CONFIGURATION_TYPES)
    string(TOUPPER "${config}" config)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY_${config} "${out}")
  endforeach()
  configure_file("${manifest}" "${out}/plugin.toml" COPYONLY)
  if(NOT arg_NO_INSTALL)
    install(TARGETS ${target} LIBRARY DESTINATION "${EMSNODE_PLUGIN_INSTALL_DIR}/${id}")
    install(FILES "${manifest}" DESTINATION "${EMSNODE_PLUGIN_INSTALL_DIR}/${id}")
  endif()
endfunction()
