// The fault campaign: three emsnode nodes and PostgreSQL, each on a host of its own (network
// namespaces), a client driving the probe service (epoch-stamped reads and fenced writes) while
// random faults hit the cluster one after another. Afterwards the checker judges the history
// (history.hpp) and the runner prints the counts and the outage distribution per fault kind.
//
// Besides the node, the network, the database and the clock, a fault may hit the active's probe
// plugin (steered through files in its control folder), to test the host's supervision:
//   plugin_fail   the probe reports FAILED and fails its restarts: after failure_grace the node
//                 hands over and is held off; repaired at once, it must stay out while held off
//                 when the node that took over is killed.
//   plugin_fault  the probe hangs in stop and a switchover faults it; the node that took over is
//                 killed: a healthy node, not the faulted one, must take over. The operator then
//                 restarts the faulted node's process.
//
//   chaos_runner --emsnode BIN --plugins DIR [--faults 50] [--seed N] [--kinds k1,k2]
//                [--logs DIR]   (copies the nodes' logs there at the end)
//
// Exit status: 0 no violation, 1 violations (listed), 2 bad arguments, 77 skipped (no root,
// namespaces or PostgreSQL here).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "history.hpp"
#include "support/net_cluster.hpp"

namespace emsnode::chaos {
namespace {

using testing::NetCluster;
using Clock = std::chrono::steady_clock;

constexpr std::uint16_t kProbePort = 18014;
constexpr int kExchangeTimeoutMs = 1000;
constexpr std::int64_t kLeaseTtlUs = 2'000'000;  // the default [role] lease_ttl
// Service must be back within the lease period plus this: the passive's poll, the database
// round trips of the takeover, a restarted PostgreSQL's reconnect, the client's own timeout.
constexpr std::int64_t kServiceBoundExtraUs = 2'500'000;
// The nodes' supervision timers ([plugin_host]), short so that a plugin fault passes quickly.
// The hold-off outlasts the second blow of plugin_fail: the kill of the node that took over and
// the lease's expiry after it.
constexpr std::int64_t kRestartBackoffUs = 100'000;
constexpr std::int64_t kFailureGraceUs = 1'000'000;
constexpr std::int64_t kHandoverHoldoffUs = 5'000'000;
constexpr std::int64_t kStopDeadlineUs = 300'000;
constexpr auto kSettleLimit = std::chrono::seconds(30);
constexpr std::size_t kMaxExchanges = 5'000'000;  // the load stops by itself, whatever happens

const std::vector<std::string> kAllKinds = {
    "kill",       "stop",       "partition_active", "partition_passive",
    "db_restart", "clock_step", "plugin_fail",      "plugin_fault"};

struct Options {
  std::string emsnode;
  std::string plugins;
  int faults = 50;
  std::uint64_t seed = 0;
  std::vector<std::string> kinds = kAllKinds;
  std::string logs;  // where to copy the nodes' and the server's logs at the end
};

std::string duration(std::int64_t us) {
  return "\"" + std::to_string(us / 1000) + "ms\"";
}

std::int64_t now_us(Clock::time_point origin) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - origin).count();
}

// The client: one request at a time to the node that answered last (else the next one), reads
// and writes alternating, from the client host. Runs until `stop`.
class Load {
 public:
  Load(NetCluster& cluster, Clock::time_point origin) : cluster_(cluster), origin_(origin) {
    thread_ = std::thread([this] { cluster_.lab().from(cluster_.client(), [this] { run(); }); });
  }
  ~Load() { finish(); }

