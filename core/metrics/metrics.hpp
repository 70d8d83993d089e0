// The node's metrics, rendered on the admin endpoint's /metrics in the Prometheus text format.
// The core registers its own metrics here through the C++ API; plugins register theirs through
// the host API, as `emsnode_plugin_<id>_<name>{plugin="<id>",...}`.
//
//   MetricsRegistry& metrics = host.metrics();
//   Counter& promotions = metrics.counter("emsnode_role_promotions_total", "Times this node ...");
//   promotions.add(1);  // lock-free
//
// Updating a metric is lock-free (atomics); registering and rendering take one lock. Metrics
// live as long as the registry: a series is never removed, so handles stay valid.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace emsnode::metrics {

// The Content-Type of render_prometheus()'s output.
inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

enum class MetricKind { counter, gauge, histogram };
std::string_view kind_name(MetricKind kind);

struct Label {
  std::string name;
  std::string value;
};
using Labels = std::vector<Label>;

// A registration the registry refuses: a malformed name, label or bucket list, or a name
// already registered as another kind.
class MetricError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// One time series: a metric name with one set of label values.
class Series {
 public:
  Series(const Series&) = delete;
  Series& operator=(const Series&) = delete;
  virtual ~Series() = default;

  MetricKind kind() const { return kind_; }
  const std::string& name() const { return name_; }
  // Set once a misuse of this series (e.g. a negative counter increment) has been logged, so
  // that a plugin in a loop does not flood the log.
  bool first_misuse() { return !misuse_reported_.exchange(true, std::memory_order_relaxed); }

 protected:
  explicit Series(MetricKind kind) : kind_(kind) {}

 private:
  friend class MetricsRegistry;
  // Appends this series' sample lines; `labels` is the rendered label list without braces.
  virtual void render(std::string& out, const std::string& name,
                      const std::string& labels) const = 0;

  const MetricKind kind_;
  std::string name_;  // set by the registry
  std::atomic<bool> misuse_reported_{false};
};

class Counter final : public Series {
 public:
  Counter() : Series(MetricKind::counter) {}
  // A counter only grows: returns false, changing nothing, for a negative or NaN delta.
  bool add(double delta);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  void render(std::string& out, const std::string& name, const std::string& labels) const override;
  std::atomic<double> value_{0};
};

class Gauge final : public Series {
 public:
  Gauge() : Series(MetricKind::gauge) {}
  void add(double delta);
  void set(double value) { value_.store(value, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  void render(std::string& out, const std::string& name, const std::string& labels) const override;
  std::atomic<double> value_{0};
};

class Histogram final : public Series {
 public:
  // `bounds`: ascending, finite upper bounds (checked by the registry).
  explicit Histogram(std::vector<double> bounds);
  // Returns false, recording nothing, for NaN.
  bool observe(double value);
  std::uint64_t count() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  void render(std::string& out, const std::string& name, const std::string& labels) const override;
  const std::vector<double> bounds_;
  std::vector<std::atomic<std::uint64_t>> counts_;  // per bucket, plus one above the last bound
  std::atomic<double> sum_{0};
};

class MetricsRegistry {
 public:
  // Each returns the series for `name` and `labels` (label order does not matter), creating it
  // on first use; `help` (and `buckets`) of the first registration win. Throws MetricError for
  // a name that is not [a-zA-Z_:][a-zA-Z0-9_:]*, a label name that is not [a-zA-Z_][a-zA-Z0-9_]*
  // or starts with "__" or repeats, a name registered as another kind, or (histograms) a label
  // named "le" or buckets that are not ascending and finite. Empty `buckets`: default_buckets().
  Counter& counter(std::string_view name, std::string_view help, Labels labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, Labels labels = {});
  Histogram& histogram(std::string_view name, std::string_view help, Labels labels = {},
                       std::vector<double> buckets = {});

  // Every metric in the Prometheus text exposition format 0.0.4: per metric name (sorted) a
  // HELP and a TYPE line, then its series in registration order.
  std::string render_prometheus() const;

  // Prometheus' defaults: .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10 (seconds).
  static const std::vector<double>& default_buckets();
  static bool is_valid_name(std::string_view name);

 private:
  struct Family {
    MetricKind kind;
    std::string help;
    std::vector<std::unique_ptr<Series>> series;
    std::vector<std::string> label_texts;  // parallel to `series`
  };
  Series& find_or_add(MetricKind kind, std::string_view name, std::string_view help, Labels labels,
                      std::vector<double> buckets);

  mutable std::mutex mutex_;
  std::map<std::string, Family, std::less<>> families_;
};

}  // namespace emsnode::metrics
