// What a key may be. Keys never become paths on the share (objects are named by random ids), but
// they are shown to operators, used as paths by `emsnode store get` and stored as TEXT, so
// anything that could mean a different file somewhere, or not survive the database, is refused.
#include "store/keys.hpp"

#include <algorithm>
#include <string>

#include "store/file_store.hpp"

namespace emsnode::store {
namespace {

[[noreturn]] void refuse(std::string_view key, const std::string& why) {
  std::string shown;
  for (const char c : key.substr(0, 80)) {
    const auto byte = static_cast<unsigned char>(c);
    shown += byte < 0x20 || byte == 0x7f ? '?' : c;
  }
  if (key.size() > 80) shown += "...";
  throw InvalidKey("invalid store key \"" + shown + "\": " + why +
                   " (a key is a relative path of 1.." + std::to_string(kMaxKeyBytes) +
                   " bytes, segments separated by '/')");
}

// Length of the UTF-8 sequence starting at `text[i]`, or 0 when it is malformed.
std::size_t sequence_length(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t at) { return static_cast<unsigned char>(text[at]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80;   // bounds of the second byte, which exclude overlong forms,
  unsigned char high = 0xbf;  // surrogates and code points past U+10FFFF
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (std::size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  }
  return length;
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t length = sequence_length(text, i);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

void check_prefix(std::string_view prefix) {
  if (prefix.find('\0') != std::string_view::npos || !is_valid_utf8(prefix)) {
    throw InvalidKey("invalid store key prefix: it must be UTF-8 text without NUL");
  }
}

void check_key(std::string_view key) {
  if (key.empty()) refuse(key, "it is empty");
  if (key.size() > kMaxKeyBytes) {
    refuse(key, "it has " + std::to_string(key.size()) + " bytes, more than " +
                    std::to_string(kMaxKeyBytes));
  }
  if (key.front() == '/') refuse(key, "it is absolute (starts with '/')");
  for (const char c : key) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\0') refuse(key, "it contains NUL");
    if (c == '\\') refuse(key, "it contains a backslash (a Windows path separator)");
    if (byte < 0x20 || byte == 0x7f) refuse(key, "it contains a control character");
  }
  if (!is_valid_utf8(key)) refuse(key, "it is not valid UTF-8");
  // C1 control characters (U+0080..U+009F), once the encoding is known to be well formed.
  for (std::size_t i = 0; i + 1 < key.size(); ++i) {
    if (static_cast<unsigned char>(key[i]) == 0xc2 &&
        static_cast<unsigned char>(key[i + 1]) < 0xa0) {
      refuse(key, "it contains a control character");
    }
  }
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = std::min(key.find('/', start), key.size());
    const std::string_view segment = key.substr(start, end - start);
    if (segment.empty()) refuse(key, "it has an empty segment (\"//\" or a trailing '/')");
    if (segment == "." || segment == "..") {
      refuse(key, "it has a \"" + std::string(segment) + "\" segment");
    }
    if (end == key.size()) break;
    start = end + 1;
  }
}

}  // namespace emsnode::store
