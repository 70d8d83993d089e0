// The threaded role manager on a real database (SQLite file, or PostgreSQL in the pg: variant)
// with real timers (short ones: lease_ttl 600, renew_interval 100, renew_deadline 300,
// poll_interval 50 ms), several managers in one process as separate nodes: each has its own
// database connection, and flock locks conflict between open files even inside one process.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include "db/db_test_support.hpp"
#include "db/file_lock.hpp"
#include "fake_lease_store.hpp"
#include "metrics/metrics.hpp"
#include "role/lease_store.hpp"
#include "support/process.hpp"
#include "support/sanitizers.hpp"

using namespace std::chrono_literals;
using emsnode::db::testing::DbDir;
using emsnode::role::Hooks;
using emsnode::role::Role;
using emsnode::role::RoleManager;
using emsnode::role::Timers;
using emsnode::testing::eventually;
namespace reason = emsnode::role::reason;

namespace {

const Timers kTimers{600ms, 100ms, 300ms, 50ms};
// How long a test waits for what should happen within a lease or two: waiting longer costs
// nothing when it happens early, and absorbs scheduling stalls on a loaded machine.
constexpr auto kPatience = 3s;
// Timers for tests that count role changes: a renew_deadline long enough that a loaded machine's
// scheduling stall does not self-fence the active and add a role change of its own.
const Timers kTolerantTimers{1500ms, 100ms, 1000ms, 50ms};

using Clock = std::chrono::steady_clock;

long elapsed_ms(Clock::time_point since) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count());
}

// How many nodes serve at once, across the whole test.
struct Serving {
  std::atomic<int> now{0};
  std::atomic<int> most{0};
  void up() {
    const int n = ++now;
    int seen = most.load();
    while (n > seen && !most.compare_exchange_weak(seen, n)) {
    }
  }
  void down() { --now; }
};

struct NodeOptions {
  Timers timers = kTimers;
  Hooks hooks;
  std::function<std::string()> schema_blocker;
  std::unique_ptr<emsnode::role::LeaseStore> store;
};

// One node: its own connection, metrics and Actions that record what the role manager did.
class Node {
  // First, so that it outlives the role manager that uses it.
  std::unique_ptr<emsnode::db::Database> database_;

 public:
  Node(const DbDir& dir, const std::string& id, Serving& serving, NodeOptions options = {})
      : database_(dir.open()), serving_(serving) {
    emsnode::role::Actions actions;
    actions.promote = [this](std::uint64_t epoch) {
      std::lock_guard lock(mutex_);
      epochs_.push_back(epoch);
      promoted_at_ = Clock::now();
      serving_.up();
    };
    actions.demote = [this](std::chrono::milliseconds budget) {
      std::lock_guard lock(mutex_);
      budgets_.push_back(budget);
      demoted_at_ = Clock::now();
      serving_.down();
    };
    manager = std::make_unique<RoleManager>(
        *database_, std::move(options.store), id, options.timers, std::move(options.hooks),
        std::move(actions), dir.fast_path_lock(), std::move(options.schema_blocker), metrics);
  }

  // The role manager goes first: it calls the Actions, which use the members below.
  ~Node() { manager.reset(); }
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  Role role() const { return manager->status().role; }
  bool active() const { return role() == Role::active; }
  std::vector<std::uint64_t> epochs() const {
    std::lock_guard lock(mutex_);
    return epochs_;
  }
  std::vector<std::chrono::milliseconds> budgets() const {
    std::lock_guard lock(mutex_);
    return budgets_;
  }
  std::optional<Clock::time_point> promoted_at() const {
    std::lock_guard lock(mutex_);
    return promoted_at_;
  }
  std::optional<Clock::time_point> demoted_at() const {
    std::lock_guard lock(mutex_);
    return demoted_at_;
  }
  double gauge(const std::string& name, emsnode::metrics::Labels labels = {}) {
    return metrics.gauge(name, "", std::move(labels)).value();
  }

  emsnode::metrics::MetricsRegistry metrics;
  std::unique_ptr<RoleManager> manager;

 private:
  Serving& serving_;
  mutable std::mutex mutex_;
  std::vector<std::uint64_t> epochs_;
  std::vector<std::chrono::milliseconds> budgets_;
  std::optional<Clock::time_point> promoted_at_;
  std::optional<Clock::time_point> demoted_at_;
};

