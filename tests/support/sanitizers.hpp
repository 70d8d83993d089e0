// Whether this test binary runs under a sanitizer, and what a test may not assert then.
//
// Memory: AddressSanitizer's quarantine keeps freed memory (256 MiB by default) and
// ThreadSanitizer maps shadow memory beside the application's: a peak-memory measurement then
// measures the sanitizer, not the code.
//
// Time: under a sanitizer the code runs several times slower, so a wall-clock bound says nothing
// about the code. A test bounds how long something takes only where that bound is the contract
// under test (a stop meets its deadline, a call fails within its timeout), and says so with
// CHECK_WALL_CLOCK, which asserts it in builds without a sanitizer only. How fast something
// usually is belongs to tests/bench/. Lower bounds ("it waited the timeout out") stay plain
// CHECKs: a slower run cannot break them.
#pragma once

namespace emsnode::testing {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

#if defined(__SANITIZE_THREAD__)
constexpr bool kThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kThreadSanitizer = true;
#else
constexpr bool kThreadSanitizer = false;
#endif
#else
constexpr bool kThreadSanitizer = false;
#endif

constexpr bool kSanitizer = kAddressSanitizer || kThreadSanitizer;

// Whether wall-clock bounds are asserted in this build (for a bound inside a predicate, where
// CHECK_WALL_CLOCK cannot go).
constexpr bool kWallClockAsserted = !kSanitizer;

}  // namespace emsnode::testing

// CHECK(condition) for a wall-clock bound that is a contract; not evaluated under a sanitizer.
#define CHECK_WALL_CLOCK(...)                                       \
  do {                                                              \
    if (::emsnode::testing::kWallClockAsserted) CHECK(__VA_ARGS__); \
  } while (false)
