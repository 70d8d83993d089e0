#include "mq_server.hpp"

#include <emsnode/listen_address.hpp>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <pthread.h>

#include <csignal>
#include <exception>
#include <limits>
#include <stdexcept>

namespace emsnode::plugins::mq {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::chrono::milliseconds kAcceptRetryDelay{100};
constexpr std::chrono::milliseconds kTickPeriod{1000};
constexpr std::chrono::milliseconds kDestructorDeadline{1000};
// How long a connection the broker closed may take to write its last packets (a refusing
// CONNACK) before the socket is closed anyway.
constexpr std::chrono::milliseconds kLingerLimit{2000};
// The epoch goes into the high bits of message ids and queue sequence numbers.
constexpr int kEpochShift = 40;
// One read takes at most this much; the decoder keeps what it needs of it.
constexpr std::size_t kReadBufferSize = 64 * 1024;
// A connection's write buffers keep at most this much capacity once written.
constexpr std::size_t kKeptWriteBuffer = 4 * 1024;

// OpenSSL's reason for the last failure on this thread, and the queue emptied.
std::string openssl_error() {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};

// The common name of the peer's certificate, which the handshake has verified.
std::optional<std::string> peer_common_name(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return std::nullopt;
  std::optional<std::string> name;
  char buffer[256];
  const int size =
      X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buffer, sizeof buffer);
  if (size > 0 && SSL_get_verify_result(ssl) == X509_V_OK) {
    name = std::string(buffer, static_cast<std::size_t>(size));
  }
  X509_free(cert);
  return name;
}

}  // namespace

