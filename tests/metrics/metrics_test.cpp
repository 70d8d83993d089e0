#include <catch2/catch.hpp>

#include <cmath>
#include <thread>
#include <vector>

#include "metrics/metrics.hpp"

namespace emsnode::metrics {

TEST_CASE("the registry renders counters, gauges and histograms in Prometheus text format") {
  MetricsRegistry registry;
  registry.counter("emsnode_requests_total", "Requests served.", {{"route", "/status"}}).add(3);
  registry.gauge("emsnode_role", "1 while active.").set(1);
  Histogram& latency = registry.histogram("emsnode_latency_seconds", "Latency.", {}, {0.1, 1, 2.5});
  latency.observe(0.05);
  latency.observe(0.5);
  latency.observe(7);

  CHECK(registry.render_prometheus() ==
        "# HELP emsnode_latency_seconds Latency.\n"
        "# TYPE emsnode_latency_seconds histogram\n"
        "emsnode_latency_seconds_bucket{le=\"0.1\"} 1\n"
        "emsnode_latency_seconds_bucket{le=\"1\"} 2\n"
        "emsnode_latency_seconds_bucket{le=\"2.5\"} 2\n"
        "emsnode_latency_seconds_bucket{le=\"+Inf\"} 3\n"
        "emsnode_latency_seconds_sum 7.55\n"
        "emsnode_latency_seconds_count 3\n"
        "# HELP emsnode_requests_total Requests served.\n"
        "# TYPE emsnode_requests_total counter\n"
        "emsnode_requests_total{route=\"/status\"} 3\n"
        "# HELP emsnode_role 1 while active.\n"
        "# TYPE emsnode_role gauge\n"
        "emsnode_role 1\n");
}

TEST_CASE("the same name and labels in any order give the same series") {
  MetricsRegistry registry;
  Counter& first = registry.counter("c_total", "help", {{"a", "1"}, {"b", "2"}});
  Counter& again = registry.counter("c_total", "other help", {{"b", "2"}, {"a", "1"}});
  Counter& other = registry.counter("c_total", "help", {{"a", "1"}, {"b", "3"}});
  CHECK(&first == &again);
  CHECK(&first != &other);
  first.add(1);
  again.add(2);
  CHECK(first.value() == 3);
  const std::string text = registry.render_prometheus();
  CHECK(text.find("# HELP c_total help\n") != std::string::npos);
  CHECK(text.find("c_total{a=\"1\",b=\"2\"} 3\n") != std::string::npos);
  CHECK(text.find("c_total{a=\"1\",b=\"3\"} 0\n") != std::string::npos);
}

TEST_CASE("a name already used by another kind is refused") {
  MetricsRegistry registry;
  registry.counter("x_total", "help");
  CHECK_THROWS_WITH(registry.gauge("x_total", "help"),
                    "x_total: already registered as a counter, not a gauge");
}

TEST_CASE("malformed names, labels and buckets are refused") {
  MetricsRegistry registry;
  CHECK_THROWS_AS(registry.counter("9lives", "help"), MetricError);
  CHECK_THROWS_AS(registry.counter("has-dash", "help"), MetricError);
  CHECK_THROWS_AS(registry.counter("ok_total", "help", {{"__reserved", "x"}}), MetricError);
  CHECK_THROWS_AS(registry.counter("ok_total", "help", {{"a", "1"}, {"a", "2"}}), MetricError);
  CHECK_THROWS_AS(registry.histogram("h", "help", {{"le", "1"}}), MetricError);
  CHECK_THROWS_AS(registry.histogram("h", "help", {}, {1, 1}), MetricError);
  CHECK_THROWS_AS(registry.histogram("h", "help", {}, {2, 1}), MetricError);
  CHECK(MetricsRegistry::is_valid_name("emsnode:role_changes_total"));
}

TEST_CASE("a metric cannot take the name of a histogram's samples") {
  MetricsRegistry registry;
  registry.histogram("rpc_seconds", "help");
  CHECK_THROWS_AS(registry.counter("rpc_seconds_count", "help"), MetricError);
  registry.counter("jobs_sum", "help");
  CHECK_THROWS_AS(registry.histogram("jobs", "help"), MetricError);
}

TEST_CASE("label values and help text are escaped") {
  MetricsRegistry registry;
  registry.gauge("g", "line one\nback\\slash", {{"path", "C:\\dir \"x\"\nnext"}}).set(-0.5);
  CHECK(registry.render_prometheus() ==
        "# HELP g line one\\nback\\\\slash\n"
        "# TYPE g gauge\n"
        "g{path=\"C:\\\\dir \\\"x\\\"\\nnext\"} -0.5\n");
}

TEST_CASE("a counter refuses to go down and a histogram refuses NaN") {
  MetricsRegistry registry;
  Counter& counter = registry.counter("c_total", "help");
  CHECK(counter.add(2));
  CHECK_FALSE(counter.add(-1));
  CHECK(counter.value() == 2);
  Histogram& histogram = registry.histogram("h", "help");
  CHECK_FALSE(histogram.observe(std::nan("")));
  CHECK(histogram.count() == 0);
}

TEST_CASE("histograms get Prometheus' default buckets unless given their own") {
  MetricsRegistry registry;
  registry.histogram("h", "help").observe(0.3);
  const std::string text = registry.render_prometheus();
  CHECK(text.find("h_bucket{le=\"0.005\"} 0\n") != std::string::npos);
  CHECK(text.find("h_bucket{le=\"0.25\"} 0\n") != std::string::npos);
  CHECK(text.find("h_bucket{le=\"0.5\"} 1\n") != std::string::npos);
  CHECK(text.find("h_bucket{le=\"10\"} 1\n") != std::string::npos);
}

TEST_CASE("concurrent updates are all counted") {
  MetricsRegistry registry;
  Counter& counter = registry.counter("c_total", "help");
  Gauge& gauge = registry.gauge("g", "help");
  Histogram& histogram = registry.histogram("h", "help");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        counter.add(1);
        gauge.add(0.5);
        histogram.observe(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(counter.value() == 40000);
  CHECK(gauge.value() == 20000);
  CHECK(histogram.count() == 40000);
  CHECK(histogram.sum() == 40000);
}

}  // namespace emsnode::metrics
