#include "config/schema.hpp"

#include "config/trusted_file.hpp"
#include "log/log.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <system_error>
#include <utility>

namespace emsnode::config {
namespace {

constexpr std::string_view kDurationExpected = R"(expected a string such as "500ms", "2s", "5m")";
constexpr std::string_view kAddressExpected =
    R"(expected "host:port" with a port in 1..65535, IPv6 as "[::1]:8013")";
constexpr std::string_view kFileSuffix = "_file";
constexpr std::string_view kEnvPrefix = "env:";

constexpr Type kTypes[] = {Type::string,  Type::integer,  Type::floating,
                           Type::boolean, Type::duration, Type::secret,
                           Type::path,    Type::address,  Type::strings};
constexpr std::string_view kFieldSpecKeys[] = {"type", "description", "default", "required",
                                               "min",  "max",         "choices"};

// Bounds that keep duration arithmetic inside an int64; digits past the ninth decimal would only
// describe time far below the millisecond a duration is rounded to.
constexpr std::size_t kMaxFractionDigits = 9;
constexpr std::size_t kMaxWholeDigits = 18;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

std::string format_number(double number) {
  char buffer[64];
  const auto result = std::to_chars(std::begin(buffer), std::end(buffer), number);
  return std::string(buffer, result.ptr);
}

// How a range bound reads in errors: durations in their own units, numbers as written.
std::string format_bound(Type type, double bound) {
  if (type == Type::duration) {
    return format_duration(std::chrono::milliseconds(std::llround(bound)));
  }
  return format_number(bound);
}

std::string range_text(const Field& field) {
  if (field.min && field.max) {
    return format_bound(field.type, *field.min) + ".." + format_bound(field.type, *field.max);
  }
  if (field.min) return "at least " + format_bound(field.type, *field.min);
  return "at most " + format_bound(field.type, *field.max);
}

bool in_range(const Field& field, double value) {
  return (!field.min || value >= *field.min) && (!field.max || value <= *field.max);
}

std::string_view article_for(Type type) {
  return type == Type::integer ? "an " : "a ";
}

bool valid_port(std::string_view port) {
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit)) {
    return false;
  }
  const int number = std::stoi(std::string(port));
  return number >= 1 && number <= 65535;
}

bool valid_address(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return false;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return false;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    // A bare IPv6 literal is ambiguous ("::1:80"): it must be bracketed.
    if (host.find(':') != std::string_view::npos) return false;
  }
  const bool host_ok = !host.empty() && std::none_of(host.begin(), host.end(), [](char c) {
    return is_space(c) || c == '[' || c == ']';
  });
  return host_ok && valid_port(port);
}

// Reads a whole file; on failure `error` says why and the result is empty.
std::string read_whole(const std::filesystem::path& file, std::error_code& error) {
  // Opening a directory succeeds on POSIX and only the read fails, without a clear errno.
  if (std::filesystem::is_directory(file, error)) {
    error = std::make_error_code(std::errc::is_a_directory);
    return {};
  }
  error.clear();
  errno = 0;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    error = errno != 0 ? std::error_code(errno, std::generic_category())
                       : std::make_error_code(std::errc::io_error);
    return {};
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    error = std::make_error_code(std::errc::io_error);
    return {};
  }
  return text.str();
}

// Errors about one key ("[log] level: ...") of the table being validated.
std::string key_label(const std::string& table, std::string_view key) {
  if (table.empty()) return std::string(key);
  return "[" + table + "] " + std::string(key);
}

std::string nested_name(const std::string& parent, std::string_view name) {
  return parent.empty() ? std::string(name) : parent + "." + std::string(name);
}