std::shared_ptr<SSL_CTX> make_tls_context(const TlsOptions& options) {
  ERR_clear_error();
  std::shared_ptr<SSL_CTX> context(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  const auto fail = [](const char* key, const std::string& what) {
    throw TlsConfigError(key, what + ": " + openssl_error());
  };
  if (!context) fail("tls_cert", "cannot create a TLS context");
  SSL_CTX* ctx = context.get();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // An idle connection keeps no 16 KiB record buffers; a write may take part of a connection's
  // buffer, one record at a time, and is resumed where it stopped; a retry is judged by its
  // bytes, not by the address of the buffer holding them.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // No server-side session cache: tens of thousands of sessions would stay in memory for
  // clients that mostly keep one connection open.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);
  if (SSL_CTX_use_certificate_chain_file(ctx, options.cert.c_str()) != 1) {
    fail("tls_cert", "cannot load the certificate " + options.cert);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, options.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    fail("tls_key", "cannot load the private key " + options.key);
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    fail("tls_key", "the private key " + options.key + " does not belong to " + options.cert);
  }
  if (!options.ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, options.ca.c_str(), nullptr) != 1) {
      fail("tls_ca", "cannot load the CA certificates " + options.ca);
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.ca.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(
        ctx, SSL_VERIFY_PEER | (options.require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
        nullptr);
  }
  return context;
}

namespace {

// For logs and messages, as the config spells an address.
std::string format_endpoint(const tcp::endpoint& endpoint) {
  return sdk::ListenAddress{endpoint.address().to_string(), endpoint.port()}.format();
}

}  // namespace

// One client. Owned by the server's map and by its pending operations. Reads wait for the
// socket to be readable and then read into the server's shared buffer, so that an idle
// connection holds only its socket, TLS state, decoder and timer. TLS is driven by hand over the
// non-blocking socket (no per-connection record buffers besides OpenSSL's own, which it releases
// while idle).
class MqServer::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(MqServer& server, ConnectionId id, tcp::socket socket)
      : server_(server),
        id_(id),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        decoder_(DecoderOptions{server.options_.max_packet_size}) {}

  // False when the connection could not be set up (it is closed then).
  bool begin() {
    error_code ec;
    socket_.non_blocking(true, ec);
    if (!ec && server_.options_.tls) {
      ERR_clear_error();
      ssl_.reset(SSL_new(server_.options_.tls.get()));
      if (!ssl_ || SSL_set_fd(ssl_.get(), socket_.native_handle()) != 1) {
        server_.host_.log().error("mq.tls_failed", {{"error", openssl_error()}});
        return false;
      }
      SSL_set_accept_state(ssl_.get());
    }
    if (ec) return false;
    arm_timer(server_.options_.connect_timeout);  // bounds the handshake too
    if (ssl_) {
      handshake();
    } else {
      read();
    }
    return true;
  }

  ProtocolVersion version() const { return decoder_.version().value_or(ProtocolVersion::kV311); }
  std::size_t backlog() const { return out_.size() + sending_.size() - sent_; }

  // Encodes `packet` behind what is queued. The socket is written once the handlers ready now
  // have run (MqServer::flush_pending), so that what they send to one client, such as a commit's
  // worth of messages, goes out in one write.
  void send(const Packet& packet) {
    if (closing_) return;  // what the broker sent before closing is queued already
    try {
      encode(packet, version(), out_);
    } catch (const EncodeError& e) {
      // A packet the broker built that the wire cannot carry is a bug; the client must not
      // wait for it forever.
      server_.host_.log().error("mq.encode_failed",
                                {{"packet", describe(packet)}, {"error", e.what()}});
      lose();
      return;
    }
    if (!writing_ && !flush_pending_) {
      flush_pending_ = true;
      server_.flush_later(shared_from_this());
    }
  }

  // Writes what send() queued, unless a write in progress will.
  void flush() {
    flush_pending_ = false;
    if (!writing_ && !closed_) write_now();
  }

  // The broker's commits caught up with this publisher: read from it again.
  void resume() {
    if (!paused_ || closing_) return;
    paused_ = false;
    read();
  }

  // The broker closed the session's connection: write what is queued, then close.
  void close_by_broker() {
    broker_knows_ = false;
    shut(true);
  }

  // Closes now; the broker is not told (it is dropping everything itself).
  void close_now() {
    broker_knows_ = false;
    shut(false);
  }

  // The authenticator's outcome for the CONNECT held since authenticate(): the broker takes
  // both, then what the client sent after it, and reading goes on.
  void authenticated(AccessControl::Outcome outcome) {
    if (!pending_connect_ || closing_) return;
    Connect connect = std::move(*pending_connect_);
    pending_connect_.reset();
    on_packet(std::move(connect), std::move(outcome));
    const std::vector<std::uint8_t> rest = std::move(held_);
    held_.clear();
    consume(rest.data(), rest.size());
  }

 private:
  using Wait = tcp::socket::wait_type;

  // Runs `then` once the socket is ready for `wait`; an error ends the connection.
  template <typename Then>
  void await(Wait wait, Then then) {
    socket_.async_wait(wait, [self = shared_from_this(), then](const error_code& ec) {
      if (ec || self->closed_) {
        self->finish();
        return;
      }
      (self.get()->*then)();
    });
  }

  void handshake() {
    ERR_clear_error();
    const int result = SSL_do_handshake(ssl_.get());
    if (result == 1) {
      handshaken_ = true;
      certificate_name_ = peer_common_name(ssl_.get());
      read();
      return;
    }
    const int error = SSL_get_error(ssl_.get(), result);
    if (error == SSL_ERROR_WANT_READ) {
      await(Wait::wait_read, &Connection::handshake);
    } else if (error == SSL_ERROR_WANT_WRITE) {
      await(Wait::wait_write, &Connection::handshake);
    } else {
      // A plain client on the TLS port, an unknown CA, a missing client certificate.
      server_.tls_failures_.add();
      server_.host_.log().info("mq.tls_handshake_failed",
                               {{"connection", id_}, {"error", openssl_error()}});
      finish();
    }
  }

  void read() {
    // OpenSSL may hold decrypted bytes the socket will not signal again.
    if (ssl_ && SSL_has_pending(ssl_.get()) == 1) {
      asio::post(socket_.get_executor(), [self = shared_from_this()] {
        if (!self->closing_) self->read_now();
      });
      return;
    }
    await(Wait::wait_read, &Connection::read_now);
  }

  void read_now() {
    if (closing_) return;
    std::vector<std::uint8_t>& buffer = server_.read_buffer_;
    std::size_t size = 0;
    if (ssl_) {
      ERR_clear_error();
      const int result = SSL_read(ssl_.get(), buffer.data(), static_cast<int>(buffer.size()));
      if (result <= 0) {
        const int error = SSL_get_error(ssl_.get(), result);
        if (error == SSL_ERROR_WANT_READ) {
          read();
        } else if (error == SSL_ERROR_WANT_WRITE) {
          await(Wait::wait_write, &Connection::read_now);
        } else {
          if (error != SSL_ERROR_ZERO_RETURN && error != SSL_ERROR_SYSCALL) {
            server_.host_.log().debug("mq.tls_read_failed",
                                      {{"connection", id_}, {"error", openssl_error()}});
          }
          ERR_clear_error();
          finish();
        }
        return;
      }
      size = static_cast<std::size_t>(result);
    } else {
      error_code ec;
      size = socket_.read_some(asio::buffer(buffer), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        read();
        return;
      }
      if (ec) {
        finish();
        return;
      }
    }
    server_.bytes_in_.add(static_cast<double>(size));
    consume(buffer.data(), size);
  }

  void consume(const std::uint8_t* data, std::size_t size) {
    std::size_t offset = 0;
    while (offset < size && !closing_) {
      Decoder::Result result = decoder_.feed(data + offset, size - offset);
      offset += result.consumed;
      if (result.status == Decoder::Status::kNeedMore) break;
      if (result.status == Decoder::Status::kError) {
        on_decode_error(result.error);
        return;
      }
      on_packet(std::move(*result.packet));
      if (pending_connect_) {
        // Nothing sent after a CONNECT may reach the broker before it: the rest of this read
        // waits with it (the shared buffer serves the next read of any connection).
        held_.assign(data + offset, data + size);
        return;
      }
    }
    if (closing_) return;
    // The whole read is decoded first (the shared buffer is not kept), so a paused publisher
    // may overshoot the bound by one read's worth of packets.
    if (server_.broker_->accepts_more(id_)) {
      read();
    } else {
      paused_ = true;
    }
  }

  // `identity`: the CONNECT's credentials as the authenticator checked them.
  void on_packet(Packet packet, std::optional<AccessControl::Outcome> identity = std::nullopt) {
    if (!identity && std::holds_alternative<Connect>(packet) &&
        server_.options_.broker.access.costly(std::get<Connect>(packet))) {
      authenticate(std::get<Connect>(std::move(packet)));
      return;
    }
    const bool connect = std::holds_alternative<Connect>(packet);
    if (connect) {
      connected_ = true;
      broker_knows_ = true;
      keep_alive_ = std::chrono::seconds(std::get<Connect>(packet).keep_alive);
    }
    // Any packet proves the client alive; the standard allows it one and a half periods.
    if (keep_alive_.count() > 0) {
      arm_timer(keep_alive_ + keep_alive_ / 2);
    } else if (connected_) {
      timer_.cancel();
    }
    const PacketType type = packet_type(packet);
    try {
      server_.broker_->on_packet(id_, std::move(packet), certificate_name_, std::move(identity));
    } catch (const std::exception& e) {
      // One client's packet must not take the service down with it: that connection ends.
      server_.host_.log().error(
          "mq.packet_failed",
          {{"connection", id_}, {"packet", to_string(type)}, {"error", e.what()}});
      lose();
    }
    if (connect) certificate_name_.reset();  // needed for the CONNECT only
  }

  // The CONNECT's password is checked on the authenticator's thread: until the outcome is back
  // (authenticated), nothing is read from the client nor passed to the broker.
  void authenticate(Connect connect) {
    Connect credentials;  // what authenticate reads, without the will
    credentials.username = connect.username;
    credentials.password = connect.password;
    MqServer& server = server_;
    const ConnectionId id = id_;
    const bool queued = server_.authenticator_->submit(
        std::move(credentials), certificate_name_, [&server, id](AccessControl::Outcome outcome) {
          asio::post(server.io_, [&server, id, outcome = std::move(outcome)]() mutable {
            server.authenticated(id, std::move(outcome));
          });
        });
    if (!queued) {
      refuse_busy(connect);
      return;
    }
    pending_connect_ = std::move(connect);
  }

  // max_pending_auth checks are pending: refused at once rather than left waiting in a queue
  // that would grow without bound.
  void refuse_busy(const Connect& connect) {
    server_.refused_busy_.add();
    server_.host_.log().warning("mq.connect_refused",
                                {{"client_id", connect.client_id},
                                 {"username", connect.username.value_or("")},
                                 {"reason", "busy: max_pending_auth password checks are pending"}});
    Connack refused;
    refused.reason_code = connect.version == ProtocolVersion::kV5
                              ? reason::kServerBusy
                              : connack_v311::kServerUnavailable;
    send(refused);
    shut(true);
  }

  void on_decode_error(const DecodeError& error) {
    server_.protocol_errors_.add();
    server_.host_.log().debug("mq.protocol_error", {{"connection", id_}, {"error", error.message}});
    if (!connected_) {
      // While connecting, the standard wants some refusals answered with a CONNACK, in the
      // client's version (3.1.1 when the CONNECT named a version this server does not know).
      Connack refused;
      if (decoder_.version() == ProtocolVersion::kV5) {
        refused.reason_code = error.reason_code;
        send(refused);
      } else if (const auto code = error.connack_v311()) {
        refused.reason_code = *code;
        send(refused);
      }
    } else if (decoder_.version() == ProtocolVersion::kV5) {
      // A 5.0 client is told why its connection ends.
      Disconnect disconnect;
      disconnect.reason_code = error.reason_code;
      send(disconnect);
    }
    lose();
  }

  // The connection ends without DISCONNECT: the broker publishes the will.
  void lose() {
    tell_broker_lost();
    shut(true);
  }

  void tell_broker_lost() {
    if (!broker_knows_) return;
    broker_knows_ = false;
    try {
      server_.broker_->on_connection_lost(id_);
    } catch (const std::exception& e) {
      server_.host_.log().error("mq.connection_lost_failed",
                                {{"connection", id_}, {"error", e.what()}});
    }
  }

  void shut(bool flush) {
    closing_ = true;
    if (flush && !writing_) write_now();  // finishes when all is written
    if (closed_) return;
    if (flush && writing_) {
      arm_timer(kLingerLimit);  // the write's completion closes; this bounds a stuck peer
      return;
    }
    finish();
  }

  // Writes what is queued until the socket takes no more, then waits until it does. One
  // buffer is written while send() appends to the other.
  void write_now() {
    if (closed_) return;
    writing_ = true;
    for (;;) {
      if (sent_ == sending_.size()) {
        sending_.clear();
        sent_ = 0;
        if (out_.empty()) break;
        sending_.swap(out_);
      }
      const std::optional<std::size_t> written = write_some();
      if (!written) return;  // waiting for the socket, or closed
      server_.bytes_out_.add(static_cast<double>(*written));
      sent_ += *written;
    }
    writing_ = false;
    // A burst's buffers go with it; an idle connection keeps at most a small one.
    if (sending_.capacity() > kKeptWriteBuffer) Bytes().swap(sending_);
    if (out_.capacity() > kKeptWriteBuffer) Bytes().swap(out_);
    if (closing_) finish();
  }

  // Bytes of sending_ the socket took; nullopt when it took none and the write waits for it
  // (or the connection ended on an error).
  std::optional<std::size_t> write_some() {
    const std::uint8_t* data = sending_.data() + sent_;
    const std::size_t size = sending_.size() - sent_;
    if (!ssl_) {
      error_code ec;
      const std::size_t written = socket_.write_some(asio::buffer(data, size), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        await(Wait::wait_write, &Connection::write_now);
        return std::nullopt;
      }
      if (ec) {
        finish();
        return std::nullopt;
      }
      return written;
    }
    // A retry after WANT_WRITE passes the same bytes, as OpenSSL requires: send() appends to
    // out_, never to sending_.
    ERR_clear_error();
    const int result =
        SSL_write(ssl_.get(), data,
                  static_cast<int>(std::min<std::size_t>(size, std::numeric_limits<int>::max())));
    if (result > 0) return static_cast<std::size_t>(result);
    const int error = SSL_get_error(ssl_.get(), result);
    if (error == SSL_ERROR_WANT_WRITE) {
      await(Wait::wait_write, &Connection::write_now);
    } else if (error == SSL_ERROR_WANT_READ) {
      await(Wait::wait_read, &Connection::write_now);
    } else {
      ERR_clear_error();
      finish();
    }
    return std::nullopt;
  }

  void arm_timer(std::chrono::milliseconds after) {
    timer_.expires_after(after);
    timer_.async_wait([weak = weak_from_this()](const error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->timer_.expiry() > asio::steady_timer::clock_type::now()) return;
      if (self->closing_) {
        self->finish();
        return;
      }
      if (self->paused_ || self->pending_connect_) {
        // Not read from while its publishes commit or its CONNECT is checked: its silence is
        // ours, not the client's.
        if (self->keep_alive_.count() > 0)
          self->arm_timer(self->keep_alive_ + self->keep_alive_ / 2);
        return;
      }
      self->server_.keep_alive_timeouts_.add();
      self->server_.host_.log().debug("mq.keep_alive_timeout", {{"connection", self->id_}});
      self->lose();
    });
  }

  // The socket is done: for an error, an end of stream, or a close of ours.
  void finish() {
    if (closed_) return;
    closed_ = true;
    closing_ = true;
    error_code ignored;
    timer_.cancel();
    if (ssl_ && handshaken_) {
      // One attempt at close_notify; the peer learns of the close from the TCP end anyway.
      ERR_clear_error();
      SSL_shutdown(ssl_.get());
      ERR_clear_error();
    }
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    tell_broker_lost();
    server_.forget(id_);
  }

  MqServer& server_;
  ConnectionId id_;
  tcp::socket socket_;
  std::unique_ptr<SSL, SslFree> ssl_;  // null for plain TCP; reads and writes the socket's fd
  asio::steady_timer timer_;           // CONNECT timeout, then keep-alive, then the closing linger
  Decoder decoder_;
  Bytes out_;             // encoded by send(), not handed to the socket yet
  Bytes sending_;         // being written
  std::size_t sent_ = 0;  // of sending_
  std::optional<std::string> certificate_name_;
  std::optional<Connect> pending_connect_;  // at the authenticator; nothing is read meanwhile
  std::vector<std::uint8_t> held_;          // read after pending_connect_, not decoded yet
  std::chrono::milliseconds keep_alive_{0};
  bool handshaken_ = false;
  bool paused_ = false;         // not read from until the broker's resume()
  bool writing_ = false;        // write_now() waits for the socket
  bool flush_pending_ = false;  // in the server's flush list
  bool connected_ = false;
  bool broker_knows_ = false;  // the broker holds a session on this connection
  bool closing_ = false;
  bool closed_ = false;
};

