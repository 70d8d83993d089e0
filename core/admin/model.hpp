// What the admin endpoint shows and what it can ask the node to do. Plain data and
// std::functions, so that the endpoint depends on no part of the node: core/node wires the role
// manager, the node registry, the settings and the plugin host into a Model.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <istream>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace emsnode::admin {

// One node of the cluster, as the node registry last saw it.
struct NodeView {
  std::string id;
  std::string address;        // its service address
  std::string admin_address;  // its admin endpoint
  std::string version;
  std::string backup_dir;
  std::string role;    // "starting", "passive", "active", "stopping"
  std::string reason;  // why it is not active (one of role::reason::*), or empty
  bool paused = false;
  std::int64_t seen_ms_ago = 0;
};

struct PluginView {
  std::string id;
  std::string version;
  std::string state;   // host::state_name(): "running", "stopped", "faulted", ...
  std::string health;  // "ok", "degraded", ...
  std::string health_detail;
  std::string last_error;  // empty when it has not failed
  std::uint64_t restarts = 0;  // the host brought it back this often (supervision)
  bool required = true;        // down past the grace, the active hands over
};

struct TransitionView {
  std::string from;
  std::string to;
  std::string reason;
  std::uint64_t epoch = 0;
  std::string at;  // ISO 8601 UTC, as iso8601_utc() writes it
};

struct StatusView {
  std::string node_id;
  std::string version;
  std::string role;
  std::uint64_t epoch = 0;        // ours while active, else 0
  std::string not_active_reason;  // empty while active
  bool paused = false;
  std::string lease_holder;  // empty when the lease was never held or has not been read
  std::uint64_t lease_epoch = 0;
  std::int64_t lease_expires_in_ms = 0;  // <= 0 when expired or released
  std::optional<TransitionView> last_transition;
  std::uint64_t transitions = 0;
  std::vector<NodeView> nodes;
  std::vector<PluginView> plugins;
};

// A cluster setting, shared by every node through the database.
struct Setting {
  std::string key;
  std::string value;
  std::int64_t updated_at_ms = 0;  // Unix time
  std::string updated_by;          // node id
  std::uint64_t epoch = 0;         // the lease epoch it was written under
};

// What a Model operation throws when it refuses or cannot do what was asked. The endpoint
// answers with `status()` and `what()` as the body, which the CLI prints as it is: write the
// message for an operator ("not active: switchover runs on the active node (node-b)").
class OperationError : public std::runtime_error {
 public:
  OperationError(unsigned http_status, const std::string& message)
      : std::runtime_error(message), status_(http_status) {}

  static OperationError conflict(const std::string& message) { return {409, message}; }
  static OperationError bad_input(const std::string& message) { return {400, message}; }
  static OperationError not_found(const std::string& message) { return {404, message}; }
  static OperationError failed(const std::string& message) { return {500, message}; }
  static OperationError unavailable(const std::string& message) { return {503, message}; }
  static OperationError no_space(const std::string& message) { return {507, message}; }

  unsigned status() const { return status_; }

 private:
  unsigned status_;
};

// A file of the shared file store, as its catalog describes it.
struct StoreFile {
  std::string key;
  std::uint64_t size = 0;
  std::string sha256;               // lowercase hex
  std::int64_t modified_at_ms = 0;  // Unix time, the database's clock
  std::string writer_node;
  std::uint64_t epoch = 0;  // the lease epoch it was published under
};

// What a migration of the file store to another backend did.
struct StoreMigration {
  std::string from;  // the backends: "share" or "blob"
  std::string to;
  std::size_t copied = 0;   // files copied and verified
  std::size_t skipped = 0;  // files the target already had, with the same SHA-256
  std::uint64_t bytes = 0;  // bytes copied
};

// The shared file store as the endpoint serves it. Every function may block (they run on a
// transfer worker) and reports refusals with OperationError: 400 a key or backend refused, 404 no
// such file, 409 not the active node or fenced, 500 corrupt content, 503 the store unreachable,
// 507 the store full. Writes carry the active node's epoch; their refusal comes before they read
// any content, so that a refused upload is answered before its body is sent.
struct StoreModel {
  // Streams `content` to its end into `key` and publishes it.
  std::function<StoreFile(const std::string& key, std::istream& content)> put;
  // Streams `key` to `out`, verifying as it goes; a mismatch (500) may come after the last byte.
  std::function<StoreFile(const std::string& key, std::ostream& out)> get;
  std::function<std::optional<StoreFile>(const std::string& key)> stat;
  // Every file whose key starts with `prefix`, ordered by key.
  std::function<std::vector<StoreFile>(const std::string& prefix)> list;
  std::function<void(const std::string& key)> remove;
  // Copies every file into a store of the backend `to`, verifying each; the catalog then points
  // to the copies, so the nodes see them once their config names that backend.
  std::function<StoreMigration(const std::string& to)> migrate;
};

// One answer of /healthz/*: ok (200) or not (503), and one line saying which part is missing.
struct Probe {
  bool ok = false;
  std::string says;
};

// What load balancers and supervisors ask, in the manner of Patroni's probes.
struct Health {
  Probe live;    // the process and its control loop answer
  Probe ready;   // this node could take over now (or already serves)
  Probe active;  // holds the lease and every enabled plugin runs healthy
};

// The node as the endpoint sees it. Every member must be set, except `store` on a node without a
// file store: its routes then answer 503. `health` runs on the endpoint's I/O thread and must
// return at once (no database: load balancers poll it); the others run on a worker thread and
// may block (a database read, a switchover). Operations report refusals and failures by throwing
// OperationError; any other exception is answered with 500 and logged.
struct Model {
  std::function<StatusView()> status;
  std::function<Health()> health;
  std::function<std::string()> metrics_text;  // Prometheus text format
  std::function<void(std::optional<std::string> to)> switchover;
  std::function<void()> pause;
  std::function<void()> resume;
  std::function<std::vector<Setting>()> settings;
  std::function<void(const std::string& key, const std::string& value)> set_setting;
  StoreModel store;
};

// "2026-11-21T10:00:00.123Z": the form of TransitionView::at and of times the endpoint prints.
std::string iso8601_utc(std::chrono::system_clock::time_point at);

}  // namespace emsnode::admin
