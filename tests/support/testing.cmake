# How every test of the tree is registered with ctest (included by the top-level CMakeLists.txt, so
# that plugins/<name>/tests use it as tests/ does).
#
# A test that cannot run here (not root, no namespaces, no PostgreSQL, ...) is reported as
# skipped, never as passed:
# - a Catch2 case calls emsnode::testing::skip_test(reason) (support/skip.hpp) and returns; once
#   the case has ended without a failure, the line "EMSNODE_SKIP: <reason>" is printed, which
#   the SKIP_REGULAR_EXPRESSION that emsnode_discover_tests() gives every case matches;
# - a command (script, benchmark) exits with status 77, the SKIP_RETURN_CODE that
#   emsnode_add_test() gives it.
# Register tests through these two functions only: a plain catch_discover_tests() or add_test()
# would count a skipped test as passed.
find_package(Catch2 2.13 REQUIRED)
include(Catch)

set(EMSNODE_SKIP_MARKER "EMSNODE_SKIP:")  # skip.cpp prints it
set(EMSNODE_SKIP_RETURN_CODE 77)         # as Automake's test drivers

add_library(emsnode_test_skip STATIC ${CMAKE_CURRENT_LIST_DIR}/skip.cpp)
target_include_directories(emsnode_test_skip PUBLIC ${CMAKE_CURRENT_LIST_DIR}/..)
target_link_libraries(emsnode_test_skip PUBLIC Catch2::Catch2)

# The tests that run under ThreadSanitizer (the concurrent parts: role, plugin host and its
# executor, mq). A build with EMSNODE_SANITIZE=thread registers only these, and the target
# emsnode_tsan_tests builds them with what they run (the node, the plugins).
set(EMSNODE_TSAN_TESTS role_tests host_tests mq_tests mq_broker_tests mq_integration_tests)
add_custom_target(emsnode_tsan_tests)
add_dependencies(emsnode_tsan_tests ${EMSNODE_TSAN_TESTS})
# The tsan test preset sends the reports of every process (the tests and the nodes they start,
# whose standard error the tests keep to themselves) to files here: TSAN_OPTIONS log_path.
if(EMSNODE_SANITIZE STREQUAL "thread")
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/tsan)
endif()

# Test cases tagged [security] (each named for the attack it stops) also get the label
# `security`, beside their own: `ctest -L security` runs them all. Catch's discovery script cannot
# set two labels (see below), so this script runs after it, in its place, and appends the
# labels of those cases to the file it wrote. EMSNODE_CATCH_INNER_SCRIPT is the script it wraps.
set(EMSNODE_SECURITY_LABEL_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/security_labels.cmake)

# emsnode_discover_tests(<target> [catch_discover_tests() arguments...] [LABEL <label>]
#                        [PROPERTIES ...])
# catch_discover_tests() with the skip marker; PROPERTIES, if any, must come last. One label at
# most: Catch's discovery script flattens a list value, so "a;b" would set LABELS a and a property
# named b (and shift every property after it); [security] cases get a second one (above).
function(emsnode_discover_tests target)
  cmake_parse_arguments(arg "" "LABEL" "PROPERTIES" ${ARGN})
  target_link_libraries(${target} PRIVATE emsnode_test_skip)
  if(EMSNODE_SANITIZE STREQUAL "thread" AND NOT target IN_LIST EMSNODE_TSAN_TESTS)
    return()
  endif()
  set(label)
  if(arg_LABEL)
    set(label LABELS ${arg_LABEL})
  endif()
  # One wrapper per wrapped script, written at configure time: the discovery script is run with
  # `cmake -P` and learns nothing else.
  string(MD5 inner_id "${_CATCH_DISCOVER_TESTS_SCRIPT}")
  set(wrapper ${CMAKE_BINARY_DIR}/catch_add_tests_${inner_id}.cmake)
  file(WRITE ${wrapper}
    "set(EMSNODE_CATCH_INNER_SCRIPT \"${_CATCH_DISCOVER_TESTS_SCRIPT}\")\n"
    "include(\"${EMSNODE_SECURITY_LABEL_SCRIPT}\")\n")
  set(_CATCH_DISCOVER_TESTS_SCRIPT ${wrapper})
  catch_discover_tests(${target} ${arg_UNPARSED_ARGUMENTS}
    PROPERTIES SKIP_REGULAR_EXPRESSION "${EMSNODE_SKIP_MARKER}" ${label} ${arg_PROPERTIES})
endfunction()

# emsnode_add_test(<name> COMMAND <command> [args...] [LABELS <label>...] [PROPERTIES ...]
#                  [FIXTURE])
# add_test() whose exit status 77 is a skip. Not registered under ThreadSanitizer unless FIXTURE
# (a fixture the ThreadSanitizer tests need, such as the PostgreSQL server).
function(emsnode_add_test name)
  cmake_parse_arguments(arg "FIXTURE" "" "COMMAND;LABELS;PROPERTIES" ${ARGN})
  if(EMSNODE_SANITIZE STREQUAL "thread" AND NOT arg_FIXTURE)
    return()
  endif()
  add_test(NAME "${name}" COMMAND ${arg_COMMAND})
  set_tests_properties("${name}" PROPERTIES SKIP_RETURN_CODE ${EMSNODE_SKIP_RETURN_CODE}
                                            LABELS "${arg_LABELS}" ${arg_PROPERTIES})
endfunction()
