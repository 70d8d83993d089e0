// The group committer against the SDK's fake host: batching, ordering, fencing, and retrying a
// database that fails for a while.
#include "group_commit.hpp"

#include "broker.hpp"
#include "broker_harness.hpp"

#include <emsnode/plugin.hpp>
#include <emsnode/testing/fake_host.hpp>

#include <catch2/catch.hpp>

#include "support/process.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using emsnode::plugins::mq::Broker;
using emsnode::plugins::mq::BrokerMetrics;
using emsnode::plugins::mq::BrokerOptions;
using emsnode::plugins::mq::Connack;
using emsnode::plugins::mq::Connect;
using emsnode::plugins::mq::ConnectionId;
using emsnode::plugins::mq::GroupCommitOptions;
using emsnode::plugins::mq::GroupCommitter;
using emsnode::plugins::mq::ProtocolVersion;
using emsnode::plugins::mq::Puback;
using emsnode::plugins::mq::Publish;
using emsnode::plugins::mq::QoS;
using emsnode::plugins::mq::StoreOp;
using emsnode::plugins::mq::Suback;
using emsnode::plugins::mq::Subscribe;
using emsnode::plugins::mq::TopicSubscription;
using emsnode::plugins::mq::testing::RecordingIo;
using emsnode::testing::eventually;
namespace op = emsnode::plugins::mq::op;
namespace sdk = emsnode::sdk;
using namespace std::chrono_literals;

namespace {

// Plays the plugin's I/O thread: what the committer dispatches waits here until the test runs it.
class Inbox {
 public:
  void post(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mutex_);
    posted_.push_back(std::move(fn));
  }
  // Runs what arrived within `timeout`, once something did; returns how many ran.
  std::size_t run(std::chrono::milliseconds timeout = 5s) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    std::vector<std::function<void()>> ready;
    while (ready.empty() && std::chrono::steady_clock::now() < until) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ready.swap(posted_);
      }
      if (ready.empty()) std::this_thread::sleep_for(5ms);
    }
    for (const auto& fn : ready) fn();
    return ready.size();
  }

 private:
  std::mutex mutex_;
  std::vector<std::function<void()>> posted_;
};

struct Fixture {
  Fixture() {
    fake.set_started(true);
    fake.set_db_exec([this](std::string_view sql, const sdk::Params&) {
      std::lock_guard<std::mutex> lock(mutex);
      statements.emplace_back(sql);
      return sdk::testing::FakeHost::DbExecResult{};
    });
    fake.set_db_write([this](const std::function<bool()>& run_body) {
      ++transactions;
      if (fenced) throw sdk::FencedError("node2 holds the lease at epoch 7");
      if (unreachable || failures_left > 0) {
        --failures_left;
        throw sdk::DbError("server closed the connection unexpectedly");
      }
      run_body();
    });
  }

  sdk::testing::FakeHost fake;
  sdk::Host host{fake.api(), fake.ctx()};
  Inbox inbox;
  std::mutex mutex;
  std::vector<std::string> statements;
  std::atomic<int> transactions{0};
  std::atomic<bool> fenced{false};
  std::atomic<int> failures_left{0};     // transient errors before the database answers again
  std::atomic<bool> unreachable{false};  // transient errors for ever
  std::vector<std::string> failures;

  // A started committer that hands its completions to the inbox and its failures to `failures`.
  std::unique_ptr<GroupCommitter> committer(GroupCommitOptions options) {
    auto started = std::make_unique<GroupCommitter>(
        host, options, [this](std::function<void()> fn) { inbox.post(std::move(fn)); },
        [this](const std::string& reason) { failures.push_back(reason); });
    started->start();
    return started;
  }
};

// Short pauses, so that a test's retries take milliseconds.
GroupCommitOptions quick_retries() {
  GroupCommitOptions options;
  options.interval = 1ms;
  options.retry_delay = 10ms;
  options.retry_max_delay = 40ms;
  return options;
}

std::vector<StoreOp> session_ops(const std::string& client_id) {
  return {op::SaveSession{client_id, std::nullopt, std::nullopt}};
}

}  // namespace

