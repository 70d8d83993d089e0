// skip_test() and the listener that turns it into the line ctest reads (skip.hpp).
#include "support/skip.hpp"

// The reporter interfaces (TestEventListenerBase) are only declared with this.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

#include <iostream>
#include <optional>

namespace emsnode::testing {
namespace {

// tests/support/testing.cmake matches it (EMSNODE_SKIP_MARKER).
constexpr const char* kSkipMarker = "EMSNODE_SKIP:";

// The reason the running test case gave; Catch runs one case at a time.
std::optional<std::string>& skip_reason() {
  static std::optional<std::string> reason;
  return reason;
}

// Prints the marker when a case that asked to be skipped ends, unless it failed.
class SkipListener : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;

  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    skip_reason().reset();
    TestEventListenerBase::testCaseStarting(info);
  }

  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    if (const std::optional<std::string> reason = std::move(skip_reason())) {
      skip_reason().reset();
      if (stats.totals.assertions.failed == 0) {
        std::cout << kSkipMarker << ' ' << *reason << std::endl;
      } else {
        std::cout << "skip_test(\"" << *reason << "\") ignored: the test case failed" << std::endl;
      }
    }
    TestEventListenerBase::testCaseEnded(stats);
  }
};

CATCH_REGISTER_LISTENER(SkipListener)

}  // namespace

void skip_test(const std::string& reason) {
  skip_reason() = reason;
  WARN("skipped: " << reason);
}

}  // namespace emsnode::testing
