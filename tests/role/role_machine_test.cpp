// The role state machine, driven through exact interleavings on a manual clock (simulation.hpp):
// default timers (lease_ttl 2000, renew_interval 400, renew_deadline 1200, poll_interval 200 ms).
#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>

#include "log/log.hpp"
#include "simulation.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using emsnode::role::Role;
using emsnode::role::TimePoint;
using emsnode::role::testing::Cluster;
using emsnode::role::testing::SimNode;
namespace reason = emsnode::role::reason;

namespace {

bool is_active(SimNode& node) {
  return node.role() == Role::active;
}

SimNode& start_active(Cluster& cluster, const std::string& id) {
  SimNode& node = cluster.start(id);
  REQUIRE(cluster.run_until([&] { return is_active(node); }, 1s));
  return node;
}

}  // namespace

// After releasing its epoch-1 lease, `node` tries to acquire again only one lease_ttl later.
void stays_out_one_lease_ttl(Cluster& cluster, SimNode& node) {
  const auto release = node.first_call("release epoch=1 handover=");
  REQUIRE(release);
  cluster.run_for(5s);
  const auto retry = node.first_call("acquire", release->at);
  REQUIRE(retry);
  CHECK(retry->at >= release->at + cluster.timers.lease_ttl);
}

TEST_CASE("two nodes started together: exactly one becomes active, the other names the holder") {
  Cluster cluster;
  SimNode& n1 = cluster.start("n1");
  SimNode& n2 = cluster.start("n2");
  cluster.run_for(5s);

  REQUIRE(is_active(n1) != is_active(n2));
  SimNode& passive = is_active(n1) ? n2 : n1;
  SimNode& active = is_active(n1) ? n1 : n2;
  CHECK(passive.status().not_active_reason == reason::kLeaseHeld);
  REQUIRE(passive.status().lease);
  CHECK(passive.status().lease->holder == active.id);
  CHECK(active.status().epoch == 1);
  CHECK(cluster.tenures.size() == 1);
  CHECK(cluster.overlapping_tenures().empty());
}

TEST_CASE("a recovered node never preempts the live active") {
  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  SimNode& n2 = cluster.start("n2");
  cluster.run_for(1s);
  cluster.crash(n1);
  REQUIRE(cluster.run_until([&] { return is_active(n2); }, 3s));
  const auto epoch = n2.status().epoch;

  SimNode& n1_again = cluster.start("n1");
  cluster.run_for(10s);
  CHECK(is_active(n2));
  CHECK(n2.status().epoch == epoch);
  CHECK(n1_again.role() == Role::passive);
  CHECK(n1_again.status().not_active_reason == reason::kLeaseHeld);
  CHECK(n1_again.count_calls("promotion") == 0);
  CHECK(cluster.overlapping_tenures().empty());
}

TEST_CASE("an active that cannot reach the database fences at its renew deadline, before expiry") {
  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  cluster.run_for(1030ms);
  cluster.store.set_unreachable(true);
  const TimePoint cut = cluster.now();
  REQUIRE(cluster.run_until([&] { return n1.role() == Role::passive; }, 3s));

  // The last renewal that committed before the cut started at `renewed`.
  const auto renewed = n1.last_call("renew", cut - cluster.db_latency);
  REQUIRE(renewed);
  const auto fence = n1.first_call("fence", cut);
  REQUIRE(fence);
  CHECK(fence->at == renewed->at + cluster.timers.renew_deadline);
  CHECK(fence->what == "fence epoch=1 budget=700");
  // Serving ends within the budget, before the lease can expire on the database's clock.
  const TimePoint expiry = cluster.at_db_ms(cluster.store.row().expires_at_ms);
  CHECK(fence->at + 700ms < expiry);
  CHECK(n1.transitions.back().reason == reason::kDbUnreachable);
  CHECK(n1.status().not_active_reason == reason::kDbUnreachable);
  CHECK(n1.first_call("post_demote", cut));
}