MqServer::MqServer(sdk::Host& host, ServerOptions options)
    : host_(host),
      options_(std::move(options)),
      accepted_(host.counter("connections_total", "Connections accepted")),
      rejected_(host.counter("connections_rejected_total",
                             "Connections closed at accept: max_connections reached, or the "
                             "service failed")),
      open_(host.gauge("connections_open", "Connections open now")),
      bytes_in_(host.counter("bytes_received_total", "Bytes read from clients")),
      bytes_out_(host.counter("bytes_sent_total", "Bytes written to clients")),
      protocol_errors_(host.counter("protocol_errors_total",
                                    "Connections closed for a malformed or forbidden packet")),
      keep_alive_timeouts_(host.counter("keep_alive_timeouts_total",
                                        "Connections closed after 1.5 keep-alive periods of "
                                        "silence")),
      tls_failures_(host.counter("tls_handshake_failures_total",
                                 "TLS handshakes that failed: a plain client, an unknown CA, no "
                                 "client certificate")),
      refused_busy_(host.counter("connects_refused_total", "CONNECTs refused, by reason",
                                 {{"reason", "busy"}})),
      broker_metrics_(host),
      acceptor_(io_),
      accept_retry_(io_),
      tick_timer_(io_),
      read_buffer_(kReadBufferSize) {}

