// Logging for the whole node: one set of sinks (console, file, syslog) fed through Boost.Log.
// Every operator-facing record has a component, a stable event name and key=value fields:
//   2026-11-21T10:00:00.123Z info  host plugin.started id=echo version=1.0.0
// Plugins log into the same sinks under the component "plugin.<id>".
#pragma once

#include <exception>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace emsnode::log {

enum class Level { trace, debug, info, warning, error };
enum class Format { text, json };

// Parses "trace", "debug", "info", "warning" (or "warn"), "error".
std::optional<Level> parse_level(std::string_view name);

// `text` in double quotes with JSON's escapes: how log records, and config errors, quote values.
std::string quote(std::string_view text);
std::string_view level_name(Level level);

struct Field {
  std::string key;
  std::string value;
};
using Fields = std::vector<Field>;

struct Settings {
  Format format = Format::text;
  Level level = Level::info;                         // for components not named in `levels`
  std::map<std::string, Level, std::less<>> levels;  // component -> level
  bool console = true;                               // standard error
  std::optional<std::filesystem::path> file;         // appended to; reopened on reopen()
  bool syslog = false;                               // local syslog, facility daemon
};

// Installs the sinks described by `settings`, replacing any installed before. Until the first
// call, records go to standard error as text at level info.
void init(const Settings& settings);

// Closes and reopens the log file (after logrotate moved it; the node calls it on SIGHUP).
void reopen();

// Whether a record of `component` at `level` would be written.
bool enabled(std::string_view component, Level level);

// Writes one record. Thread-safe. Field values must never contain secrets.
void write(std::string_view component, Level level, std::string_view event, const Fields& fields);

// Flushes every sink; called before the process exits.
void flush();

// A component's handle: `Logger log{"host"}; log.info("plugin.started", {{"id", id}});`
class Logger {
 public:
  explicit Logger(std::string component) : component_(std::move(component)) {}

  const std::string& component() const { return component_; }
  bool enabled(Level level) const { return log::enabled(component_, level); }

  void trace(std::string_view event, const Fields& fields = {}) const {
    at(Level::trace, event, fields);
  }
  void debug(std::string_view event, const Fields& fields = {}) const {
    at(Level::debug, event, fields);
  }
  void info(std::string_view event, const Fields& fields = {}) const {
    at(Level::info, event, fields);
  }
  void warning(std::string_view event, const Fields& fields = {}) const {
    at(Level::warning, event, fields);
  }
  void error(std::string_view event, const Fields& fields = {}) const {
    at(Level::error, event, fields);
  }

 private:
  void at(Level level, std::string_view event, const Fields& fields) const {
    write(component_, level, event, fields);
  }

  std::string component_;
};

// Runs `body` on a long-lived thread (an event loop's run(), a worker's loop) until it returns,
// logging `event` with the reason for each exception that escapes it and running it again: no
// exception on a host thread may end the process through std::terminate.
template <typename Body>
void keep_running(const Logger& log, std::string_view event, Body&& body) {
  for (;;) {
    try {
      body();
      return;
    } catch (const std::exception& e) {
      log.error(event, {{"error", e.what()}});
    } catch (...) {
      log.error(event, {{"error", "an exception that is not a std::exception"}});
    }
  }
}

}  // namespace emsnode::log