TEST_CASE(
    "writes submitted together commit in one transaction, then their completions run in "
    "order") {
  Fixture f;
  GroupCommitOptions options;
  options.interval = 50ms;
  const auto committer = f.committer(options);
  std::vector<int> done;
  for (int i = 0; i < 3; ++i) {
    committer->submit(session_ops("c" + std::to_string(i)), [&done, i] { done.push_back(i); });
  }
  REQUIRE(f.inbox.run() == 1);  // one dispatch for the whole batch
  CHECK(done == std::vector<int>{0, 1, 2});
  CHECK(f.transactions == 1);
  CHECK(f.statements.size() == 3);
  const auto batch = f.fake.metric("commit_batch_operations");
  REQUIRE(batch.has_value());
  CHECK(batch->observations == std::vector<double>{3});
  committer->stop();
}

TEST_CASE("a completion with nothing to write and nothing before it needs no transaction") {
  Fixture f;
  const auto committer = f.committer(GroupCommitOptions{});
  bool done = false;
  committer->submit({}, [&] { done = true; });
  REQUIRE(f.inbox.run() == 1);
  CHECK(done);
  CHECK(f.transactions == 0);
  committer->stop();
}

TEST_CASE("a fenced batch acknowledges nothing, reports the failure, and takes nothing more") {
  Fixture f;
  f.fenced = true;
  const auto committer = f.committer(GroupCommitOptions{});
  bool acknowledged = false;
  committer->submit(session_ops("c"), [&] { acknowledged = true; });
  REQUIRE(f.inbox.run() == 1);
  CHECK_FALSE(acknowledged);
  REQUIRE(f.failures.size() == 1);
  CHECK_THAT(f.failures[0], Catch::Contains("fenced") && Catch::Contains("epoch 7"));
  CHECK(f.transactions == 1);  // not retried: it cannot succeed

  committer->submit({}, [&] { acknowledged = true; });
  CHECK(f.inbox.run(200ms) == 0);
  CHECK_FALSE(acknowledged);
  CHECK(f.fake.last_log("mq.commit_fenced").has_value());
  committer->stop();
}

TEST_CASE(
    "a transient database error is retried until the batch commits, and each PUBACK is sent "
    "once, after the commit") {
  Fixture f;
  const auto committer = f.committer(quick_retries());
  RecordingIo io;
  BrokerMetrics metrics(f.host);
  Broker broker(BrokerOptions{}, *committer, io, f.host.log(), metrics);
  broker.load({});
  // Runs what the committer hands back until `done` holds.
  const auto run_until = [&](const std::function<bool()>& done) {
    return eventually([&] {
      f.inbox.run(10ms);
      return done();
    });
  };

  constexpr ConnectionId kPublisher = 1;
  constexpr ConnectionId kSubscriber = 2;
  for (const auto& [connection, id] :
       {std::pair{kPublisher, "pub"}, std::pair{kSubscriber, "sub"}}) {
    Connect connect;
    connect.version = ProtocolVersion::kV311;
    connect.clean_start = connection == kPublisher;
    connect.client_id = id;
    connect.keep_alive = 60;
    broker.on_packet(connection, connect);
  }
  Subscribe subscribe;
  subscribe.packet_id = 1;
  TopicSubscription wanted;
  wanted.filter = "seq/#";
  wanted.options.max_qos = QoS::kAtLeastOnce;
  subscribe.subscriptions.push_back(wanted);
  broker.on_packet(kSubscriber, subscribe);
  REQUIRE(
      run_until([&] { return !io.sent[kPublisher].empty() && io.sent[kSubscriber].size() >= 2; }));
  REQUIRE(io.take<Connack>(kPublisher).size() == 1);
  REQUIRE(io.take<Suback>(kSubscriber).size() == 1);

  f.failures_left = 3;
  const int before = f.transactions;
  for (std::uint16_t id = 1; id <= 5; ++id) {
    Publish publish;
    publish.topic = "seq/" + std::to_string(id);
    publish.qos = QoS::kAtLeastOnce;
    publish.packet_id = id;
    broker.on_packet(kPublisher, publish);
  }
  // Two attempts failed and one more will: nothing is committed, so nothing may be sent.
  REQUIRE(eventually([&] { return f.transactions >= before + 2; }));
  CHECK(f.inbox.run(1ms) == 0);
  CHECK(io.take<Puback>(kPublisher).empty());
  CHECK(io.take<Publish>(kSubscriber).empty());
  CHECK(f.fake.health() == EMSNODE_HEALTH_DEGRADED);
  CHECK_THAT(f.fake.health_detail(), Catch::StartsWith("database writes retrying since ") &&
                                         Catch::Contains("server closed the connection"));

  std::vector<Puback> acks;
  REQUIRE(run_until([&] {
    for (const Puback& ack : io.take<Puback>(kPublisher)) acks.push_back(ack);
    return acks.size() >= 5;
  }));
  f.inbox.run(50ms);  // anything more would show up now
  for (const Puback& ack : io.take<Puback>(kPublisher)) acks.push_back(ack);
  std::multiset<std::uint16_t> acked;
  for (const Puback& ack : acks) acked.insert(ack.packet_id);
  CHECK(acked == std::multiset<std::uint16_t>{1, 2, 3, 4, 5});
  CHECK(io.take<Publish>(kSubscriber).size() == 5);
  CHECK(f.failures.empty());
  CHECK(f.fake.health() == EMSNODE_HEALTH_OK);
  const auto retries = f.fake.metric("commit_retries_total");
  REQUIRE(retries.has_value());
  CHECK(retries->value == 3);
  // Attempts 1 and 2 are logged, 3 is not: a few lines per outage.
  const auto retrying = f.fake.logs("mq.commit_retrying");
  REQUIRE(retrying.size() == 2);
  CHECK(retrying[1].field("attempt") == "2");
  CHECK(retrying[1].field("delay_ms").has_value());
  REQUIRE(f.fake.last_log("mq.commit_recovered").has_value());
  CHECK(f.fake.last_log("mq.commit_recovered")->field("attempts") == "4");
  committer->stop();
}