MqServer::~MqServer() {
  stop(kDestructorDeadline);
}

void MqServer::start() {
  SessionStore store(host_.db());
  store.migrate();
  const DurableState state = store.load();

  options_.broker.id_base = host_.epoch() << kEpochShift;
  options_.broker.node_id = std::string(host_.node_id());
  committer_ = std::make_unique<GroupCommitter>(
      host_, options_.commit, [this](std::function<void()> fn) { asio::post(io_, std::move(fn)); },
      [this](const std::string& reason) { on_commit_failure(reason); });
  broker_ =
      std::make_unique<Broker>(options_.broker, *committer_, *this, host_.log(), broker_metrics_);
  broker_->load(state);

  const std::string address = format_endpoint(options_.listen);
  const auto fail = [&](const error_code& ec) {
    error_code ignored;
    acceptor_.close(ignored);
    throw std::runtime_error("cannot listen on " + address + ": " + ec.message());
  };
  error_code ec;
  if (acceptor_.open(options_.listen.protocol(), ec)) fail(ec);
  if (acceptor_.set_option(tcp::acceptor::reuse_address(true), ec)) fail(ec);
  if (acceptor_.bind(options_.listen, ec)) fail(ec);
  if (acceptor_.listen(asio::socket_base::max_listen_connections, ec)) fail(ec);
  bound_ = acceptor_.local_endpoint(ec);
  if (ec) fail(ec);

  const AccessControl& access = options_.broker.access;
  if (access.passwords || access.database_users) {
    authenticator_ = std::make_unique<Authenticator>(
        access, access.database_users ? database_users(host_.db(), host_.log()) : UserLookup{},
        options_.max_pending_auth, host_.log());
  }
  const std::string bound = format_endpoint(bound_);
  // Before the committer runs: its DEGRADED report while it retries must not be overwritten.
  host_.health(EMSNODE_HEALTH_OK, "MQTT on " + bound);
  committer_->start();
  accept_next();
  tick();
  std::promise<void> drained;
  drained_ = drained.get_future();
  thread_ = std::thread([this, drained = std::move(drained)]() mutable {
    // OpenSSL writes to the socket with write(): a peer gone would raise SIGPIPE and end the
    // node. Blocked on this thread only, the write fails with EPIPE instead, and the process's
    // own signal handling is left alone.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    try {
      io_.run();
    } catch (const std::exception& e) {
      // Nobody accepts or acknowledges any more: refuse connections at once rather than leave
      // them waiting, stop the committer (whose OK after a retry would be a lie now), and say
      // so last, so that the host restarts the plugin.
      error_code ignored;
      acceptor_.close(ignored);
      committer_->stop();
      host_.log().error("mq.failed", {{"error", e.what()}});
      host_.health(EMSNODE_HEALTH_FAILED, std::string("not serving MQTT: ") + e.what());
    }
    drained.set_value();
  });
  host_.log().info("mq.listening", {{"address", bound},
                                    {"tls", options_.tls != nullptr},
                                    {"epoch", host_.epoch()},
                                    {"max_connections", options_.max_connections}});
}