  void finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::vector<Exchange> history() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return history_;
  }
  // Whether a request sent at `from_us` or later was served under an epoch newer than `epoch`.
  bool served_since(std::int64_t from_us, std::uint64_t epoch) {
    const std::lock_guard<std::mutex> lock(mutex_);
    for (auto e = history_.rbegin(); e != history_.rend() && e->sent_us >= from_us; ++e) {
      if (e->ok && e->epoch > epoch) return true;
    }
    return false;
  }

 private:
  void run() {
    std::size_t target = 0;
    for (std::size_t n = 0; !stop_ && n < kMaxExchanges; ++n) {
      Exchange e;
      e.kind = n % 2 == 0 ? Exchange::Kind::read : Exchange::Kind::write;
      std::string request = "R\n";
      if (e.kind == Exchange::Kind::write) {
        e.write_id = "w" + std::to_string(n);
        request = "W " + e.write_id + "\n";
      }
      e.sent_us = now_us(origin_);
      const auto reply = testing::tcp_exchange(
          cluster_[target].host->address, kProbePort, request, kExchangeTimeoutMs,
          [](const std::string& r) { return r.find('\n') != std::string::npos; });
      e.received_us = now_us(origin_);
      parse(reply.value_or(""), e);
      if (!e.ok) target = (target + 1) % cluster_.size();
      {
        const std::lock_guard<std::mutex> lock(mutex_);
        history_.push_back(std::move(e));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  static void parse(const std::string& reply, Exchange& e) {
    std::istringstream in(reply);
    std::string word;
    in >> word;
    if (word == "R" && e.kind == Exchange::Kind::read) {
      e.ok = static_cast<bool>(in >> e.node >> e.epoch);
    } else if (word == "OK" && e.kind == Exchange::Kind::write) {
      e.ok = static_cast<bool>(in >> e.node >> e.epoch >> e.seq);
    }
    if (!e.ok) e.refusal = word.empty() ? "no answer" : word;
  }

  NetCluster& cluster_;
  Clock::time_point origin_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<Exchange> history_;
  std::thread thread_;
};

class Campaign {
 public:
  // `control`: the probes' control folder, holding one folder per node.
  Campaign(const Options& options, NetCluster& cluster, Load& load, std::filesystem::path control)
      : options_(options),
        cluster_(cluster),
        load_(load),
        control_(std::move(control)),
        random_(options.seed) {}

  std::vector<Fault> run(Clock::time_point origin) {
    std::vector<Fault> faults;
    for (int i = 0; i < options_.faults; ++i) {
      const auto active = cluster_.await_single_active(kSettleLimit);
      if (!active) {
        std::cerr << "chaos: no single active node before fault " << i + 1 << "\n";
        faults.push_back(Fault{"(none)", "-", now_us(origin), now_us(origin), 0, 0, false});
        break;
      }
      Fault fault;
      fault.kind = options_.kinds[pick(options_.kinds.size())];
      fault.epoch_before = cluster_.status(*active).lease_epoch;
      inject(fault, *active, origin);
      fault.settled = settle();
      if (fault.settled) {
        await_served(now_us(origin), 0);
      } else {
        report_nodes();
      }
      fault.epoch_after = lease_epoch();
      std::cerr << "chaos: fault " << i + 1 << "/" << options_.faults << " " << fault.kind << " of "
                << fault.target << ": epoch " << fault.epoch_before << " -> " << fault.epoch_after
                << (fault.settled ? "" : " (did not settle)") << "\n";
      faults.push_back(fault);
      if (!fault.settled) break;
    }
    return faults;
  }

 private:
  std::size_t pick(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(random_);
  }
  std::chrono::milliseconds between(int low_ms, int high_ms) {
    return std::chrono::milliseconds(std::uniform_int_distribution<int>(low_ms, high_ms)(random_));
  }
  std::size_t passive_other_than(std::size_t active) {
    std::size_t i = pick(cluster_.size() - 1);
    return i >= active ? i + 1 : i;
  }

  void inject(Fault& fault, std::size_t active, Clock::time_point origin) {
    const std::string& kind = fault.kind;
    std::size_t target = active;
    if (kind == "partition_passive") target = passive_other_than(active);
    if (kind == "clock_step") target = pick(cluster_.size());
    fault.target = kind == "db_restart" ? "db" : cluster_[target].id;
    fault.at_us = now_us(origin);
    if (kind == "kill") {
      cluster_.kill(target);
      // The recovered node comes back once a peer has taken over: it must not preempt.
      await_active_other_than(target);
      cluster_.start(target);
    } else if (kind == "plugin_fail" || kind == "plugin_fault") {
      break_probe(fault, target, origin);
    } else if (kind == "stop") {
      cluster_.signal(target, SIGSTOP);
      std::this_thread::sleep_for(std::chrono::milliseconds(kLeaseTtlUs / 1000) +
                                  between(300, 2000));
      cluster_.signal(target, SIGCONT);
    } else if (kind == "partition_active") {
      cluster_.lab().cut(*cluster_[target].host, cluster_.db_host().address);
      std::this_thread::sleep_for(between(2500, 5000));
      cluster_.lab().heal(*cluster_[target].host);
    } else if (kind == "partition_passive") {
      cluster_.lab().isolate(*cluster_[target].host);
      std::this_thread::sleep_for(between(2500, 5000));
      cluster_.lab().heal(*cluster_[target].host);
    } else if (kind == "db_restart") {
      cluster_.postgres().restart(pick(2) == 0 ? "fast" : "immediate");
    } else if (kind == "clock_step") {
      const long step = (pick(2) == 0 ? 1 : -1) * static_cast<long>(60 + pick(3600));
      cluster_.step_clock(target, step);
      std::this_thread::sleep_for(between(2000, 3000));
      cluster_.step_clock(target, 0);
    }
    fault.healed_us = now_us(origin);
  }

  // The single active node once it is another than `node`; nullopt after the settle limit.
  std::optional<std::size_t> await_active_other_than(std::size_t node) {
    std::optional<std::size_t> active;
    testing::eventually(
        [&] {
          active = cluster_.single_active();
          return active && *active != node;
        },
        kSettleLimit);
    return active && *active != node ? active : std::nullopt;
  }

  void break_probe(Fault& fault, std::size_t target, Clock::time_point origin) {
    const bool fail = fault.kind == "plugin_fail";
    if (fail) {
      tell(target, {"fail_start", "report_failed"});
      // The hand-over comes after the grace at the earliest, the hold-off from then on.
      fault.held_off_until_us = fault.at_us + kFailureGraceUs + kHandoverHoldoffUs;
    } else {
      tell(target, {"hang_stop"});
      const auto reply = cluster_.admin(target, "POST", "/switchover", 5000);
      if (reply.status != 200) {
        std::cerr << "chaos: switchover refused by " << fault.target << ": " << reply.status << " "
                  << reply.body << "\n";
      }
    }
    const auto heir = await_active_other_than(target);
    const std::int64_t heir_seen_us = now_us(origin);
    await_served(fault.at_us, fault.epoch_before);
    // The operator removes the cause at once; the node that took over dies.
    for (const auto& entry : std::filesystem::directory_iterator(control_of(target))) {
      std::filesystem::remove(entry.path());
    }
    if (heir) {
      const auto status = cluster_.status(*heir);
      fault.epoch_second = status.answered ? status.lease_epoch : fault.epoch_before + 1;
      fault.second_at_us = now_us(origin);
      cluster_.kill(*heir);
      await_active_other_than(*heir);
      cluster_.start(*heir);
    }
    if (fail) {
      // The hold-off ran from the hand-over, before the heir was seen. Past it, every node is
      // eligible again: the next fault must not find two sick nodes, each of which may serve as
      // long as the other cannot (a settled cluster does not show it: a held-off node reads
      // lease_held while no other passive could serve).
      std::this_thread::sleep_until(origin +
                                    std::chrono::microseconds(heir_seen_us + kHandoverHoldoffUs));
      return;
    }
    // A faulted plugin stays out until its process restarts, as its operator now does.
    fault.held_off_until_us = now_us(origin);
    if (!cluster_.stop(target)) {
      std::cerr << "chaos: " << fault.target << " with a faulted plugin did not exit on SIGTERM\n";
      cluster_.kill(target);
    }
    cluster_.start(target);
  }

  // Waits until the client has been served under an epoch newer than `epoch`, by a request sent
  // at `from_us` or later: the next blow must not fall before the checker can see that the
  // service resumed.
  void await_served(std::int64_t from_us, std::uint64_t epoch) {
    testing::eventually([&] { return load_.served_since(from_us, epoch); }, kSettleLimit);
  }

  std::filesystem::path control_of(std::size_t node) { return control_ / cluster_[node].id; }
  void tell(std::size_t node, std::initializer_list<const char*> files) {
    for (const char* file : files) std::ofstream(control_of(node) / file).put('\n');
  }

  // One active node, every other node up and passive behind it, and all still so a moment later.
  bool settle() {
    const auto behind = [&](std::size_t active) {
      for (std::size_t i = 0; i < cluster_.size(); ++i) {
        if (i != active && !cluster_.await_passive(i, std::chrono::milliseconds(0))) return false;
      }
      return true;
    };
    return testing::eventually(
        [&] {
          const auto active = cluster_.single_active();
          if (!active || !behind(*active)) return false;
          std::this_thread::sleep_for(std::chrono::milliseconds(300));
          return cluster_.single_active() == active && behind(*active);
        },
        kSettleLimit);
  }

  // Why the cluster did not settle: each node's state and the end of its standard error.
  void report_nodes() {
    for (std::size_t i = 0; i < cluster_.size(); ++i) {
      const auto status = cluster_.status(i);
      const std::string err = cluster_[i].process ? cluster_[i].process->err() : "";
      std::cerr << "chaos: " << cluster_[i].id << (cluster_.running(i) ? " running" : " exited")
                << ", role " << (status.answered ? status.role : "(no answer)") << ", reason "
                << status.not_active_reason << "\n"
                << err.substr(err.size() > 2000 ? err.size() - 2000 : 0);
    }
  }

  std::uint64_t lease_epoch() {
    for (std::size_t i = 0; i < cluster_.size(); ++i) {
      const auto status = cluster_.status(i);
      if (status.answered) return status.lease_epoch;
    }
    return 0;
  }

  const Options& options_;
  NetCluster& cluster_;
  Load& load_;
  const std::filesystem::path control_;
  std::mt19937_64 random_;
};

std::vector<WriteRow> read_rows(NetCluster& cluster) {
  std::vector<WriteRow> rows;
  std::istringstream lines(cluster.postgres().psql(
      "SELECT id, seq, epoch, node FROM probe_writes ORDER BY seq", NetCluster::kDatabase));
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    WriteRow row;
    std::string seq, epoch;
    std::getline(fields, row.id, '|');
    std::getline(fields, seq, '|');
    std::getline(fields, epoch, '|');
    std::getline(fields, row.node, '|');
    row.seq = std::stoll(seq);
    row.epoch = std::stoull(epoch);
    rows.push_back(row);
  }
  return rows;
}

void print(const Report& report, const Options& options) {
  std::cout << "chaos: seed " << options.seed << ", " << report.exchanges << " exchanges, "
            << report.acknowledged_writes << " acknowledged writes\n";
  int total = 0;
  for (const auto& [kind, count] : report.faults) total += count;
  std::cout << "chaos: " << total << " faults injected\n";
  for (const auto& [kind, count] : report.faults) {
    const auto it = report.outage_us.find(kind);
    const std::vector<std::int64_t> outages =
        it == report.outage_us.end() ? std::vector<std::int64_t>{} : it->second;
    std::printf("chaos: %-18s %4d faults  outage p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms\n",
                kind.c_str(), count, quantile(outages, 0.50) / 1000.0,
                quantile(outages, 0.99) / 1000.0, quantile(outages, 1.0) / 1000.0);
    const auto second = report.outage_us.find(kind + "/kill");
    if (second == report.outage_us.end()) continue;
    std::printf("chaos: %-18s %4zu blows   outage p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms\n",
                second->first.c_str(), second->second.size(),
                quantile(second->second, 0.50) / 1000.0, quantile(second->second, 0.99) / 1000.0,
                quantile(second->second, 1.0) / 1000.0);
  }
  for (const auto& [refusal, count] : report.refusals) {
    std::cout << "chaos: " << count << " exchanges unanswered or refused: " << refusal << "\n";
  }
  for (const std::string& violation : report.violations) {
    std::cout << "chaos: VIOLATION " << violation << "\n";
  }
  std::cout << "bench: chaos_faults " << total << " count\n";
  std::cout << "bench: chaos_violations " << report.violations.size() << " count\n";
}

int usage(const std::string& why) {
  std::string kinds;
  for (const std::string& kind : kAllKinds) kinds += (kinds.empty() ? "" : ",") + kind;
  std::cerr << "chaos_runner: " << why << "\nusage: chaos_runner --emsnode BIN --plugins DIR "
            << "[--faults N] [--seed N] [--kinds " << kinds << "] [--logs DIR]\n";
  return 2;
}

int run(int argc, char** argv) {
  Options options;
  options.seed = std::random_device{}();
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return usage(arg + " needs a value");
    const std::string value = argv[++i];
    // The nodes run in a folder of their own: paths are made absolute.
    if (arg == "--emsnode") {
      options.emsnode = std::filesystem::absolute(value).string();
    } else if (arg == "--plugins") {
      options.plugins = std::filesystem::absolute(value).string();
    } else if (arg == "--faults") {
      options.faults = std::stoi(value);
    } else if (arg == "--logs") {
      options.logs = value;
    } else if (arg == "--seed") {
      options.seed = std::stoull(value);
    } else if (arg == "--kinds") {
      options.kinds.clear();
      std::istringstream list(value);
      for (std::string kind; std::getline(list, kind, ',');) {
        if (std::find(kAllKinds.begin(), kAllKinds.end(), kind) == kAllKinds.end()) {
          return usage("unknown fault kind " + kind);
        }
        options.kinds.push_back(kind);
      }
    } else {
      return usage("unknown option " + arg);
    }
  }
  if (options.emsnode.empty() || options.plugins.empty()) return usage("--emsnode and --plugins");
  if (options.faults < 1 || options.kinds.empty()) return usage("nothing to inject");
  if (const auto why = NetCluster::unavailable()) {
    std::cout << "chaos: SKIPPED: " << *why << "\n";
    return 77;
  }
  if (!NetCluster::can_step_clocks()) {
    const auto at = std::find(options.kinds.begin(), options.kinds.end(), "clock_step");
    if (at != options.kinds.end()) {
      std::cout << "chaos: no clock steps: libfaketime is missing (package faketime)\n";
      options.kinds.erase(at);
      if (options.kinds.empty()) return usage("nothing to inject");
    }
  }

  testing::TempDir dir;
  const std::filesystem::path control = dir.path() / "probe-control";
  NetCluster cluster(options.emsnode, dir, 3,
                     "[plugin_host]\ndirs = [\"" + options.plugins +
                         "\"]\nrestart_backoff = " + duration(kRestartBackoffUs) +
                         "\nfailure_grace = " + duration(kFailureGraceUs) +
                         "\nhandover_holdoff = " + duration(kHandoverHoldoffUs) +
                         "\nstop_deadline = " + duration(kStopDeadlineUs) +
                         "\n\n[plugins.probe]\nlisten = \"0.0.0.0:" + std::to_string(kProbePort) +
                         "\"\ncontrol = \"" + control.string() + "\"\n",
                     /*steppable_clocks=*/true);
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    std::filesystem::create_directories(control / cluster[i].id);
  }
  cluster.start_all();
  if (!cluster.await_single_active(kSettleLimit)) {
    std::cerr << "chaos: the cluster never had one active node\n";
    return 1;
  }
  const auto origin = Clock::now();
  Load load(cluster, origin);
  Campaign campaign(options, cluster, load, control);
  const std::vector<Fault> faults = campaign.run(origin);
  std::this_thread::sleep_for(std::chrono::seconds(1));  // service after the last fault
  load.finish();

  // A plugin's failure hands over after the grace, a faulted stop after the stop deadline; the
  // takeover after a second blow (a kill) has the same bound as a kill.
  Bounds bounds{kLeaseTtlUs + kServiceBoundExtraUs};
  bounds.service_gap_by_kind_us = {{"plugin_fail", kFailureGraceUs + kServiceBoundExtraUs},
                                   {"plugin_fault", kStopDeadlineUs + kServiceBoundExtraUs}};
  const Report report = check(load.history(), faults, read_rows(cluster), bounds);
  print(report, options);
  if (!options.logs.empty()) {
    const std::filesystem::path logs = options.logs;
    std::filesystem::create_directories(logs);
    for (std::size_t i = 0; i < cluster.size(); ++i) {
      std::filesystem::copy_file(cluster[i].log, logs / cluster[i].log.filename(),
                                 std::filesystem::copy_options::overwrite_existing);
    }
    std::filesystem::copy_file(dir.path() / "postgres" / "server.log", logs / "postgres.log",
                               std::filesystem::copy_options::overwrite_existing);
  }
  return report.violations.empty() ? 0 : 1;
}

}  // namespace
}  // namespace emsnode::chaos

int main(int argc, char** argv) {
  try {
    return emsnode::chaos::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "chaos_runner: " << e.what() << "\n";
    return 1;
  }
}