// The Value of one present key, or a ConfigError at `node`. `what` names the key in messages.
Value convert(const toml::node& node, const Field& field, const std::string& what,
              const Context& context) {
  const auto refuse = [&](const std::string& problem) {
    return ConfigError::at(node, context.file, what + ": " + problem);
  };
  const auto expected = [&](std::string_view expectation) {
    return refuse("expected " + std::string(expectation) + ", got " + std::string(node_kind(node)));
  };
  const auto out_of_range = [&](const std::string& shown) {
    return refuse(shown + " is out of range (expected " + range_text(field) + ")");
  };

  Value value;
  switch (field.type) {
    case Type::string: {
      const auto* text = node.as_string();
      if (!text) throw expected("a string");
      const std::string& s = text->get();
      if (!field.choices.empty() &&
          std::find(field.choices.begin(), field.choices.end(), s) == field.choices.end()) {
        throw refuse(quote(s) +
                     " is not an accepted value (expected one of: " + join(field.choices) + ")");
      }
      value = s;
      break;
    }
    case Type::integer: {
      const auto* number = node.as_integer();
      if (!number) throw expected("an integer");
      const std::int64_t n = number->get();
      if (!in_range(field, static_cast<double>(n))) throw out_of_range(std::to_string(n));
      value = n;
      break;
    }
    case Type::floating: {
      double n = 0;
      if (const auto* f = node.as_floating_point()) {
        n = f->get();
      } else if (const auto* i = node.as_integer()) {
        n = static_cast<double>(i->get());
      } else {
        throw expected("a number");
      }
      if (std::isnan(n)) throw refuse("nan is not a number (expected a number)");
      if (!in_range(field, n)) throw out_of_range(format_number(n));
      value = n;
      break;
    }
    case Type::boolean: {
      const auto* flag = node.as_boolean();
      if (!flag) throw expected("true or false");
      value = flag->get();
      break;
    }
    case Type::duration: {
      if (const auto* i = node.as_integer()) {
        throw refuse(std::to_string(i->get()) + " is not a duration (" +
                     std::string(kDurationExpected) + ")");
      }
      if (const auto* f = node.as_floating_point()) {
        throw refuse(format_number(f->get()) + " is not a duration (" +
                     std::string(kDurationExpected) + ")");
      }
      const auto* text = node.as_string();
      if (!text) throw expected("a duration string");
      const auto duration = parse_duration(text->get());
      if (!duration) {
        throw refuse(quote(text->get()) + " is not a duration (" + std::string(kDurationExpected) +
                     ")");
      }
      if (!in_range(field, static_cast<double>(duration->count()))) {
        throw out_of_range(quote(text->get()));
      }
      value = *duration;
      break;
    }
    case Type::secret: {
      const auto* text = node.as_string();
      if (!text) throw expected("a string");
      const std::string_view s = text->get();
      if (!context.literal_secrets && s.substr(0, kEnvPrefix.size()) == kEnvPrefix) {
        const std::string name(s.substr(kEnvPrefix.size()));
        if (name.empty()) {
          throw refuse(R"("env:" names no variable (expected "env:NAME"))");
        }
        const char* env = std::getenv(name.c_str());
        if (!env || !*env) {
          throw refuse("environment variable " + name +
                       " is not set (expected it to hold the secret)");
        }
        value = Secret(env);
      } else {
        if (s.empty()) {
          throw refuse("the secret is empty (expected it inline, as \"env:NAME\", or in " +
                       field.name + std::string(kFileSuffix) + ")");
        }
        value = Secret(std::string(s));
      }
      break;
    }
    case Type::path: {
      const auto* text = node.as_string();
      if (!text) throw expected("a string");
      if (text->get().empty()) throw refuse("the path is empty (expected a path)");
      value = resolve_path(text->get(), context.base_dir).string();
      break;
    }
    case Type::address: {
      const auto* text = node.as_string();
      if (!text) throw expected("a string");
      if (!valid_address(text->get())) {
        throw refuse(quote(text->get()) + " is not an address (" + std::string(kAddressExpected) +
                     ")");
      }
      value = text->get();
      break;
    }
    case Type::strings: {
      const auto* array = node.as_array();
      if (!array) throw expected("an array of strings");
      std::vector<std::string> items;
      for (std::size_t i = 0; i < array->size(); ++i) {
        const auto* item = (*array)[i].as_string();
        if (!item) {
          throw ConfigError::at((*array)[i], context.file,
                                what + "[" + std::to_string(i) + "]: expected a string, got " +
                                    std::string(node_kind((*array)[i])));
        }
        items.push_back(item->get());
      }
      value = std::move(items);
      break;
    }
  }
  if (field.check) {
    const std::string problem = field.check(value);
    if (!problem.empty()) throw refuse(problem);
  }
  return value;
}