bool MqServer::stop(std::chrono::milliseconds deadline) {
  if (!thread_.joinable()) {
    error_code ignored;
    acceptor_.close(ignored);
    if (authenticator_) authenticator_->stop();
    if (committer_) committer_->stop();
    return true;
  }
  asio::post(io_, [this] { close_all(); });
  const bool drained = drained_.wait_for(deadline) == std::future_status::ready;
  if (!drained) io_.stop();
  thread_.join();
  // Its outcomes posted from now on wait in io_, never run, and go with it.
  if (authenticator_) authenticator_->stop();
  committer_->stop();
  host_.log().info("mq.stopped", {{"address", format_endpoint(bound_)}, {"drained", drained}});
  return drained;
}

void MqServer::accept_next() {
  acceptor_.async_accept([this](const error_code& ec, tcp::socket socket) {
    if (stopping_ || failed_ || ec == asio::error::operation_aborted) return;
    if (ec) {
      host_.log().warning("mq.accept_failed", {{"error", ec.message()}});
      accept_retry_.expires_after(kAcceptRetryDelay);
      accept_retry_.async_wait([this](const error_code& wait_ec) {
        if (!wait_ec && !stopping_ && !failed_) accept_next();
      });
      return;
    }
    if (connections_.size() >= options_.max_connections) {
      rejected_.add();
      error_code ignored;
      socket.close(ignored);
    } else {
      error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      const ConnectionId id = ++next_connection_;
      auto connection = std::make_shared<Connection>(*this, id, std::move(socket));
      connections_.emplace(id, connection);
      accepted_.add();
      open_.add(1);
      if (!connection->begin()) connection->close_now();
    }
    accept_next();
  });
}

