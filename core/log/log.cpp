#include "log/log.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <mutex>
#include <shared_mutex>

#include <syslog.h>

#include <boost/core/null_deleter.hpp>
#include <boost/log/attributes/constant.hpp>
#include <boost/log/core.hpp>
#include <boost/log/expressions.hpp>
#include <boost/log/sinks/basic_sink_backend.hpp>
#include <boost/log/sinks/sync_frontend.hpp>
#include <boost/log/sinks/text_ostream_backend.hpp>
#include <boost/log/sources/record_ostream.hpp>
#include <boost/make_shared.hpp>
#include <boost/shared_ptr.hpp>

namespace emsnode::log {
namespace {

namespace bl = boost::log;
namespace expr = boost::log::expressions;

// Each record carries the whole line ("Line", with time and level) for console and file, and the
// line without them ("Body") for syslog, which stamps its own.
BOOST_LOG_ATTRIBUTE_KEYWORD(line_attr, "Line", std::string)
BOOST_LOG_ATTRIBUTE_KEYWORD(body_attr, "Body", std::string)
BOOST_LOG_ATTRIBUTE_KEYWORD(severity_attr, "Severity", int)

using StreamSink = bl::sinks::synchronous_sink<bl::sinks::text_ostream_backend>;
// Debian builds Boost.Log without its native syslog backend (the one it has sends UDP to port
// 514), so records go to the local syslog through syslog(3) here.
class SyslogBackend : public bl::sinks::basic_formatted_sink_backend<char> {
 public:
  SyslogBackend() { ::openlog("emsnode", LOG_PID | LOG_NDELAY, LOG_DAEMON); }
  ~SyslogBackend() { ::closelog(); }

  void consume(const bl::record_view& record, const string_type& message) {
    const auto level =
        bl::extract_or_default<int>("Severity", record, static_cast<int>(Level::info));
    ::syslog(priority_of(static_cast<Level>(level)), "%s", message.c_str());
  }

 private:
  static int priority_of(Level level) {
    switch (level) {
      case Level::trace:
      case Level::debug:
        return LOG_DEBUG;
      case Level::info:
        return LOG_INFO;
      case Level::warning:
        return LOG_WARNING;
      case Level::error:
        return LOG_ERR;
    }
    return LOG_INFO;
  }
};
using SyslogSink = bl::sinks::synchronous_sink<SyslogBackend>;

struct State {
  std::shared_mutex mutex;
  Settings settings;
  Level lowest = Level::info;  // the most verbose level of any component: a lock-free pre-filter
  boost::shared_ptr<StreamSink> file_sink;
  boost::shared_ptr<std::ofstream> file_stream;
};

State& state() {
  static State s;
  return s;
}

std::atomic<int> lowest_level{static_cast<int>(Level::info)};

Level lowest_of(const Settings& settings) {
  Level lowest = settings.level;
  for (const auto& [component, level] : settings.levels) lowest = std::min(lowest, level);
  return lowest;
}

std::string utc_timestamp() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char out[40];
  const size_t n = std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(out + n, sizeof out - n, ".%03dZ", static_cast<int>(ms.count() % 1000));
  return out;
}

void append_text_value(std::string& out, std::string_view value) {
  const bool plain =
      !value.empty() && std::none_of(value.begin(), value.end(), [](unsigned char c) {
        return c <= ' ' || c == '"' || c == '=' || c == '\\';
      });
  if (plain) {
    out += value;
  } else {
    out += quote(value);
  }
}

std::string text_body(std::string_view component, std::string_view event, const Fields& fields) {
  std::string out;
  out.reserve(64 + fields.size() * 16);
  out.append(component).append(" ").append(event);
  for (const Field& f : fields) {
    out.append(" ").append(f.key).append("=");
    append_text_value(out, f.value);
  }
  return out;
}

std::string json_line(const std::string& ts, Level level, std::string_view component,
                      std::string_view event, const Fields& fields) {
  std::string out = "{\"ts\":" + quote(ts) + ",\"level\":" + quote(level_name(level)) +
                    ",\"component\":" + quote(component) + ",\"event\":" + quote(event);
  for (const Field& f : fields) out += ',' + quote(f.key) + ':' + quote(f.value);
  out += '}';
  return out;
}

boost::shared_ptr<StreamSink> stream_sink(boost::shared_ptr<std::ostream> stream) {
  auto backend = boost::make_shared<bl::sinks::text_ostream_backend>();
  backend->add_stream(std::move(stream));
  backend->auto_flush(true);
  auto sink = boost::make_shared<StreamSink>(backend);
  sink->set_formatter(expr::stream << line_attr);
  return sink;
}

boost::shared_ptr<std::ofstream> open_log_file(const std::filesystem::path& path) {
  std::error_code ignored;
  std::filesystem::create_directories(path.parent_path(), ignored);
  auto stream = boost::make_shared<std::ofstream>(path, std::ios::app);
  if (!*stream) throw std::runtime_error("cannot open log file " + path.string());
  return stream;
}

boost::shared_ptr<SyslogSink> syslog_sink() {
  auto sink = boost::make_shared<SyslogSink>();
  sink->set_formatter(expr::stream << body_attr);
  return sink;
}

void install_sinks(State& s, const Settings& settings) {
  auto core = bl::core::get();
  core->remove_all_sinks();
  s.file_sink.reset();
  s.file_stream.reset();
  if (settings.console) {
    core->add_sink(stream_sink(boost::shared_ptr<std::ostream>(&std::clog, boost::null_deleter())));
  }
  if (settings.file) {
    s.file_stream = open_log_file(*settings.file);
    s.file_sink = stream_sink(s.file_stream);
    core->add_sink(s.file_sink);
  }
  if (settings.syslog) core->add_sink(syslog_sink());
}

// Until init() runs, records go to standard error as text at level info.
const bool default_sinks_installed = [] {
  install_sinks(state(), Settings{});
  return true;
}();

}  // namespace