// A secret read from the file named by its "<name>_file" sibling.
Secret read_secret_file(const toml::node& node, const Field& field, const std::string& what,
                        const Context& context) {
  const auto refuse = [&](const std::string& problem) {
    return ConfigError::at(node, context.file, what + ": " + problem);
  };
  const auto* text = node.as_string();
  if (!text) throw refuse("expected a string, got " + std::string(node_kind(node)));
  if (text->get().empty()) throw refuse("the path is empty (expected a file holding the secret)");
  const auto file = resolve_path(text->get(), context.base_dir);
  if (const std::string exposed = exposed_secret_reason(file); !exposed.empty()) {
    throw refuse(exposed);
  }
  std::error_code error;
  std::string secret = read_whole(file, error);
  if (error) {
    throw refuse("cannot read " + quote(file.string()) + ": " + error.message() +
                 " (expected a readable file holding the secret)");
  }
  // Editors end files with a newline that is no part of the secret.
  if (!secret.empty() && secret.back() == '\n') secret.pop_back();
  if (!secret.empty() && secret.back() == '\r') secret.pop_back();
  if (secret.empty()) {
    throw refuse(quote(file.string()) + " is empty (expected a file holding the secret)");
  }
  Secret result(std::move(secret));
  if (field.check) {
    const std::string problem = field.check(result);
    if (!problem.empty()) throw refuse(problem);
  }
  return result;
}

const Field* find_field(const Schema& schema, std::string_view name) {
  for (const auto& field : schema.fields) {
    if (field.name == name) return &field;
  }
  return nullptr;
}

bool is_secret_sibling(const Schema& schema, std::string_view key) {
  if (key.size() <= kFileSuffix.size() ||
      key.substr(key.size() - kFileSuffix.size()) != kFileSuffix) {
    return false;
  }
  const Field* field = find_field(schema, key.substr(0, key.size() - kFileSuffix.size()));
  return field && field->type == Type::secret;
}

struct Scope {
  std::string table;                         // shown in errors; "" for the root
  std::string prefix;                        // of the keys in Values: "log.levels."
  const toml::node& anchor;                  // where errors about absent keys point
  const std::vector<std::string>* reserved;  // only at the top of the validation
};

void refuse_unknown_keys(const toml::table& table, const Schema& schema, const Context& context,
                         const Scope& scope) {
  const toml::key* first_unknown = nullptr;
  const toml::node* first_node = nullptr;
  for (auto&& [key, node] : table) {
    const std::string_view name = key.str();
    const bool known =
        find_field(schema, name) || (!context.literal_secrets && is_secret_sibling(schema, name)) ||
        schema.tables.count(name) > 0 ||
        (scope.reserved &&
         std::find(scope.reserved->begin(), scope.reserved->end(), name) != scope.reserved->end());
    // The table is ordered by name; the user reads top to bottom.
    if (!known && (!first_unknown || key.source().begin < first_unknown->source().begin)) {
      first_unknown = &key;
      first_node = &node;
    }
  }
  if (!first_unknown) return;

  std::vector<std::string> known;
  for (const auto& field : schema.fields) known.push_back(field.name);
  for (const auto& entry : schema.tables) known.push_back(entry.first);
  if (scope.reserved) known.insert(known.end(), scope.reserved->begin(), scope.reserved->end());
  const std::string name(first_unknown->str());

  std::string message;
  if (!scope.table.empty()) {
    message = "unknown key " + quote(name) + " in [" + scope.table + "]";
  } else if (first_node->is_table()) {
    message = "unknown section [" + name + "]";
  } else {
    message = "unknown key " + quote(name) + " " + context.root_name;
  }
  const std::string noun = schema.fields.empty() && scope.table.empty() ? "sections" : "keys";
  message +=
      known.empty() ? " (expected no keys here)" : " (known " + noun + ": " + join(known) + ")";
  throw ConfigError::at(first_unknown->source(), context.file, message);
}

