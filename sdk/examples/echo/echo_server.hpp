// The echo plugin's TCP server: every byte a client sends is sent back. It owns its io_context
// and I/O thread, both created in start() and joined in stop(), as every plugin must: the node's
// own event loop is never handed out.
#pragma once

#include <emsnode/plugin.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>

namespace emsnode::examples::echo {

/// What the server is told by the plugin's config.
struct EchoOptions {
  boost::asio::ip::tcp::endpoint listen;          ///< where to accept connections
  std::size_t max_connections = 256;              ///< served at once; more are closed at accept
  std::chrono::milliseconds idle_timeout{60000};  ///< silence after which a connection is closed
};

/// One run of the echo service: built and started when the node becomes active, stopped and
/// destroyed when it stops being active. Reports through the host: metrics
/// (connections_total, connections_rejected_total, connections_open, bytes_echoed_total), health,
/// and the log events echo.listening, echo.stopped, echo.accept_failed.
class EchoServer {
 public:
  /// Registers the metrics; binds nothing yet.
  EchoServer(sdk::Host& host, EchoOptions options);
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;
  /// Stops the server if it is still running.
  ~EchoServer();

  /// Binds and listens, then starts the I/O thread; returns once connections are accepted.
  /// Throws std::runtime_error naming the address and the reason when it cannot listen.
  void start();

  /// Closes the listener and every connection and joins the I/O thread. Connections get until
  /// `deadline` to wind down before the I/O loop is abandoned; returns false if they did not.
  /// Harmless when the server never started or was stopped already.
  bool stop(std::chrono::milliseconds deadline);

  /// Connections accepted since start, and open now. Thread-safe.
  std::uint64_t served() const { return served_.load(std::memory_order_relaxed); }
  std::uint64_t open_now() const { return open_now_.load(std::memory_order_relaxed); }

  /// The address actually bound (the chosen port when the config asked for port 0).
  const boost::asio::ip::tcp::endpoint& local_endpoint() const { return bound_; }

 private:
  class Connection;

  void accept_next();
  void retry_accept_later();
  void close_all();                                            // on the I/O thread
  void forget(const std::shared_ptr<Connection>& connection);  // on the I/O thread

  sdk::Host& host_;
  EchoOptions options_;
  sdk::Counter accepted_;
  sdk::Counter rejected_;
  sdk::Gauge open_;
  sdk::Counter bytes_;

  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer accept_retry_;
  boost::asio::ip::tcp::endpoint bound_;
  // Everything below is touched only on the I/O thread once it runs.
  std::set<std::shared_ptr<Connection>> connections_;
  bool stopping_ = false;
  bool degraded_ = false;
  std::atomic<std::uint64_t> served_{0};  // for the stats command, read from its thread
  std::atomic<std::uint64_t> open_now_{0};

  std::thread thread_;
  std::future<void> drained_;  // ready once the I/O thread's loop has returned
};

}  // namespace emsnode::examples::echo
