// A test case that cannot run here says why and is reported by ctest as skipped, never as passed
// (Catch2 2 has no skip of its own):
//
//   if (::geteuid() != 0) {
//     skip_test("changing a file's owner needs root");
//     return;
//   }
//
// When the case ends without a failed assertion, "EMSNODE_SKIP: <reason>" is printed, which the
// SKIP_REGULAR_EXPRESSION of every registered case matches (tests/support/testing.cmake). A case
// that failed, before the call or after it, stays failed: a skip never hides a failure. Call it
// before the case has checked anything, and return.
#pragma once

#include <string>

namespace emsnode::testing {

void skip_test(const std::string& reason);

}  // namespace emsnode::testing
