// The group committer against the SDK's fake host: batching, ordering, and fencing.
#include "group_commit.hpp"

#include <emsnode/plugin.hpp>
#include <emsnode/testing/fake_host.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using emsnode::plugins::mq::GroupCommitOptions;
using emsnode::plugins::mq::GroupCommitter;
using emsnode::plugins::mq::StoreOp;
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
  std::vector<std::string> failures;
};

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
  GroupCommitter committer(
      f.host, options, [&](std::function<void()> fn) { f.inbox.post(std::move(fn)); },
      [&](const std::string& reason) { f.failures.push_back(reason); });
  committer.start();
  std::vector<int> done;
  for (int i = 0; i < 3; ++i) {
    committer.submit(session_ops("c" + std::to_string(i)), [&done, i] { done.push_back(i); });
  }
  REQUIRE(f.inbox.run() == 1);  // one dispatch for the whole batch
  CHECK(done == std::vector<int>{0, 1, 2});
  CHECK(f.transactions == 1);
  CHECK(f.statements.size() == 3);
  const auto batch = f.fake.metric("commit_batch_operations");
  REQUIRE(batch.has_value());
  CHECK(batch->observations == std::vector<double>{3});
  committer.stop();
}

TEST_CASE("a completion with nothing to write and nothing before it needs no transaction") {
  Fixture f;
  GroupCommitter committer(
      f.host, GroupCommitOptions{}, [&](std::function<void()> fn) { f.inbox.post(std::move(fn)); },
      [&](const std::string& reason) { f.failures.push_back(reason); });
  committer.start();
  bool done = false;
  committer.submit({}, [&] { done = true; });
  REQUIRE(f.inbox.run() == 1);
  CHECK(done);
  CHECK(f.transactions == 0);
  committer.stop();
}

TEST_CASE("a fenced batch acknowledges nothing, reports the failure, and takes nothing more") {
  Fixture f;
  f.fenced = true;
  GroupCommitter committer(
      f.host, GroupCommitOptions{}, [&](std::function<void()> fn) { f.inbox.post(std::move(fn)); },
      [&](const std::string& reason) { f.failures.push_back(reason); });
  committer.start();
  bool acknowledged = false;
  committer.submit(session_ops("c"), [&] { acknowledged = true; });
  REQUIRE(f.inbox.run() == 1);
  CHECK_FALSE(acknowledged);
  REQUIRE(f.failures.size() == 1);
  CHECK_THAT(f.failures[0], Catch::Contains("fenced") && Catch::Contains("epoch 7"));
  CHECK(f.transactions == 1);  // not retried: it cannot succeed

  committer.submit({}, [&] { acknowledged = true; });
  CHECK(f.inbox.run(200ms) == 0);
  CHECK_FALSE(acknowledged);
  CHECK(f.fake.last_log("mq.commit_fenced").has_value());
  committer.stop();
}
