#include "host/command_args.hpp"

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>

namespace emsnode::host {
namespace {

using nlohmann::json;

// What a JSON value is, as errors name it after "got".
std::string json_kind(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a float";
    default:
      return "nothing";
  }
}

// The TOML node the config validator reads for one JSON argument, or null for a value TOML
// cannot hold (null, an object), which the caller refuses.
std::unique_ptr<toml::node> to_toml(const json& value) {
  switch (value.type()) {
    case json::value_t::string:
      return std::make_unique<toml::value<std::string>>(value.get<std::string>());
    case json::value_t::boolean:
      return std::make_unique<toml::value<bool>>(value.get<bool>());
    case json::value_t::number_integer:
      return std::make_unique<toml::value<std::int64_t>>(value.get<std::int64_t>());
    case json::value_t::number_unsigned: {
      const auto n = value.get<std::uint64_t>();
      if (n <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return std::make_unique<toml::value<std::int64_t>>(static_cast<std::int64_t>(n));
      }
      return std::make_unique<toml::value<double>>(static_cast<double>(n));
    }
    case json::value_t::number_float:
      return std::make_unique<toml::value<double>>(value.get<double>());
    case json::value_t::array: {
      auto array = std::make_unique<toml::array>();
      for (const json& item : value) {
        std::unique_ptr<toml::node> node = to_toml(item);
        if (!node) return nullptr;
        array->push_back(std::move(*node));
      }
      return array;
    }
    default:
      return nullptr;
  }
}

const config::Field* find_arg(const CommandSpec& command, std::string_view name) {
  for (const config::Field& field : command.args.fields) {
    if (field.name == name) return &field;
  }
  return nullptr;
}

json value_to_json(const config::Value& value) {
  struct Visit {
    json operator()(const std::string& s) const { return s; }
    json operator()(std::int64_t n) const { return n; }
    json operator()(double n) const { return n; }
    json operator()(bool b) const { return b; }
    json operator()(std::chrono::milliseconds d) const { return config::format_duration(d); }
    json operator()(const config::Secret&) const { return "<redacted>"; }
    json operator()(const std::vector<std::string>& items) const { return items; }
  };
  return std::visit(Visit{}, value);
}

json bound_to_json(config::Type type, double bound) {
  if (type == config::Type::duration) {
    return config::format_duration(std::chrono::milliseconds(static_cast<std::int64_t>(bound)));
  }
  if (type == config::Type::integer) return static_cast<std::int64_t>(bound);
  return bound;
}

}  // namespace

config::Values check_command_args(const CommandSpec& command, const json& args,
                                  const std::filesystem::path& base_dir) {
  if (!args.is_object()) {
    throw CommandArgsError("the arguments must be a JSON object of name: value, got " +
                           json_kind(args));
  }
  toml::table table;
  for (const auto& [name, value] : args.items()) {
    std::unique_ptr<toml::node> node = to_toml(value);
    if (!node) {
      const config::Field* field = find_arg(command, name);
      const std::string expected =
          field ? "a value of type " + std::string(config::type_name(field->type)) : "no value";
      throw CommandArgsError(config::quote(name) + ": expected " + expected + ", got " +
                             json_kind(value));
    }
    table.insert(name, std::move(*node));
  }
  config::Context context;
  context.base_dir = base_dir;
  context.root_name = "among the arguments of " + command.name;
  context.literal_secrets = true;
  try {
    return config::validate(table, command.args, context);
  } catch (const config::ConfigError& e) {
    throw CommandArgsError(e.message());
  }
}

config::Values parse_command_args(const CommandSpec& command, std::string_view json_text,
                                  const std::filesystem::path& base_dir) {
  if (json_text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return check_command_args(command, json::object(), base_dir);
  }
  json args;
  try {
    args = json::parse(json_text);
  } catch (const json::parse_error& e) {
    throw CommandArgsError(std::string("the arguments are not JSON: ") + e.what());
  }
  return check_command_args(command, args, base_dir);
}

json command_to_json(const CommandSpec& command) {
  json args = json::array();
  for (const config::Field& field : command.args.fields) {
    json arg = {{"name", field.name},
                {"type", std::string(config::type_name(field.type))},
                {"description", field.description},
                {"required", field.required}};
    if (field.default_value) arg["default"] = value_to_json(*field.default_value);
    if (field.min) arg["min"] = bound_to_json(field.type, *field.min);
    if (field.max) arg["max"] = bound_to_json(field.type, *field.max);
    if (!field.choices.empty()) arg["choices"] = field.choices;
    args.push_back(std::move(arg));
  }
  return {{"name", command.name},
          {"summary", command.summary},
          {"changes_state", command.changes_state},
          {"active_only", command.active_only},
          {"args", std::move(args)}};
}

}  // namespace emsnode::host
