#include "metrics/metrics.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <utility>

namespace emsnode::metrics {
namespace {

void atomic_add(std::atomic<double>& target, double delta) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + delta, std::memory_order_relaxed)) {
  }
}

// Prometheus' float spelling: the shortest text that reads back exactly, "+Inf", "-Inf", "NaN".
std::string number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  std::array<char, 32> buffer{};
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  return std::string(buffer.data(), result.ptr);
}

std::string escape_label_value(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

bool is_name_char(char c, bool first, bool colon_allowed) {
  const bool letter =
      (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_allowed && c == ':');
  return letter || (!first && c >= '0' && c <= '9');
}

bool is_valid_label_name(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!is_name_char(name[i], i == 0, false)) return false;
  }
  return true;
}

// Validates and sorts `labels`, and renders them as `a="x",b="y"`: the series' identity.
std::string label_text(Labels& labels, MetricKind kind, std::string_view metric) {
  std::sort(labels.begin(), labels.end(),
            [](const Label& a, const Label& b) { return a.name < b.name; });
  std::string text;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const Label& label = labels[i];
    if (!is_valid_label_name(label.name)) {
      throw MetricError(std::string(metric) + ": label name \"" + label.name +
                        "\" is not [a-zA-Z_][a-zA-Z0-9_]* (or starts with \"__\")");
    }
    if (i > 0 && labels[i - 1].name == label.name) {
      throw MetricError(std::string(metric) + ": label \"" + label.name + "\" given twice");
    }
    if (kind == MetricKind::histogram && label.name == "le") {
      throw MetricError(std::string(metric) + ": a histogram cannot have a label named \"le\"");
    }
    text += (i == 0 ? "" : ",") + label.name + "=\"" + escape_label_value(label.value) + "\"";
  }
  return text;
}

void check_buckets(const std::vector<double>& bounds, std::string_view metric) {
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i - 1] < bounds[i]))) {
      throw MetricError(std::string(metric) + ": buckets must be finite and strictly ascending");
    }
  }
}

// A histogram `h` exposes samples h_bucket, h_sum and h_count, which no other metric may use.
constexpr std::array<std::string_view, 3> kHistogramSuffixes{"_bucket", "_sum", "_count"};

void sample_line(std::string& out, const std::string& name, const std::string& labels,
                 const std::string& value) {
  out += name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += " " + value + "\n";
}

}  // namespace

std::string_view kind_name(MetricKind kind) {
  switch (kind) {
    case MetricKind::counter:
      return "counter";
    case MetricKind::gauge:
      return "gauge";
    case MetricKind::histogram:
      return "histogram";
  }
  return "untyped";
}

bool Counter::add(double delta) {
  if (!(delta >= 0)) return false;
  atomic_add(value_, delta);
  return true;
}

void Counter::render(std::string& out, const std::string& name, const std::string& labels) const {
  sample_line(out, name, labels, number(value()));
}

void Gauge::add(double delta) {
  atomic_add(value_, delta);
}

void Gauge::render(std::string& out, const std::string& name, const std::string& labels) const {
  sample_line(out, name, labels, number(value()));
}

Histogram::Histogram(std::vector<double> bounds)
    : Series(MetricKind::histogram), bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}

bool Histogram::observe(double value) {
  if (std::isnan(value)) return false;
  // Bucket i counts observations <= bounds_[i]; the last one those above every bound.
  const auto bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  counts_[static_cast<std::size_t>(bucket)].fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum_, value);
  return true;
}

std::uint64_t Histogram::count() const {
  std::uint64_t total = 0;
  for (const auto& c : counts_) total += c.load(std::memory_order_relaxed);
  return total;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string bucket_name = name + "_bucket";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    std::string bucket_labels = labels.empty() ? "le=\"" : labels + ",le=\"";
    bucket_labels += i < bounds_.size() ? number(bounds_[i]) : "+Inf";
    bucket_labels += '"';
    sample_line(out, bucket_name, bucket_labels, std::to_string(cumulative));
  }
  // _count repeats the +Inf bucket so the two always agree, even while observations arrive.
  sample_line(out, name + "_sum", labels, number(sum()));
  sample_line(out, name + "_count", labels, std::to_string(cumulative));
}

const std::vector<double>& MetricsRegistry::default_buckets() {
  static const std::vector<double> buckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return buckets;
}

bool MetricsRegistry::is_valid_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!is_name_char(name[i], i == 0, true)) return false;
  }
  return true;
}

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help, Labels labels) {
  return static_cast<Counter&>(find_or_add(MetricKind::counter, name, help, std::move(labels), {}));
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, Labels labels) {
  return static_cast<Gauge&>(find_or_add(MetricKind::gauge, name, help, std::move(labels), {}));
}

Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help, Labels labels,
                                      std::vector<double> buckets) {
  if (buckets.empty()) buckets = default_buckets();
  return static_cast<Histogram&>(
      find_or_add(MetricKind::histogram, name, help, std::move(labels), std::move(buckets)));
}

Series& MetricsRegistry::find_or_add(MetricKind kind, std::string_view name, std::string_view help,
                                     Labels labels, std::vector<double> buckets) {
  if (!is_valid_name(name)) {
    throw MetricError(std::string(name) + ": not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)");
  }
  const std::string labels_text = label_text(labels, kind, name);
  if (kind == MetricKind::histogram) check_buckets(buckets, name);

  std::lock_guard<std::mutex> lock(mutex_);
  auto family = families_.find(name);
  if (family == families_.end()) {
    for (const std::string_view suffix : kHistogramSuffixes) {
      const bool derived =
          name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
      const auto stem =
          derived ? families_.find(name.substr(0, name.size() - suffix.size())) : families_.end();
      const bool clash_as_sample =
          stem != families_.end() && stem->second.kind == MetricKind::histogram;
      const bool clash_as_histogram = kind == MetricKind::histogram &&
                                      families_.count(std::string(name) + std::string(suffix)) > 0;
      if (clash_as_sample || clash_as_histogram) {
        throw MetricError(std::string(name) + ": clashes with the samples of a histogram (" +
                          "<name>_bucket, <name>_sum, <name>_count)");
      }
    }
    family = families_.emplace(std::string(name), Family{kind, std::string(help), {}, {}}).first;
  } else if (family->second.kind != kind) {
    throw MetricError(std::string(name) + ": already registered as a " +
                      std::string(kind_name(family->second.kind)) + ", not a " +
                      std::string(kind_name(kind)));
  }

  Family& f = family->second;
  const auto existing = std::find(f.label_texts.begin(), f.label_texts.end(), labels_text);
  if (existing != f.label_texts.end()) return *f.series[existing - f.label_texts.begin()];

  std::unique_ptr<Series> series;
  switch (kind) {
    case MetricKind::counter:
      series = std::make_unique<Counter>();
      break;
    case MetricKind::gauge:
      series = std::make_unique<Gauge>();
      break;
    case MetricKind::histogram:
      series = std::make_unique<Histogram>(std::move(buckets));
      break;
  }
  series->name_ = std::string(name);
  f.series.push_back(std::move(series));
  f.label_texts.push_back(labels_text);
  return *f.series.back();
}

std::string MetricsRegistry::render_prometheus() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [name, family] : families_) {
    if (!family.help.empty()) out += "# HELP " + name + " " + escape_help(family.help) + "\n";
    out += "# TYPE " + name + " " + std::string(kind_name(family.kind)) + "\n";
    for (std::size_t i = 0; i < family.series.size(); ++i) {
      family.series[i]->render(out, name, family.label_texts[i]);
    }
  }
  return out;
}

}  // namespace emsnode::metrics