void validate_table(const toml::table& table, const Schema& schema, const Context& context,
                    const Scope& scope, Values& out) {
  refuse_unknown_keys(table, schema, context, scope);

  for (const auto& field : schema.fields) {
    const std::string what = key_label(scope.table, field.name);
    const toml::node* node = table.get(field.name);
    const std::string sibling_name = field.name + std::string(kFileSuffix);
    const auto sibling = field.type == Type::secret && !context.literal_secrets
                             ? table.find(sibling_name)
                             : table.end();

    if (node && sibling != table.end()) {
      throw ConfigError::at(
          sibling->first.source(), context.file,
          what + " and " + sibling_name + " are both given (expected one of them)");
    }
    if (node) {
      out.set(scope.prefix + field.name, convert(*node, field, what, context), node->source());
    } else if (sibling != table.end()) {
      out.set(
          scope.prefix + field.name,
          read_secret_file(sibling->second, field, key_label(scope.table, sibling_name), context),
          sibling->second.source());
    } else if (field.default_value) {
      const auto* text = std::get_if<std::string>(&*field.default_value);
      if (field.type == Type::path && text) {
        out.set(scope.prefix + field.name, resolve_path(*text, context.base_dir).string());
      } else {
        out.set(scope.prefix + field.name, *field.default_value);
      }
    } else if (field.required) {
      const std::string where =
          scope.table.empty() ? " " + context.root_name : " in [" + scope.table + "]";
      const std::string purpose = field.description.empty()
                                      ? "expected " + std::string(article_for(field.type)) +
                                            std::string(type_name(field.type))
                                      : field.description;
      throw ConfigError::at(
          scope.anchor, context.file,
          "missing required key " + quote(field.name) + where + " (" + purpose + ")");
    }
  }

  for (const auto& [name, nested] : schema.tables) {
    const toml::node* node = table.get(name);
    if (node && !node->is_table()) {
      throw ConfigError::at(*node, context.file,
                            key_label(scope.table, name) + ": expected a table, got " +
                                std::string(node_kind(*node)));
    }
    // An absent table still gets its defaults and its required keys checked.
    static const toml::table kEmpty;
    const toml::table& sub = node ? *node->as_table() : kEmpty;
    const Scope sub_scope{nested_name(scope.table, name), scope.prefix + name + ".",
                          node ? *node : scope.anchor, nullptr};
    validate_table(sub, nested, context, sub_scope, out);
  }
}

std::string type_names() {
  std::vector<std::string> names;
  for (Type type : kTypes) names.emplace_back(type_name(type));
  return join(names);
}

Type parse_type_name(const toml::node& node, const std::string& what, const Context& context) {
  const auto* text = node.as_string();
  if (!text) {
    throw ConfigError::at(node, context.file,
                          what + ": expected a string, got " + std::string(node_kind(node)));
  }
  for (Type type : kTypes) {
    if (type_name(type) == text->get()) return type;
  }
  throw ConfigError::at(
      node, context.file,
      what + ": " + quote(text->get()) + " is not a type (expected one of: " + type_names() + ")");
}

std::optional<double> parse_bound(const toml::table& spec, std::string_view key, const Field& field,
                                  const std::string& label, const Context& context) {
  const toml::node* node = spec.get(key);
  if (!node) return std::nullopt;
  const std::string what = label + " " + std::string(key);
  if (field.type != Type::integer && field.type != Type::floating && field.type != Type::duration) {
    throw ConfigError::at(*node, context.file,
                          what + ": a key of type " + std::string(type_name(field.type)) +
                              " has no range (expected min and max only on integer, float and "
                              "duration keys)");
  }
  Field plain;
  plain.name = field.name;
  plain.type = field.type;
  const Value bound = convert(*node, plain, what, context);
  if (const auto* i = std::get_if<std::int64_t>(&bound)) return static_cast<double>(*i);
  if (const auto* d = std::get_if<std::chrono::milliseconds>(&bound)) {
    return static_cast<double>(d->count());
  }
  return std::get<double>(bound);
}