TEST_CASE("a node that fenced itself stays out of the race for one lease period") {
  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  cluster.run_for(1030ms);
  cluster.store.set_unreachable(true);
  const TimePoint cut = cluster.now();
  REQUIRE(cluster.run_until([&] { return n1.role() == Role::passive; }, 3s));
  const auto fence = n1.first_call("fence", cut);
  REQUIRE(fence);
  // The database is back and the lease is free (the fence released it): a peer held up by the
  // stall must get its chance before the fenced node competes again.
  cluster.store.set_unreachable(false);
  REQUIRE(cluster.run_until([&] { return is_active(n1); }, 5s));
  const auto acquired = n1.first_call("acquire", fence->at);
  REQUIRE(acquired);
  CHECK(acquired->at >= fence->at + cluster.timers.lease_ttl);
}

TEST_CASE("a stuck database call never delays the fence, whose reason is then renew_deadline") {
  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  cluster.run_for(1010ms);
  const TimePoint cut = cluster.now();
  cluster.db_stuck_until = cut + 10s;
  REQUIRE(cluster.run_until([&] { return n1.role() == Role::passive; }, 3s));

  const auto renewed = n1.last_call("renew", cut - cluster.db_latency);
  const auto fence = n1.first_call("fence", cut);
  REQUIRE(renewed);
  REQUIRE(fence);
  CHECK(fence->at == renewed->at + 1200ms);
  CHECK(n1.transitions.back().reason == reason::kRenewDeadline);

  // When the database comes back, the stuck renewal commits first and the fence's release after
  // it: the lease ends instead of running on under a node that no longer serves.
  // The acquisition sent during the outage commits then too, but is answered after
  // renew_deadline: it is handed back, and the next one promotes.
  cluster.run_for(10s);
  CHECK(n1.first_call("release epoch=2", cut));
  CHECK(is_active(n1));
  CHECK(n1.status().epoch == 3);
  CHECK(n1.promoted_epochs == std::vector<std::uint64_t>{1, 3});
  CHECK(cluster.overlapping_tenures().empty());
}

TEST_CASE("a renewal answered only after the deadline never extends it") {
  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  cluster.run_for(1s);
  cluster.reply_delay = 1500ms;  // commits at once, answers arrive too late
  const TimePoint cut = cluster.now();
  cluster.run_for(6s);

  CHECK(n1.role() == Role::passive);
  CHECK(n1.count_calls("fence epoch=1") == 1);
  CHECK(n1.transitions.back().reason == reason::kRenewDeadline);
  // Its later acquisitions succeed in the database but are answered after renew_deadline: each
  // is handed straight back instead of promoted.
  CHECK(n1.count_calls("promotion", cut) == 0);
  CHECK(n1.first_call("release epoch=2", cut));
  CHECK(n1.status().not_active_reason == reason::kRenewDeadline);
}

TEST_CASE("a lost lease demotes with lease_lost and is not released") {
  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  cluster.run_for(500ms);
  cluster.store.steal("n9", 5s);
  const TimePoint cut = cluster.now();
  REQUIRE(cluster.run_until([&] { return n1.role() == Role::passive; }, 1s));

  const auto fence = n1.first_call("fence epoch=1", cut);
  REQUIRE(fence);
  CHECK(fence->at - cut <= cluster.timers.renew_interval + 5ms);
  CHECK(n1.transitions.back().reason == reason::kLeaseLost);
  CHECK_FALSE(n1.first_call("release epoch=1", cut));
  CHECK(n1.first_call("post_demote epoch=1 reason=lease_lost", cut));
  cluster.run_for(1s);
  CHECK(n1.status().not_active_reason == reason::kLeaseHeld);
  CHECK(n1.status().lease->holder == "n9");
}

TEST_CASE("when the active dies on the same host, a passive takes over at once by the OS lock") {
  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  SimNode& n2 = cluster.start("n2");
  cluster.run_for(1s);
  REQUIRE(cluster.store.row().os_lock);
  REQUIRE(n2.status().not_active_reason == reason::kLeaseHeld);

  cluster.crash(n1);
  const TimePoint crash = cluster.now();
  REQUIRE(cluster.run_until([&] { return is_active(n2); }, 3s));
  CHECK(cluster.now() - crash <= 30ms);
  CHECK(n2.transitions.back().reason == reason::kFastPath);
  CHECK(n2.status().epoch == 2);
  CHECK(cluster.overlapping_tenures().empty());
}

