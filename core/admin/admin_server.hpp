// The node's admin endpoint: HTTP/1.1 on its own I/O thread, for operators, the CLI and load
// balancers.
//
//   GET  /                 status page (HTML, refreshes itself every 2 s)
//   GET  /status           status JSON (?format=text: what `emsnode status` prints)
//   GET  /healthz/active   200 while this node holds the lease and every enabled plugin runs
//                          healthy, else 503; the body says which part is missing
//   GET  /healthz/live     200 while the node's control loop runs (restart the process if not)
//   GET  /healthz/ready    200 while this node could take over now, or already serves
//   GET  /metrics          Prometheus text format
//   POST /switchover       hand the lease over (?to=NODE: to that node)
//   POST /pause, /resume   maintenance: do not take / take again the lease
//   GET  /settings         cluster settings JSON (?format=text: a table)
//   GET  /settings/KEY     one setting's value, text/plain; 404 when not set
//   PUT  /settings/KEY     set it to the request body
//   GET  /store            the file store's files JSON (?prefix=P: those whose key starts with P;
//                          ?format=text: what `emsnode store ls` prints)
//   GET  /store/KEY        the file, streamed, with Content-Length and X-Emsnode-Sha256 from the
//                          catalog. Verified as it streams: when it proves corrupt before the
//                          first byte went out the answer is 500, after that the connection is
//                          closed short of Content-Length, so a client never sees a clean end
//   HEAD /store/KEY        the same headers, without the file
//   GET  /store-stat/KEY   the file's catalog entry JSON (?format=text: `emsnode store stat`)
//   PUT  /store/KEY        store the request body (streamed: any size up to store_body_limit),
//                          published once complete; only on the active node, with its epoch
//   DELETE /store/KEY      remove the file
//   POST /store-migrate    ?to=blob|share: copy every file into a store of that backend,
//                          verifying each, and report the counts
//   GET  /plugins/ID/commands        the plugin's control commands and their arguments (JSON)
//   POST /plugins/ID/commands/NAME   run one with the JSON object body as its arguments (a body
//                          that is not one: 400); the answer is JSON, its status the plugin's
//                          (an active-only command on a node that is not active: 409 naming the
//                          active node and its admin address, for the CLI to forward it)
//
// Who may call what is one rule, judged on a request's header before its route (Router::admit):
// /healthz/* is open to anyone; /, /status and /metrics are open when the endpoint listens on
// loopback, and elsewhere need the token unless ServerSecurity::open_reads opens them; every
// other path, unknown ones and routes added later included, needs `Authorization: Bearer
// <token>` (401 without it or with a wrong one, 403 while the endpoint has no token). On
// loopback a Host header naming anything but the listen address, localhost, 127.0.0.1, ::1 or
// one of host_names is refused with 421: a browser page that rebinds its own name to 127.0.0.1
// reads nothing. An upload is refused before its body is read, and answers
// `Expect: 100-continue` only once the store starts reading. With a certificate and key the
// endpoint speaks HTTPS only. Store errors map to HTTP: 400 bad key, 404 no such file, 409 not the
// active node (the answer names it) or fenced, 500 corrupt, 503 unreachable, 507 full.
// Limits (ServerLimits) bound what one client can hold: header and body size, the time to send
// a request, the number of connections and of transfers. A transfer's memory stays flat whatever
// the file's size.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "admin/model.hpp"

namespace emsnode::admin {

struct ServerLimits {
  std::size_t header_limit = 8 * 1024;  // larger: 431
  std::size_t body_limit = 64 * 1024;   // larger: 413
  // For a whole request to arrive, for a response to be taken, and for an idle keep-alive
  // connection: a client that trickles bytes (slowloris) is cut off after this. A store transfer
  // gets it for each piece of its body instead.
  std::chrono::milliseconds read_timeout{10'000};
  std::size_t max_connections = 64;  // more are answered 503 and closed
  // PUT /store/KEY bodies: larger is 413. The ordinary body_limit does not apply to them.
  std::uint64_t store_body_limit = std::uint64_t{64} << 30;  // 64 GiB
  // Store transfers (uploads, downloads, migrations) at once, each on a thread of its own so
  // that a long one never holds up status reads; more are answered 503.
  std::size_t max_transfers = 4;
};

// Who may use the endpoint, and over what.
struct ServerSecurity {
  // The bearer token, at least 16 bytes (shorter: std::invalid_argument); never logged. None:
  // only what needs no token is answered.
  std::optional<std::string> token;
  std::filesystem::path tls_cert{};  // both set: HTTPS
  std::filesystem::path tls_key{};
  std::vector<std::string> host_names{};  // more names a Host header may carry on loopback
  std::vector<std::string> open_reads{};  // "/metrics", "/status": open off loopback too
};

class AdminServer {
 public:
  // `listen`: "host:port" (port 0: a free one, see port()). Binds nothing until start().
  AdminServer(std::string listen, const ServerSecurity& security, Model model,
              ServerLimits limits = {});
  ~AdminServer();  // stop()
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds and starts serving on a thread of its own. Throws std::runtime_error naming the
  // address and the reason ("address already in use") when it cannot listen, or the file and
  // OpenSSL's reason when the certificate or key cannot be used.
  void start();
  // Closes the listener and every connection, waits for running operations to return, joins.
  // Idempotent. No Model function is called after it returns.
  void stop();
  // The bound port (the kernel's choice for port 0); 0 before start().
  std::uint16_t port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace emsnode::admin
