# Run by ctest's discovery of a Catch2 executable (cmake -P, from the wrapper that
# emsnode_discover_tests() writes): Catch's own discovery first, then the label `security`
# added to the discovered cases tagged [security], beside the label they already have.
cmake_policy(VERSION 3.16)  # IN_LIST; a script run with -P has no project policies
include("${EMSNODE_CATCH_INNER_SCRIPT}")

execute_process(
  COMMAND ${TEST_EXECUTOR} "${TEST_EXECUTABLE}" "[security]" --list-test-names-only
  OUTPUT_VARIABLE security_output
  RESULT_VARIABLE security_result
  WORKING_DIRECTORY "${TEST_WORKING_DIR}")
# Catch exits with the number of cases listed; a negative status is a crash.
if(security_result LESS 0)
  message(FATAL_ERROR "${TEST_EXECUTABLE} [security] --list-test-names-only: ${security_result}")
endif()

# The label the inner script gave every case (TEST_PROPERTIES is flattened: LABELS;<label>;...).
set(own_labels)
list(FIND properties LABELS labels_at)
if(NOT labels_at EQUAL -1)
  math(EXPR label_at "${labels_at} + 1")
  list(GET properties ${label_at} own_labels)
endif()
list(APPEND own_labels security)

string(REPLACE "\n" ";" security_names "${security_output}")
set(security_script)
foreach(name IN LISTS security_names)
  if(name STREQUAL "")
    continue()
  endif()
  set(test "${prefix}${name}${suffix}")
  if(test IN_LIST tests)
    string(APPEND security_script
      "set_tests_properties([==[${test}]==] PROPERTIES LABELS \"${own_labels}\")\n")
  endif()
endforeach()
file(APPEND "${CTEST_FILE}" "${security_script}")
