// A small schema language for TOML tables, used for the node's own config and for each plugin's
// `[plugins.<id>]` section (whose schema comes from the plugin's plugin.toml). Validation is
// strict: unknown keys, wrong types, out-of-range and malformed values are refused with one line
// "FILE:LINE:COL: what is wrong (what is expected)".
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <toml++/toml.h>

namespace emsnode::config {

// A refusal of a config or manifest, pointing at the offending place.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, std::uint32_t line, std::uint32_t column, std::string message);

  // At the position of `node` (its source region), or at 1:1 of `file` when it has none. The
  // file named is the one the node was parsed from, so a plugin section moved out of node.toml
  // still names node.toml; `file_fallback` only when the region has no path.
  static ConfigError at(const toml::node& node, std::string_view file_fallback,
                        std::string message);
  // The same at the start of `where` (a key's or a parse error's region).
  static ConfigError at(const toml::source_region& where, std::string_view file_fallback,
                        std::string message);

  const std::string& file() const { return file_; }
  std::uint32_t line() const { return line_; }
  std::uint32_t column() const { return column_; }
  const std::string& message() const { return message_; }

 private:
  std::string file_;
  std::uint32_t line_;
  std::uint32_t column_;
  std::string message_;
};

// A password or token. Printing it shows "<redacted>"; reveal() is the only way to the text.
class Secret {
 public:
  explicit Secret(std::string text) : text_(std::move(text)) {}
  const std::string& reveal() const { return text_; }
  friend bool operator==(const Secret& a, const Secret& b) { return a.text_ == b.text_; }

 private:
  std::string text_;
};
std::ostream& operator<<(std::ostream& out, const Secret&);

// Parses "250us" (rounded up to 1ms), "500ms", "2s", "1.5s", "5m", "1h"; a bare number is refused.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
// The shortest exact spelling: 1500ms -> "1500ms", 2000ms -> "2s", 300000ms -> "5m".
std::string format_duration(std::chrono::milliseconds duration);

enum class Type {
  string,    // any string (optionally one of `choices`)
  integer,   // 64-bit integer, optional min/max
  floating,  // float or integer, optional min/max
  boolean,
  duration,  // "500ms", "2s", ...; min/max in milliseconds
  secret,    // a string given inline, as "env:NAME", or through the sibling key "<name>_file"
  path,      // a string resolved against the config file's folder
  address,   // "host:port" with a port in 1..65535 (IPv6 as "[::1]:8013")
  strings,   // array of strings
};
std::string_view type_name(Type type);

using Value = std::variant<std::string, std::int64_t, double, bool, std::chrono::milliseconds,
                           Secret, std::vector<std::string>>;

// Renders a value for `emsnode check` and logs; a Secret renders as "<redacted>".
std::string to_display(const Value& value);

struct Field {
  std::string name;
  Type type = Type::string;
  std::string description;
  std::optional<Value> default_value;  // used when the key is absent
  bool required = false;               // absent and no default: refused when required
  std::optional<double> min;           // integer, floating, duration (ms)
  std::optional<double> max;
  std::vector<std::string> choices;  // string: the only accepted values
  // A further rule on a value of the right type: returns what is wrong with it, worded
  // "<what is wrong> (expected <what is expected>)", or "" when it is fine. Not applied to the
  // default. Must not echo a Secret.
  std::function<std::string(const Value&)> check;
};

struct Schema {
  std::vector<Field> fields;
  std::map<std::string, Schema, std::less<>> tables;  // nested tables, validated recursively
};

// Validated values of one table, defaults filled in. Nested tables are flattened with dots:
// "log.file". Keys that were absent and have no default are absent here.
class Values {
 public:
  bool contains(std::string_view key) const;
  const Value* find(std::string_view key) const;
  template <typename T>
  const T* get(std::string_view key) const {
    const Value* v = find(key);
    return v ? std::get_if<T>(v) : nullptr;
  }
  // Where a key was written (for errors found after validation); nullopt for defaults.
  std::optional<toml::source_region> source(std::string_view key) const;

  const std::map<std::string, Value, std::less<>>& all() const { return values_; }

  void set(std::string key, Value value, std::optional<toml::source_region> where = std::nullopt);

 private:
  std::map<std::string, Value, std::less<>> values_;
  std::map<std::string, toml::source_region, std::less<>> sources_;
};

struct Context {
  std::string file;                // shown in errors
  std::filesystem::path base_dir;  // relative paths and "<key>_file" resolve against it
  // Keys at the top of the validated table that the caller handles itself (not refused as
  // unknown, not validated here).
  std::vector<std::string> reserved_keys;
  // How errors name the validated table ("plugins.echo" -> "[plugins.echo] listen: ..."); empty
  // for a file's root. Nested tables append their own name.
  std::string table;
  // How errors name the root when `table` is empty: "at the top level" of a file, "among the
  // arguments" of a control command.
  std::string root_name = "at the top level";
  // A secret is taken as written: "env:NAME" and "<key>_file" are not interpreted. For values a
  // remote caller sends (command arguments): the node's environment and files are not theirs to
  // read.
  bool literal_secrets = false;
};

// Validates `table` against `schema`. Throws ConfigError at the first problem.
Values validate(const toml::table& table, const Schema& schema, const Context& context);

// Reads a schema written in TOML (a plugin.toml's [config] table): one sub-table per key with
//   type = "string|integer|float|boolean|duration|secret|path|address|strings"
//   description = "...", default = ..., required = true|false, min = .., max = .., choices = [..]
// Throws ConfigError (at the manifest's positions) for a malformed schema, including a default
// that does not satisfy its own field. A duration's min/max/default are duration strings
// ("100ms"); a secret has no default; `required = true` and a default exclude each other; a path
// default stays relative and resolves against the node config that uses it.
Schema schema_from_toml(const toml::table& config_table, const Context& context);

// Resolves a path written in a config against `base_dir`: absolute and lexically normalised,
// without a trailing separator. The file need not exist.
std::filesystem::path resolve_path(std::string_view text, const std::filesystem::path& base_dir);

// How errors show a string value: in double quotes, with quotes, backslashes and control
// characters escaped so the error stays on one line.
std::string quote(std::string_view text);

// What a node is, as errors name it after "got": "a string", "an integer", "a table", ...
std::string_view node_kind(const toml::node& node);

// Parses a TOML file, turning toml++'s parse error into a ConfigError with its position.
// Also throws ConfigError ("cannot read") when the file is missing or unreadable.
toml::table parse_file(const std::filesystem::path& file);
toml::table parse_text(std::string_view text, const std::string& file);

}  // namespace emsnode::config
