// Whether this test binary runs under AddressSanitizer, whose quarantine keeps freed memory
// (256 MiB by default): a peak-memory measurement then measures the sanitizer, not the code.
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

}  // namespace emsnode::testing
