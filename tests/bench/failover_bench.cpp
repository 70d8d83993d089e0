// Failover time on one host, measured by an external probe: repeated trials of SIGKILL, of
// graceful stop (SIGTERM) of the active node of a two-node SQLite cluster, and of a required
// plugin that stays down on the active (the supervision's handover after [plugin_host]
// failure_grace, 1 s here), timing from the fault to the first successful echo round-trip served
// by the node that takes over.
//
// Each node serves echo on a port of its own, and the probe connects only to the passive's
// port, so a round-trip can only come from the new active (a passive keeps the port closed).
// After each trial the stopped node is started again (it rejoins as passive) and the next trial
// stops the other one.
//
//   failover_bench [--trials N]      (default 50 per kind; ends with `bench: NAME VALUE UNIT`)
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "support/net.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using emsnode::testing::echo_roundtrip;
using emsnode::testing::eventually;
using emsnode::testing::free_port;
using emsnode::testing::http_request;
using emsnode::testing::Process;
using emsnode::testing::TempDir;

constexpr auto kFailureGrace = 1000ms;

struct Node {
  std::string conf;
  std::filesystem::path control;  // t-flaky's control folder: a file there breaks it
  std::uint16_t echo_port = 0;
  std::uint16_t admin_port = 0;
  std::unique_ptr<Process> process;
};

std::string config_of(const TempDir& dir, const std::string& id, const Node& node) {
  return "[node]\nid = \"" + id + "\"\ndata_dir = \"" + (dir / id).string() +
         "\"\n[database]\npath = \"" + (dir / "cluster.db").string() +
         "\"\nmigrate = true\n[store]\npath = \"" + (dir / "share").string() +
         "\"\n[log]\nconsole = false\nfile = \"" + (dir / (id + ".log")).string() +
         "\"\n[admin]\nlisten = \"127.0.0.1:" + std::to_string(node.admin_port) +
         "\"\n[plugins.echo]\nlisten = \"127.0.0.1:" + std::to_string(node.echo_port) +
         "\"\n[plugin_host]\ndirs = [\"" + EMSNODE_TEST_PLUGIN_DIR +
         "\"]\nrestart_backoff = \"100ms\"\nfailure_grace = \"" +
         std::to_string(kFailureGrace.count()) +
         "ms\"\nhandover_holdoff = \"0ms\"\n[plugins.t-flaky]\ncontrol = \"" +
         node.control.string() + "\"\n";
}

bool is_active(const Node& node) {
  return http_request(node.admin_port, "GET", "/healthz/active").status == 200;
}
bool is_passive(const Node& node) {
  return http_request(node.admin_port, "GET", "/healthz/active").status == 503;
}

double percentile(std::vector<double> samples, double p) {
  std::sort(samples.begin(), samples.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p * samples.size()));
  return samples[std::clamp<std::size_t>(rank, 1, samples.size()) - 1];
}

class Bench {
 public:
  Bench(const TempDir& dir, std::string emsnode) : dir_(dir), emsnode_(std::move(emsnode)) {
    for (int i = 0; i < 2; ++i) {
      Node& node = nodes_[i];
      node.echo_port = free_port();
      node.admin_port = free_port();
      node.control = dir / ("control" + std::to_string(i + 1));
      std::filesystem::create_directories(node.control);
      node.conf = dir.write("node" + std::to_string(i + 1) + ".toml",
                            config_of(dir, "node" + std::to_string(i + 1), node))
                      .string();
    }
  }

  void start(int i) {
    nodes_[i].process = std::make_unique<Process>(
        std::vector<std::string>{emsnode_, "--conf", nodes_[i].conf}, dir_.path());
  }

