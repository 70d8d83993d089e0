#include "echo_server.hpp"

#include <emsnode/listen_address.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <exception>
#include <stdexcept>

namespace emsnode::examples::echo {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

// How long to wait before accepting again after an accept error such as "too many open files":
// retrying at once would spin.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

// How long the destructor gives connections when the plugin never called stop.
constexpr std::chrono::milliseconds kDestructorDeadline{1000};

// For logs and messages, as the config spells an address.
std::string format_endpoint(const tcp::endpoint& endpoint) {
  return sdk::ListenAddress{endpoint.address().to_string(), endpoint.port()}.format();
}

}  // namespace

// One client. Owned by the server's set and by its own pending operations, so it lives until
// both let go: the server at close, the operations when they complete.
class EchoServer::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(EchoServer& server, tcp::socket socket)
      : server_(server), socket_(std::move(socket)), idle_(socket_.get_executor()) {}

  void begin() {
    arm_idle_timer();
    read();
  }

  // Ends the connection; its pending operations complete with an error and release it.
  void close() {
    error_code ignored;
    idle_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 private:
  void read() {
    socket_.async_read_some(asio::buffer(data_),
                            [self = shared_from_this()](const error_code& ec, std::size_t size) {
                              if (ec) {
                                self->finish();
                                return;
                              }
                              self->arm_idle_timer();
                              self->write(size);
                            });
  }

  void write(std::size_t size) {
    asio::async_write(socket_, asio::buffer(data_, size),
                      [self = shared_from_this()](const error_code& ec, std::size_t written) {
                        if (ec) {
                          self->finish();
                          return;
                        }
                        self->server_.bytes_.add(static_cast<double>(written));
                        self->read();
                      });
  }

  void arm_idle_timer() {
    idle_.expires_after(server_.options_.idle_timeout);
    // A weak reference: an idle timer alone must not keep a finished connection alive.
    idle_.async_wait([weak = weak_from_this()](const error_code& ec) {
      auto self = weak.lock();
      // Re-arming cancels the previous wait, but one that had already expired may still be
      // queued: only a deadline that is really past closes the connection.
      if (ec || !self || self->idle_.expiry() > asio::steady_timer::clock_type::now()) {
        return;
      }
      self->server_.host_.log().debug("echo.idle_closed", {{"peer", self->peer()}});
      self->close();
    });
  }

  std::string peer() const {
    error_code ec;
    const tcp::endpoint endpoint = socket_.remote_endpoint(ec);
    return ec ? std::string("unknown") : format_endpoint(endpoint);
  }

  void finish() {
    close();
    server_.forget(shared_from_this());
  }

  EchoServer& server_;
  tcp::socket socket_;
  asio::steady_timer idle_;
  std::array<char, 4096> data_{};
};

EchoServer::EchoServer(sdk::Host& host, EchoOptions options)
    : host_(host),
      options_(std::move(options)),
      accepted_(host.counter("connections_total", "Connections accepted and served")),
      rejected_(host.counter("connections_rejected_total",
                             "Connections closed at accept because max_connections were open")),
      open_(host.gauge("connections_open", "Connections open now")),
      bytes_(host.counter("bytes_echoed_total", "Bytes sent back to clients")),
      acceptor_(io_),
      accept_retry_(io_) {}

EchoServer::~EchoServer() {
  stop(kDestructorDeadline);
}

void EchoServer::start() {
  const std::string address = format_endpoint(options_.listen);
  const auto fail = [&](const error_code& ec) {
    error_code ignored;
    acceptor_.close(ignored);
    throw std::runtime_error("cannot listen on " + address + ": " + ec.message());
  };
  error_code ec;
  if (acceptor_.open(options_.listen.protocol(), ec)) fail(ec);
  // A restarted node must be able to listen again while old connections sit in TIME_WAIT.
  if (acceptor_.set_option(tcp::acceptor::reuse_address(true), ec)) fail(ec);
  if (acceptor_.bind(options_.listen, ec)) fail(ec);
  if (acceptor_.listen(asio::socket_base::max_listen_connections, ec)) fail(ec);
  bound_ = acceptor_.local_endpoint(ec);
  if (ec) fail(ec);

  accept_next();
  std::promise<void> drained;
  drained_ = drained.get_future();
  thread_ = std::thread([this, drained = std::move(drained)]() mutable {
    try {
      io_.run();
    } catch (const std::exception& e) {
      // A handler threw (out of memory): the service is gone until the next start.
      host_.log().error("echo.failed", {{"error", e.what()}});
      host_.health(EMSNODE_HEALTH_FAILED, e.what());
    }
    drained.set_value();
  });

  const std::string bound = format_endpoint(bound_);
  host_.health(EMSNODE_HEALTH_OK, "listening on " + bound);
  host_.log().info("echo.listening",
                   {{"address", bound}, {"max_connections", options_.max_connections}});
}

bool EchoServer::stop(std::chrono::milliseconds deadline) {
  if (!thread_.joinable()) {
    error_code ignored;
    acceptor_.close(ignored);
    return true;
  }
  asio::post(io_, [this] { close_all(); });
  // run() returns by itself once every connection has seen its socket closed.
  const bool drained = drained_.wait_for(deadline) == std::future_status::ready;
  if (!drained) {
    io_.stop();
  }
  thread_.join();
  host_.log().info("echo.stopped", {{"address", format_endpoint(bound_)}, {"drained", drained}});
  return drained;
}

void EchoServer::accept_next() {
  acceptor_.async_accept([this](const error_code& ec, tcp::socket socket) {
    if (stopping_ || ec == asio::error::operation_aborted) {
      return;
    }
    if (ec) {
      host_.log().warning("echo.accept_failed", {{"error", ec.message()}});
      host_.health(EMSNODE_HEALTH_DEGRADED, "cannot accept: " + ec.message());
      degraded_ = true;
      retry_accept_later();
      return;
    }
    if (degraded_) {
      degraded_ = false;
      host_.health(EMSNODE_HEALTH_OK, "listening on " + format_endpoint(bound_));
    }
    if (connections_.size() >= options_.max_connections) {
      rejected_.add();
      error_code ignored;
      socket.close(ignored);
    } else {
      auto connection = std::make_shared<Connection>(*this, std::move(socket));
      connections_.insert(connection);
      accepted_.add();
      open_.add(1);
      served_.fetch_add(1, std::memory_order_relaxed);
      open_now_.fetch_add(1, std::memory_order_relaxed);
      connection->begin();
    }
    accept_next();
  });
}

void EchoServer::retry_accept_later() {
  accept_retry_.expires_after(kAcceptRetryDelay);
  accept_retry_.async_wait([this](const error_code& ec) {
    if (!ec && !stopping_) {
      accept_next();
    }
  });
}

void EchoServer::close_all() {
  stopping_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  accept_retry_.cancel();
  for (const auto& connection : connections_) {
    connection->close();
  }
}

void EchoServer::forget(const std::shared_ptr<Connection>& connection) {
  if (connections_.erase(connection) > 0) {
    open_.add(-1);
    open_now_.fetch_sub(1, std::memory_order_relaxed);
  }
}

}  // namespace emsnode::examples::echo
