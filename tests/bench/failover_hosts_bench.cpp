// Failover time across hosts: a two-node cluster on PostgreSQL, every node and the database on a
// host of its own (network namespaces). Repeated trials of SIGKILL (a crashed host: the peer
// waits for the lease to expire on the database's clock) and of graceful stop (SIGTERM: the
// lease is released and the peer is woken through the database at once), timed from the fault
// to the first echo round-trip served by the peer, from a client host.
//
//   failover_hosts_bench [--trials N]   (default 20 per kind; ends with `bench: NAME VALUE UNIT`)
//
// Exit status 77 (skipped) without root, namespaces or the PostgreSQL server.
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "support/net_cluster.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using emsnode::testing::eventually;
using emsnode::testing::NetCluster;
using emsnode::testing::TempDir;

double percentile(std::vector<double> samples, double p) {
  std::sort(samples.begin(), samples.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p * samples.size()));
  return samples[std::clamp<std::size_t>(rank, 1, samples.size()) - 1];
}

// The active node's index once it serves and the other is a ready passive.
std::size_t settle(NetCluster& cluster) {
  const auto active = cluster.await_single_active(30s);
  if (!active || !cluster.await_passive(1 - *active, 30s)) {
    throw std::runtime_error("the cluster did not settle on one active node");
  }
  return *active;
}

// Stops the active with `sig`; the milliseconds until the peer echoes. The stopped node is
// started again (it rejoins as a passive).
double trial(NetCluster& cluster, int sig) {
  const std::size_t active = settle(cluster);
  const std::size_t peer = 1 - active;
  const auto fault = Clock::now();
  cluster.signal(active, sig);
  while (!cluster.serves_echo(peer, 1000)) {
    if (Clock::now() - fault > 30s) throw std::runtime_error("no node took over within 30s");
    std::this_thread::sleep_for(1ms);
  }
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - fault).count();
  if (!cluster[active].process->wait(15s)) throw std::runtime_error("the old active hung");
  cluster.start(active);
  return ms;
}

void report(const std::string& kind, const std::vector<double>& samples, double target_p99) {
  const double p50 = percentile(samples, 0.50);
  const double p99 = percentile(samples, 0.99);
  const double max = *std::max_element(samples.begin(), samples.end());
  std::printf(
      "failover across hosts, %s: %zu trials, p50 %.1f ms, p99 %.1f ms, max %.1f ms "
      "(target p99 <= %.0f ms)\n",
      kind.c_str(), samples.size(), p50, p99, max, target_p99);
  std::printf("bench: failover_hosts_%s_p50 %.1f ms\n", kind.c_str(), p50);
  std::printf("bench: failover_hosts_%s_p99 %.1f ms\n", kind.c_str(), p99);
  std::printf("bench: failover_hosts_%s_max %.1f ms\n", kind.c_str(), max);
}

}  // namespace

int main(int argc, char** argv) {
  int trials = 20;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--trials") == 0 && i + 1 < argc) {
      trials = std::max(1, std::atoi(argv[++i]));
    } else {
      std::cerr << "usage: failover_hosts_bench [--trials N]\n";
      return 2;
    }
  }
  if (const auto why = NetCluster::unavailable()) {
    std::cout << "failover_hosts_bench: SKIPPED: " << *why << "\n";
    return 77;
  }
  try {
    TempDir dir;
    NetCluster cluster(EMSNODE_BINARY, dir, 2);
    cluster.start_all();
    std::vector<double> killed;
    std::vector<double> graceful;
    for (int t = 0; t < trials; ++t) {
      killed.push_back(trial(cluster, SIGKILL));
      graceful.push_back(trial(cluster, SIGTERM));
    }
    report("sigkill", killed, 2500);
    report("graceful", graceful, 300);
  } catch (const std::exception& e) {
    std::cerr << "failover_hosts_bench: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