std::string hook_script(const DbDir& dir, const std::string& name, const std::string& body) {
  const auto path = dir.path() / name;
  std::ofstream(path) << "#!/bin/sh\n" << body;
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path.string();
}

emsnode::role::LeaseView lease(const DbDir& dir) {
  auto database = dir.open();
  return emsnode::role::SqlLeaseStore(*database).read();
}

}  // namespace

TEST_CASE("two role managers on one database: exactly one serves") {
  DbDir dir;
  dir.open_migrated();
  Serving serving;
  Node n1(dir, "n1", serving);
  Node n2(dir, "n2", serving);
  n1.manager->start();
  n2.manager->start();

  REQUIRE(eventually([&] { return n1.active() || n2.active(); }, kPatience));
  std::this_thread::sleep_for(700ms);  // more than a lease
  REQUIRE(n1.active() != n2.active());
  Node& active = n1.active() ? n1 : n2;
  Node& passive = n1.active() ? n2 : n1;
  CHECK(serving.most == 1);
  CHECK(passive.manager->status().not_active_reason == reason::kLeaseHeld);
  CHECK(active.manager->status().epoch == 1);

  CHECK(active.gauge("emsnode_role", {{"role", "active"}}) == 1);
  CHECK(active.gauge("emsnode_role", {{"role", "passive"}}) == 0);
  CHECK(passive.gauge("emsnode_role", {{"role", "passive"}}) == 1);
  CHECK(active.gauge("emsnode_lease_epoch") == 1);
  CHECK(active.gauge("emsnode_lease_remaining_seconds") > 0.2);
  CHECK(active.metrics.histogram("emsnode_lease_renew_seconds", "").count() >= 5);
  CHECK(active.metrics.counter("emsnode_role_transitions_total", "", {{"reason", "acquired"}})
            .value() == 1);
  const std::string text = active.metrics.render_prometheus();
  CHECK_THAT(text, Catch::Contains("emsnode_role{role=\"active\"} 1"));
}

TEST_CASE("when the active stops, the other node promotes within 300 ms") {
  DbDir dir;
  dir.open_migrated();
  Serving serving;
  Node n1(dir, "n1", serving);
  Node n2(dir, "n2", serving);
  n1.manager->start();
  REQUIRE(eventually([&] { return n1.active(); }, kPatience));
  n2.manager->start();
  std::this_thread::sleep_for(200ms);
  REQUIRE(n2.manager->status().not_active_reason == reason::kLeaseHeld);

  const auto stopping = Clock::now();
  n1.manager->stop();
  REQUIRE(eventually([&] { return n2.promoted_at().has_value(); }, kPatience));
  const auto takeover =
      std::chrono::duration_cast<std::chrono::milliseconds>(*n2.promoted_at() - stopping);
  INFO("takeover took " << takeover.count() << " ms");
  CHECK_WALL_CLOCK(takeover < 300ms);
  CHECK(n1.role() == Role::stopping);
  CHECK(n2.manager->status().epoch == 2);
  CHECK(serving.most == 1);
}

TEST_CASE("when the process holding the OS lock dies, a passive takes over at once", "[sqlite]") {
  DbDir dir;
  auto database = dir.open_migrated();
  const std::string lock_file = emsnode::db::lock_path(dir.file(), "active.lock");
  // A stand-in for a crashed node's process: it holds the OS lock until it is killed.
  emsnode::testing::Process holder(
      {"/bin/sh", "-c", "exec 9>" + lock_file + "; flock -x 9; exec sleep 30"}, dir.path());
  REQUIRE(eventually([&] { return !emsnode::db::FileLock::try_lock(lock_file); }, 2s));
  database->transaction([&](emsnode::db::Transaction& tx) {
    tx.exec("UPDATE lease SET holder = 'ghost', epoch = 5, expires_at_ms = ?, os_lock = 1",
            {database->now_ms() + 60000});
  });

  Serving serving;
  Node n1(dir, "n1", serving);
  n1.manager->start();
  REQUIRE(eventually([&] { return n1.manager->status().not_active_reason == reason::kLeaseHeld; },
                     kPatience));
  std::this_thread::sleep_for(200ms);
  CHECK(n1.role() == Role::passive);

  const auto killed = Clock::now();
  holder.signal(SIGKILL);
  REQUIRE(eventually([&] { return n1.active(); }, kPatience));
  INFO("takeover took " << elapsed_ms(killed) << " ms");
  CHECK_WALL_CLOCK(elapsed_ms(killed) < 200);
  CHECK(n1.manager->status().epoch == 6);
  CHECK(n1.manager->status().last_transition->reason == reason::kFastPath);
}

