#include "host/supervisor.hpp"

#include <algorithm>
#include <exception>

namespace emsnode::host {
namespace {

using std::chrono::milliseconds;

std::string ms_since(std::chrono::steady_clock::time_point since,
                     std::chrono::steady_clock::time_point now) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(now - since).count());
}

}  // namespace

SupervisionPolicy SupervisionPolicy::of(const config::PluginHostConfig& config) {
  return {config.restart_backoff, config.restart_backoff_max, config.failure_grace,
          config.handover_holdoff};
}

milliseconds SupervisionPolicy::backoff(unsigned attempt, std::mt19937& random) const {
  const milliseconds cap = std::max(restart_backoff, restart_backoff_max);
  milliseconds wait = restart_backoff;
  for (unsigned i = 0; i < attempt && wait < cap; ++i) wait *= 2;
  wait = std::min(wait, cap);
  std::uniform_real_distribution<double> jitter(0.75, 1.25);
  return milliseconds(
      static_cast<milliseconds::rep>(static_cast<double>(wait.count()) * jitter(random)));
}

Supervisor::Supervisor(PluginHost& host, SupervisionPolicy policy, Cluster cluster)
    : host_(host), policy_(policy), cluster_(std::move(cluster)), thread_([this] { loop(); }) {}

Supervisor::~Supervisor() {
  stop();
}

void Supervisor::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Supervisor::loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    try {
      supervise(Clock::now());
    } catch (const std::exception& e) {
      log_.error("supervisor.error", {{"error", e.what()}});
    }
    lock.lock();
    wake_.wait_for(lock, kTick, [this] { return stopping_; });
  }
}

void Supervisor::supervise(Clock::time_point now) {
  if (!host_.serving()) {
    // Passive (or between roles): nothing of ours runs, and a new tenure starts afresh.
    outages_.clear();
    handing_over_ = false;
    no_peer_logged_ = false;
    return;
  }
  for (const PluginStatus& plugin : host_.status()) {
    if (!is_down(plugin)) {
      const auto outage = outages_.find(plugin.id);
      if (outage != outages_.end()) {
        log_.info("plugin.recovered", {{"id", plugin.id},
                                       {"down_ms", ms_since(outage->second.since, now)},
                                       {"restarts", std::to_string(outage->second.attempts)}});
        outages_.erase(outage);
      }
      continue;
    }
    const auto [entry, fresh] = outages_.try_emplace(plugin.id);
    Outage& outage = entry->second;
    const bool faulted = plugin.state == PluginState::faulted;
    if (fresh) {
      outage.since = now;
      outage.next_attempt = now + policy_.backoff(0, random_);
      log_.warning("plugin.down",
                   {{"id", plugin.id},
                    {"state", std::string(state_name(plugin.state))},
                    {"health", std::string(health_name(plugin.health))},
                    {"reason", plugin.state == PluginState::running ? plugin.health_detail
                                                                    : plugin.last_error},
                    {"action", faulted ? "none: its code may still run" : "restart with backoff"}});
    }
    if (!faulted && now >= outage.next_attempt) {
      ++outage.attempts;
      if (!host_.restart(plugin.id)) {
        const milliseconds wait = policy_.backoff(outage.attempts, random_);
        outage.next_attempt = Clock::now() + wait;
        log_.warning("plugin.restart_failed", {{"id", plugin.id},
                                               {"attempt", std::to_string(outage.attempts)},
                                               {"retry_in_ms", std::to_string(wait.count())}});
      }
    }
    if (plugin.required) consider_handover(plugin, outage, now);
  }
}

void Supervisor::consider_handover(const PluginStatus& plugin, const Outage& outage,
                                   Clock::time_point now) {
  if (handing_over_ || now - outage.since < policy_.failure_grace) return;
  if (!peer_ready(now)) {
    if (!no_peer_logged_) {
      log_.warning("supervisor.no_peer", {{"id", plugin.id},
                                          {"down_ms", ms_since(outage.since, now)},
                                          {"action", "this node keeps serving what it can"}});
      no_peer_logged_ = true;
    }
    return;
  }
  const std::string reason = "plugin_failed:" + plugin.id;
  {
    std::lock_guard lock(mutex_);
    held_off_until_ = now + policy_.handover_holdoff;
    holdoff_reason_ = reason;
  }
  handing_over_ = true;
  log_.warning("supervisor.handover", {{"id", plugin.id},
                                       {"to", *peer_},
                                       {"reason", reason},
                                       {"down_ms", ms_since(outage.since, now)}});
  try {
    cluster_.hand_over(*peer_, reason);
  } catch (const std::exception& e) {
    log_.error("supervisor.handover_failed", {{"id", plugin.id}, {"error", e.what()}});
    handing_over_ = false;
  }
}

bool Supervisor::peer_ready(Clock::time_point now) {
  if (peer_checked_at_ && now - *peer_checked_at_ < kPeerCheckEvery) return peer_.has_value();
  peer_checked_at_ = now;
  try {
    peer_ = cluster_.ready_peer(false);
  } catch (const std::exception& e) {
    log_.warning("supervisor.peer_check_failed", {{"error", e.what()}});
    peer_.reset();
  }
  if (peer_) no_peer_logged_ = false;
  return peer_.has_value();
}

std::string Supervisor::standing_aside() {
  const auto plugins = host_.status();
  if (std::any_of(plugins.begin(), plugins.end(),
                  [](const PluginStatus& p) { return p.state == PluginState::faulted; })) {
    return "plugin_faulted";
  }
  std::lock_guard lock(mutex_);
  return Clock::now() < held_off_until_ ? holdoff_reason_ : std::string();
}

std::string Supervisor::promotion_blocker() {
  const std::string reason = standing_aside();
  if (reason.empty()) return reason;
  // Only while another node could serve: a lone node serves what it can.
  return cluster_.ready_peer(reason == "plugin_faulted") ? reason : std::string();
}

}  // namespace emsnode::host