TEST_CASE("without the fast path, a passive takes over only once the lease has expired") {
  Cluster cluster(emsnode::role::Timers{}, /*fast_path=*/false);
  SimNode& n1 = start_active(cluster, "n1");
  SimNode& n2 = cluster.start("n2");
  cluster.run_for(1s);
  cluster.crash(n1);
  const TimePoint expiry = cluster.at_db_ms(cluster.store.row().expires_at_ms);
  REQUIRE(cluster.run_until([&] { return is_active(n2); }, 5s));

  const auto promotion = n2.first_call("promotion");
  REQUIRE(promotion);
  CHECK(promotion->at >= expiry);
  CHECK(promotion->at <= expiry + cluster.timers.poll_interval + 10ms);
  CHECK(n2.transitions.back().reason == reason::kAcquired);
}

TEST_CASE(
    "a passive that takes the OS lock from a live active gives it back, and the active "
    "records it") {
  Cluster cluster;
  cluster.os_lock_outsider = true;
  SimNode& n1 = start_active(cluster, "n1");
  REQUIRE_FALSE(cluster.store.row().os_lock);
  SimNode& n2 = cluster.start("n2");
  cluster.run_for(1s);

  cluster.os_lock_outsider = false;  // n2 polls every 10 ms, n1 only before each renewal
  cluster.run_for(50ms);
  CHECK(n2.first_call("acquire os_lock=1"));
  cluster.run_for(2s);
  CHECK(is_active(n1));
  CHECK(cluster.os_lock_owner == &n1);
  CHECK(cluster.store.row().os_lock);

  cluster.crash(n1);
  const TimePoint crash = cluster.now();
  REQUIRE(cluster.run_until([&] { return is_active(n2); }, 3s));
  CHECK(cluster.now() - crash <= 30ms);
  CHECK(n2.transitions.back().reason == reason::kFastPath);
}

TEST_CASE(
    "a pre_promote veto keeps the node passive, hands the lease back and stays out one "
    "lease_ttl") {
  Cluster cluster;
  SimNode& n1 = cluster.add("n1");
  n1.veto = "/etc/emsnode/hooks/vip exited with 1";
  n1.machine().start(cluster.now());
  REQUIRE(cluster.run_until([&] { return n1.first_call("release").has_value(); }, 1s));
  const TimePoint vetoed = cluster.now();
  cluster.run_for(5ms);  // the release commits

  CHECK(n1.role() == Role::passive);
  CHECK(n1.status().not_active_reason == reason::kHookVeto);
  CHECK(cluster.store.row().expires_at_ms <= cluster.clock.ms());

  SimNode& n2 = cluster.start("n2");
  REQUIRE(cluster.run_until([&] { return is_active(n2); }, 500ms));
  cluster.run_for(3s);
  const auto retry = n1.first_call("acquire", vetoed);
  REQUIRE(retry);
  CHECK(retry->at >= vetoed + cluster.timers.lease_ttl);
  CHECK(n1.status().not_active_reason == reason::kLeaseHeld);
  CHECK(n1.promoted_epochs.empty());
}

TEST_CASE("the lease keeps being renewed while slow pre_promote hooks run") {
  Cluster cluster;
  SimNode& n1 = cluster.add("n1");
  n1.promotion_time = 5s;
  n1.machine().start(cluster.now());
  cluster.run_for(6s);

  REQUIRE(is_active(n1));
  CHECK(n1.status().epoch == 1);
  CHECK(n1.count_calls("renew epoch=1") >= 12);
  CHECK(n1.count_calls("fence") == 0);
  CHECK(n1.transitions.back().reason == reason::kAcquired);
}

TEST_CASE("a paused node does not take the lease; after resume it does") {
  Cluster cluster;
  SimNode& n1 = cluster.add("n1");
  n1.machine().pause(cluster.now());
  n1.machine().start(cluster.now());
  cluster.run_for(3s);
  CHECK(n1.role() == Role::passive);
  CHECK(n1.status().paused);
  CHECK(n1.status().not_active_reason == reason::kPaused);
  CHECK(n1.count_calls("acquire") == 0);

  n1.machine().resume(cluster.now());
  REQUIRE(cluster.run_until([&] { return is_active(n1); }, 50ms));
  CHECK_FALSE(n1.status().paused);
}

