#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>

#include "host/executor.hpp"
#include "host_test_support.hpp"
#include "support/process.hpp"
#include "support/sanitizers.hpp"

namespace emsnode::host {
namespace {

using namespace std::chrono_literals;
using emsnode::testing::eventually;

struct Probe {
  std::atomic<int> runs{0};
  std::atomic<bool> inside{false};
  std::atomic<bool> release{false};
  std::atomic<emsnode_timer_id> id{0};
  TaskGroup* group = nullptr;
};

void count(void* p) {
  ++static_cast<Probe*>(p)->runs;
}

// Runs for 300ms, flagging when it is inside.
void slow(void* p) {
  auto* probe = static_cast<Probe*>(p);
  probe->inside = true;
  std::this_thread::sleep_for(300ms);
  ++probe->runs;
  probe->inside = false;
}

// Blocks until released (at most 5s).
void blocking(void* p) {
  auto* probe = static_cast<Probe*>(p);
  probe->inside = true;
  for (int i = 0; i < 500 && !probe->release; ++i) std::this_thread::sleep_for(10ms);
  ++probe->runs;
}

void cancel_itself(void* p) {
  auto* probe = static_cast<Probe*>(p);
  ++probe->runs;
  probe->group->timer_cancel(probe->id);
}

}  // namespace

TEST_CASE("work is accepted only while the group is open") {
  Executor executor(1s);
  auto group = std::make_shared<TaskGroup>(executor, "t");
  Probe probe;
  CHECK_FALSE(group->post(count, &probe));
  CHECK(group->timer_start(0ms, 0ms, count, &probe) == 0);

  group->open();
  CHECK(group->post(count, &probe));
  CHECK(group->timer_start(0ms, 0ms, count, &probe) != 0);
  CHECK(eventually([&] { return probe.runs == 2; }));

  group->stop_accepting();
  CHECK_FALSE(group->post(count, &probe));
  CHECK(group->timer_start(0ms, 0ms, count, &probe) == 0);
}

TEST_CASE("timer_cancel returns only once the running callback has finished") {
  Executor executor(1s);
  auto group = std::make_shared<TaskGroup>(executor, "t");
  group->open();
  Probe probe;
  const emsnode_timer_id id = group->timer_start(0ms, 50ms, slow, &probe);
  REQUIRE(eventually([&] { return probe.inside.load(); }));
  group->timer_cancel(id);
  CHECK_FALSE(probe.inside);
  CHECK(probe.runs == 1);
  std::this_thread::sleep_for(150ms);
  CHECK(probe.runs == 1);  // and it never runs again
}

TEST_CASE("a timer cancels itself from its own callback without waiting on itself") {
  Executor executor(1s);
  auto group = std::make_shared<TaskGroup>(executor, "t");
  group->open();
  Probe probe;
  probe.group = group.get();
  probe.id = group->timer_start(50ms, 10ms, cancel_itself, &probe);
  REQUIRE(eventually([&] { return probe.runs >= 1; }));
  std::this_thread::sleep_for(100ms);
  CHECK(probe.runs == 1);
  CHECK(group->armed_timers() == 0);
}

TEST_CASE("periodic timers repeat and fired one-shot timers are no longer armed") {
  Executor executor(1s);
  auto group = std::make_shared<TaskGroup>(executor, "t");
  group->open();
  Probe periodic;
  Probe once;
  const emsnode_timer_id id = group->timer_start(5ms, 5ms, count, &periodic);
  group->timer_start(5ms, 0ms, count, &once);
  CHECK(eventually([&] { return periodic.runs >= 3 && once.runs == 1; }));
  CHECK(group->armed_timers() == 1);
  group->timer_cancel(id);
  group->timer_cancel(id);  // again: harmless
  CHECK(group->armed_timers() == 0);
}

TEST_CASE("close cancels and counts armed timers and drops tasks not yet run") {
  Executor executor(1s);
  auto busy = std::make_shared<TaskGroup>(executor, "busy");
  auto group = std::make_shared<TaskGroup>(executor, "t");
  busy->open();
  group->open();
  Probe blocker;
  Probe probe;
  // Keep the executor thread busy so the posted task is still queued at close.
  busy->post(blocking, &blocker);
  REQUIRE(eventually([&] { return blocker.inside.load(); }));
  group->timer_start(1h, 0ms, count, &probe);
  group->timer_start(0ms, 1ms, count, &probe);
  group->post(count, &probe);

  const TaskGroup::CloseResult closed = group->close(std::chrono::steady_clock::now() + 1s);
  CHECK(closed.leaked_timers == 2);
  CHECK(closed.callback_finished);
  blocker.release = true;
  REQUIRE(eventually([&] { return blocker.runs == 1; }));
  std::this_thread::sleep_for(50ms);
  CHECK(probe.runs == 0);
  CHECK_FALSE(group->post(count, &probe));  // closed until opened again

  group->open();
  CHECK(group->post(count, &probe));
  CHECK(eventually([&] { return probe.runs == 1; }));
}

TEST_CASE("close waits for a running callback no longer than its deadline") {
  Executor executor(1s);
  auto group = std::make_shared<TaskGroup>(executor, "t");
  group->open();
  Probe probe;
  group->post(slow, &probe);
  REQUIRE(eventually([&] { return probe.inside.load(); }));
  const auto began = std::chrono::steady_clock::now();
  CHECK_FALSE(group->close(began + 50ms).callback_finished);
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - began < 250ms);
  CHECK(group->close(std::chrono::steady_clock::now() + 2s).callback_finished);
  CHECK(probe.runs == 1);
}

TEST_CASE("a callback that throws does not take the executor down") {
  Executor executor(1s);
  auto group = std::make_shared<TaskGroup>(executor, "t");
  group->open();
  Probe probe;
  group->post([](void*) { throw std::runtime_error("plugin bug"); }, nullptr);
  group->post(count, &probe);
  CHECK(eventually([&] { return probe.runs == 1; }));
}

TEST_CASE("the executor does not wait past its grace for a callback that never ends") {
  Probe probe;
  const auto began = std::chrono::steady_clock::now();
  {
    Executor executor(100ms);
    auto group = std::make_shared<TaskGroup>(executor, "t");
    group->open();
    group->post(blocking, &probe);
    REQUIRE(eventually([&] { return probe.inside.load(); }));
    group->close(std::chrono::steady_clock::now());
  }
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - began < 1s);
  probe.release = true;  // let the thread left behind finish
  CHECK(eventually([&] { return probe.runs == 1; }));
}

TEST_CASE("a callback that runs longer than the threshold is logged as slow, with the plugin id") {
  testing::Sandbox box;
  testing::LogCapture log(box.root() / "log.txt");
  Probe probe;
  {
    Executor executor(1s, 100ms);
    auto group = std::make_shared<TaskGroup>(executor, "t-slow");
    group->open();
    group->post(count, &probe);
    group->post(slow, &probe);
    REQUIRE(eventually([&] { return probe.runs == 2; }));
    group->close(std::chrono::steady_clock::now() + 1s);
  }  // the executor's thread is joined: its records are written
  const std::string text = log.text();
  CHECK(contains(text, "plugin.callback_slow id=t-slow elapsed_ms="));
  CHECK(contains(text, "threshold_ms=100"));
  // Once: the quick callback is not reported.
  CHECK(text.find("plugin.callback_slow") == text.rfind("plugin.callback_slow"));
}

}  // namespace emsnode::host