std::string quote(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
          out += escaped;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + '"';
}

std::optional<Level> parse_level(std::string_view name) {
  if (name == "trace") return Level::trace;
  if (name == "debug") return Level::debug;
  if (name == "info") return Level::info;
  if (name == "warning" || name == "warn") return Level::warning;
  if (name == "error") return Level::error;
  return std::nullopt;
}

std::string_view level_name(Level level) {
  switch (level) {
    case Level::trace:
      return "trace";
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warning:
      return "warning";
    case Level::error:
      return "error";
  }
  return "unknown";
}

void init(const Settings& settings) {
  State& s = state();
  std::unique_lock lock(s.mutex);
  install_sinks(s, settings);
  s.settings = settings;
  lowest_level.store(static_cast<int>(lowest_of(settings)), std::memory_order_relaxed);
}

void reopen() {
  State& s = state();
  std::unique_lock lock(s.mutex);
  if (!s.file_sink || !s.settings.file) return;
  auto fresh = open_log_file(*s.settings.file);
  auto backend = s.file_sink->locked_backend();
  backend->remove_stream(s.file_stream);
  backend->add_stream(fresh);
  s.file_stream = std::move(fresh);
}

bool enabled(std::string_view component, Level level) {
  if (static_cast<int>(level) < lowest_level.load(std::memory_order_relaxed)) return false;
  State& s = state();
  std::shared_lock lock(s.mutex);
  const auto it = s.settings.levels.find(component);
  return level >= (it != s.settings.levels.end() ? it->second : s.settings.level);
}

void write(std::string_view component, Level level, std::string_view event, const Fields& fields) {
  (void)default_sinks_installed;
  if (!enabled(component, level)) return;
  const std::string ts = utc_timestamp();
  Format format;
  {
    std::shared_lock lock(state().mutex);
    format = state().settings.format;
  }
  std::string line;
  std::string body;
  if (format == Format::json) {
    line = json_line(ts, level, component, event, fields);
    body = line;
  } else {
    body = text_body(component, event, fields);
    line.reserve(ts.size() + body.size() + 10);
    line.append(ts).append(" ").append(level_name(level));
    line.append(8 - level_name(level).size(), ' ');
    line.append(body);
  }

  bl::attribute_set attrs;
  attrs.insert("Line", bl::attributes::constant<std::string>(std::move(line)));
  attrs.insert("Body", bl::attributes::constant<std::string>(std::move(body)));
  attrs.insert("Severity", bl::attributes::constant<int>(static_cast<int>(level)));
  auto core = bl::core::get();
  if (bl::record record = core->open_record(attrs)) core->push_record(std::move(record));
}

void flush() {
  bl::core::get()->flush();
}

}  // namespace emsnode::log
