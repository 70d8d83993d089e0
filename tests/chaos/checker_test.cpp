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

TEST_CASE("the checker finds a cluster that never settled after a fault") {
  CleanRun run;
  run.faults[0].settled = false;
  CHECK(mentions(check(run.exchanges, run.faults, run.rows, run.bounds), "did not settle"));
}

TEST_CASE("quantiles are nearest-rank") {
  CHECK(quantile({}, 0.5) == 0);
  CHECK(quantile({5, 1, 3}, 0.5) == 3);
  CHECK(quantile({5, 1, 3}, 1.0) == 5);
  CHECK(quantile({5, 1, 3}, 0.0) == 1);
}

}  // namespace
}  // namespace emsnode::chaos