  // The index of the active node once one serves and the other is a ready passive.
  int settle() {
    int active = -1;
    const bool settled = eventually(
        [&] {
          for (int i = 0; i < 2; ++i) {
            if (is_active(nodes_[i]) && is_passive(nodes_[1 - i]) &&
                echo_roundtrip(nodes_[i].echo_port, "ready") == "ready") {
              active = i;
              return true;
            }
          }
          return false;
        },
        20s);
    if (!settled) throw std::runtime_error("the cluster did not settle on one active node");
    return active;
  }

  // One trial: stops the active with `sig`, returns the milliseconds until the other node
  // echoes, then restarts the stopped node as a passive.
  double trial(int sig) {
    const int active = settle();
    const auto fault = Clock::now();
    nodes_[active].process->signal(sig);
    const double ms = until_served_by(1 - active, fault);
    if (!nodes_[active].process->wait(10s)) throw std::runtime_error("the old active hung");
    start(active);
    return ms;
  }

  // One trial: breaks the active's required plugin for good (its start fails, it reports
  // FAILED), returns the milliseconds until the other node echoes, then repairs it: the node
  // stays passive (no preemption).
  double plugin_trial() {
    const int active = settle();
    const auto fault = Clock::now();
    for (const char* what : {"fail_start", "report_failed"}) {
      std::ofstream(nodes_[active].control / what).put('\n');
    }
    const double ms = until_served_by(1 - active, fault);
    for (const char* what : {"fail_start", "report_failed"}) {
      std::filesystem::remove(nodes_[active].control / what);
    }
    // As after any handover, the old active stays out one lease_ttl (2 s) so that the role
    // moves; the next trial starts once it competes again.
    std::this_thread::sleep_for(2500ms);
    return ms;
  }

  double until_served_by(int i, Clock::time_point fault) {
    while (echo_roundtrip(nodes_[i].echo_port, "probe", 1000) != "probe") {
      if (Clock::now() - fault > 30s) throw std::runtime_error("no node took over within 30s");
      std::this_thread::sleep_for(1ms);
    }
    return std::chrono::duration<double, std::milli>(Clock::now() - fault).count();
  }

 private:
  const TempDir& dir_;
  std::string emsnode_;
  Node nodes_[2];
};

void report(const std::string& kind, const std::vector<double>& samples, double target_p99) {
  const double p50 = percentile(samples, 0.50);
  const double p99 = percentile(samples, 0.99);
  const double max = *std::max_element(samples.begin(), samples.end());
  std::printf(
      "failover %s: %zu trials, p50 %.1f ms, p99 %.1f ms, max %.1f ms (target p99 <= %.0f ms)\n",
      kind.c_str(), samples.size(), p50, p99, max, target_p99);
  std::printf("bench: failover_%s_p50 %.1f ms\n", kind.c_str(), p50);
  std::printf("bench: failover_%s_p99 %.1f ms\n", kind.c_str(), p99);
  std::printf("bench: failover_%s_max %.1f ms\n", kind.c_str(), max);
}

}  // namespace

int main(int argc, char** argv) {
  int trials = 50;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--trials") == 0 && i + 1 < argc) {
      trials = std::max(1, std::atoi(argv[++i]));
    } else {
      std::cerr << "usage: failover_bench [--trials N]\n";
      return 2;
    }
  }
  try {
    TempDir dir;
    Bench bench(dir, EMSNODE_BINARY);
    bench.start(0);
    bench.start(1);
    std::vector<double> killed;
    std::vector<double> graceful;
    std::vector<double> plugin_failed;
    for (int t = 0; t < trials; ++t) {
      killed.push_back(bench.trial(SIGKILL));
      graceful.push_back(bench.trial(SIGTERM));
      plugin_failed.push_back(bench.plugin_trial());
    }
    report("sigkill", killed, 500);
    report("graceful", graceful, 300);
    // The grace, then a planned handover: a graceful failover's time on top.
    report("plugin_failed", plugin_failed,
           std::chrono::duration<double, std::milli>(kFailureGrace).count() + 300);
  } catch (const std::exception& e) {
    std::cerr << "failover_bench: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
