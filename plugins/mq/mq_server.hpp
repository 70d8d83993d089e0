// The message queue's network side: the listener (plain TCP or TLS), one Connection per client
// (TLS state, decoder, keep-alive, bounded write queue, publisher back-pressure), and the I/O
// thread on which the broker runs. One MqServer per active
// period: built and started when the node becomes active, stopped and destroyed when it stops
// being active; everything durable is reloaded from the shared database at each start.
#pragma once

#include "authenticator.hpp"
#include "broker.hpp"
#include "group_commit.hpp"
#include "session_store.hpp"

#include <emsnode/plugin.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <openssl/ssl.h>

#include <chrono>
#include <cstddef>
#include <future>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace emsnode::plugins::mq {

/// The TLS settings of the listener, read from the config.
struct TlsOptions {
  std::string cert;  ///< PEM certificate chain, the server's first
  std::string key;   ///< PEM private key
  std::string ca;    ///< PEM CA certificates that client certificates must chain to; "" for none
  bool require_client_cert = false;
};

/// A TLS file that cannot be used; `key()` is the config key that named it.
class TlsConfigError : public std::runtime_error {
 public:
  TlsConfigError(std::string key, const std::string& what)
      : std::runtime_error(what), key_(std::move(key)) {}
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

/// A server context for `options`: TLS 1.2 at least, small idle connections (OpenSSL's buffers
/// released while idle, no session cache). Throws TlsConfigError naming the file and OpenSSL's
/// reason.
std::shared_ptr<SSL_CTX> make_tls_context(const TlsOptions& options);

struct ServerOptions {
  boost::asio::ip::tcp::endpoint listen;
  std::shared_ptr<SSL_CTX> tls;  ///< null: plain TCP
  std::size_t max_connections = 1024;
  std::size_t max_packet_size = 1 << 20;
  std::chrono::milliseconds connect_timeout{10000};  ///< from accept to CONNECT
  /// CONNECTs whose password check waits or runs; one more is refused as busy.
  std::size_t max_pending_auth = 256;
  BrokerOptions broker;
  GroupCommitOptions commit;
};

class MqServer final : public BrokerIo {
 public:
  MqServer(sdk::Host& host, ServerOptions options);
  ~MqServer() override;
  MqServer(const MqServer&) = delete;
  MqServer& operator=(const MqServer&) = delete;

  /// Creates or upgrades the tables, loads the durable state, binds, and starts the committer
  /// and the I/O thread. Throws naming the address and reason when it cannot listen.
  void start();
  /// Closes the listener and every connection at once (no will is published: the next active
  /// serves these clients), stops the committer, joins the I/O thread within `deadline`.
  bool stop(std::chrono::milliseconds deadline);

  const boost::asio::ip::tcp::endpoint& local_endpoint() const { return bound_; }

 private:
  class Connection;

  // BrokerIo, on the I/O thread.
  void send(ConnectionId connection, const Packet& packet) override;
  void close(ConnectionId connection) override;
  std::size_t backlog(ConnectionId connection) const override;
  void resume(ConnectionId connection) override;

  // Connection::send's writes wait for the handlers ready now: one write per connection.
  void flush_later(std::shared_ptr<Connection> connection);
  void flush_pending();
  void accept_next();
  // Once a second: delayed wills, session and retained message expiry.
  void tick();
  void close_all();
  void forget(ConnectionId connection);
  void on_commit_failure(const std::string& reason);
  // The Authenticator's outcome for the connection's CONNECT, back on the I/O thread.
  void authenticated(ConnectionId connection, AccessControl::Outcome outcome);

  sdk::Host& host_;
  ServerOptions options_;
  sdk::Counter accepted_;
  sdk::Counter rejected_;
  sdk::Gauge open_;
  sdk::Counter bytes_in_;
  sdk::Counter bytes_out_;
  sdk::Counter protocol_errors_;
  sdk::Counter keep_alive_timeouts_;
  sdk::Counter tls_failures_;
  sdk::Counter refused_busy_;
  BrokerMetrics broker_metrics_;

  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer accept_retry_;
  boost::asio::steady_timer tick_timer_;
  boost::asio::ip::tcp::endpoint bound_;
  std::unique_ptr<GroupCommitter> committer_;
  std::unique_ptr<Broker> broker_;
  // Null when no CONNECT can cost a check (no password file, no database users). Stopped
  // before io_ goes: its outcomes are posted there.
  std::unique_ptr<Authenticator> authenticator_;
  // Touched only on the I/O thread once it runs.
  std::map<ConnectionId, std::shared_ptr<Connection>> connections_;
  // Every read goes here, then straight into the connection's decoder, which keeps only a
  // partial packet: an idle connection holds no read buffer.
  std::vector<std::uint8_t> read_buffer_;
  std::vector<std::shared_ptr<Connection>> to_flush_;
  std::vector<std::shared_ptr<Connection>> flushing_;  // to_flush_'s previous contents, kept
  ConnectionId next_connection_ = 0;
  bool stopping_ = false;
  bool failed_ = false;

  std::thread thread_;
  std::future<void> drained_;
};

}  // namespace emsnode::plugins::mq
