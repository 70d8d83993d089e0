// A small JSON writer for the admin endpoint's documents. Strings are escaped per RFC 8259, and
// since the values come from the database, plugins and peers, the output is valid JSON whatever
// they hold: control characters are escaped and invalid UTF-8 becomes U+FFFD.
//
//   JsonWriter json;
//   json.begin_object().key("id").string("node-a").key("epoch").number(epoch).end_object();
//   std::string text = json.take();
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace emsnode::admin {

// The length of the well-formed UTF-8 sequence (Unicode table 3-7) that starts `text`, or 0 when
// it starts with an ill-formed one; `*ill_formed` then gets the length of its longest ill-formed
// prefix (at least 1), which a reader replaces with one U+FFFD as the WHATWG decoder does.
std::size_t utf8_sequence(std::string_view text, std::size_t* ill_formed);

// Appends `text` to `out` as a quoted JSON string.
void append_json_string(std::string& out, std::string_view text);
std::string json_string(std::string_view text);

// Writes one JSON value compactly. Misuse (a value without a key inside an object, an unbalanced
// end) is a programming error, caught by assertions.
class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view name);
  JsonWriter& string(std::string_view text);
  JsonWriter& number(std::int64_t value);
  JsonWriter& number(std::uint64_t value);
  JsonWriter& boolean(bool value);
  JsonWriter& null();

  // The document written so far; complete once every container is closed.
  std::string take();

 private:
  // Writes the comma that separates this value from the previous one in its container.
  void before_value();

  struct Level {
    bool object;
    bool empty = true;
  };
  std::string out_;
  std::vector<Level> levels_;
  bool after_key_ = false;
};

}  // namespace emsnode::admin
