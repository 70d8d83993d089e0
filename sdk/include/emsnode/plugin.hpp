// emsnode plugin SDK: the header-only C++17 wrapper over the C ABI in plugin_abi.h.
//
// A plugin author derives from emsnode::sdk::Plugin and registers the class once:
//
//   class EchoPlugin : public emsnode::sdk::Plugin {
//    public:
//     explicit EchoPlugin(emsnode::sdk::Host& host);  // "create": read and check the config
//     void start() override;                           // the node became active: serve
//     void stop(std::chrono::milliseconds deadline) override;  // stop serving, join threads
//   };
//   EMSNODE_PLUGIN(EchoPlugin, "echo", "1.0.0")
//
// What the wrapper guarantees at the boundary:
//   - No exception crosses it: an exception from the constructor, start or stop becomes
//     set_error(what()) + EMSNODE_ERROR ("unknown exception" when it is not a std::exception);
//     one from a posted task or timer callback is logged as `sdk.callback_failed`.
//   - Plugin::stop runs only after a start was attempted (even a failed one), and not twice in a
//     row: a stop without a start, or a second stop, returns OK without calling it. A stop that
//     threw is called again on the next stop, so the plugin can finish cleaning up.
//   - The std::function behind a post or a timer lives until it has run, is cancelled, or can no
//     longer run: the ABI only carries a function pointer and a `void*`, the wrapper owns the rest.
//   - A host older than this header (a smaller emsnode_host_api::struct_size) is detected per
//     service: Host::supports() says what exists; using a missing service throws UnsupportedError.
//   - Database calls (ABI 1.1) report the host's reason as exceptions: FencedError when a write
//     is fenced off (this node lost the lease), DbError for any other failure. An exception thrown
//     by the plugin's own write body or row callback is carried across the host call and
//     rethrown as is, after the host has rolled the transaction back.
//   - Control commands (ABI 1.3): a handler's exception becomes command_fail(what()) and the
//     status it maps to (InvalidInput 400, NotFound 404, FencedError 409, anything else 500).
//   - File store calls (ABI 1.2) likewise: FencedError when a put or remove is fenced off,
//     FileNotFoundError for a missing file, StoreError for any other failure; an exception from
//     the plugin's own stream is rethrown as is once the host has given up the transfer.
//   - Shared APIs and status facts (ABI 1.3): a refusal of the host (an API plugin.toml does not
//     declare, a fact beyond its bounds) throws Error with the host's reason; a shared table too
//     small for the members a user needs throws Error naming the API and its minor.
//
// Needs nothing but the C++17 standard library and plugin_abi.h.
#pragma once

#include <emsnode/plugin_abi.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <initializer_list>
#include <istream>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace emsnode::sdk {

// ---------------------------------------------------------------------------------------------
// Errors

/// Base of every exception the SDK throws. Thrown out of create/start/stop, its what() becomes
/// the one-line reason the host reports for the plugin.
class Error : public std::runtime_error {
 public:
  /// An error with `message` as what().
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// A config value that is missing, of another type, or refused by the plugin's own checks.
/// what() reads "config key 'listen': <problem>" so an operator knows which line to fix.
class ConfigError : public Error {
 public:
  /// A problem with config key `key`; `problem` says what is wrong and, ideally, what is expected.
  ConfigError(std::string key, std::string_view problem)
      : Error("config key '" + key + "': " + std::string(problem)), key_(std::move(key)) {}

  /// The config key at fault, as named in plugin.toml.
  const std::string& key() const noexcept { return key_; }