TEST_CASE("a batch being retried fails at once, acknowledging nothing, when the node is fenced") {
  Fixture f;
  f.unreachable = true;
  const auto committer = f.committer(quick_retries());
  bool acknowledged = false;
  committer->submit(session_ops("c"), [&] { acknowledged = true; });
  REQUIRE(eventually([&] { return f.transactions >= 3; }));
  CHECK(f.inbox.run(1ms) == 0);

  std::string expected;
  SECTION("the host's epoch turns 0: the node fenced itself at its renew deadline") {
    f.fake.set_epoch(0);
    expected = "no longer active";
  }
  SECTION("the host's epoch moves on: the node lost the lease and won it again") {
    f.fake.set_epoch(2);
    expected = "epoch moved from 1 to 2";
  }
  SECTION("the database says the write is fenced") {
    f.fenced = true;
    expected = "fenced";
  }
  REQUIRE(f.inbox.run(2s) == 1);
  CHECK_FALSE(acknowledged);
  REQUIRE(f.failures.size() == 1);
  CHECK_THAT(f.failures[0], Catch::Contains(expected));
  const int tried = f.transactions;
  committer->submit({}, [&] { acknowledged = true; });
  CHECK(f.inbox.run(100ms) == 0);
  CHECK_FALSE(acknowledged);
  CHECK(f.transactions == tried);  // a failed committer tries nothing more
  const auto failures = f.fake.metric("commit_failures_total");
  REQUIRE(failures.has_value());
  CHECK(failures->value == 1);
  committer->stop();
}

TEST_CASE("stop interrupts a retry's pause, and a stopped committer reports no failure") {
  Fixture f;
  f.unreachable = true;
  GroupCommitOptions options;
  options.retry_delay = 10s;  // a pause that only stop can cut short
  options.retry_max_delay = 10s;
  const auto committer = f.committer(options);
  bool acknowledged = false;
  committer->submit(session_ops("c"), [&] { acknowledged = true; });
  REQUIRE(eventually([&] { return f.transactions >= 1; }));
  const auto began = std::chrono::steady_clock::now();
  committer->stop();
  CHECK(std::chrono::steady_clock::now() - began < 5s);  // far less than the pause
  CHECK(f.inbox.run(50ms) == 0);
  CHECK_FALSE(acknowledged);
  CHECK(f.failures.empty());
  CHECK(f.transactions == 1);
}

TEST_CASE("a batch the database refuses past the retry limit fails the committer") {
  Fixture f;
  f.unreachable = true;
  GroupCommitOptions options = quick_retries();
  options.retry_limit = 100ms;
  const auto committer = f.committer(options);
  bool acknowledged = false;
  committer->submit(session_ops("c"), [&] { acknowledged = true; });
  REQUIRE(f.inbox.run(5s) == 1);
  CHECK_FALSE(acknowledged);
  REQUIRE(f.failures.size() == 1);
  CHECK_THAT(f.failures[0], Catch::Contains("refused the batch for"));
  CHECK(f.transactions > 2);
  committer->stop();
}
