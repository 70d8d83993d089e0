// Who decides the role: the role manager holds or waits for the cluster's lease and drives the
// node between passive and active.
//
//   starting -> passive <-> active -> stopping
//
// The lease (one row in the shared database: holder, epoch, expiry on the database's clock) is
// taken only when free, expired, or provably abandoned (the same-host fast path below): a
// recovered node never preempts a live holder. Each acquisition increments the epoch, the
// fencing token every write is checked against. The active renews every renew_interval; when
// it has not renewed for renew_deadline on its own monotonic clock, it self-fences: stops
// serving (without waiting for hooks) before any peer may take the lease at lease_ttl.
//
// Same-host fast path (SQLite): the active also holds an exclusive OS lock on a file beside the
// database, and records that in the lease row. The kernel drops the lock when the process dies,
// so a passive that obtains the lock while the lease row says its holder had it knows the
// holder is gone (or has stopped serving) and may take the lease at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "db/database.hpp"

namespace emsnode::metrics {
class MetricsRegistry;
}

namespace emsnode::role {

enum class Role { starting, passive, active, stopping };
std::string_view role_name(Role role);

// Why a node is not active, or why it changed role. Stable strings, for status and logs.
namespace reason {
constexpr std::string_view kLeaseHeld = "lease_held";          // another node holds a live lease
constexpr std::string_view kSchemaNewer = "schema_newer";      // the database is newer than us
constexpr std::string_view kSchemaMissing = "schema_missing";  // not created yet; migrate = false
constexpr std::string_view kDbUnreachable = "db_unreachable";
constexpr std::string_view kHookVeto = "hook_veto";  // pre_promote said no (or timed out)
constexpr std::string_view kPaused = "paused";       // maintenance: will not take the lease
constexpr std::string_view kHandover = "handover";   // switchover --to another node
constexpr std::string_view kAcquired = "acquired";   // promoted: took a free/expired lease
constexpr std::string_view kFastPath = "fast_path";  // promoted: the holder's OS lock fell
constexpr std::string_view kRenewDeadline = "renew_deadline";  // self-fenced: could not renew
constexpr std::string_view kLeaseLost = "lease_lost";          // demoted: another epoch holds it
constexpr std::string_view kSwitchover = "switchover";         // demoted: handed over on request
constexpr std::string_view kShutdown = "shutdown";             // demoted: the node is stopping
constexpr std::string_view kStarted = "started";               // starting -> passive
constexpr std::string_view kPromoting = "promoting";  // holds the lease; pre_promote hooks running
constexpr std::string_view kPromoteFailed = "promote_failed";  // Actions::promote threw
// Handed over (and held off for a while) because a required plugin stayed down: plugin_failed:<id>.
constexpr std::string_view kPluginFailed = "plugin_failed";
constexpr std::string_view kPluginFaulted = "plugin_faulted";  // a plugin was abandoned at stop
// Whether a demotion for `why` hands the role over on purpose (switchover, plugin_failed:<id>):
// the node then stays out for one lease_ttl so that another takes it.
bool is_handover(std::string_view why);
}  // namespace reason

struct Timers {
  std::chrono::milliseconds lease_ttl{2000};
  std::chrono::milliseconds renew_interval{400};
  std::chrono::milliseconds renew_deadline{1200};
  std::chrono::milliseconds poll_interval{200};  // a passive re-reads the lease this often
};

// The timer invariants; an empty string when `timers` satisfy them, else the reason, naming the
// keys of [role] (for the config's error message).
std::string check_timers(const Timers& timers);

struct Hooks {
  std::vector<std::string> pre_promote;  // executables, run in order
  std::vector<std::string> post_promote;
  std::vector<std::string> pre_demote;
  std::vector<std::string> post_demote;
  std::chrono::milliseconds timeout{5000};
};

// A monotonic clock the tests can drive.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::steady_clock::time_point now() const = 0;
};
const Clock& steady_clock();

struct LeaseView {
  std::string holder;  // empty when never held
  std::uint64_t epoch = 0;
  std::int64_t expires_in_ms = 0;  // on the database's clock; <= 0 when expired or released
  bool os_lock = false;            // the holder holds the same-host lock
  std::string handover_to;         // switchover target, while it is reserved for it
};

struct Transition {
  Role from = Role::starting;
  Role to = Role::starting;
  std::string reason;
  std::uint64_t epoch = 0;
  std::chrono::system_clock::time_point at;
};