 private:
  std::string key_;
};

/// The host does not offer a service this header knows: it was built against an older minor of
/// the ABI, so its emsnode_host_api table ends before that function.
class UnsupportedError : public Error {
 public:
  /// `service` is the emsnode_host_api member that is missing, e.g. "timer_start".
  UnsupportedError(std::string_view service, std::uint32_t host_struct_size)
      : Error("the host does not offer '" + std::string(service) + "' (its service table has " +
              std::to_string(host_struct_size) + " bytes; this plugin was built for " +
              std::to_string(sizeof(emsnode_host_api)) + ")") {}
};

/// A shared-database call failed: the host refused it, the backend rejected the statement (syntax,
/// constraint), or the database could not be reached. what() is the host's one-line reason. In a
/// write, nothing was written.
class DbError : public Error {
 public:
  /// An error with the host's `message` as what().
  explicit DbError(const std::string& message) : Error(message) {}
};

/// A fenced write (Database::write or migrate, FileStore::put or remove) was refused because this
/// node no longer holds the cluster's lease at its epoch: another node is active, or the lease
/// expired. Nothing was written. Stop writing and let the node demote the plugin; retrying cannot
/// succeed.
class FencedError : public DbError {
 public:
  /// An error with the host's `message` (naming the lease's holder and epoch) as what().
  explicit FencedError(const std::string& message) : DbError(message) {}
};

/// A file store call failed: the host refused it (a key that leaves the plugin's folder, a write
/// while not started), the store could not be reached or is full, or a file's content does not
/// match its checksum. what() is the host's one-line reason. In a put, nothing was published.
class StoreError : public Error {
 public:
  /// An error with the host's `message` as what().
  explicit StoreError(const std::string& message) : Error(message) {}
};

/// FileStore::get or remove named a key with no file.
class FileNotFoundError : public StoreError {
 public:
  /// An error with the host's `message` (naming the key) as what().
  explicit FileNotFoundError(const std::string& message) : StoreError(message) {}
};

/// Thrown by a control command's handler when the operator's input is wrong (a forged file, an
/// argument that makes no sense with another): the caller sees 400 and what().
class InvalidInput : public Error {
 public:
  /// An error with the line for the operator as what().
  explicit InvalidInput(const std::string& message) : Error(message) {}
};

/// Thrown by a control command's handler when what its arguments name does not exist: the caller
/// sees 404 and what().
class NotFound : public Error {
 public:
  /// An error with the line for the operator (naming what is missing) as what().
  explicit NotFound(const std::string& message) : Error(message) {}
};

// ---------------------------------------------------------------------------------------------
// ABI helpers

/// Whether `table`, written by a peer that declared its size in `table.struct_size`, contains
/// `member` and that member is set. Use it before touching anything the peer may predate, as
/// the VERSION POLICY in plugin_abi.h requires; works for emsnode_host_api and
/// emsnode_plugin_api alike.
template <typename Table, typename Member>
bool fits(const Table& table, Member Table::*member) noexcept {
  // The member's offset, measured on a value-initialised table of our own: offsetof cannot
  // take a pointer to member.
  static const Table probe{};
  const auto offset = static_cast<std::size_t>(reinterpret_cast<const char*>(&(probe.*member)) -
                                               reinterpret_cast<const char*>(&probe));
  if (offset + sizeof(Member) > table.struct_size) {
    return false;
  }
  if constexpr (std::is_pointer_v<Member>) {
    return table.*member != nullptr;
  } else {
    return true;
  }
}

namespace detail {

constexpr emsnode_str to_str(std::string_view text) noexcept {
  return {text.data(), text.size()};
}

inline std::string_view to_view(emsnode_str text) noexcept {
  return text.len == 0 ? std::string_view() : std::string_view(text.ptr, text.len);
}

// The host function `member` of `api`, or UnsupportedError naming it.
template <typename Member>
Member require(const emsnode_host_api& api, Member emsnode_host_api::*member,
               std::string_view name) {
  if (!fits(api, member)) {
    throw UnsupportedError(name, api.struct_size);
  }
  return api.*member;
}

template <typename>
inline constexpr bool kAlwaysFalse = false;

// Why the host call just made on this thread failed (ABI 1.1 last_error), or `fallback` when the
// host does not say: it predates last_error, or gave no reason.
inline std::string host_reason(const emsnode_host_api& api, emsnode_host_ctx* ctx,
                               std::string_view fallback) {
  if (fits(api, &emsnode_host_api::last_error)) {
    const std::string_view reason = to_view(api.last_error(ctx));
    if (!reason.empty()) {
      return std::string(reason);
    }
  }
  return std::string(fallback);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Logging

/// Severity of a log record; the values are the ABI's emsnode_log_level.
enum class LogLevel {
  trace = EMSNODE_LOG_TRACE,
  debug = EMSNODE_LOG_DEBUG,
  info = EMSNODE_LOG_INFO,
  warning = EMSNODE_LOG_WARNING,
  error = EMSNODE_LOG_ERROR,
};

/// One key=value field of a log record. Numbers and booleans are turned into text here.
/// The key is borrowed: a LogField lives only for the log call it is written in.
class LogField {
 public:
  /// A text field.
  LogField(std::string_view key, std::string_view value) : key_(key), value_(value) {}
  /// A text field from a C string; picked over `bool` for string literals.
  LogField(std::string_view key, const char* value)
      : key_(key), value_(value == nullptr ? "" : value) {}
  /// A text field from a std::string.
  LogField(std::string_view key, const std::string& value) : key_(key), value_(value) {}
  /// "true" or "false".
  LogField(std::string_view key, bool value) : key_(key), value_(value ? "true" : "false") {}
  /// An integer field, in decimal.
  template <typename T,
            std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  LogField(std::string_view key, T value) : key_(key), value_(std::to_string(value)) {}
  /// A floating-point field, with up to 15 significant digits.
  LogField(std::string_view key, double value) : key_(key) {
    char text[32];
    std::snprintf(text, sizeof text, "%.15g", value);
    value_ = text;
  }
  /// A duration, as "<n>ms".
  LogField(std::string_view key, std::chrono::milliseconds value)
      : key_(key), value_(std::to_string(value.count()) + "ms") {}

  /// The field's name.
  std::string_view key() const noexcept { return key_; }
  /// The field's value as text.
  const std::string& value() const noexcept { return value_; }

 private:
  std::string_view key_;
  std::string value_;
};

/// Writes structured records into the host's log, tagged with the plugin id. Cheap to copy;
/// usable from any thread. Every record has a stable dotted event name an operator can search
/// for ("echo.listening") and key=value fields:
///
///   host().log().info("echo.listening", {{"address", address}, {"port", port}});
///
/// Logging never throws for a missing host function: a record the host cannot take is dropped.
class Logger {
 public:
  /// A logger writing through `api` for the plugin whose context is `ctx`.
  Logger(const emsnode_host_api* api, emsnode_host_ctx* ctx) noexcept : api_(api), ctx_(ctx) {}

  /// Whether a record at `level` would be written. Fields are built before the call, so check
  /// this first when they are costly to compute.
  bool enabled(LogLevel level) const noexcept {
    if (!fits(*api_, &emsnode_host_api::log_enabled)) {
      return fits(*api_, &emsnode_host_api::log);
    }
    return api_->log_enabled(ctx_, static_cast<emsnode_log_level>(level)) != 0;
  }

  /// Writes one record at `level`.
  void write(LogLevel level, std::string_view event,
             std::initializer_list<LogField> fields = {}) const {
    if (!fits(*api_, &emsnode_host_api::log)) {
      return;
    }
    // Most records have a handful of fields: keep them on the stack.
    constexpr std::size_t kInline = 16;
    emsnode_field inline_fields[kInline];
    std::vector<emsnode_field> heap_fields;
    emsnode_field* out = inline_fields;
    if (fields.size() > kInline) {
      heap_fields.resize(fields.size());
      out = heap_fields.data();
    }
    std::size_t count = 0;
    for (const LogField& field : fields) {
      out[count++] = {detail::to_str(field.key()), detail::to_str(field.value())};
    }
    api_->log(ctx_, static_cast<emsnode_log_level>(level), detail::to_str(event), out, count);
  }

  /// Writes a record at trace level.
  void trace(std::string_view event, std::initializer_list<LogField> fields = {}) const {
    write(LogLevel::trace, event, fields);
  }
  /// Writes a record at debug level.
  void debug(std::string_view event, std::initializer_list<LogField> fields = {}) const {
    write(LogLevel::debug, event, fields);
  }
  /// Writes a record at info level.
  void info(std::string_view event, std::initializer_list<LogField> fields = {}) const {
    write(LogLevel::info, event, fields);
  }
  /// Writes a record at warning level.
  void warning(std::string_view event, std::initializer_list<LogField> fields = {}) const {
    write(LogLevel::warning, event, fields);
  }
  /// Writes a record at error level.
  void error(std::string_view event, std::initializer_list<LogField> fields = {}) const {
    write(LogLevel::error, event, fields);
  }

 private:
  const emsnode_host_api* api_;
  emsnode_host_ctx* ctx_;
};

namespace detail {

// Runs a posted task or timer callback on the host's executor. Nothing may unwind into the
// host's C code, so a failure is logged instead.
inline void run_callback(const Logger& log, std::string_view kind,
                         const std::function<void()>& fn) noexcept {
  try {
    fn();
  } catch (const std::exception& e) {
    log.error("sdk.callback_failed", {{"kind", kind}, {"error", e.what()}});
  } catch (...) {
    log.error("sdk.callback_failed", {{"kind", kind}, {"error", "unknown exception"}});
  }
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Configuration

/// Typed access to the plugin's `[plugins.<id>]` table. The host has already validated it
/// against plugin.toml and filled in defaults, so a getter fails only for a key the schema does
/// not declare with that type (or a required-less key left out). Usable from any thread.
///
/// Types map as: string, secret, path, address -> string(); integer -> integer();
/// float -> floating(); boolean -> boolean(); duration -> duration(); strings -> strings().
class Config {
 public:
  /// The config of the plugin whose context is `ctx`.
  Config(const emsnode_host_api* api, emsnode_host_ctx* ctx) noexcept : api_(api), ctx_(ctx) {}

  /// The value of `key` as T, or nullopt when it is absent or of another type. T is one of
  /// std::string, std::int64_t, double, bool, std::chrono::milliseconds,
  /// std::vector<std::string>. Throws UnsupportedError if the host lacks the getter.
  template <typename T>
  std::optional<T> find(std::string_view key) const {
    const emsnode_host_api& api = *api_;
    const emsnode_str name = detail::to_str(key);
    if constexpr (std::is_same_v<T, std::string>) {
      emsnode_str out{};
      auto getter = detail::require(api, &emsnode_host_api::config_string, "config_string");
      if (getter(ctx_, name, &out) != EMSNODE_OK) return std::nullopt;
      return std::string(detail::to_view(out));
    } else if constexpr (std::is_same_v<T, std::int64_t>) {
      std::int64_t out = 0;
      auto getter = detail::require(api, &emsnode_host_api::config_int, "config_int");
      if (getter(ctx_, name, &out) != EMSNODE_OK) return std::nullopt;
      return out;
    } else if constexpr (std::is_same_v<T, double>) {
      double out = 0;
      auto getter = detail::require(api, &emsnode_host_api::config_float, "config_float");
      if (getter(ctx_, name, &out) != EMSNODE_OK) return std::nullopt;
      return out;
    } else if constexpr (std::is_same_v<T, bool>) {
      int out = 0;
      auto getter = detail::require(api, &emsnode_host_api::config_bool, "config_bool");
      if (getter(ctx_, name, &out) != EMSNODE_OK) return std::nullopt;
      return out != 0;
    } else if constexpr (std::is_same_v<T, std::chrono::milliseconds>) {
      std::uint64_t out = 0;
      auto getter =
          detail::require(api, &emsnode_host_api::config_duration_ms, "config_duration_ms");
      if (getter(ctx_, name, &out) != EMSNODE_OK) return std::nullopt;
      constexpr auto kMax = static_cast<std::uint64_t>(std::chrono::milliseconds::max().count());
      if (out > kMax) {
        throw ConfigError(std::string(key), "duration too long");
      }
      return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(out));
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      std::size_t size = 0;
      auto get_size =
          detail::require(api, &emsnode_host_api::config_array_size, "config_array_size");
      auto get_item =
          detail::require(api, &emsnode_host_api::config_array_string, "config_array_string");
      if (get_size(ctx_, name, &size) != EMSNODE_OK) return std::nullopt;
      std::vector<std::string> items;
      items.reserve(size);
      for (std::size_t i = 0; i < size; ++i) {
        emsnode_str item{};
        if (get_item(ctx_, name, i, &item) != EMSNODE_OK) return std::nullopt;
        items.emplace_back(detail::to_view(item));
      }
      return items;
    } else {
      static_assert(detail::kAlwaysFalse<T>,
                    "Config::find<T>: T must be std::string, std::int64_t, double, bool, "
                    "std::chrono::milliseconds or std::vector<std::string>");
    }
  }

  /// A string, secret, path or address value. Throws ConfigError naming the key when absent.
  std::string string(std::string_view key) const { return get<std::string>(key, "a string"); }
  /// An integer value. Throws ConfigError naming the key when absent or not an integer.
  std::int64_t integer(std::string_view key) const { return get<std::int64_t>(key, "an integer"); }
  /// A float value. Throws ConfigError naming the key when absent or not a float.
  double floating(std::string_view key) const { return get<double>(key, "a float"); }
  /// A boolean value. Throws ConfigError naming the key when absent or not a boolean.
  bool boolean(std::string_view key) const { return get<bool>(key, "a boolean"); }
  /// A duration value ("500ms", "2s" in the config). Throws ConfigError when absent.
  std::chrono::milliseconds duration(std::string_view key) const {
    return get<std::chrono::milliseconds>(key, "a duration");
  }
  /// An array of strings. Throws ConfigError naming the key when absent or not such an array.
  std::vector<std::string> strings(std::string_view key) const {
    return get<std::vector<std::string>>(key, "an array of strings");
  }

 private:
  template <typename T>
  T get(std::string_view key, std::string_view what) const {
    std::optional<T> value = find<T>(key);
    if (!value) {
      throw ConfigError(std::string(key), "missing or not " + std::string(what) +
                                              " (declare it in plugin.toml's [config])");
    }
    return std::move(*value);
  }

  const emsnode_host_api* api_;
  emsnode_host_ctx* ctx_;
};

// ---------------------------------------------------------------------------------------------
// Metrics

/// A metric label: key=value added to the series, next to the host's plugin="<id>".
struct Label {
  std::string_view key;    ///< the label name, [a-z_][a-z0-9_]*
  std::string_view value;  ///< the label value
};

/// A counter: a value that only grows. A thin handle to a host-owned metric, cheap to copy,
/// valid until the plugin is destroyed, usable from any thread.
class Counter {
 public:
  /// Adds `delta` (>= 0: a counter never goes down).
  void add(double delta = 1.0) const noexcept { api_->metric_add(metric_, delta); }

 private:
  friend class Host;
  Counter(const emsnode_host_api* api, emsnode_metric* metric) noexcept
      : api_(api), metric_(metric) {}
  const emsnode_host_api* api_;
  emsnode_metric* metric_;
};

/// A gauge: a value that goes up and down. Handle semantics as for Counter.
class Gauge {
 public:
  /// Sets the value.
  void set(double value) const noexcept { api_->metric_set(metric_, value); }
  /// Adds `delta`, which may be negative.
  void add(double delta) const noexcept { api_->metric_add(metric_, delta); }

 private:
  friend class Host;
  Gauge(const emsnode_host_api* api, emsnode_metric* metric) noexcept
      : api_(api), metric_(metric) {}
  const emsnode_host_api* api_;
  emsnode_metric* metric_;
};

/// A histogram: a distribution of observations over buckets. Handle semantics as for Counter.
class Histogram {
 public:
  /// Records one observation.
  void observe(double value) const noexcept { api_->metric_observe(metric_, value); }

 private:
  friend class Host;
  Histogram(const emsnode_host_api* api, emsnode_metric* metric) noexcept
      : api_(api), metric_(metric) {}
  const emsnode_host_api* api_;
  emsnode_metric* metric_;
};

// ---------------------------------------------------------------------------------------------
// Timers

namespace detail {

// What a timer's user_data points to. Owned by the Timer handle; handed over to run_timer when
// the handle is destroyed from inside its own callback.
struct TimerTask {
  std::function<void()> fn;
  Logger log;
  // The host's count of starts, and its value when the timer was armed. The host cancels every
  // timer when stop returns; a handle from an earlier active period must not cancel by an id the
  // host may have handed out again since.
  const std::atomic<std::uint64_t>* starts;
  std::uint64_t armed_in;
  bool release_after_run = false;
};

// The timer callback running on this thread, so that a Timer destroyed from inside its own
// callback does not free the std::function that is executing.
inline thread_local TimerTask* current_timer = nullptr;

inline void run_timer(void* user_data) noexcept {
  auto* task = static_cast<TimerTask*>(user_data);
  TimerTask* const outer = current_timer;
  current_timer = task;
  run_callback(task->log, "timer", task->fn);
  current_timer = outer;
  if (task->release_after_run) {
    delete task;
  }
}

}  // namespace detail

/// An armed host timer; cancelling it is tied to this handle's lifetime (RAII). Movable, not
/// copyable. A default-constructed Timer holds nothing. Keep it as a member of the plugin and
/// reset it (or let it go) in stop(): the host reports a timer still armed after stop as leaked.
/// A handle must not outlive the plugin instance whose Host armed it.
class Timer {
 public:
  /// An empty handle.
  Timer() noexcept = default;
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  /// Takes over `other`'s timer; `other` becomes empty.
  Timer(Timer&& other) noexcept { swap(other); }
  /// Cancels the timer held, then takes over `other`'s.
  Timer& operator=(Timer&& other) noexcept {
    if (this != &other) {
      cancel();
      swap(other);
    }
    return *this;
  }
  /// Cancels the timer.
  ~Timer() { cancel(); }

  /// Cancels the timer: once this returns its callback is not running and will not run again.
  /// Called from inside the timer's own callback, the callback finishes first (its std::function
  /// is released after it returns). Harmless on an empty handle or a fired one-shot timer.
  void cancel() noexcept {
    if (!task_) {
      return;
    }
    if (task_->starts->load() == task_->armed_in) {
      api_->timer_cancel(ctx_, id_);
    }
    if (detail::current_timer == task_.get()) {
      task_->release_after_run = true;
      task_.release();  // run_timer frees it once the callback returns
    }
    task_.reset();
    id_ = 0;
  }

  /// True for a default-constructed, moved-from or cancelled handle.
  bool empty() const noexcept { return task_ == nullptr; }

 private:
  friend class Host;
  Timer(const emsnode_host_api* api, emsnode_host_ctx* ctx, emsnode_timer_id id,
        std::unique_ptr<detail::TimerTask> task) noexcept
      : api_(api), ctx_(ctx), id_(id), task_(std::move(task)) {}

  void swap(Timer& other) noexcept {
    std::swap(api_, other.api_);
    std::swap(ctx_, other.ctx_);
    std::swap(id_, other.id_);
    std::swap(task_, other.task_);
  }

  const emsnode_host_api* api_ = nullptr;
  emsnode_host_ctx* ctx_ = nullptr;
  emsnode_timer_id id_ = 0;
  std::unique_ptr<detail::TimerTask> task_;
};

// ---------------------------------------------------------------------------------------------
// Shared database

/// The bytes of a BLOB value. A type of its own so that bytes bind and read back as a blob, and
/// text as text.
struct Blob {
  std::string bytes;  ///< any bytes

  /// Equal when the bytes are.
  friend bool operator==(const Blob& a, const Blob& b) noexcept { return a.bytes == b.bytes; }
  /// Not equal when the bytes differ.
  friend bool operator!=(const Blob& a, const Blob& b) noexcept { return !(a == b); }
};

/// A SQL parameter or column value: NULL, a 64-bit integer, a double, UTF-8 text or a blob.
/// Implicit from the C++ types that map onto one, so a parameter list reads
/// `{id, "name", 2.5, nullptr, sdk::Blob{bytes}, std::optional<int>()}`. A bool binds as the
/// integer 0 or 1 (the portable SQL has no BOOLEAN); an empty std::optional as NULL.
class Value {
 public:
  /// The alternatives, in the order of emsnode_db_type.
  using Variant = std::variant<std::nullptr_t, std::int64_t, double, std::string, Blob>;

  /// NULL.
  Value() noexcept = default;
  /// NULL.
  Value(std::nullptr_t) noexcept {}
  /// An integer. Throws Error for an unsigned value above INT64_MAX, which SQL cannot hold.
  template <typename T,
            std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Value(T value) : value_(to_int64(value)) {}
  /// The integer 1 or 0.
  Value(bool value) noexcept : value_(std::int64_t{value ? 1 : 0}) {}
  /// A double.
  Value(double value) noexcept : value_(value) {}
  /// Text; a null pointer is NULL.
  Value(const char* text) {
    if (text != nullptr) value_ = std::string(text);
  }
  /// Text.
  Value(std::string_view text) : value_(std::string(text)) {}
  /// Text.
  Value(std::string text) noexcept : value_(std::move(text)) {}
  /// A blob.
  Value(Blob blob) noexcept : value_(std::move(blob)) {}
  /// NULL when empty, else the contained value.
  template <typename T>
  Value(const std::optional<T>& value) {
    if (value) *this = Value(*value);
  }

  /// Which alternative this is.
  emsnode_db_type type() const noexcept { return static_cast<emsnode_db_type>(value_.index()); }
  /// Whether this is NULL.
  bool is_null() const noexcept { return type() == EMSNODE_DB_NULL; }
  /// The integer. Throws DbError when the value is not one.
  std::int64_t integer() const { return std::get<std::int64_t>(expect(EMSNODE_DB_INTEGER)); }
  /// The double, or an integer as a double. Throws DbError for any other type.
  double floating() const {
    if (type() == EMSNODE_DB_INTEGER) return static_cast<double>(std::get<std::int64_t>(value_));
    return std::get<double>(expect(EMSNODE_DB_FLOAT));
  }
  /// The text. Throws DbError when the value is not text.
  const std::string& text() const { return std::get<std::string>(expect(EMSNODE_DB_TEXT)); }
  /// The blob's bytes. Throws DbError when the value is not a blob.
  const std::string& blob() const { return std::get<Blob>(expect(EMSNODE_DB_BLOB)).bytes; }
  /// The value as a std::variant, e.g. for std::visit.
  const Variant& variant() const noexcept { return value_; }

  /// "NULL", "integer", "float", "text", "blob", or "type <n>" for one this SDK does not know.
  static std::string type_name(emsnode_db_type type) {
    switch (type) {
      case EMSNODE_DB_NULL:
        return "NULL";
      case EMSNODE_DB_INTEGER:
        return "integer";
      case EMSNODE_DB_FLOAT:
        return "float";
      case EMSNODE_DB_TEXT:
        return "text";
      case EMSNODE_DB_BLOB:
        return "blob";
    }
    return "type " + std::to_string(static_cast<int>(type));
  }

  /// Equal when of the same type and value (an integer never equals a double).
  friend bool operator==(const Value& a, const Value& b) { return a.value_ == b.value_; }
  /// Not equal.
  friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

 private:
  template <typename T>
  static std::int64_t to_int64(T value) {
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(std::int64_t)) {
      if (value > static_cast<T>(std::numeric_limits<std::int64_t>::max())) {
        throw Error("the integer " + std::to_string(value) + " does not fit SQL's signed 64 bits");
      }
    }
    return static_cast<std::int64_t>(value);
  }

  const Variant& expect(emsnode_db_type wanted) const {
    if (type() != wanted) {
      throw DbError("the value is " + type_name(type()) + ", not " + type_name(wanted));
    }
    return value_;
  }

  Variant value_;
};

/// Parameters bound, in order, to a statement's `?` placeholders.
using Params = std::vector<Value>;

/// One result row: its column values in the statement's column order. Owns its values.
class Row {
 public:
  /// An empty row.
  Row() = default;
  /// A row of `columns` (e.g. what a FakeHost hook returns).
  explicit Row(std::vector<Value> columns) noexcept : columns_(std::move(columns)) {}
  /// A row from a braced list: `sdk::Row{1, "a"}`.
  Row(std::initializer_list<Value> columns) : columns_(columns) {}

  /// How many columns.
  std::size_t size() const noexcept { return columns_.size(); }
  /// Column `i`. Throws DbError when there is no such column.
  const Value& operator[](std::size_t i) const { return at(i); }
  /// Whether column `i` is NULL.
  bool is_null(std::size_t i) const { return at(i).is_null(); }
  /// Column `i` as an integer; throws DbError naming the column when it is not one.
  std::int64_t integer(std::size_t i) const { return typed(i, &Value::integer); }
  /// Column `i` as a double (an integer column reads too); throws DbError otherwise.
  double floating(std::size_t i) const { return typed(i, &Value::floating); }
  /// Column `i` as text; throws DbError naming the column when it is not text.
  const std::string& text(std::size_t i) const { return typed(i, &Value::text); }
  /// Column `i` as a blob's bytes; throws DbError naming the column when it is not a blob.
  const std::string& blob(std::size_t i) const { return typed(i, &Value::blob); }
  /// All columns.
  const std::vector<Value>& columns() const noexcept { return columns_; }

  /// Equal when every column is.
  friend bool operator==(const Row& a, const Row& b) { return a.columns_ == b.columns_; }
  /// Not equal.
  friend bool operator!=(const Row& a, const Row& b) { return !(a == b); }

 private:
  const Value& at(std::size_t i) const {
    if (i >= columns_.size()) {
      throw DbError("no column " + std::to_string(i) + " in a row of " +
                    std::to_string(columns_.size()));
    }
    return columns_[i];
  }

  template <typename Result>
  Result typed(std::size_t i, Result (Value::*getter)() const) const {
    const Value& value = at(i);
    try {
      return (value.*getter)();
    } catch (const DbError& e) {
      throw DbError("column " + std::to_string(i) + ": " + e.what());
    }
  }

  std::vector<Value> columns_;
};

namespace detail {

// The ABI's view of `value`; its bytes point into `value`, which must outlive the view.
inline emsnode_db_value to_db_value(const Value& value) noexcept {
  emsnode_db_value out{};
  out.type = value.type();
  switch (out.type) {
    case EMSNODE_DB_INTEGER:
      out.integer = std::get<std::int64_t>(value.variant());
      break;
    case EMSNODE_DB_FLOAT:
      out.floating = std::get<double>(value.variant());
      break;
    case EMSNODE_DB_TEXT:
      out.bytes = to_str(std::get<std::string>(value.variant()));
      break;
    case EMSNODE_DB_BLOB:
      out.bytes = to_str(std::get<Blob>(value.variant()).bytes);
      break;
    case EMSNODE_DB_NULL:
      break;
  }
  return out;
}

// A copy of a value the host passed. Throws DbError for a type this SDK does not know.
inline Value from_db_value(const emsnode_db_value& value) {
  switch (value.type) {
    case EMSNODE_DB_NULL:
      return Value();
    case EMSNODE_DB_INTEGER:
      return Value(value.integer);
    case EMSNODE_DB_FLOAT:
      return Value(value.floating);
    case EMSNODE_DB_TEXT:
      return Value(std::string(to_view(value.bytes)));
    case EMSNODE_DB_BLOB:
      return Value(Blob{std::string(to_view(value.bytes))});
  }
  throw DbError("the host passed a value of " + Value::type_name(value.type) +
                ", which this SDK does not know");
}

// Parameters as the ABI takes them: views into `params`, which must outlive them.
inline std::vector<emsnode_db_value> to_db_values(const Params& params) {
  std::vector<emsnode_db_value> out;
  out.reserve(params.size());
  for (const Value& value : params) out.push_back(to_db_value(value));
  return out;
}

// The user_data of a row callback: the plugin's function, and what it threw. Nothing may unwind
// into the host, so an exception stops the rows and is rethrown once the host call returns.
struct RowSink {
  std::function<bool(const Row&)> on_row;
  std::exception_ptr error;
};

inline int deliver_row(void* user_data, const emsnode_db_value* columns,
                       std::size_t column_count) noexcept {
  auto& sink = *static_cast<RowSink*>(user_data);
  try {
    std::vector<Value> values;
    values.reserve(column_count);
    for (std::size_t i = 0; i < column_count; ++i) values.push_back(from_db_value(columns[i]));
    return sink.on_row(Row(std::move(values))) ? 0 : 1;
  } catch (...) {
    sink.error = std::current_exception();  // rethrown by check_db
    return 1;
  }
}

// `on_row` as a RowSink function: a callable returning void takes every row; one returning bool
// stops at the first false.
template <typename OnRow>
std::function<bool(const Row&)> row_function(OnRow&& on_row) {
  using Result = std::invoke_result_t<OnRow&, const Row&>;
  if constexpr (std::is_void_v<Result>) {
    return [fn = std::forward<OnRow>(on_row)](const Row& row) mutable {
      fn(row);
      return true;
    };
  } else {
    static_assert(std::is_convertible_v<Result, bool>,
                  "a row callback returns void (take every row) or bool (false stops)");
    return [fn = std::forward<OnRow>(on_row)](const Row& row) mutable {
      return static_cast<bool>(fn(row));
    };
  }
}

// Turns the outcome of a db_* call into the wrapper's contract: what the plugin's own callback
// threw comes first; then EMSNODE_FENCED is a FencedError and any other failure a DbError, both
// with the host's reason.
inline void check_db(const emsnode_host_api& api, emsnode_host_ctx* ctx, emsnode_status status,
                     std::string_view call, const std::exception_ptr& plugin_error) {
  if (plugin_error) {
    std::rethrow_exception(plugin_error);
  }
  if (status == EMSNODE_OK) {
    return;
  }
  std::string reason =
      host_reason(api, ctx, std::string(call) + " failed (the host gave no reason)");
  if (status == EMSNODE_FENCED) {
    throw FencedError(reason);
  }
  throw DbError(reason);
}

}  // namespace detail

/// The statements of one fenced write transaction, handed to the body of Database::write. Valid
/// only while that body runs, on its thread.
class Transaction {
 public:
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  /// Runs a statement that returns no rows (INSERT, UPDATE, DELETE) and returns how many rows it
  /// changed. Throws DbError when it fails; the transaction is then spoiled and rolls back even
  /// if the body catches the error.
  std::uint64_t exec(std::string_view sql, const Params& params = {}) {
    const std::vector<emsnode_db_value> values = detail::to_db_values(params);
    std::uint64_t changes = 0;
    const emsnode_status status = exec_fn_(txn_, detail::to_str(sql), values.data(), values.size(),
                                           nullptr, nullptr, &changes);
    detail::check_db(*api_, ctx_, status, "db_exec", nullptr);
    return changes;
  }

  /// Runs a statement that returns rows (a SELECT, or `... RETURNING`) and returns them all.
  std::vector<Row> query(std::string_view sql, const Params& params = {}) {
    std::vector<Row> rows;
    query(sql, params, [&](const Row& row) { rows.push_back(row); });
    return rows;
  }

  /// Runs a statement that returns rows and passes each to `on_row(const Row&)`, which returns
  /// void (take every row) or bool (false stops). What on_row throws propagates.
  template <typename OnRow>
  void query(std::string_view sql, const Params& params, OnRow&& on_row) {
    const std::vector<emsnode_db_value> values = detail::to_db_values(params);
    detail::RowSink sink{detail::row_function(std::forward<OnRow>(on_row)), nullptr};
    const emsnode_status status = exec_fn_(txn_, detail::to_str(sql), values.data(), values.size(),
                                           &detail::deliver_row, &sink, nullptr);
    detail::check_db(*api_, ctx_, status, "db_exec", sink.error);
  }

 private:
  friend class Database;
  Transaction(const emsnode_host_api* api, emsnode_host_ctx* ctx, emsnode_db_txn* txn,
              decltype(emsnode_host_api::db_exec) exec_fn) noexcept
      : api_(api), ctx_(ctx), txn_(txn), exec_fn_(exec_fn) {}

  const emsnode_host_api* api_;
  emsnode_host_ctx* ctx_;
  emsnode_db_txn* txn_;
  decltype(emsnode_host_api::db_exec) exec_fn_;
};

/// The cluster's shared database, as plugin_abi.h's SHARED DATABASE section describes it: `?`
/// placeholders, the portable SQL subset, tables named `<id>_...`. Cheap to copy; usable from any
/// thread. Reads work on every node; writes and migrations only while the plugin is started, and
/// the host fences them. Needs a host of ABI 1.1: on an older one every call throws
/// UnsupportedError (check first with host.supports(&emsnode_host_api::db_query)).
///
///   db.migrate({"CREATE TABLE IF NOT EXISTS echo_seen (peer TEXT PRIMARY KEY, n BIGINT)"});
///   db.write([&](sdk::Transaction& tx) {
///     tx.exec("INSERT INTO echo_seen (peer, n) VALUES (?, 1) "
///             "ON CONFLICT (peer) DO UPDATE SET n = echo_seen.n + 1", {peer});
///   });
///   for (const sdk::Row& row : db.query("SELECT peer, n FROM echo_seen WHERE n > ?", {10})) ...
class Database {
 public:
  /// The database of the plugin whose context is `ctx`.
  Database(const emsnode_host_api* api, emsnode_host_ctx* ctx) noexcept : api_(api), ctx_(ctx) {}

  /// Runs a reading statement (SELECT, WITH or VALUES; the host refuses writes here) outside any
  /// transaction and returns its rows. Throws DbError when the host refuses it or it fails.
  std::vector<Row> query(std::string_view sql, const Params& params = {}) const {
    std::vector<Row> rows;
    query(sql, params, [&](const Row& row) { rows.push_back(row); });
    return rows;
  }

  /// As query(sql, params), passing each row to `on_row(const Row&)` instead of collecting them;
  /// on_row returns void (take every row) or bool (false stops). What on_row throws propagates.
  template <typename OnRow>
  void query(std::string_view sql, const Params& params, OnRow&& on_row) const {
    auto query_fn = detail::require(*api_, &emsnode_host_api::db_query, "db_query");
    const std::vector<emsnode_db_value> values = detail::to_db_values(params);
    detail::RowSink sink{detail::row_function(std::forward<OnRow>(on_row)), nullptr};
    const emsnode_status status = query_fn(ctx_, detail::to_str(sql), values.data(), values.size(),
                                           &detail::deliver_row, &sink);
    detail::check_db(*api_, ctx_, status, "db_query", sink.error);
  }

  /// Runs `body(Transaction&)` in one fenced write transaction: it commits when body returns and
  /// rolls back when body throws, rethrowing that exception. Throws FencedError (body did not
  /// run) when this node no longer holds the lease at its epoch, and DbError when a statement or
  /// the commit failed or the host refused (the plugin is not started). Keep body short: write
  /// transactions are serialised across the node. Do not call query, write or migrate inside it.
  template <typename Body>
  void write(Body&& body) const {
    auto write_fn = detail::require(*api_, &emsnode_host_api::db_write, "db_write");
    auto exec_fn = detail::require(*api_, &emsnode_host_api::db_exec, "db_exec");
    using BodyRef = std::remove_reference_t<Body>;
    static_assert(std::is_invocable_v<BodyRef&, Transaction&>,
                  "Database::write: the body must be callable as body(sdk::Transaction&)");
    WriteState<BodyRef> state{this, exec_fn, &body, nullptr};
    const emsnode_status status = write_fn(ctx_, &Database::run_body<BodyRef>, &state);
    detail::check_db(*api_, ctx_, status, "db_write", state.error);
  }

  /// Brings the plugin's own tables to version steps.size(): steps[i] is ONE statement taking the
  /// schema from version i to i + 1. The host applies only the steps above the version recorded
  /// for this plugin, so call it at the top of start(). Steps are append-only: never edit a step
  /// that has shipped. Throws FencedError when this node does not hold the lease, and DbError
  /// when a step fails, creates a table not named `<id>_...`, or the database is already at a
  /// newer version than steps.size() (this plugin is older than its data: let start fail).
  void migrate(const std::vector<std::string_view>& steps) const {
    auto migrate_fn = detail::require(*api_, &emsnode_host_api::db_migrate, "db_migrate");
    std::vector<emsnode_str> texts;
    texts.reserve(steps.size());
    for (std::string_view step : steps) texts.push_back(detail::to_str(step));
    detail::check_db(*api_, ctx_, migrate_fn(ctx_, texts.data(), texts.size()), "db_migrate",
                     nullptr);
  }

 private:
  template <typename Body>
  struct WriteState {
    const Database* db;
    decltype(emsnode_host_api::db_exec) exec_fn;
    Body* body;
    std::exception_ptr error;  // what body threw; rethrown once db_write has rolled back
  };

  template <typename Body>
  static emsnode_status run_body(void* user_data, emsnode_db_txn* txn) noexcept {
    auto& state = *static_cast<WriteState<Body>*>(user_data);
    try {
      Transaction tx(state.db->api_, state.db->ctx_, txn, state.exec_fn);
      (*state.body)(tx);
      return EMSNODE_OK;
    } catch (...) {
      state.error = std::current_exception();
      return EMSNODE_ERROR;  // rolls back
    }
  }

  const emsnode_host_api* api_;
  emsnode_host_ctx* ctx_;
};

// ---------------------------------------------------------------------------------------------
// Shared file store

/// A file of the plugin's folder of the store, as the store's catalog describes it.
struct FileInfo {
  std::string key;                  ///< relative to the plugin's folder, as put gave it
  std::uint64_t size = 0;           ///< the content's length in bytes
  std::string sha256;               ///< SHA-256 of the content, 64 lowercase hex digits
  std::int64_t modified_at_ms = 0;  ///< when it was published: ms since the Unix epoch
  std::uint64_t epoch = 0;          ///< the lease epoch of the node that published it
};

namespace detail {

// A copy of the catalog entry the host passed, reading only the fields it declared.
inline FileInfo from_store_info(std::string_view key, const emsnode_store_info& info) {
  FileInfo file;
  file.key = std::string(key);
  if (fits(info, &emsnode_store_info::size)) file.size = info.size;
  if (fits(info, &emsnode_store_info::modified_at_ms)) file.modified_at_ms = info.modified_at_ms;
  if (fits(info, &emsnode_store_info::epoch)) file.epoch = info.epoch;
  if (fits(info, &emsnode_store_info::sha256)) {
    // Up to the NUL, and never past the array, whatever the host wrote.
    file.sha256.assign(info.sha256,
                       std::find(info.sha256, info.sha256 + sizeof info.sha256 - 1, '\0'));
  }
  return file;
}

// The user_data of a put's read callback: the plugin's stream, and what reading it threw. Nothing
// may unwind into the host, so an exception aborts the put and is rethrown once the host returns.
struct StoreSource {
  std::istream* in;
  std::exception_ptr error;
  bool failed = false;  // the stream went bad without throwing
};

inline std::int64_t read_source(void* user_data, char* buffer, std::size_t capacity) noexcept {
  auto& source = *static_cast<StoreSource*>(user_data);
  try {
    constexpr auto kMax = static_cast<std::size_t>(std::numeric_limits<std::streamsize>::max());
    source.in->read(buffer, static_cast<std::streamsize>(std::min(capacity, kMax)));
    // A short read at the end sets failbit with eofbit; failbit alone is a stream that failed
    // (a file that never opened), which must not pass for empty content.
    if (source.in->bad() || (source.in->fail() && !source.in->eof())) {
      source.failed = true;
      return -1;
    }
    return static_cast<std::int64_t>(source.in->gcount());
  } catch (...) {
    source.error = std::current_exception();
    return -1;
  }
}

// The user_data of a get's write callback: the plugin's stream, and what writing to it threw.
struct StoreSink {
  std::ostream* out;
  std::exception_ptr error;
  bool failed = false;  // the stream went bad without throwing
};

inline int write_sink(void* user_data, const char* data, std::size_t size) noexcept {
  auto& sink = *static_cast<StoreSink*>(user_data);
  try {
    sink.out->write(data, static_cast<std::streamsize>(size));
    if (!*sink.out) {
      sink.failed = true;
      return 1;
    }
    return 0;
  } catch (...) {
    sink.error = std::current_exception();
    return 1;
  }
}

// The user_data of a list's entry callback.
struct StoreEntries {
  std::vector<FileInfo> files;
  std::exception_ptr error;
};

inline int add_entry(void* user_data, emsnode_str key, const emsnode_store_info* info) noexcept {
  auto& entries = *static_cast<StoreEntries*>(user_data);
  try {
    entries.files.push_back(from_store_info(to_view(key), *info));
    return 0;
  } catch (...) {
    entries.error = std::current_exception();
    return 1;
  }
}

// Turns the outcome of a store_* call into the wrapper's contract: what the plugin's own stream
// threw comes first; then EMSNODE_FENCED is a FencedError, EMSNODE_NOT_FOUND a FileNotFoundError
// and any other failure a StoreError, each with the host's reason.
inline void check_store(const emsnode_host_api& api, emsnode_host_ctx* ctx, emsnode_status status,
                        std::string_view call, const std::exception_ptr& plugin_error) {
  if (plugin_error) {
    std::rethrow_exception(plugin_error);
  }
  if (status == EMSNODE_OK) {
    return;
  }
  std::string reason =
      host_reason(api, ctx, std::string(call) + " failed (the host gave no reason)");
  if (status == EMSNODE_FENCED) {
    throw FencedError(reason);
  }
  if (status == EMSNODE_NOT_FOUND) {
    throw FileNotFoundError(reason);
  }
  throw StoreError(reason);
}

}  // namespace detail

/// The plugin's folder of the cluster's shared file store, as plugin_abi.h's SHARED FILE STORE
/// section describes it: keys are relative paths inside the folder ("reports/2026-11.csv"), and
/// the host refuses any that would leave it. Content streams in bounded chunks both ways, so a
/// file of any size passes through without being held in memory. Reads work on every node; puts
/// and removes only while the plugin is started, fenced by the host. Cheap to copy; usable from
/// any thread. Needs a host of ABI 1.2: on an older one every call throws UnsupportedError (check
/// first with host.supports(&emsnode_host_api::store_put)).
///
///   std::ifstream report("/tmp/report.csv", std::ios::binary);
///   store.put("reports/2026-11.csv", report);           // published once complete, or not at all
///   std::ostringstream copy;
///   store.get("reports/2026-11.csv", copy);             // verified against its SHA-256
///   for (const sdk::FileInfo& file : store.list("reports/")) ...
class FileStore {
 public:
  /// The store of the plugin whose context is `ctx`.
  FileStore(const emsnode_host_api* api, emsnode_host_ctx* ctx) noexcept : api_(api), ctx_(ctx) {}

  /// Streams `in`, to its end, into the file at `key`, replacing the file there, and publishes it
  /// in one fenced transaction: readers see the previous file or the new one, never a part.
  /// Throws FencedError when this node no longer holds the lease, StoreError when the host
  /// refuses (a key that leaves the folder, not started), the store fails, or `in` goes bad;
  /// an exception `in` throws propagates unchanged. Nothing is published when it throws.
  void put(std::string_view key, std::istream& in) const {
    auto put_fn = detail::require(*api_, &emsnode_host_api::store_put, "store_put");
    detail::StoreSource source{&in, nullptr};
    const emsnode_status status = put_fn(ctx_, detail::to_str(key), &detail::read_source, &source);
    if (source.failed && !source.error) {
      throw StoreError("store put '" + std::string(key) +
                       "': reading the input stream failed; nothing was published");
    }
    detail::check_store(*api_, ctx_, status, "store_put", source.error);
  }

  /// Streams the file at `key` into `out`, verifying its size and SHA-256 as it goes. A mismatch
  /// may show only after the last byte: trust what reached `out` only when get returns. Throws
  /// FileNotFoundError when there is no such file, StoreError when the content does not match its
  /// checksum, the store fails or `out` goes bad; an exception `out` throws propagates unchanged.
  void get(std::string_view key, std::ostream& out) const {
    auto get_fn = detail::require(*api_, &emsnode_host_api::store_get, "store_get");
    detail::StoreSink sink{&out, nullptr};
    const emsnode_status status = get_fn(ctx_, detail::to_str(key), &detail::write_sink, &sink);
    if (sink.failed && !sink.error) {
      throw StoreError("store get '" + std::string(key) + "': writing the output stream failed");
    }
    detail::check_store(*api_, ctx_, status, "store_get", sink.error);
  }

  /// The catalog entry of the file at `key`, or nullopt when there is none. Throws StoreError
  /// when the host refuses the key or the store fails.
  std::optional<FileInfo> stat(std::string_view key) const {
    auto stat_fn = detail::require(*api_, &emsnode_host_api::store_stat, "store_stat");
    emsnode_store_info info{};
    info.struct_size = sizeof info;
    const emsnode_status status = stat_fn(ctx_, detail::to_str(key), &info);
    if (status == EMSNODE_NOT_FOUND) {
      return std::nullopt;
    }
    detail::check_store(*api_, ctx_, status, "store_stat", nullptr);
    return detail::from_store_info(key, info);
  }

  /// Every file whose key starts with `prefix` (empty: the whole folder), ordered by key. Throws
  /// StoreError when the host refuses the prefix or the store fails.
  std::vector<FileInfo> list(std::string_view prefix = {}) const {
    auto list_fn = detail::require(*api_, &emsnode_host_api::store_list, "store_list");
    detail::StoreEntries entries;
    const emsnode_status status =
        list_fn(ctx_, detail::to_str(prefix), &detail::add_entry, &entries);
    detail::check_store(*api_, ctx_, status, "store_list", entries.error);
    return std::move(entries.files);
  }

  /// Removes the file at `key`, fenced as put. Throws FileNotFoundError when there is no such
  /// file, FencedError when this node no longer holds the lease, StoreError otherwise.
  void remove(std::string_view key) const {
    auto remove_fn = detail::require(*api_, &emsnode_host_api::store_remove, "store_remove");
    detail::check_store(*api_, ctx_, remove_fn(ctx_, detail::to_str(key)), "store_remove", nullptr);
  }

 private:
  const emsnode_host_api* api_;
  emsnode_host_ctx* ctx_;
};

// ---------------------------------------------------------------------------------------------
// Status facts

/// How much a status fact needs an operator (plugin_abi.h, emsnode_severity).
enum class Severity {
  info = EMSNODE_SEVERITY_INFO,          ///< as it should be
  warning = EMSNODE_SEVERITY_WARNING,    ///< needs attention soon: a license expiring
  critical = EMSNODE_SEVERITY_CRITICAL,  ///< needs attention now: backups failing
};

// ---------------------------------------------------------------------------------------------
// Host

class Host;

namespace detail {

struct Instance;

// What a post's user_data points to. Owned by Host::posts_ until it runs.
struct PostedTask {
  Host* owner;
  std::function<void()> fn;
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Control commands (ABI 1.3)

/// A small writer for the JSON answers of control commands: one object, its values escaped per
/// RFC 8259.
///
///   call.reply(sdk::JsonObject().add("served", served).add("open", open).str());
class JsonObject {
 public:
  /// Adds a string member.
  JsonObject& add(std::string_view key, std::string_view value) {
    return member(key, quoted(value));
  }
  /// Adds a string member (a literal would otherwise pick the bool overload).
  JsonObject& add(std::string_view key, const char* value) {
    return add(key, std::string_view(value));
  }
  /// Adds an integer member.
  template <typename T,
            typename = std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>>
  JsonObject& add(std::string_view key, T value) {
    return member(key, std::to_string(value));
  }
  /// Adds a number member; NaN and infinities, which JSON cannot hold, become null.
  JsonObject& add(std::string_view key, double value) {
    if (value != value || value - value != 0) {
      return member(key, "null");
    }
    char text[32];
    std::snprintf(text, sizeof text, "%.17g", value);
    return member(key, text);
  }
  /// Adds a boolean member.
  JsonObject& add(std::string_view key, bool value) {
    return member(key, value ? "true" : "false");
  }
  /// Adds a member whose value is already JSON (a nested JsonObject's str(), an array).
  JsonObject& add_raw(std::string_view key, std::string_view json) { return member(key, json); }

  /// The object's text.
  std::string str() const { return "{" + body_ + "}"; }

  /// `text` as a quoted JSON string.
  static std::string quoted(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
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
          if (static_cast<unsigned char>(c) < 0x20) {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
            out += escaped;
          } else {
            out += c;
          }
      }
    }
    return out + "\"";
  }

 private:
  JsonObject& member(std::string_view key, std::string_view value) {
    if (!body_.empty()) {
      body_ += ',';
    }
    body_ += quoted(key);
    body_ += ':';
    body_ += value;
    return *this;
  }

  std::string body_;
};

/// One call of a control command, handed to its handler: the arguments, already checked by the
/// host against plugin.toml, and the answer. Valid only while the handler runs.
class CommandCall {
 public:
  /// Wraps the host's call; the wrapper builds it.
  CommandCall(const emsnode_host_api* api, emsnode_host_ctx* ctx, emsnode_command_call* call)
      : api_(api), ctx_(ctx), call_(call) {}

  /// Whether the argument `name` was given or has a default.
  bool has(std::string_view name) const { return fetch(name).has_value(); }

  /// The argument `name` as T: std::string (string, path, address, secret), std::int64_t or int
  /// (integer), double (float), bool (boolean), std::chrono::milliseconds (duration). Throws
  /// InvalidInput when it was not given and has no default, Error when T does not fit its type.
  template <typename T>
  T arg(std::string_view name) const {
    const std::optional<emsnode_db_value> value = fetch(name);
    if (!value) {
      throw InvalidInput("argument '" + std::string(name) + "' is missing");
    }
    return convert<T>(name, *value);
  }

  /// The argument `name` as T, or `fallback` when it was not given and has no default.
  template <typename T>
  T arg_or(std::string_view name, T fallback) const {
    const std::optional<emsnode_db_value> value = fetch(name);
    return value ? convert<T>(name, *value) : fallback;
  }

  /// Sets the answer: one JSON value (JsonObject helps). Throws Error when the host refuses it
  /// (not JSON, or over 1 MiB).
  void reply(std::string_view json) {
    if (api_->command_reply(call_, detail::to_str(json)) != EMSNODE_OK) {
      throw Error("the host refused the answer: " +
                  detail::host_reason(*api_, ctx_, "not one JSON value, or over 1 MiB"));
    }
  }

 private:
  std::optional<emsnode_db_value> fetch(std::string_view name) const {
    emsnode_db_value value{};
    if (api_->command_arg(call_, detail::to_str(name), &value) != EMSNODE_OK) {
      return std::nullopt;
    }
    return value;
  }

  template <typename T>
  static T convert(std::string_view name, const emsnode_db_value& value) {
    const auto wrong = [&]() {
      return Error("argument '" + std::string(name) + "' is not of the type asked for");
    };
    if constexpr (std::is_same_v<T, std::string>) {
      if (value.type != EMSNODE_DB_TEXT) throw wrong();
      return std::string(detail::to_view(value.bytes));
    } else if constexpr (std::is_same_v<T, bool>) {
      if (value.type != EMSNODE_DB_INTEGER) throw wrong();
      return value.integer != 0;
    } else if constexpr (std::is_same_v<T, std::chrono::milliseconds>) {
      if (value.type != EMSNODE_DB_INTEGER) throw wrong();
      return std::chrono::milliseconds(value.integer);
    } else if constexpr (std::is_floating_point_v<T>) {
      if (value.type == EMSNODE_DB_FLOAT) return static_cast<T>(value.floating);
      if (value.type == EMSNODE_DB_INTEGER) return static_cast<T>(value.integer);
      throw wrong();
    } else if constexpr (std::is_integral_v<T>) {
      if (value.type != EMSNODE_DB_INTEGER) throw wrong();
      if (value.integer < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
          static_cast<std::uint64_t>(value.integer) >
              static_cast<std::uint64_t>(std::numeric_limits<T>::max())) {
        throw InvalidInput("argument '" + std::string(name) + "' is out of range");
      }
      return static_cast<T>(value.integer);
    } else {
      static_assert(detail::kAlwaysFalse<T>, "CommandCall::arg: unsupported type");
    }
  }

  const emsnode_host_api* api_;
  emsnode_host_ctx* ctx_;
  emsnode_command_call* call_;
};

namespace detail {

// What a command's user_data points to. Owned by Host::commands_ until destroy.
struct CommandEntry {
  const emsnode_host_api* api;
  emsnode_host_ctx* ctx;
  std::function<void(CommandCall&)> handler;
};

// Runs a handler and maps its exception to the status the caller sees; none crosses the ABI.
inline emsnode_status run_command(void* user_data, emsnode_command_call* call) noexcept {
  auto* entry = static_cast<CommandEntry*>(user_data);
  const auto fail = [&](emsnode_status status, const char* message) {
    entry->api->command_fail(call, to_str(message));
    return status;
  };
  try {
    CommandCall wrapped(entry->api, entry->ctx, call);
    entry->handler(wrapped);
    return EMSNODE_OK;
  } catch (const InvalidInput& e) {
    return fail(EMSNODE_INVALID, e.what());
  } catch (const NotFound& e) {
    return fail(EMSNODE_NOT_FOUND, e.what());
  } catch (const FencedError& e) {
    return fail(EMSNODE_FENCED, e.what());
  } catch (const std::exception& e) {
    return fail(EMSNODE_ERROR, e.what());
  } catch (...) {
    return fail(EMSNODE_ERROR, "unknown exception");
  }
}

}  // namespace detail

/// The services the node offers to one plugin instance: identity, log, config, executor and
/// timers, metrics, health, shared database and file store, shared APIs between plugins and
/// status facts. Built by the wrapper before the
/// plugin's constructor and valid until the plugin is destroyed; the plugin receives it by
/// reference. Thread-safe unless noted.
class Host {
 public:
  /// Wraps the host table and context given to create. Throws Error when `api` is null or was
  /// built for another ABI major.
  Host(const emsnode_host_api* api, emsnode_host_ctx* ctx) : api_(checked(api)), ctx_(ctx) {}
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  /// The raw host table, for services this wrapper does not cover.
  const emsnode_host_api& api() const noexcept { return *api_; }
  /// The raw context to pass back into the host table.
  emsnode_host_ctx* ctx() const noexcept { return ctx_; }

  /// Whether the host offers the service `member`, e.g. supports(&emsnode_host_api::post).
  template <typename Member>
  bool supports(Member emsnode_host_api::*member) const noexcept {
    return fits(*api_, member);
  }

  /// This node's id from its config. Valid until the plugin is destroyed.
  std::string_view node_id() const {
    return detail::to_view(detail::require(*api_, &emsnode_host_api::node_id, "node_id")(ctx_));
  }

  /// The fencing epoch under which the node is active, or 0 while it is not active. Stamp
  /// durable writes with it.
  std::uint64_t epoch() const {
    return detail::require(*api_, &emsnode_host_api::current_epoch, "current_epoch")(ctx_);
  }

  /// The plugin's logger.
  Logger log() const noexcept { return Logger(api_, ctx_); }

  /// The plugin's validated config.
  Config config() const noexcept { return Config(api_, ctx_); }

  /// The cluster's shared database (ABI 1.1): reads anywhere, fenced writes and per-plugin
  /// migrations while started. See Database.
  Database db() const noexcept { return Database(api_, ctx_); }

  /// The plugin's folder of the cluster's shared file store (ABI 1.2): reads anywhere, fenced
  /// puts and removes while started. See FileStore.
  FileStore store() const noexcept { return FileStore(api_, ctx_); }

  /// Runs `task` once, soon, on the host's executor (never concurrently with another posted task
  /// or timer callback of this plugin). Returns false, dropping `task`, when the host refuses:
  /// the plugin is not started. Work posted but not run when stop returns never runs; its
  /// std::function is released when the plugin starts again or is destroyed.
  /// Throws UnsupportedError if the host lacks post.
  bool post(std::function<void()> task) {
    auto post_fn = detail::require(*api_, &emsnode_host_api::post, "post");
    detail::PostedTask* raw = nullptr;
    {
      std::lock_guard<std::mutex> lock(posts_mutex_);
      auto owned = std::make_unique<detail::PostedTask>(detail::PostedTask{this, std::move(task)});
      raw = owned.get();
      posts_.emplace(raw, std::move(owned));
    }
    if (post_fn(ctx_, &Host::run_posted, raw) == EMSNODE_OK) {
      return true;
    }
    std::lock_guard<std::mutex> lock(posts_mutex_);
    posts_.erase(raw);
    return false;
  }

  /// Arms a timer that runs `fn` on the host's executor after `delay`, then every `period`
  /// unless `period` is zero. Throws Error when the host refuses (the plugin is not started:
  /// arm timers in start) and UnsupportedError if it lacks timers.
  Timer timer(std::chrono::milliseconds delay, std::chrono::milliseconds period,
              std::function<void()> fn) {
    auto start_fn = detail::require(*api_, &emsnode_host_api::timer_start, "timer_start");
    detail::require(*api_, &emsnode_host_api::timer_cancel, "timer_cancel");
    auto task = std::make_unique<detail::TimerTask>(
        detail::TimerTask{std::move(fn), log(), &starts_, starts_.load()});
    const emsnode_timer_id id =
        start_fn(ctx_, to_ms(delay), to_ms(period), &detail::run_timer, task.get());
    if (id == 0) {
      throw Error("the host refused a timer: " +
                  detail::host_reason(*api_, ctx_, "the plugin is not started"));
    }
    return Timer(api_, ctx_, id, std::move(task));
  }
  /// A one-shot timer: runs `fn` once after `delay`. See timer().
  Timer after(std::chrono::milliseconds delay, std::function<void()> fn) {
    return timer(delay, std::chrono::milliseconds(0), std::move(fn));
  }
  /// A periodic timer: runs `fn` every `period`, the first time one period from now.
  Timer every(std::chrono::milliseconds period, std::function<void()> fn) {
    return timer(period, period, std::move(fn));
  }

  /// Registers (or finds again: same name and labels) a counter, exported as
  /// emsnode_plugin_<id>_<name>. Throws Error when the host refuses it (bad name, or the name
  /// is registered with another kind; the host logs why).
  Counter counter(std::string_view name, std::string_view help,
                  const std::vector<Label>& labels = {}) {
    detail::require(*api_, &emsnode_host_api::metric_add, "metric_add");
    return Counter(api_, register_metric(EMSNODE_METRIC_COUNTER, name, help, labels, {}));
  }
  /// Registers a gauge; as counter().
  Gauge gauge(std::string_view name, std::string_view help, const std::vector<Label>& labels = {}) {
    detail::require(*api_, &emsnode_host_api::metric_add, "metric_add");
    detail::require(*api_, &emsnode_host_api::metric_set, "metric_set");
    return Gauge(api_, register_metric(EMSNODE_METRIC_GAUGE, name, help, labels, {}));
  }
  /// Registers a histogram with ascending bucket upper bounds (empty: the host's default
  /// buckets); as counter().
  Histogram histogram(std::string_view name, std::string_view help,
                      const std::vector<double>& buckets = {},
                      const std::vector<Label>& labels = {}) {
    detail::require(*api_, &emsnode_host_api::metric_observe, "metric_observe");
    return Histogram(api_, register_metric(EMSNODE_METRIC_HISTOGRAM, name, help, labels, buckets));
  }

  /// Reports the plugin's own view of its health, shown in the node's status. The host resets
  /// it to OK at each start; while the node is active it restarts a plugin that reports FAILED
  /// (sdk/README.md, "What the host does when a plugin is down"). Throws UnsupportedError if the
  /// host lacks health reports.
  void health(emsnode_health state, std::string_view description = {}) {
    detail::require(*api_, &emsnode_host_api::health_report, "health_report")(
        ctx_, state, detail::to_str(description));
  }

  /// Attaches `handler` to the control command `name` declared in plugin.toml under
  /// [commands.<name>] (ABI 1.3). Call it in the constructor, once per declared command: the
  /// node refuses a plugin that leaves one without a handler. The handler runs on a host thread
  /// (one call at a time); it reads its arguments and sets its answer through the CommandCall,
  /// and throws InvalidInput (400), NotFound (404), FencedError (409) or anything else (500)
  /// to fail with what(). Throws Error when the host refuses (an undeclared name, a second
  /// handler) and UnsupportedError when it predates commands.
  void command(std::string_view name, std::function<void(CommandCall&)> handler) {
    auto handle_fn = detail::require(*api_, &emsnode_host_api::command_handle, "command_handle");
    detail::require(*api_, &emsnode_host_api::command_arg, "command_arg");
    detail::require(*api_, &emsnode_host_api::command_reply, "command_reply");
    detail::require(*api_, &emsnode_host_api::command_fail, "command_fail");
    auto entry = std::make_unique<detail::CommandEntry>(
        detail::CommandEntry{api_, ctx_, std::move(handler)});
    if (handle_fn(ctx_, detail::to_str(name), &detail::run_command, entry.get()) != EMSNODE_OK) {
      throw Error(
          "the host refused command '" + std::string(name) + "': " +
          detail::host_reason(*api_, ctx_, "not declared in plugin.toml, or handled twice"));
    }
    commands_.push_back(std::move(entry));
  }

  /// Hands over the table of the shared API `name` ("license.v1", without the minor) that
  /// plugin.toml declares under `exports` at `minor` (exports = ["license.v1.2"]: minor 2), so
  /// that the plugins that use it can call it (plugin_abi.h, SHARED APIS). Call it in the
  /// constructor, once per declared API: the host fails create when one is left unexported.
  /// `table` starts with its own `uint32_t struct_size`, stays valid and unchanged until this
  /// plugin is destroyed (a static const table is simplest), and its functions are called from
  /// the users' threads, concurrently, whether or not this plugin is started. Throws Error when
  /// the host refuses (an API or minor plugin.toml does not declare, a second export, a call
  /// outside the constructor) and UnsupportedError on a host older than ABI 1.3.
  template <typename Table>
  void export_api(std::string_view name, std::uint32_t minor, const Table* table) {
    static_assert(std::is_same_v<decltype(Table::struct_size), std::uint32_t>,
                  "export_api: a shared table starts with uint32_t struct_size");
    auto export_fn = detail::require(*api_, &emsnode_host_api::api_export, "api_export");
    if (export_fn(ctx_, detail::to_str(name), minor, table) != EMSNODE_OK) {
      throw Error("the host refused to export '" + std::string(name) +
                  "': " + detail::host_reason(*api_, ctx_, "no reason given"));
    }
  }

  /// The table of the shared API `name` ("license.v1") that plugin.toml declares under `uses`,
  /// exported by another plugin, checked to hold every member in `needed` (as fits() checks the
  /// host's table): an exporter at an older minor has a shorter table.
  ///
  ///   const LicenseV1& license =
  ///       host.use_api<LicenseV1>("license.v1", &LicenseV1::seats, &LicenseV1::expires_at);
  ///
  /// The table is valid until this plugin is destroyed (its exporter is destroyed after it);
  /// keep the reference. Any thread. Throws Error when plugin.toml does not declare the use or a
  /// needed member is missing, UnsupportedError on a host older than ABI 1.3.
  template <typename Table, typename... Members>
  const Table& use_api(std::string_view name, Members Table::*... needed) const {
    static_assert(std::is_same_v<decltype(Table::struct_size), std::uint32_t>,
                  "use_api: a shared table starts with uint32_t struct_size");
    std::uint32_t minor = 0;
    const Table& table = *static_cast<const Table*>(use_raw(name, &minor));
    const bool all_fit = (fits(table, needed) && ...);
    if (!all_fit) {
      throw Error("shared API '" + std::string(name) + "' at minor " + std::to_string(minor) +
                  " lacks a function this plugin needs (its table has " +
                  std::to_string(table.struct_size) + " bytes): ask plugin.toml for a newer minor");
    }
    return table;
  }

  /// The minor at which the exporter of the shared API `name` exports it: at least the one
  /// plugin.toml asks for. Throws as use_api.
  std::uint32_t api_minor(std::string_view name) const {
    std::uint32_t minor = 0;
    use_raw(name, &minor);
    return minor;
  }

  /// Sets the fact `name` of this plugin's panel in the node's status (`emsnode status`, the
  /// `/status` JSON, the status page) to `value`, replacing it; facts show in the order first
  /// set, and stay across start and stop. `name` is 1 to 64 bytes, `value` at most 256, both
  /// UTF-8 without control characters, at most 32 facts. Any thread, from the constructor on.
  /// Throws Error when the host refuses (out of those bounds), UnsupportedError on a host older
  /// than ABI 1.3.
  ///
  ///   host.status_fact("seats", "120 of 500");
  ///   host.status_fact("license", "expires in 5 days", sdk::Severity::warning);
  void status_fact(std::string_view name, std::string_view value,
                   Severity severity = Severity::info) {
    auto fact_fn = detail::require(*api_, &emsnode_host_api::status_fact, "status_fact");
    if (fact_fn(ctx_, detail::to_str(name), detail::to_str(value),
                static_cast<emsnode_severity>(severity)) != EMSNODE_OK) {
      throw Error("the host refused status fact '" + std::string(name) +
                  "': " + detail::host_reason(*api_, ctx_, "no reason given"));
    }
  }
  /// Removes the fact `name` from the panel, if it is there.
  void remove_status_fact(std::string_view name) { status_fact(name, {}); }

  /// Explains why the running create, start or stop fails; the wrapper calls it for exceptions.
  void set_error(std::string_view message) const noexcept {
    if (fits(*api_, &emsnode_host_api::set_error)) {
      api_->set_error(ctx_, detail::to_str(message));
    }
  }

 private:
  friend struct detail::Instance;

  static const emsnode_host_api* checked(const emsnode_host_api* api) {
    if (api == nullptr) {
      throw Error("the host passed no service table");
    }
    if (api->abi_major != EMSNODE_ABI_MAJOR) {
      throw Error("the host speaks plugin ABI " + std::to_string(api->abi_major) + "." +
                  std::to_string(api->abi_minor) + "; this plugin was built for " +
                  std::to_string(EMSNODE_ABI_MAJOR) + "." + std::to_string(EMSNODE_ABI_MINOR));
    }
    return api;
  }

  const void* use_raw(std::string_view name, std::uint32_t* minor) const {
    auto use_fn = detail::require(*api_, &emsnode_host_api::api_use, "api_use");
    const void* table = nullptr;
    if (use_fn(ctx_, detail::to_str(name), &table, minor) != EMSNODE_OK || table == nullptr) {
      throw Error("the host refused shared API '" + std::string(name) +
                  "': " + detail::host_reason(*api_, ctx_, "no reason given"));
    }
    return table;
  }

  static std::uint64_t to_ms(std::chrono::milliseconds value) noexcept {
    return value.count() < 0 ? 0 : static_cast<std::uint64_t>(value.count());
  }

  emsnode_metric* register_metric(emsnode_metric_kind kind, std::string_view name,
                                  std::string_view help, const std::vector<Label>& labels,
                                  const std::vector<double>& buckets) {
    auto register_fn =
        detail::require(*api_, &emsnode_host_api::metric_register, "metric_register");
    std::vector<emsnode_field> fields;
    fields.reserve(labels.size());
    for (const Label& label : labels) {
      fields.push_back({detail::to_str(label.key), detail::to_str(label.value)});
    }
    emsnode_metric* metric =
        register_fn(ctx_, kind, detail::to_str(name), detail::to_str(help), fields.data(),
                    fields.size(), buckets.empty() ? nullptr : buckets.data(), buckets.size());
    if (metric == nullptr) {
      throw Error("the host refused metric '" + std::string(name) + "': " +
                  detail::host_reason(*api_, ctx_,
                                      "a name outside [a-z_][a-z0-9_]*, or one registered with "
                                      "another kind (the host log says which)"));
    }
    return metric;
  }

  static void run_posted(void* user_data) noexcept;

  // Called before each start. Once stop has returned the host runs nothing posted and fires no
  // timer armed during the previous active period: release those posts' std::functions, and
  // make the previous period's timer handles forget their ids.
  void begin_active_period() noexcept {
    starts_.fetch_add(1);
    std::lock_guard<std::mutex> lock(posts_mutex_);
    posts_.clear();
  }

  const emsnode_host_api* api_;
  emsnode_host_ctx* ctx_;
  std::atomic<std::uint64_t> starts_{0};
  std::mutex posts_mutex_;
  std::unordered_map<detail::PostedTask*, std::unique_ptr<detail::PostedTask>> posts_;
  std::vector<std::unique_ptr<detail::CommandEntry>> commands_;  // user_data of command handlers
};

inline void Host::run_posted(void* user_data) noexcept {
  auto* raw = static_cast<detail::PostedTask*>(user_data);
  Host& host = *raw->owner;
  std::unique_ptr<detail::PostedTask> task;
  {
    std::lock_guard<std::mutex> lock(host.posts_mutex_);
    auto found = host.posts_.find(raw);
    // The host runs each accepted post at most once, and only before the next start.
    assert(found != host.posts_.end());
    task = std::move(found->second);
    host.posts_.erase(found);
  }
  detail::run_callback(host.log(), "post", task->fn);
}

// ---------------------------------------------------------------------------------------------
// Plugin

/// Base class of a C++ plugin. The derived class's constructor is the ABI's `create`: it runs
/// on every node at boot, active or not, reads and checks the config, and throws (ConfigError
/// ideally) to refuse it. It must not bind ports or start threads: that is start()'s job.
class Plugin {
 public:
  /// Stores the host; the derived constructor receives it and passes it on.
  explicit Plugin(Host& host) noexcept : host_(host) {}
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;
  /// Runs at destroy, after the last stop; the host is still valid here.
  virtual ~Plugin() = default;

  /// The node became active: start serving. Return once serving (ports bound, threads running);
  /// throw to fail, with a message naming what and why ("cannot listen on 0.0.0.0:8013: Address
  /// already in use"). After a failed start the host calls stop(), so clean up there.
  virtual void start() = 0;

  /// The node stopped being active: close listeners and connections, cancel timers, join every
  /// thread started in start(), all within `deadline`. Called once after each start() attempt,
  /// including a failed one (see the wrapper's guarantees at the top of this file).
  virtual void stop(std::chrono::milliseconds deadline) = 0;

 protected:
  /// The node's services for this plugin.
  Host& host() const noexcept { return host_; }

 private:
  Host& host_;
};

namespace detail {

// One plugin instance as the host sees it (the `void* instance`). The host is declared first so
// it outlives the plugin.
struct Instance {
  Instance(const emsnode_host_api* api, emsnode_host_ctx* ctx) : host(api, ctx) {}

  void start() {
    host.begin_active_period();
    // Set before start runs: a start that throws half-way still gets its stop.
    stop_pending = true;
    plugin->start();
  }

  void stop(std::chrono::milliseconds deadline) {
    if (stop_pending) {
      plugin->stop(deadline);
      stop_pending = false;  // not reached when stop throws: the next stop calls it again
    }
  }

  Host host;
  std::unique_ptr<Plugin> plugin;
  bool stop_pending = false;  // a start was attempted and no stop has succeeded since
};

// Runs `fn` and turns any exception into set_error + EMSNODE_ERROR.
template <typename Fn>
emsnode_status guarded(const emsnode_host_api* api, emsnode_host_ctx* ctx, Fn&& fn) noexcept {
  const auto fail = [&](const char* message) {
    if (api != nullptr && fits(*api, &emsnode_host_api::set_error)) {
      api->set_error(ctx, to_str(message));
    }
    return EMSNODE_ERROR;
  };
  try {
    fn();
    return EMSNODE_OK;
  } catch (const std::exception& e) {
    return fail(e.what());
  } catch (...) {
    return fail("unknown exception");
  }
}

template <typename T>
emsnode_status create_instance(const emsnode_host_api* api, emsnode_host_ctx* ctx,
                               void** out) noexcept {
  return guarded(api, ctx, [&] {
    if (out == nullptr) {
      throw Error("the host passed no place for the instance");
    }
    auto instance = std::make_unique<Instance>(api, ctx);
    instance->plugin = std::make_unique<T>(instance->host);
    *out = instance.release();
  });
}

inline emsnode_status start_instance(void* raw) noexcept {
  auto& instance = *static_cast<Instance*>(raw);
  return guarded(&instance.host.api(), instance.host.ctx(), [&] { instance.start(); });
}

inline emsnode_status stop_instance(void* raw, std::uint64_t deadline_ms) noexcept {
  auto& instance = *static_cast<Instance*>(raw);
  constexpr auto kMax = static_cast<std::uint64_t>(std::chrono::milliseconds::max().count());
  const std::chrono::milliseconds deadline(
      static_cast<std::chrono::milliseconds::rep>(deadline_ms > kMax ? kMax : deadline_ms));
  return guarded(&instance.host.api(), instance.host.ctx(), [&] { instance.stop(deadline); });
}

inline void destroy_instance(void* raw) noexcept {
  delete static_cast<Instance*>(raw);
}

// A plugin id as emsnode_add_plugin and the host accept it: [a-z][a-z0-9_-]*.
constexpr bool valid_plugin_id(std::string_view id) noexcept {
  if (id.empty() || id[0] < 'a' || id[0] > 'z') {
    return false;
  }
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

inline const emsnode_plugin_api* entry(const emsnode_plugin_api* api, std::uint16_t host_abi_major,
                                       std::uint16_t /*host_abi_minor: the host judges it*/) {
  return host_abi_major == EMSNODE_ABI_MAJOR ? api : nullptr;
}

}  // namespace detail

/// The table EMSNODE_PLUGIN exports for `PluginClass`. Call it directly only to exercise several
/// plugin classes in one test binary (one library exports one entry point); `id` and `version`
/// must outlive the table: pass string literals.
template <typename PluginClass>
constexpr emsnode_plugin_api make_plugin_api(std::string_view id, std::string_view version) {
  static_assert(std::is_base_of_v<Plugin, PluginClass>,
                "EMSNODE_PLUGIN: the class must derive from emsnode::sdk::Plugin");
  static_assert(std::is_constructible_v<PluginClass, Host&>,
                "EMSNODE_PLUGIN: the class needs a constructor taking emsnode::sdk::Host&");
  return emsnode_plugin_api{
      static_cast<std::uint32_t>(sizeof(emsnode_plugin_api)),
      EMSNODE_ABI_MAJOR,
      EMSNODE_ABI_MINOR,
      detail::to_str(id),
      detail::to_str(version),
      &detail::create_instance<PluginClass>,
      &detail::start_instance,
      &detail::stop_instance,
      &detail::destroy_instance,
  };
}

}  // namespace emsnode::sdk

/// Registers `PluginClass` (derived from emsnode::sdk::Plugin) as this library's plugin, with the
/// id and version of its plugin.toml (string literals; the host checks they match). Defines the
/// exported `emsnode_plugin_entry`, which refuses (NULL) a host of another ABI major. Use it once
/// per library, at namespace scope, in the plugin's `<name>_plugin.cpp`.
#define EMSNODE_PLUGIN(PluginClass, plugin_id, plugin_version)                                \
  static_assert(::emsnode::sdk::detail::valid_plugin_id(plugin_id),                           \
                "EMSNODE_PLUGIN: the id must match [a-z][a-z0-9_-]*");                        \
  static_assert(::std::string_view(plugin_version).size() > 0,                                \
                "EMSNODE_PLUGIN: the version must not be empty");                             \
  extern "C" EMSNODE_PLUGIN_EXPORT const emsnode_plugin_api* emsnode_plugin_entry(            \
      uint16_t host_abi_major, uint16_t host_abi_minor) {                                     \
    static constexpr emsnode_plugin_api kEmsnodePluginApi =                                   \
        ::emsnode::sdk::make_plugin_api<PluginClass>(plugin_id, plugin_version);              \
    return ::emsnode::sdk::detail::entry(&kEmsnodePluginApi, host_abi_major, host_abi_minor); \
  }
