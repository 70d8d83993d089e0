// The campaign's checker finds each kind of violation in a history made by hand, and none in a
// clean one: a checker that cannot fail would prove nothing about the cluster.
#include <catch2/catch.hpp>

#include "history.hpp"

namespace emsnode::chaos {
namespace {

Exchange read(std::int64_t sent_ms, const std::string& node, std::uint64_t epoch) {
  Exchange e;
  e.sent_us = sent_ms * 1000;
  e.received_us = e.sent_us + 1000;
  e.ok = true;
  e.node = node;
  e.epoch = epoch;
  return e;
}

Exchange write(std::int64_t sent_ms, const std::string& id, const std::string& node,
               std::uint64_t epoch, std::int64_t seq) {
  Exchange e = read(sent_ms, node, epoch);
  e.kind = Exchange::Kind::write;
  e.write_id = id;
  e.seq = seq;
  return e;
}

Exchange failed(std::int64_t sent_ms) {
  Exchange e;
  e.sent_us = sent_ms * 1000;
  e.received_us = e.sent_us + 1000;
  return e;
}

// A kill of n1 (epoch 1) at 100 ms, n2 serving under epoch 2 from 2000 ms.
struct CleanRun {
  std::vector<Exchange> exchanges = {
      read(0, "n1", 1),    write(50, "a", "n1", 1, 1),   failed(150),
      read(2000, "n2", 2), write(2050, "b", "n2", 2, 2), read(3000, "n2", 2)};
  std::vector<Fault> faults = {Fault{"kill", "n1", 100'000, 200'000, 1, 2, true}};
  std::vector<WriteRow> rows = {{"a", 1, 1, "n1"}, {"b", 2, 2, "n2"}};
  Bounds bounds{4'000'000};
};

bool mentions(const Report& report, const std::string& text) {
  for (const auto& v : report.violations) {
    if (v.find(text) != std::string::npos) return true;
  }
  return false;
}

TEST_CASE("a clean failover history has no violation and measures the outage") {
  CleanRun run;
  const Report report = check(run.exchanges, run.faults, run.rows, run.bounds);
  CHECK(report.violations.empty());
  REQUIRE(report.outage_us.at("kill").size() == 1);
  CHECK(report.outage_us.at("kill")[0] == 1'901'000);  // fault at 100 ms, answered at 2001 ms
  CHECK(report.acknowledged_writes == 2);
}

TEST_CASE("the checker finds an acknowledged write that is not in the database") {
  CleanRun run;
  run.rows.pop_back();
  CHECK(mentions(check(run.exchanges, run.faults, run.rows, run.bounds),
                 "acknowledged write lost: b"));
}

TEST_CASE("the checker finds a write committed under an older epoch after a newer one") {
  CleanRun run;
  run.rows.push_back({"late", 3, 1, "n1"});
  CHECK(mentions(check(run.exchanges, run.faults, run.rows, run.bounds), "stale write accepted"));
}

TEST_CASE("the checker finds a stale node serving after a newer epoch answered") {
  CleanRun run;
  run.exchanges.push_back(read(2500, "n1", 1));
  CHECK(mentions(check(run.exchanges, run.faults, run.rows, run.bounds), "stale service"));
}

TEST_CASE("the checker finds one epoch used by two nodes") {
  CleanRun run;
  run.exchanges.push_back(read(3500, "n3", 2));
  CHECK(mentions(check(run.exchanges, run.faults, run.rows, run.bounds), "epoch 2 used by"));
}

TEST_CASE("the checker finds a fault that caused two role changes, or none where one was due") {
  CleanRun run;
  run.faults[0].epoch_after = 3;
  CHECK(mentions(check(run.exchanges, run.faults, run.rows, run.bounds), "2 role changes"));
  run.faults[0].epoch_after = 1;
  CHECK(mentions(check(run.exchanges, run.faults, run.rows, run.bounds), "0 role changes"));
}

TEST_CASE("the checker finds a role change after a fault that hit only a passive node") {
  CleanRun run;
  run.faults[0].kind = "partition_passive";
  CHECK(mentions(check(run.exchanges, run.faults, run.rows, run.bounds), "1 role changes"));
}

TEST_CASE("the checker finds service that resumed later than the bound") {
  CleanRun run;
  run.bounds.service_gap_us = 1'000'000;
  CHECK(mentions(check(run.exchanges, run.faults, run.rows, run.bounds), "beyond the bound"));
}

TEST_CASE("a database restart's outage counts from when the server is back") {
  // The server is down from 100 ms to 6000 ms (its own recovery); n2 serves from 7000 ms.
  std::vector<Exchange> exchanges = {read(0, "n1", 1), failed(150), failed(6500),
                                     read(7000, "n2", 2), read(8000, "n2", 2)};
  std::vector<Fault> faults = {Fault{"db_restart", "db", 100'000, 6'000'000, 1, 2, true}};
  const Bounds bounds{4'500'000};
  Report report = check(exchanges, faults, {}, bounds);
  CHECK(report.violations.empty());
  REQUIRE(report.outage_us.at("db_restart").size() == 1);
  CHECK(report.outage_us.at("db_restart")[0] == 1'001'000);  // back at 6000 ms, served at 7001 ms
  // Served too long after the server was back: a violation.
  exchanges = {read(0, "n1", 1), failed(150), read(11000, "n2", 2)};
  report = check(exchanges, faults, {}, bounds);
  CHECK(mentions(report, "beyond the bound"));
}

TEST_CASE("the checker finds a cluster that never settled after a fault") {
  CleanRun run;
  run.faults[0].settled = false;
  CHECK(mentions(check(run.exchanges, run.faults, run.rows, run.bounds), "did not settle"));
}

// A plugin of n1 (epoch 1) fails at 100 ms (plugin_fail) or faults in a switchover
// (plugin_fault): n2 serves under epoch 2 from 1500 ms; n2 is killed at 2000 ms and n3 serves
// under epoch 3 from 4500 ms; n1 is to stay out until 6000 ms.
struct PluginRun {
  explicit PluginRun(const std::string& kind) {
    Fault fault{kind, "n1", 100'000, 5'000'000, 1, 3, true};
    fault.second_at_us = 2'000'000;
    fault.epoch_second = 2;
    fault.held_off_until_us = 6'000'000;
    faults = {fault};
    bounds.service_gap_by_kind_us = {{kind, 2'000'000}, {kind + "/kill", 3'000'000}};
  }
  std::vector<Exchange> exchanges = {read(0, "n1", 1), failed(150),         read(1500, "n2", 2),
                                     failed(2100),     read(4500, "n3", 3), read(7000, "n3", 3)};
  std::vector<Fault> faults;
  std::vector<WriteRow> rows;
  Bounds bounds{10'000'000};
};

TEST_CASE("a plugin fault's handover and the takeover after its second blow have their bounds") {
  const std::string kind = GENERATE("plugin_fail", "plugin_fault");
  PluginRun run(kind);
  const Report clean = check(run.exchanges, run.faults, run.rows, run.bounds);
  CHECK(clean.violations == std::vector<std::string>{});
  REQUIRE(clean.outage_us.at(kind).size() == 1);
  CHECK(clean.outage_us.at(kind)[0] == 1'401'000);  // failed at 100 ms, n2 answered at 1501 ms
  REQUIRE(clean.outage_us.at(kind + "/kill").size() == 1);
  CHECK(clean.outage_us.at(kind + "/kill")[0] == 2'501'000);  // killed at 2000, n3 at 4501 ms

  // Each phase is judged by its own bound, not by the default one.
  run.bounds.service_gap_by_kind_us[kind] = 1'000'000;
  CHECK(mentions(check(run.exchanges, run.faults, run.rows, run.bounds),
                 "service resumed after 1401 ms, beyond the bound of 1000 ms"));
  run.bounds.service_gap_by_kind_us[kind] = 2'000'000;
  run.bounds.service_gap_by_kind_us[kind + "/kill"] = 2'000'000;
  CHECK(mentions(check(run.exchanges, run.faults, run.rows, run.bounds),
                 "second blow: service resumed after 2501 ms, beyond the bound of 2000 ms"));
}

TEST_CASE("the checker finds a failed or faulted node that took the role back while held off") {
  const std::string kind = GENERATE("plugin_fail", "plugin_fault");
  PluginRun run(kind);
  run.exchanges[4] = read(4500, "n1", 3);  // n1, not n3, took over after the kill
  run.exchanges.pop_back();
  CHECK(mentions(check(run.exchanges, run.faults, run.rows, run.bounds),
                 "n1 served again under epoch 3 at 4501 ms while it was to stay out"));
  // Once the hold-off is over, serving again is no fault of the node.
  run.faults[0].held_off_until_us = 4'000'000;
  CHECK_FALSE(mentions(check(run.exchanges, run.faults, run.rows, run.bounds), "served again"));
}

TEST_CASE("the checker finds a plugin fault without its two role changes") {
  const std::string kind = GENERATE("plugin_fail", "plugin_fault");
  PluginRun run(kind);
  run.faults[0].epoch_after = 2;
  CHECK(mentions(check(run.exchanges, run.faults, run.rows, run.bounds),
                 "1 role changes (allowed 2..2)"));
}

TEST_CASE("the checker finds a second blow after which service never resumed") {
  PluginRun run("plugin_fail");
  run.exchanges.erase(run.exchanges.begin() + 4);  // no n3
  run.exchanges.pop_back();
  CHECK(mentions(check(run.exchanges, run.faults, run.rows, run.bounds),
                 "second blow: service never resumed"));
}

TEST_CASE("quantiles are nearest-rank") {
  CHECK(quantile({}, 0.5) == 0);
  CHECK(quantile({5, 1, 3}, 0.5) == 3);
  CHECK(quantile({5, 1, 3}, 1.0) == 5);
  CHECK(quantile({5, 1, 3}, 0.0) == 1);
}

}  // namespace
}  // namespace emsnode::chaos