struct RoleStatus {
  Role role = Role::starting;
  // When the control thread last published this status: it runs at least every poll_interval
  // (passive) or renew_interval (active), so an old stamp means a stuck control loop.
  std::chrono::steady_clock::time_point published_at;
  std::uint64_t epoch = 0;         // ours while active, else 0
  std::string not_active_reason;   // why we are not active (one of reason::*), if passive
  std::optional<LeaseView> lease;  // as last read
  std::optional<Transition> last_transition;
  bool paused = false;
  std::uint64_t transitions = 0;
};

// What the role manager drives. Both run on the role manager's thread and must return within
// their budget: promote starts the plugins; demote stops them within `deadline`.
struct Actions {
  std::function<void(std::uint64_t epoch)> promote;
  std::function<void(std::chrono::milliseconds deadline)> demote;
  // Called just before demote when the node fences itself (the lease may be another node's
  // already): what still waits on the database for the plugins can only fail, so make it fail
  // now rather than hold up their stop. Must be quick.
  std::function<void()> fence;
};

class LeaseStore;

// The node's role manager: a control thread (Boost.Asio) runs the state machine (RoleMachine,
// role_machine.hpp) and its timers; lease calls run on a database worker thread, so a stuck
// database call never delays the self-fence; hooks and Actions run on a hook thread, and the
// lease keeps being renewed while they run. Where the database has notifications (PostgreSQL),
// a listen thread on a connection of its own wakes a passive as soon as a peer releases the
// lease (Database::listen, kLeaseChannel). Actions::demote also runs on the control thread when
// it fences; Actions::promote and Actions::demote never run at the same time. Metrics:
//   emsnode_role{role="starting|passive|active|stopping"}  gauge, 1 for the current role
//   emsnode_lease_epoch                                    gauge, the lease's epoch as last seen
//   emsnode_lease_remaining_seconds                        gauge, the holder counts from the start
//                                                          of its last renewal; a passive, as read
//   emsnode_role_transitions_total{reason=...}             counter
//   emsnode_lease_renew_seconds                            histogram, renewal latency
class RoleManager {
 public:
  // `store`: nullptr for SqlLeaseStore on `database`. `fast_path_lock`: the same-host OS lock
  // file (SQLite: db::lock_path(<db>, "active.lock")); nullopt for PostgreSQL.
  // `schema_blocker`: "" when this binary may serve on the database's schema, else the reason
  // (reason::kSchemaNewer, kSchemaMissing); called on the database worker before every attempt
  // to acquire. Throws std::invalid_argument when check_timers(timers) fails.
  RoleManager(db::Database& database, std::unique_ptr<LeaseStore> store, std::string node_id,
              Timers timers, Hooks hooks, Actions actions,
              std::optional<std::filesystem::path> fast_path_lock,
              std::function<std::string()> schema_blocker, metrics::MetricsRegistry& metrics,
              const Clock& clock = steady_clock());
  ~RoleManager();  // stop()
  RoleManager(const RoleManager&) = delete;
  RoleManager& operator=(const RoleManager&) = delete;

  // Starts the threads; the role goes starting -> passive and the node competes for the lease.
  void start();
  // Graceful: an active runs pre_demote hooks, Actions::demote, releases the lease and runs
  // post_demote hooks; then the role is stopping and every thread is joined. Idempotent. Waits
  // for a lease call in flight (bounded by the database's own timeouts, e.g. busy_timeout). Not
  // from an on_transition observer (it would wait for itself).
  void stop();
  // Maintenance: this node will not take the lease (reason `paused`); an active hands over
  // first, as in a switchover. Allowed before start().
  void pause();
  void resume();
  // On the active only (throws std::runtime_error saying why otherwise): reserves the lease for
  // `to` for one lease_ttl when given, demotes gracefully, releases the lease, and stays out of
  // the competition for one lease_ttl so that another node takes over. Returns once the handover
  // has started; status() shows its progress.
  // `why`: the reason recorded for the demotion; reason::kSwitchover for an operator's request.
  void switchover(std::optional<std::string> to = std::nullopt,
                  std::string_view why = reason::kSwitchover);

  RoleStatus status() const;  // thread-safe
  // Called on the control thread after every role change; must be quick and must not block.
  void on_transition(std::function<void(const Transition&)> observer);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace emsnode::role
