#include <catch2/catch.hpp>

#include "role/role_manager.hpp"

using namespace std::chrono_literals;
using emsnode::role::check_timers;
using emsnode::role::Timers;

TEST_CASE("the default timers satisfy every invariant") {
  CHECK(check_timers(Timers{}).empty());
}

TEST_CASE("each broken timer invariant is refused with a message that names the [role] keys") {
  Timers timers;
  std::string expected;
  SECTION("a timer that is not positive") {
    timers.poll_interval = 0ms;
    expected = "[role] poll_interval must be greater than 0 (got 0 ms)";
  }
  SECTION("fewer than two renewals before the deadline") {
    timers.renew_interval = 700ms;
    expected = "[role] renew_interval (700 ms) * 2 must be <= renew_deadline (1200 ms)";
  }
  SECTION("no time to fence between the deadline and the expiry") {
    timers.renew_deadline = 1900ms;
    expected = "[role] renew_deadline (1900 ms) + 200 ms must be <= lease_ttl (2000 ms)";
  }
  SECTION("a passive that looks less than twice per lease") {
    timers.poll_interval = 1500ms;
    expected = "[role] poll_interval (1500 ms) must be <= lease_ttl (2000 ms) / 2";
  }
  SECTION("a lease longer than a minute") {
    timers = {61s, 10s, 30s, 5s};
    expected = "[role] lease_ttl (61000 ms) must be at most 60 s";
  }
  CHECK_THAT(check_timers(timers), Catch::StartsWith(expected));
}

TEST_CASE("timers at the edges of the invariants are accepted") {
  CHECK(check_timers({600ms, 100ms, 200ms, 300ms}).empty());
  CHECK(check_timers({60s, 1s, 2s, 30s}).empty());
}
