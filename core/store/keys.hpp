// Key rules shared by the backends (check_key() itself is declared in file_store.hpp).
#pragma once

#include <cstddef>
#include <string_view>

namespace emsnode::store {

inline constexpr std::size_t kMaxKeyBytes = 1024;

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF): the encoding both database backends store TEXT in.
bool is_valid_utf8(std::string_view text);
// Throws InvalidKey unless `prefix` ("" for all) is well-formed UTF-8 without NUL.
void check_prefix(std::string_view prefix);

}  // namespace emsnode::store