TEST_CASE("pausing the active hands the role to the other node, and the paused node stays out") {
  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  SimNode& n2 = cluster.start("n2");
  cluster.run_for(1s);

  const TimePoint paused = cluster.now();
  n1.machine().pause(paused);
  REQUIRE(cluster.run_until([&] { return is_active(n2); }, 1s));
  CHECK(n1.transitions.back().reason == reason::kPaused);
  cluster.run_for(5s);
  CHECK(n1.count_calls("acquire", paused) == 0);
  CHECK(n1.status().not_active_reason == reason::kPaused);
  // pre_demote hooks and Actions::demote, then the release, then post_demote hooks.
  const auto demotion = n1.first_call("demotion epoch=1 reason=paused", paused);
  const auto release = n1.first_call("release epoch=1", paused);
  const auto post = n1.first_call("post_demote epoch=1 reason=paused", paused);
  REQUIRE(demotion);
  REQUIRE(release);
  REQUIRE(post);
  CHECK(demotion->at < release->at);
  CHECK(release->at < post->at);
  CHECK(cluster.overlapping_tenures().empty());
}

TEST_CASE("a switchover without a target moves the role; the old active stays out one lease_ttl") {
  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  SimNode& n2 = cluster.start("n2");
  cluster.run_for(1s);

  REQUIRE(n1.machine().switchover(cluster.now(), std::nullopt).empty());
  REQUIRE(cluster.run_until([&] { return is_active(n2); }, 1s));
  CHECK(n2.status().epoch == 2);
  CHECK(n1.transitions.back().reason == reason::kSwitchover);
  stays_out_one_lease_ttl(cluster, n1);
  CHECK(is_active(n2));
  CHECK(cluster.overlapping_tenures().empty());
}

TEST_CASE("a handover for a failed plugin moves the role to the named node and keeps its reason") {
  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  SimNode& n2 = cluster.start("n2");
  cluster.run_for(1s);

  REQUIRE(n1.machine().switchover(cluster.now(), std::string("n2"), "plugin_failed:mq").empty());
  REQUIRE(cluster.run_until([&] { return is_active(n2); }, 1s));
  CHECK(n1.transitions.back().reason == "plugin_failed:mq");
  CHECK(n1.status().not_active_reason == "plugin_failed:mq");
  CHECK(n1.first_call("release epoch=1 handover=n2"));
  // A handover as any other: the old active stays out one lease_ttl, then competes again.
  stays_out_one_lease_ttl(cluster, n1);
  CHECK(cluster.overlapping_tenures().empty());
}

TEST_CASE("a switchover to a named node gives it the lease although another passive is faster") {
  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  SimNode& n2 = cluster.start("n2");
  cluster.run_for(300ms);
  SimNode& n3 = cluster.start("n3");  // starts later, so polls after n2
  cluster.run_for(1s);

  REQUIRE(n1.machine().switchover(cluster.now(), std::string("n3")).empty());
  REQUIRE(cluster.run_until([&] { return is_active(n3); }, 1s));
  CHECK(n2.role() == Role::passive);
  CHECK(n2.count_calls("promotion") == 0);
  CHECK(n1.first_call("release epoch=1 handover=n3"));
}

TEST_CASE("a switchover to a node that never comes falls back to another after the reservation") {
  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  SimNode& n2 = cluster.start("n2");
  cluster.run_for(1s);

  REQUIRE(n1.machine().switchover(cluster.now(), std::string("ghost")).empty());
  cluster.run_for(500ms);
  CHECK(n2.status().not_active_reason == reason::kHandover);
  REQUIRE(n2.status().lease);
  CHECK(n2.status().lease->handover_to == "ghost");
  const auto release = n1.first_call("release epoch=1 handover=ghost");
  REQUIRE(release);
  REQUIRE(cluster.run_until([&] { return cluster.active() != nullptr; }, 5s));
  const auto promotion = cluster.active()->first_call("promotion epoch=2");
  REQUIRE(promotion);
  CHECK(promotion->at >= release->at + cluster.timers.lease_ttl);
}