void MqServer::send(ConnectionId connection, const Packet& packet) {
  auto found = connections_.find(connection);
  if (found == connections_.end()) return;
  const auto keep = found->second;  // a failed send ends in forget(), which erases the entry
  keep->send(packet);
}

void MqServer::flush_later(std::shared_ptr<Connection> connection) {
  to_flush_.push_back(std::move(connection));
  if (to_flush_.size() == 1) asio::post(io_, [this] { flush_pending(); });
}

void MqServer::flush_pending() {
  flushing_.swap(to_flush_);
  for (const auto& connection : flushing_) connection->flush();
  flushing_.clear();
}

void MqServer::close(ConnectionId connection) {
  auto found = connections_.find(connection);
  if (found == connections_.end()) return;
  const auto keep = found->second;
  keep->close_by_broker();
}

std::size_t MqServer::backlog(ConnectionId connection) const {
  auto found = connections_.find(connection);
  return found == connections_.end() ? 0 : found->second->backlog();
}

void MqServer::resume(ConnectionId connection) {
  auto found = connections_.find(connection);
  if (found == connections_.end()) return;
  const auto keep = found->second;
  keep->resume();
}

void MqServer::close_all() {
  stopping_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  accept_retry_.cancel();
  tick_timer_.cancel();
  // The broker forgets every connection first, so that none publishes its will.
  broker_->drop_all_connections();
  // close_now ends in forget(), which erases from the map: iterate over a copy.
  const auto connections = connections_;
  for (const auto& [id, connection] : connections) connection->close_now();
}