Field field_from_spec(const std::string& name, const toml::node& node, const std::string& section,
                      const Context& context) {
  const std::string label = "[" + section + "." + name + "]";
  const auto* spec = node.as_table();
  if (!spec) {
    throw ConfigError::at(node, context.file,
                          key_label(section, name) +
                              ": expected a table describing the key (type, description, "
                              "default, ...), got " +
                              std::string(node_kind(node)));
  }
  for (auto&& [key, value] : *spec) {
    if (std::find(std::begin(kFieldSpecKeys), std::end(kFieldSpecKeys), key.str()) ==
        std::end(kFieldSpecKeys)) {
      std::vector<std::string> known(std::begin(kFieldSpecKeys), std::end(kFieldSpecKeys));
      throw ConfigError::at(key.source(), context.file,
                            "unknown key " + quote(key.str()) + " in " + label +
                                " (known keys: " + join(known) + ")");
    }
  }
  const auto what = [&](std::string_view key) { return label + " " + std::string(key); };

  Field field;
  field.name = name;
  const toml::node* type = spec->get("type");
  if (!type) {
    throw ConfigError::at(
        node, context.file,
        "missing required key \"type\" in " + label + " (expected one of: " + type_names() + ")");
  }
  field.type = parse_type_name(*type, what("type"), context);

  Field text_field;
  if (const toml::node* description = spec->get("description")) {
    field.description =
        std::get<std::string>(convert(*description, text_field, what("description"), context));
  }
  Field flag_field;
  flag_field.type = Type::boolean;
  if (const toml::node* required = spec->get("required")) {
    field.required = std::get<bool>(convert(*required, flag_field, what("required"), context));
  }

  field.min = parse_bound(*spec, "min", field, label, context);
  field.max = parse_bound(*spec, "max", field, label, context);
  if (field.min && field.max && *field.min > *field.max) {
    throw ConfigError::at(*spec->get("max"), context.file,
                          what("max") + ": " + format_bound(field.type, *field.max) +
                              " is below min " + format_bound(field.type, *field.min) +
                              " (expected max >= min)");
  }

  if (const toml::node* choices = spec->get("choices")) {
    if (field.type != Type::string) {
      throw ConfigError::at(*choices, context.file,
                            what("choices") + ": a key of type " +
                                std::string(type_name(field.type)) +
                                " cannot have choices (expected choices only on string keys)");
    }
    Field list_field;
    list_field.type = Type::strings;
    field.choices =
        std::get<std::vector<std::string>>(convert(*choices, list_field, what("choices"), context));
    if (field.choices.empty()) {
      throw ConfigError::at(*choices, context.file,
                            what("choices") + ": the list is empty (expected at least one choice)");
    }
  }

  if (const toml::node* value = spec->get("default")) {
    if (field.type == Type::secret) {
      throw ConfigError::at(*value, context.file,
                            what("default") +
                                ": a secret cannot have a default (expected the "
                                "operator to set it in the node config)");
    }
    if (field.required) {
      throw ConfigError::at(*spec->get("required"), context.file,
                            what("required") +
                                ": a key with a default is never missing "
                                "(expected either required = true or a default)");
    }
    field.default_value = convert(*value, field, what("default"), context);
    // A path default resolves against the node config that uses it, not against the manifest.
    if (field.type == Type::path) field.default_value = value->as_string()->get();
  }
  return field;
}

}  // namespace

ConfigError::ConfigError(std::string file, std::uint32_t line, std::uint32_t column,
                         std::string message)
    : std::runtime_error(file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
                         message),
      file_(std::move(file)),
      line_(line),
      column_(column),
      message_(std::move(message)) {}

ConfigError ConfigError::at(const toml::node& node, std::string_view file_fallback,
                            std::string message) {
  return at(node.source(), file_fallback, std::move(message));
}

ConfigError ConfigError::at(const toml::source_region& where, std::string_view file_fallback,
                            std::string message) {
  if (where.begin.line == 0) {
    return ConfigError(std::string(file_fallback), 1, 1, std::move(message));
  }
  std::string file = where.path && !where.path->empty() ? *where.path : std::string(file_fallback);
  return ConfigError(std::move(file), where.begin.line, where.begin.column, std::move(message));
}

std::ostream& operator<<(std::ostream& out, const Secret&) {
  return out << "<redacted>";
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::size_t i = 0;
  std::int64_t whole = 0;
  while (i < text.size() && is_digit(text[i])) {
    if (i == kMaxWholeDigits) return std::nullopt;
    whole = whole * 10 + (text[i] - '0');
    ++i;
  }
  if (i == 0) return std::nullopt;

  std::int64_t fraction = 0;
  std::int64_t scale = 1;
  if (i < text.size() && text[i] == '.') {
    const std::size_t first = ++i;
    while (i < text.size() && is_digit(text[i])) {
      if (i - first == kMaxFractionDigits) return std::nullopt;
      fraction = fraction * 10 + (text[i] - '0');
      scale *= 10;
      ++i;
    }
    if (i == first) return std::nullopt;
  }

  const std::string_view unit = text.substr(i);
  std::int64_t unit_us = 0;
  if (unit == "us") {
    unit_us = 1;
  } else if (unit == "ms") {
    unit_us = 1'000;
  } else if (unit == "s") {
    unit_us = 1'000'000;
  } else if (unit == "m") {
    unit_us = 60'000'000;
  } else if (unit == "h") {
    unit_us = 3'600'000'000;
  } else {
    return std::nullopt;
  }
  // The fraction adds less than one unit and rounding less than 1ms: keep room for both.
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max() - 999;
  if (whole >= kMax / unit_us - 1) return std::nullopt;
  // fraction < 10^9 and unit_us <= 3.6 * 10^9: the product fits an int64.
  const std::int64_t micros = whole * unit_us + (fraction * unit_us + scale - 1) / scale;
  return std::chrono::milliseconds((micros + 999) / 1000);
}