TEST_CASE(
    "a switchover is refused on a passive node, naming the holder, and to the active itself") {
  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  SimNode& n2 = cluster.start("n2");
  cluster.run_for(500ms);

  const std::string refusal = n2.machine().switchover(cluster.now(), std::nullopt);
  CHECK_THAT(refusal, Catch::Contains("n2) is not the active"));
  CHECK_THAT(refusal, Catch::Contains("held by n1 at epoch 1"));
  CHECK_THAT(n1.machine().switchover(cluster.now(), std::string("n1")),
             Catch::Contains("is this node"));
  CHECK(is_active(n1));
}

TEST_CASE("a schema this binary cannot serve keeps the node passive with that reason") {
  Cluster cluster;
  SimNode& n1 = cluster.add("n1");
  n1.schema_blocker = std::string(reason::kSchemaNewer);
  n1.machine().start(cluster.now());
  cluster.run_for(2s);
  CHECK(n1.role() == Role::passive);
  CHECK(n1.status().not_active_reason == reason::kSchemaNewer);
  CHECK(cluster.store.row().epoch == 0);

  n1.schema_blocker.clear();  // upgraded
  REQUIRE(cluster.run_until([&] { return is_active(n1); }, 1s));
}

TEST_CASE("epochs strictly increase and tenures never overlap across many role changes") {
  Cluster cluster;
  start_active(cluster, "n1");
  cluster.start("n2");
  cluster.run_for(500ms);
  for (int i = 0; i < 30; ++i) {
    SimNode* active = cluster.active();
    REQUIRE(active);
    const std::string id = active->id;
    const std::uint64_t before = active->status().epoch;
    switch (i % 4) {
      case 0:
        cluster.crash(*active);
        cluster.start(id);
        break;
      case 1:
        REQUIRE(active->machine().switchover(cluster.now(), std::nullopt).empty());
        break;
      case 2:
        cluster.store.set_unreachable(true);
        cluster.run_for(1300ms);
        cluster.store.set_unreachable(false);
        break;
      case 3:
        active->machine().pause(cluster.now());
        cluster.run_for(100ms);
        active->machine().resume(cluster.now());
        break;
    }
    REQUIRE(cluster.run_until(
        [&] {
          SimNode* now_active = cluster.active();
          return now_active && now_active->status().epoch > before;
        },
        10s));
    cluster.run_for(500ms);
  }
  for (std::size_t i = 1; i < cluster.tenures.size(); ++i) {
    CHECK(cluster.tenures[i].epoch > cluster.tenures[i - 1].epoch);
  }
  CHECK(cluster.tenures.size() >= 30);
  CHECK(cluster.overlapping_tenures().empty());
}

TEST_CASE("stop on the active demotes gracefully, releases the lease and finishes") {
  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  cluster.run_for(500ms);
  const TimePoint stopped = cluster.now();
  n1.machine().stop(stopped);
  REQUIRE(cluster.run_until([&] { return n1.finished_called; }, 1s));

  const auto demotion = n1.first_call("demotion epoch=1 reason=shutdown", stopped);
  const auto release = n1.first_call("release epoch=1", stopped);
  const auto post = n1.first_call("post_demote epoch=1 reason=shutdown", stopped);
  REQUIRE(demotion);
  REQUIRE(release);
  REQUIRE(post);
  CHECK(demotion->at < release->at);
  CHECK(release->at < post->at);
  CHECK(n1.count_calls("fence") == 0);
  CHECK(n1.role() == Role::stopping);
  CHECK(n1.transitions.back().reason == reason::kShutdown);
  CHECK(cluster.store.row().expires_at_ms <= cluster.clock.ms());
}

TEST_CASE("stop while the promotion runs drops it without hooks and releases the lease") {
  Cluster cluster;
  SimNode& n1 = cluster.add("n1");
  n1.promotion_time = 2s;
  n1.machine().start(cluster.now());
  cluster.run_for(100ms);
  n1.machine().stop(cluster.now());
  REQUIRE(cluster.run_until([&] { return n1.finished_called; }, 1s));

  CHECK(n1.first_call("fence epoch=1"));
  CHECK(n1.first_call("release epoch=1"));
  CHECK(n1.count_calls("demotion") == 0);
  CHECK(n1.count_calls("post_demote") == 0);
  cluster.run_for(3s);
  CHECK(n1.promoted_epochs.empty());
  CHECK(n1.role() == Role::stopping);
}