TEST_CASE("a released lease wakes a passive at once, long before its next poll", "[postgresql]") {
  // PostgreSQL's NOTIFY on release: with a poll_interval of 2 s, only the notification can make
  // the passive take over within a fraction of it. (SQLite wakes same-host passives through the
  // OS lock instead; the test above.)
  DbDir dir;
  dir.open_migrated();
  const Timers slow_poll{5000ms, 100ms, 1000ms, 2000ms};
  Serving serving;
  NodeOptions first;
  first.timers = slow_poll;
  NodeOptions second;
  second.timers = slow_poll;
  Node n1(dir, "n1", serving, std::move(first));
  Node n2(dir, "n2", serving, std::move(second));
  n1.manager->start();
  REQUIRE(eventually([&] { return n1.active(); }, kPatience));
  n2.manager->start();
  REQUIRE(eventually([&] { return n2.manager->status().not_active_reason == reason::kLeaseHeld; },
                     kPatience));
  // Just after a poll: the next one is two seconds away.
  std::this_thread::sleep_for(100ms);

  const auto stopping = Clock::now();
  n1.manager->stop();
  REQUIRE(eventually([&] { return n2.promoted_at().has_value(); }, kPatience));
  const auto takeover =
      std::chrono::duration_cast<std::chrono::milliseconds>(*n2.promoted_at() - stopping);
  INFO("takeover took " << takeover.count() << " ms");
  CHECK_WALL_CLOCK(takeover < 500ms);
  CHECK(n2.manager->status().epoch == 2);
  CHECK(serving.most == 1);
}

TEST_CASE("a node that comes back never preempts the active") {
  DbDir dir;
  dir.open_migrated();
  Serving serving;
  Node n1(dir, "n1", serving);
  n1.manager->start();
  REQUIRE(eventually([&] { return n1.active(); }, kPatience));
  const auto transitions = n1.manager->status().transitions;

  Node n2(dir, "n2", serving);
  n2.manager->start();
  std::this_thread::sleep_for(1s);
  CHECK(n2.role() == Role::passive);
  CHECK(n2.manager->status().not_active_reason == reason::kLeaseHeld);
  CHECK(n2.epochs().empty());
  CHECK(n1.active());
  CHECK(n1.manager->status().epoch == 1);
  CHECK(n1.manager->status().transitions == transitions);
}

TEST_CASE("pause hands the role over and keeps the node out until resume") {
  DbDir dir;
  dir.open_migrated();
  Serving serving;
  Node n1(dir, "n1", serving);
  Node n2(dir, "n2", serving);
  n1.manager->start();
  REQUIRE(eventually([&] { return n1.active(); }, kPatience));
  n2.manager->start();
  std::this_thread::sleep_for(100ms);

  n1.manager->pause();
  REQUIRE(eventually([&] { return n2.active(); }, kPatience));
  auto status = n1.manager->status();
  CHECK(status.paused);
  CHECK(status.not_active_reason == reason::kPaused);
  CHECK(status.last_transition->reason == reason::kPaused);

  n2.manager->stop();  // even a free lease is not taken while paused
  std::this_thread::sleep_for(300ms);
  CHECK(n1.role() == Role::passive);
  n1.manager->resume();
  REQUIRE(eventually([&] { return n1.active(); }, kPatience));
  CHECK(n1.epochs() == std::vector<std::uint64_t>{1, 3});
  CHECK(serving.most == 1);
}

TEST_CASE("a switchover moves the role, and is refused on a passive node") {
  DbDir dir;
  dir.open_migrated();
  Serving serving;
  NodeOptions options1;
  options1.timers = kTolerantTimers;
  NodeOptions options2;
  options2.timers = kTolerantTimers;
  Node n1(dir, "n1", serving, std::move(options1));
  Node n2(dir, "n2", serving, std::move(options2));
  n1.manager->start();
  REQUIRE(eventually([&] { return n1.active(); }, kPatience));
  n2.manager->start();
  std::this_thread::sleep_for(100ms);

  CHECK_THROWS_WITH(n2.manager->switchover(), Catch::Contains("is not the active"));
  n1.manager->switchover();
  REQUIRE(eventually([&] { return n2.active(); }, kPatience));
  CHECK(n1.role() == Role::passive);
  CHECK(n1.manager->status().last_transition->reason == reason::kSwitchover);
  // n1 is back in the race after one lease_ttl, but never preempts.
  std::this_thread::sleep_for(kTolerantTimers.lease_ttl + 200ms);
  CHECK(n2.active());
  CHECK(serving.most == 1);
}