void MqServer::tick() {
  tick_timer_.expires_after(kTickPeriod);
  tick_timer_.async_wait([this](const error_code& ec) {
    if (ec || stopping_ || failed_) return;
    try {
      broker_->tick();
    } catch (const std::exception& e) {
      host_.log().error("mq.tick_failed", {{"error", e.what()}});
    }
    tick();
  });
}

void MqServer::authenticated(ConnectionId connection, AccessControl::Outcome outcome) {
  auto found = connections_.find(connection);
  if (found == connections_.end()) return;  // closed while its CONNECT was checked
  const auto keep = found->second;
  keep->authenticated(std::move(outcome));
}

void MqServer::forget(ConnectionId connection) {
  if (connections_.erase(connection) > 0) open_.add(-1);
}

void MqServer::on_commit_failure(const std::string& reason) {
  if (failed_) return;
  failed_ = true;
  // Nothing more may be acknowledged: drop every client and free the address for the next
  // active. FAILED makes the host restart the plugin (a fresh committer and listener), or stop
  // it when the node has lost its lease.
  host_.log().error("mq.commit_failed_closing",
                    {{"reason", reason}, {"connections", connections_.size()}});
  host_.health(EMSNODE_HEALTH_FAILED,
               "not serving MQTT: cannot commit to the shared database: " + reason);
  error_code ignored;
  acceptor_.close(ignored);
  accept_retry_.cancel();
  broker_->drop_all_connections();
  const auto connections = connections_;
  for (const auto& [id, connection] : connections) connection->close_now();
}

}  // namespace emsnode::plugins::mq