TEST_CASE("one failed renewal does not fence the active") {
  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  cluster.run_for(1s);
  cluster.store.set_unreachable(true);
  cluster.run_for(500ms);
  cluster.store.set_unreachable(false);
  cluster.run_for(3s);
  CHECK(is_active(n1));
  CHECK(n1.status().epoch == 1);
  CHECK(n1.count_calls("fence") == 0);
}

TEST_CASE("after SIGSTOP the node fences on waking, before it acts on anything else") {
  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  SimNode& n2 = cluster.start("n2");
  cluster.run_for(1s);
  // Freeze n1 just as it sends a renewal: the renewal commits, its answer waits for the thaw.
  REQUIRE(cluster.run_until(
      [&] {
        return n1.calls.back().what == "renew epoch=1 os_lock=1" &&
               n1.calls.back().at == cluster.now();
      },
      1s));
  cluster.freeze(n1, 5s);
  const TimePoint thaw = cluster.now() + 5s;
  REQUIRE(cluster.run_until([&] { return is_active(n2); }, 4s));
  cluster.run_for(std::chrono::duration_cast<std::chrono::milliseconds>(thaw - cluster.now()) + 1s);

  const auto first = std::find_if(n1.calls.begin(), n1.calls.end(),
                                  [&](const auto& call) { return call.at >= thaw; });
  REQUIRE(first != n1.calls.end());
  CHECK(first->what == "fence epoch=1 budget=700");
  CHECK(n1.role() == Role::passive);
  CHECK(n1.transitions.back().reason == reason::kRenewDeadline);
  CHECK(is_active(n2));
  CHECK(n2.status().epoch == 2);
}

TEST_CASE("a refusal to promote is logged once per change, not at every poll") {
  emsnode::testing::TempDir dir;
  emsnode::log::Settings settings;
  settings.console = false;
  settings.file = dir / "role.log";
  emsnode::log::init(settings);

  Cluster cluster;
  SimNode& n1 = start_active(cluster, "n1");
  cluster.start("n2");
  cluster.run_for(3s);  // 15 refused polls
  cluster.crash(n1);
  cluster.run_for(1s);
  cluster.start("n1");
  cluster.run_for(3s);
  emsnode::log::flush();
  const std::string log = emsnode::testing::read_file(dir / "role.log");
  emsnode::log::init(emsnode::log::Settings{});

  std::vector<std::string> refusals;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("role.not_promoting") != std::string::npos) refusals.push_back(line);
  }
  REQUIRE(refusals.size() == 2);
  CHECK_THAT(refusals[0], Catch::EndsWith("reason=lease_held holder=n1 epoch=1"));
  CHECK_THAT(refusals[1], Catch::EndsWith("reason=lease_held holder=n2 epoch=2"));
}

TEST_CASE("a release notification makes a passive try at once, and only the lease row decides") {
  // PostgreSQL: no same-host OS lock, passives poll every 2 s, and a peer's release arrives as a
  // notification (on_release_notified).
  const emsnode::role::Timers timers{5000ms, 400ms, 1200ms, 2000ms};
  Cluster cluster(timers, /*fast_path=*/false);
  SimNode& n1 = start_active(cluster, "n1");
  SimNode& n2 = cluster.start("n2");
  cluster.run_for(300ms);
  REQUIRE(n2.status().not_active_reason == reason::kLeaseHeld);

  // While the lease is live, a notification (a stale one, or another cluster's) changes nothing.
  const auto tries_before = n2.count_calls("acquire");
  n2.machine().on_release_notified(cluster.now());
  cluster.run_for(50ms);
  CHECK(n2.count_calls("acquire") == tries_before + 1);
  CHECK(n2.role() == Role::passive);
  CHECK(n2.status().not_active_reason == reason::kLeaseHeld);

  n1.machine().stop(cluster.now());
  REQUIRE(cluster.run_until([&] { return n1.finished_called; }, 1s));
  const TimePoint released = cluster.now();
  n2.machine().on_release_notified(released);
  REQUIRE(cluster.run_until([&] { return is_active(n2); }, 5s));
  const auto promotion = n2.first_call("promotion");
  REQUIRE(promotion);
  CHECK(promotion->at - released < 100ms);  // its next poll was up to 2 s away
  CHECK(n2.status().epoch == 2);
}