TEST_CASE("a switchover to a named node gives it the role") {
  DbDir dir;
  dir.open_migrated();
  Serving serving;
  Node n1(dir, "n1", serving);
  Node n2(dir, "n2", serving);
  Node n3(dir, "n3", serving);
  n1.manager->start();
  REQUIRE(eventually([&] { return n1.active(); }, kPatience));
  n2.manager->start();
  n3.manager->start();
  std::this_thread::sleep_for(100ms);

  n1.manager->switchover("n3");
  REQUIRE(eventually([&] { return n3.active(); }, kPatience));
  CHECK(n2.epochs().empty());
  CHECK(n3.epochs() == std::vector<std::uint64_t>{2});
}

TEST_CASE("a database schema newer than the binary keeps the node passive and the lease free") {
  DbDir dir;
  dir.open_migrated();
  Serving serving;
  NodeOptions options;
  options.schema_blocker = [] { return std::string(reason::kSchemaNewer); };
  Node n1(dir, "n1", serving, std::move(options));
  n1.manager->start();
  std::this_thread::sleep_for(300ms);

  CHECK(n1.role() == Role::passive);
  CHECK(n1.manager->status().not_active_reason == reason::kSchemaNewer);
  CHECK(lease(dir).epoch == 0);
}

TEST_CASE("a pre_promote veto keeps the node passive and frees the lease for another node") {
  DbDir dir;
  dir.open_migrated();
  Serving serving;
  NodeOptions options;
  options.hooks.pre_promote = {hook_script(dir, "veto.sh", "exit 1\n")};
  Node n1(dir, "n1", serving, std::move(options));
  n1.manager->start();
  REQUIRE(eventually([&] { return n1.manager->status().not_active_reason == reason::kHookVeto; },
                     kPatience));
  REQUIRE(eventually([&] { return lease(dir).expires_in_ms <= 0; }, kPatience));

  Node n2(dir, "n2", serving);
  n2.manager->start();
  REQUIRE(eventually([&] { return n2.active(); }, 500ms));
  CHECK(n1.epochs().empty());
  CHECK(n1.role() == Role::passive);
}

TEST_CASE("while slow pre_promote hooks run, the lease is renewed and nobody else takes it") {
  DbDir dir;
  dir.open_migrated();
  Serving serving;
  NodeOptions options;
  options.hooks.pre_promote = {hook_script(dir, "slow.sh", "sleep 1\n")};
  Node n1(dir, "n1", serving, std::move(options));
  Node n2(dir, "n2", serving);
  n1.manager->start();
  REQUIRE(eventually([&] { return lease(dir).holder == "n1"; }, kPatience));
  n2.manager->start();

  REQUIRE(eventually([&] { return n1.active(); }, 2s));
  CHECK(n1.manager->status().epoch == 1);
  CHECK(n2.epochs().empty());
  CHECK(n2.manager->status().not_active_reason == reason::kLeaseHeld);
}

TEST_CASE("stop runs the demotion hooks around a graceful demotion and releases the lease") {
  DbDir dir;
  dir.open_migrated();
  Serving serving;
  const std::string log = (dir.path() / "hooks.log").string();
  const std::string body =
      "echo \"$EMSNODE_EVENT $EMSNODE_EPOCH $EMSNODE_REASON\" >> " + log + "\n";
  NodeOptions options;
  options.hooks.pre_promote = {hook_script(dir, "pre_promote.sh", body)};
  options.hooks.post_promote = {hook_script(dir, "post_promote.sh", body)};
  options.hooks.pre_demote = {hook_script(dir, "pre_demote.sh", body)};
  options.hooks.post_demote = {hook_script(dir, "post_demote.sh", body)};
  Node n1(dir, "n1", serving, std::move(options));
  std::vector<emsnode::role::Transition> seen;
  std::mutex seen_mutex;
  n1.manager->on_transition([&](const emsnode::role::Transition& transition) {
    std::lock_guard lock(seen_mutex);
    seen.push_back(transition);
  });
  n1.manager->start();
  REQUIRE(eventually([&] { return n1.active(); }, kPatience));
  REQUIRE(eventually([&] { return emsnode::testing::read_file(log).size() > 30; }, kPatience));

  n1.manager->stop();
  n1.manager->stop();
  CHECK(n1.role() == Role::stopping);
  CHECK(lease(dir).expires_in_ms <= 0);
  CHECK(emsnode::testing::read_file(log) ==
        "pre_promote 1 acquired\npost_promote 1 acquired\npre_demote 1 shutdown\n"
        "post_demote 1 shutdown\n");
  std::lock_guard lock(seen_mutex);
  REQUIRE(seen.size() == 3);
  CHECK((seen[0].from == Role::starting && seen[0].to == Role::passive));
  CHECK((seen[1].to == Role::active && seen[1].epoch == 1 && seen[1].reason == "acquired"));
  CHECK((seen[2].from == Role::active && seen[2].to == Role::stopping));
  CHECK(seen[2].reason == reason::kShutdown);
}