std::string format_duration(std::chrono::milliseconds duration) {
  const std::int64_t ms = duration.count();
  if (ms == 0) return "0s";
  constexpr std::pair<std::int64_t, std::string_view> kUnits[] = {
      {3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}};
  for (const auto& [size, unit] : kUnits) {
    if (ms % size == 0) return std::to_string(ms / size) + std::string(unit);
  }
  return std::to_string(ms) + "ms";
}

std::string_view type_name(Type type) {
  switch (type) {
    case Type::string:
      return "string";
    case Type::integer:
      return "integer";
    case Type::floating:
      return "float";
    case Type::boolean:
      return "boolean";
    case Type::duration:
      return "duration";
    case Type::secret:
      return "secret";
    case Type::path:
      return "path";
    case Type::address:
      return "address";
    case Type::strings:
      return "strings";
  }
  return "unknown";
}

std::string to_display(const Value& value) {
  struct Display {
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(std::int64_t n) const { return std::to_string(n); }
    std::string operator()(double n) const { return format_number(n); }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::chrono::milliseconds d) const { return format_duration(d); }
    std::string operator()(const Secret&) const { return "<redacted>"; }
    std::string operator()(const std::vector<std::string>& items) const {
      std::vector<std::string> shown;
      for (const auto& item : items) shown.push_back(quote(item));
      return "[" + join(shown) + "]";
    }
  };
  return std::visit(Display{}, value);
}

bool Values::contains(std::string_view key) const {
  return values_.find(key) != values_.end();
}

const Value* Values::find(std::string_view key) const {
  const auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

std::optional<toml::source_region> Values::source(std::string_view key) const {
  const auto it = sources_.find(key);
  if (it == sources_.end()) return std::nullopt;
  return it->second;
}

void Values::set(std::string key, Value value, std::optional<toml::source_region> where) {
  if (where) {
    sources_.insert_or_assign(key, std::move(*where));
  } else {
    sources_.erase(key);
  }
  values_.insert_or_assign(std::move(key), std::move(value));
}

Values validate(const toml::table& table, const Schema& schema, const Context& context) {
  Values out;
  validate_table(table, schema, context, Scope{context.table, "", table, &context.reserved_keys},
                 out);
  return out;
}

Schema schema_from_toml(const toml::table& config_table, const Context& context) {
  const std::string section = context.table.empty() ? "config" : context.table;
  // In the order the author wrote them, which is how `emsnode check` lists them.
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (auto&& [key, node] : config_table) entries.emplace_back(&key, &node);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.first->source().begin < b.first->source().begin;
  });
  Schema schema;
  for (const auto& [key, node] : entries) {
    schema.fields.push_back(field_from_spec(std::string(key->str()), *node, section, context));
  }
  return schema;
}

std::filesystem::path resolve_path(std::string_view text, const std::filesystem::path& base_dir) {
  std::filesystem::path path(text);
  if (path.is_relative()) {
    const auto base =
        base_dir.empty() ? std::filesystem::current_path() : std::filesystem::absolute(base_dir);
    path = base / path;
  }
  path = path.lexically_normal();
  if (!path.has_filename() && path.has_relative_path()) path = path.parent_path();
  return path;
}

std::string quote(std::string_view text) {
  return log::quote(text);
}

std::string_view node_kind(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      return "nothing";
  }
  return "nothing";
}

toml::table parse_text(std::string_view text, const std::string& file) {
  try {
    return toml::parse(text, std::string_view(file));
  } catch (const toml::parse_error& error) {
    throw ConfigError::at(error.source(), file, std::string(error.description()));
  }
}

toml::table parse_file(const std::filesystem::path& file) {
  std::error_code error;
  const std::string text = read_whole(file, error);
  if (error) throw ConfigError(file.string(), 1, 1, "cannot read: " + error.message());
  return parse_text(text, file.string());
}

}  // namespace emsnode::config
