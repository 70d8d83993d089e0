// Holding the lease means serving: the supervisor watches the plugins while the host serves and
// acts when one is down (failed, faulted, or running but reporting FAILED).
//
//   - It restarts a down plugin (PluginHost::restart) after a backoff: restart_backoff, doubling
//     up to restart_backoff_max, each wait drawn within +-25 % so that plugins and nodes do not
//     retry in step.
//   - A required plugin down for longer than failure_grace makes the active hand over to a node
//     that could serve (Cluster::ready_peer), with the reason plugin_failed:<id>. Without such a
//     node the active keeps serving what it can, and says so (supervisor.no_peer).
//   - After such a handover the node is held off (promotion_blocker: plugin_failed:<id>) for
//     handover_holdoff, so the role does not flap between two sick nodes; a node with a faulted
//     plugin is held off (plugin_faulted) until the process restarts. Both only while another
//     node could serve: a lone node serves what it can.
//
// One thread of its own, woken every kTick and at each deadline. Every exception on it is
// caught and logged (supervisor.error); it never ends the process.
//
// Log events (component "host"): plugin.down, plugin.recovered, plugin.restart_failed,
// supervisor.handover, supervisor.no_peer, supervisor.error.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include "config/node_config.hpp"
#include "host/plugin_host.hpp"
#include "log/log.hpp"

namespace emsnode::host {

struct SupervisionPolicy {
  std::chrono::milliseconds restart_backoff{500};
  std::chrono::milliseconds restart_backoff_max{30000};
  std::chrono::milliseconds failure_grace{5000};
  std::chrono::milliseconds handover_holdoff{60000};

  static SupervisionPolicy of(const config::PluginHostConfig& config);
  // The wait before restart attempt `attempt` (0 for the first), jitter applied from `random`.
  std::chrono::milliseconds backoff(unsigned attempt, std::mt19937& random) const;
};

// What the supervisor asks of the rest of the node.
struct Cluster {
  // The id of another node that could take over now (seen recently, not paused, not held off,
  // same or newer version), or nullopt; with `or_held_off`, a node held off after a handover
  // counts too (it is still a better choice than a node with a faulted plugin). May read the
  // database.
  std::function<std::optional<std::string>(bool or_held_off)> ready_peer;
  // Starts a planned handover to `to` with `reason` (the role manager's switchover). May throw.
  std::function<void(const std::string& to, const std::string& reason)> hand_over;
};

class Supervisor {
 public:
  // `host` must outlive this object. Starts the thread.
  Supervisor(PluginHost& host, SupervisionPolicy policy, Cluster cluster);
  ~Supervisor();  // stop()
  // Joins the thread: no more restarts or handovers (before the node stops its role manager).
  // The questions below still answer. Idempotent.
  void stop();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // "" when this node may take the lease as far as its plugins go, else why not
  // (plugin_faulted, plugin_failed:<id>). For the role manager, before each attempt to acquire;
  // thread-safe.
  std::string promotion_blocker();
  // Why this node stands aside, whatever its peers: plugin_faulted, plugin_failed:<id> while held
  // off, or "". What the node registry and the probes say of it. Thread-safe.
  std::string standing_aside();

 private:
  static constexpr std::chrono::milliseconds kTick{100};
  static constexpr std::chrono::seconds kPeerCheckEvery{1};
  using Clock = std::chrono::steady_clock;

  struct Outage {
    Clock::time_point since;
    Clock::time_point next_attempt;
    unsigned attempts = 0;
  };

  void loop();
  void supervise(Clock::time_point now);
  void consider_handover(const PluginStatus& plugin, const Outage& outage, Clock::time_point now);
  bool peer_ready(Clock::time_point now);

  PluginHost& host_;
  const SupervisionPolicy policy_;
  const Cluster cluster_;
  const log::Logger log_{"host"};
  std::mt19937 random_{std::random_device{}()};

  // The supervisor thread's.
  std::map<std::string, Outage> outages_;
  bool handing_over_ = false;
  std::optional<Clock::time_point> peer_checked_at_;
  std::optional<std::string> peer_;
  bool no_peer_logged_ = false;

  std::mutex mutex_;  // guards what follows
  std::condition_variable wake_;
  bool stopping_ = false;
  Clock::time_point held_off_until_{};
  std::string holdoff_reason_;
  std::thread thread_;
};

}  // namespace emsnode::host