TEST_CASE("a database stuck in a call cannot delay the self-fence") {
  DbDir dir;
  dir.open_migrated();
  emsnode::role::testing::FakeLeaseStore store([] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
        .count();
  });
  Serving serving;
  NodeOptions options;
  options.store = std::make_unique<emsnode::role::testing::StoreHandle>(store);
  Node n1(dir, "n1", serving, std::move(options));
  n1.manager->start();
  REQUIRE(eventually([&] { return n1.active(); }, kPatience));
  std::this_thread::sleep_for(250ms);

  // Unsticks the store however the test ends, so that stop() can join the database worker.
  struct Unstick {
    emsnode::role::testing::FakeLeaseStore& store;
    ~Unstick() { store.set_stuck(false); }
  } unstick{store};
  const auto stuck = Clock::now();
  store.set_stuck(true);
  REQUIRE(eventually([&] { return n1.demoted_at().has_value(); }, kPatience));
  const auto fenced_after =
      std::chrono::duration_cast<std::chrono::milliseconds>(*n1.demoted_at() - stuck);
  INFO("fenced " << fenced_after.count() << " ms after the database got stuck");
  // The deadline is 300 ms after the start of the last renewal that succeeded, which started
  // at most one renew_interval (100 ms) before the database got stuck.
  CHECK(fenced_after >= 150ms);
  CHECK_WALL_CLOCK(fenced_after <= 350ms);
  CHECK(n1.budgets() == std::vector<std::chrono::milliseconds>{200ms});
  CHECK(n1.role() == Role::passive);
  CHECK(n1.manager->status().not_active_reason == reason::kRenewDeadline);
}

TEST_CASE("epochs strictly increase across many switchovers") {
  DbDir dir;
  dir.open_migrated();
  Serving serving;
  NodeOptions options1;
  options1.timers = kTolerantTimers;
  NodeOptions options2;
  options2.timers = kTolerantTimers;
  Node n1(dir, "n1", serving, std::move(options1));
  Node n2(dir, "n2", serving, std::move(options2));
  n1.manager->start();
  REQUIRE(eventually([&] { return n1.active(); }, kPatience));
  n2.manager->start();

  for (int i = 0; i < 5; ++i) {
    Node& from = n1.active() ? n1 : n2;
    Node& to = n1.active() ? n2 : n1;
    std::this_thread::sleep_for(kTolerantTimers.lease_ttl);  // until `to` competes again
    from.manager->switchover();
    REQUIRE(eventually([&] { return to.active(); }, kPatience));
  }
  // Each node's epochs grow, and no epoch is ever used twice across the cluster.
  const auto e1 = n1.epochs();
  const auto e2 = n2.epochs();
  CHECK(std::is_sorted(e1.begin(), e1.end()));
  CHECK(std::is_sorted(e2.begin(), e2.end()));
  std::vector<std::uint64_t> epochs = e1;
  epochs.insert(epochs.end(), e2.begin(), e2.end());
  std::sort(epochs.begin(), epochs.end());
  CHECK(std::adjacent_find(epochs.begin(), epochs.end()) == epochs.end());
  CHECK(epochs.size() >= 6);
  CHECK(serving.most == 1);
}

TEST_CASE("a role manager refuses timers that break the invariants") {
  DbDir dir;
  auto database = dir.open_migrated();
  emsnode::metrics::MetricsRegistry metrics;
  CHECK_THROWS_WITH(RoleManager(*database, nullptr, "n1", Timers{600ms, 400ms, 300ms, 50ms}, {}, {},
                                std::nullopt, {}, metrics),
                    Catch::StartsWith("[role] renew_interval (400 ms) * 2"));
}
