// The message queue against Debian's mosquitto, with one load client for both, in one run:
// QoS 0 and QoS 1 messages per second delivered and publish-to-delivery latency (p50, p99) with
// 1, 100 and 1000 publishers, and idle connections per GiB of the broker's memory, plain and TLS.
//
//   mq_bench [--targets mosquitto,emsnode] [--publishers 1,100,1000|none] [--seconds 3]
//            [--idle 5000] [--idle-tls 5000] [--deadline 1200]
//
// Idle TLS connections (the issue's target: 50 000 in at most 2 GiB) go to a second instance of
// each broker with a TLS listener, certificates made by the openssl command for the run. Each
// completes the handshake and CONNECT/CONNACK, then stays silent (keep-alive 65535 s); the
// broker's resident memory (VmRSS) is read before and after. `mq_idle_tls_50k_gib_*` is that
// memory with 50 000 connections: measured when 50 000 were opened, otherwise the baseline plus
// 50 000 times the growth per connection. Every run ends by itself at --deadline (seconds).
//
// The load is closed-loop: at most kWindow messages are on their way at once (sent, not yet
// delivered), spread over the publishers, so both brokers are measured at the same bounded
// queue instead of being flooded. The client waits on epoll and touches only the connections
// that had something happen, so that its share of the two cores does not grow with the number
// of publishers; they start once the subscriber's SUBACK is in. One subscriber receives everything (topic bench/#) at the
// QoS of the run and acknowledges QoS 1; at QoS 1 its session is persistent. emsnode runs one
// node on SQLite with the mq plugin: each QoS 1 message is written to the database (message and
// queue row, then their removal on PUBACK) and acknowledged after the commit; mosquitto keeps
// it in memory (no persistence, as Debian configures it). Figures end as `bench: NAME VALUE UNIT`.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "mqtt_codec.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace mq = emsnode::plugins::mq;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using emsnode::testing::connect_tcp;
using emsnode::testing::eventually;
using emsnode::testing::PortReservation;
using emsnode::testing::Process;
using emsnode::testing::read_file;
using emsnode::testing::run;
using emsnode::testing::TempDir;

constexpr std::size_t kWindow = 1000;     // messages on their way at once, all publishers
constexpr std::size_t kPayloadSize = 64;  // publisher index, sequence, send time, padding
constexpr auto kWarmUp = 500ms;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

class Descriptor {
 public:
  explicit Descriptor(int fd) : fd_(fd) {}
  ~Descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// One MQTT 3.1.1 client connection: non-blocking socket, decoder, pending output.
struct Client {
  int fd = -1;
  mq::Decoder decoder{mq::ProtocolVersion::kV311};
  mq::Bytes out;
  std::size_t out_sent = 0;
  bool connected = false;        // CONNACK received
  bool subscribed = false;       // SUBACK received
  bool watching_output = false;  // on epoll for EPOLLOUT: a write is waiting for the socket
  std::size_t on_the_way = 0;
  std::uint32_t next_seq = 0;
  std::uint16_t next_packet_id = 1;
  Clock::time_point last_delivery = Clock::now();

  void queue(const mq::Packet& packet) { mq::encode(packet, mq::ProtocolVersion::kV311, out); }
  // Writes what the socket takes; false when the connection broke.
  bool flush() {
    while (out_sent < out.size()) {
      const ssize_t n = ::send(fd, out.data() + out_sent, out.size() - out_sent, MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
      out_sent += static_cast<std::size_t>(n);
    }
    out.clear();
    out_sent = 0;
    return true;
  }
};

std::unique_ptr<Client> open_client(std::uint16_t port, const std::string& id, bool clean = true) {
  auto client = std::make_unique<Client>();
  client->fd = connect_tcp("127.0.0.1", port, 5000);
  if (client->fd < 0)
    throw std::runtime_error("cannot connect to the broker on port " + std::to_string(port));
  ::fcntl(client->fd, F_SETFL, ::fcntl(client->fd, F_GETFL) | O_NONBLOCK);
  mq::Connect connect;
  connect.version = mq::ProtocolVersion::kV311;
  connect.client_id = id;
  connect.clean_start = clean;
  client->queue(connect);
  client->flush();
  return client;
}

struct LoadResult {
  double messages_per_s = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  std::size_t lost = 0;     // connections broken during the run
  std::size_t dropped = 0;  // messages never delivered (their window slot given back)
};

// Reads and handles what arrived on `client`; `on_publish` gets each PUBLISH. False when the
// connection broke or the broker sent something it should not have.
template <typename OnPublish>
bool receive(Client& client, OnPublish on_publish) {
  std::uint8_t buffer[64 * 1024];
  for (;;) {
    const ssize_t n = ::recv(client.fd, buffer, sizeof buffer, 0);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
    std::size_t at = 0;
    while (at < static_cast<std::size_t>(n)) {
      auto result = client.decoder.feed(buffer + at, static_cast<std::size_t>(n) - at);
      at += result.consumed;
      if (result.status == mq::Decoder::Status::kError) return false;
      if (result.status == mq::Decoder::Status::kNeedMore) break;
      if (std::holds_alternative<mq::Connack>(*result.packet)) {
        client.connected = std::get<mq::Connack>(*result.packet).reason_code == 0;
      } else if (std::holds_alternative<mq::Suback>(*result.packet)) {
        client.subscribed = true;
      } else if (auto* publish = std::get_if<mq::Publish>(&*result.packet)) {
        on_publish(*publish);
      }
    }
  }
}

// Ends a persistent session by connecting with a clean one of the same id, so that it does not
// collect the next run's messages.
void discard_session(std::uint16_t port, const std::string& id) {
  auto client = open_client(port, id, true);
  const bool done = eventually(
      [&] {
        receive(*client, [](const mq::Publish&) {});
        return client->connected;
      },
      10s);
  ::close(client->fd);
  if (!done) throw std::runtime_error("the broker did not take the clean session of " + id);
}

LoadResult run_load(std::uint16_t port, std::size_t publishers, mq::QoS qos,
                    std::chrono::milliseconds duration) {
  // At QoS 1 the subscriber's session is persistent, so that what emsnode acknowledges is in
  // its database: the durability being measured. mosquitto (no persistence file) keeps it in
  // memory.
  const bool durable = qos != mq::QoS::kAtMostOnce;
  const std::string subscriber_id = "bench-sub-" + std::to_string(publishers);
  auto subscriber = open_client(port, subscriber_id, !durable);
  std::vector<std::unique_ptr<Client>> pubs;
  for (std::size_t i = 0; i < publishers; ++i) {
    pubs.push_back(open_client(port, "bench-pub-" + std::to_string(i)));
  }
  const std::size_t per_publisher = std::max<std::size_t>(1, kWindow / publishers);

  // Connect everyone, then subscribe and wait for the SUBACK (seen as the first rounds).
  std::vector<std::int64_t> latencies;
  LoadResult result;
  bool subscribing = false;                               // SUBSCRIBE sent
  bool publishing = false;                                // SUBACK received: publishers may send
  const auto measure_from = Clock::now() + kWarmUp + 2s;  // connecting counts as warm-up too
  const auto until = measure_from + duration;
  std::size_t delivered = 0;
  // The sockets on epoll: the loop's cost follows what happens, not how many connections
  // there are. Event data: 0 the subscriber, i + 1 publisher i.
  const Descriptor epoll(::epoll_create1(EPOLL_CLOEXEC));
  const auto watch = [&](std::size_t index, bool output, int operation) {
    Client& c = index == 0 ? *subscriber : *pubs[index - 1];
    epoll_event event{};
    event.events = EPOLLIN | (output ? static_cast<std::uint32_t>(EPOLLOUT) : 0u);
    event.data.u64 = index;
    if (::epoll_ctl(epoll.get(), operation, c.fd, &event) != 0) {
      throw std::runtime_error(std::string("epoll_ctl: ") + std::strerror(errno));
    }
    c.watching_output = output;
  };
  for (std::size_t i = 0; i <= publishers; ++i) watch(i, false, EPOLL_CTL_ADD);
  // Writes what the socket takes; the rest once epoll says it may.
  const auto send_queued = [&](std::size_t index) {
    Client& c = index == 0 ? *subscriber : *pubs[index - 1];
    if (!c.flush()) throw std::runtime_error("a connection broke while sending");
    if (c.out.empty() == c.watching_output) watch(index, !c.out.empty(), EPOLL_CTL_MOD);
  };
  std::vector<std::size_t> may_send;  // publishers that may have room in their window now
  auto next_check = Clock::now();

  const auto on_delivery = [&](const mq::Publish& publish) {
    if (publish.payload.size() < 16) return;
    std::uint32_t index = 0;
    std::int64_t sent = 0;
    std::memcpy(&index, publish.payload.data(), 4);
    std::memcpy(&sent, publish.payload.data() + 8, 8);
    if (index < pubs.size() && pubs[index]->on_the_way > 0) {
      --pubs[index]->on_the_way;
      pubs[index]->last_delivery = Clock::now();
      may_send.push_back(index);
    }
    if (Clock::now() >= measure_from) {
      ++delivered;
      latencies.push_back(now_ns() - sent);
    }
    if (publish.qos == mq::QoS::kAtLeastOnce) {
      mq::Puback ack;
      ack.packet_id = publish.packet_id;
      subscriber->queue(ack);
    }
  };

  epoll_event events[1024];
  while (Clock::now() < until) {
    if (!subscribing && subscriber->connected) {
      mq::Subscribe subscribe;
      subscribe.packet_id = 1;
      subscribe.subscriptions.push_back({"bench/#", mq::SubscriptionOptions{qos}});
      subscriber->queue(subscribe);
      subscribing = true;
    }
    send_queued(0);  // the subscriber's SUBSCRIBE and PUBACKs
    if (!publishing && subscriber->subscribed) {
      publishing = true;
      for (std::size_t i = 0; i < pubs.size(); ++i) may_send.push_back(i);
    }
    // A message the broker dropped would hold its slot for ever: give it back after a while.
    if (publishing && Clock::now() >= next_check) {
      next_check = Clock::now() + 1s;
      for (std::size_t i = 0; i < pubs.size(); ++i) {
        Client& pub = *pubs[i];
        if (pub.on_the_way > 0 && Clock::now() - pub.last_delivery > 5s) {
          result.dropped += pub.on_the_way;
          pub.on_the_way = 0;
          pub.last_delivery = Clock::now();
          may_send.push_back(i);
        }
      }
    }
    // Publishers send while they have room in their window, once the subscription is in.
    for (std::size_t i : may_send) {
      if (!publishing) break;
      Client& pub = *pubs[i];
      const std::size_t before = pub.on_the_way;
      while (pub.connected && pub.on_the_way < per_publisher) {
        mq::Publish publish;
        publish.qos = qos;
        publish.topic = "bench/" + std::to_string(i);
        if (qos != mq::QoS::kAtMostOnce) {
          publish.packet_id = pub.next_packet_id++;
          if (pub.next_packet_id == 0) pub.next_packet_id = 1;
        }
        publish.payload.assign(kPayloadSize, 0);
        const auto index = static_cast<std::uint32_t>(i);
        const std::int64_t sent = now_ns();
        std::memcpy(publish.payload.data(), &index, 4);
        std::memcpy(publish.payload.data() + 4, &pub.next_seq, 4);
        std::memcpy(publish.payload.data() + 8, &sent, 8);
        ++pub.next_seq;
        pub.queue(publish);
        ++pub.on_the_way;
      }
      if (pub.on_the_way != before) send_queued(i + 1);
    }
    if (publishing) may_send.clear();
    const int n = ::epoll_wait(epoll.get(), events, 1024, 10);
    if (n < 0 && errno != EINTR) {
      throw std::runtime_error(std::string("epoll_wait: ") + std::strerror(errno));
    }
    for (int e = 0; e < n; ++e) {
      const std::size_t index = events[e].data.u64;
      Client& c = index == 0 ? *subscriber : *pubs[index - 1];
      if (events[e].events & EPOLLOUT) send_queued(index);
      if (!(events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
      // Publishers only get CONNACK and PUBACK; the subscriber gets the deliveries.
      if (!receive(c, on_delivery)) ++result.lost;
      if (index > 0) may_send.push_back(index - 1);  // its CONNACK may have come
    }
    if (result.lost > 0) throw std::runtime_error("the broker closed connections during the run");
  }
  ::close(subscriber->fd);
  for (auto& p : pubs) ::close(p->fd);
  if (durable) discard_session(port, subscriber_id);

  std::sort(latencies.begin(), latencies.end());
  const auto at = [&](double q) {
    if (latencies.empty()) return 0.0;
    const auto i = std::min(latencies.size() - 1,
                            static_cast<std::size_t>(q * static_cast<double>(latencies.size())));
    return static_cast<double>(latencies[i]) / 1e6;
  };
  result.messages_per_s =
      static_cast<double>(delivered) / std::chrono::duration<double>(duration).count();
  result.p50_ms = at(0.50);
  result.p99_ms = at(0.99);
  return result;
}

std::size_t rss_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

// Opens `count` idle connections (CONNACK received) and returns connections per GiB of the
// broker's resident memory they cost.
double idle_per_gib(std::uint16_t port, pid_t broker, std::size_t count) {
  const std::size_t before = rss_bytes(broker);
  std::vector<std::unique_ptr<Client>> clients;
  for (std::size_t i = 0; i < count; ++i) {
    clients.push_back(open_client(port, "bench-idle-" + std::to_string(i)));
  }
  const bool all = eventually(
      [&] {
        std::size_t connected = 0;
        for (auto& c : clients) {
          if (!c->connected && !receive(*c, [](const mq::Publish&) {})) {
            throw std::runtime_error("the broker closed an idle connection");
          }
          connected += c->connected ? 1 : 0;
        }
        return connected == clients.size();
      },
      60s);
  if (!all) throw std::runtime_error("not every idle connection was accepted");
  std::this_thread::sleep_for(1s);
  const std::size_t after = rss_bytes(broker);
  for (auto& c : clients) ::close(c->fd);
  const double per_connection =
      static_cast<double>(after > before ? after - before : 1) / static_cast<double>(count);
  return static_cast<double>(1ull << 30) / per_connection;
}

// ---- Idle TLS connections ----

constexpr std::size_t kHandshakesAtOnce = 64;  // connections between connect() and CONNACK
constexpr auto kConnackTimeout = 30s;          // from connect() to CONNACK, per connection
// One (source address, server address and port) has only the kernel's ~28 000 ephemeral ports:
// each run of this many connections comes from the next address, 127.0.0.2, 127.0.0.3, ...
constexpr std::size_t kConnectionsPerSource = 20000;
constexpr std::uint32_t kFirstSource = 0x7f000002;  // 127.0.0.2
constexpr std::uint16_t kIdleKeepAlive = 65535;     // seconds: no PINGREQ while measured
constexpr std::size_t kSpareDescriptors = 256;      // a process's own files besides connections
constexpr std::size_t kTargetConnections = 50000;   // the issue: 50 000 in at most 2 GiB
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
struct SslContextFree {
  void operator()(SSL_CTX* context) const { SSL_CTX_free(context); }
};
using SslContext = std::unique_ptr<SSL_CTX, SslContextFree>;

// A file descriptor, closed on destruction.

// OpenSSL's reasons for the last failure on this thread, the queue emptied.
std::string openssl_errors() {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    text += text.empty() ? "" : "; ";
    text += buffer;
  }
  return text.empty() ? "no reason given" : text;
}

// A throwaway CA and a certificate for 127.0.0.1 signed by it (ECDSA P-256), made by the openssl
// command in a directory of their own.
struct TlsFiles {
  std::string ca;
  std::string cert;
  std::string key;
};

TlsFiles make_tls_files(const TempDir& dir) {
  const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  std::string script = "set -e\n";
  script += "openssl req -x509 " + key + " -keyout ca.key -out ca.crt -days 2 -subj /CN=bench-ca\n";
  script += "openssl req " + key + " -keyout server.key -out server.csr -subj /CN=127.0.0.1\n";
  script += "printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext\n";
  script += "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial ";
  script += "-out server.crt -days 2 -extfile server.ext\n";
  // mosquitto started by root reads its certificate and key after switching to its own user;
  // the key is this run's only.
  script += "chmod 755 . && chmod 644 server.key\n";
  dir.write("certs.sh", script);
  const auto made =
      run({"/bin/sh", "-c", "cd '" + dir.path().string() + "' && sh certs.sh"}, dir.path(), 30s);
  if (made.status != 0)
    throw std::runtime_error("openssl could not make certificates: " + made.err);
  return {(dir / "ca.crt").string(), (dir / "server.crt").string(), (dir / "server.key").string()};
}

// The clients' context: verifies the server as 127.0.0.1 against the run's CA; keeps no session
// and releases its record buffers while a connection is idle (the clients' memory is not
// measured, but tens of thousands of them share this process).
SslContext make_client_context(const TlsFiles& files) {
  SslContext context(SSL_CTX_new(TLS_client_method()));
  if (!context) throw std::runtime_error("SSL_CTX_new: " + openssl_errors());
  SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
  SSL_CTX_set_mode(context.get(), SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_cache_mode(context.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(context.get(), SSL_OP_NO_TICKET);
  if (SSL_CTX_load_verify_locations(context.get(), files.ca.c_str(), nullptr) != 1 ||
      X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(context.get()), "127.0.0.1") != 1) {
    throw std::runtime_error("cannot trust " + files.ca + ": " + openssl_errors());
  }
  SSL_CTX_set_verify(context.get(), SSL_VERIFY_PEER, nullptr);
  return context;
}

// Idle MQTT 3.1.1 connections over TLS to one broker, opened by this thread alone: non-blocking
// sockets on epoll, at most kHandshakesAtOnce between connect() and CONNACK. Every connection
// stays watched for input, so one the broker closes is seen. Destroying it closes them all.
class IdleTlsClients {
 public:
  IdleTlsClients(SSL_CTX* context, std::uint16_t port, Clock::time_point deadline)
      : context_(context),
        port_(port),
        deadline_(deadline),
        epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (epoll_.get() < 0) throw std::runtime_error(std::string("epoll: ") + std::strerror(errno));
  }

  // Returns once `count` connections have had their CONNACK; throws saying how many had and why
  // no more could (a refusal, a connection closed, kConnackTimeout, the deadline).
  void open(std::size_t count) {
    connections_.reserve(count);
    while (idle_ < count) {
      while (connections_.size() < count && connections_.size() - idle_ < kHandshakesAtOnce) {
        start();
      }
      poll();
      check_progress();
    }
  }

  // Keeps servicing the connections for `duration`: the broker must close none of them.
  void hold(std::chrono::milliseconds duration) {
    const auto until = Clock::now() + duration;
    while (Clock::now() < until) {
      poll();
      check_progress();
    }
  }

 private:
  struct Connection {
    enum class State { kConnecting, kHandshaking, kSendingConnect, kAwaitingConnack, kIdle };
    Connection(std::size_t index, int fd) : index(index), socket(fd) {}

    std::size_t index;  // in connections_, and the epoll event's data
    Descriptor socket;
    std::unique_ptr<SSL, SslFree> ssl;
    State state = State::kConnecting;
    std::uint32_t watched = EPOLLOUT;
    mq::Bytes connect;                     // the CONNECT, until SSL_write has taken it
    std::unique_ptr<mq::Decoder> decoder;  // until the CONNACK
    Clock::time_point started = Clock::now();
  };
  using State = Connection::State;

  std::runtime_error failure(const std::string& why) const {
    return std::runtime_error(std::to_string(idle_) + " connections open, then " + why);
  }

  void start() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw failure(std::string("socket(): ") + std::strerror(errno));
    auto c = std::make_unique<Connection>(connections_.size(), fd);
    // The port is chosen at connect(), per (source, destination) pair, not at bind().
    const int on = 1;
    ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on);
    sockaddr_in source{};
    source.sin_family = AF_INET;
    source.sin_addr.s_addr =
        htonl(kFirstSource + static_cast<std::uint32_t>(c->index / kConnectionsPerSource));
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&source), sizeof source) != 0) {
      throw failure(std::string("bind() to a 127.0.0.x source address: ") + std::strerror(errno));
    }
    sockaddr_in server{};
    server.sin_family = AF_INET;
    server.sin_port = htons(port_);
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&server), sizeof server) != 0 &&
        errno != EINPROGRESS) {
      throw failure(std::string("connect(): ") + std::strerror(errno));
    }
    c->ssl.reset(SSL_new(context_));
    if (!c->ssl || SSL_set_fd(c->ssl.get(), fd) != 1) throw failure("SSL_new: " + openssl_errors());
    SSL_set_connect_state(c->ssl.get());
    mq::Connect connect;
    connect.version = mq::ProtocolVersion::kV311;
    connect.client_id = "bench-tls-" + std::to_string(c->index);
    connect.keep_alive = kIdleKeepAlive;
    mq::encode(connect, mq::ProtocolVersion::kV311, c->connect);
    c->decoder = std::make_unique<mq::Decoder>(mq::ProtocolVersion::kV311);
    epoll_event event{};
    event.events = c->watched;
    event.data.u64 = c->index;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
      throw failure(std::string("epoll_ctl: ") + std::strerror(errno));
    }
    connections_.push_back(std::move(c));
  }

  void poll() {
    if (Clock::now() >= deadline_) throw failure("the deadline (--deadline) passed");
    epoll_event events[256];
    const int n = ::epoll_wait(epoll_.get(), events, 256, 100);
    if (n < 0 && errno != EINTR) throw failure(std::string("epoll_wait: ") + std::strerror(errno));
    for (int i = 0; i < n; ++i) step(*connections_[events[i].data.u64]);
  }

  // Moves `c` on as far as the socket allows, then waits for what OpenSSL wants.
  void step(Connection& c) {
    SSL* ssl = c.ssl.get();
    switch (c.state) {
      case State::kConnecting: {
        int error = 0;
        socklen_t length = sizeof error;
        ::getsockopt(c.socket.get(), SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0) throw failure(std::string("connect(): ") + std::strerror(error));
        c.state = State::kHandshaking;
      }
        [[fallthrough]];
      case State::kHandshaking: {
        const int rc = SSL_do_handshake(ssl);
        if (rc != 1) return wait(c, rc, "in the TLS handshake");
        c.state = State::kSendingConnect;
      }
        [[fallthrough]];
      case State::kSendingConnect: {
        const int rc = SSL_write(ssl, c.connect.data(), static_cast<int>(c.connect.size()));
        if (rc <= 0) return wait(c, rc, "sending CONNECT");
        mq::Bytes().swap(c.connect);
        c.state = State::kAwaitingConnack;
      }
        [[fallthrough]];
      case State::kAwaitingConnack:
      case State::kIdle:
        read(c);
    }
  }

  void read(Connection& c) {
    std::uint8_t buffer[4096];
    for (;;) {
      const int n = SSL_read(c.ssl.get(), buffer, sizeof buffer);
      if (n <= 0) {
        return wait(c, n, c.state == State::kIdle ? "while idle" : "waiting for CONNACK");
      }
      std::size_t at = 0;
      while (c.state == State::kAwaitingConnack && at < static_cast<std::size_t>(n)) {
        auto result = c.decoder->feed(buffer + at, static_cast<std::size_t>(n) - at);
        at += result.consumed;
        if (result.status == mq::Decoder::Status::kError) {
          throw failure("the broker sent a malformed packet");
        }
        if (result.status == mq::Decoder::Status::kNeedMore) break;
        const auto* connack = std::get_if<mq::Connack>(&*result.packet);
        if (connack == nullptr) throw failure("the broker sent another packet than CONNACK");
        if (connack->reason_code != 0) {
          throw failure("CONNACK refused the connection with code " +
                        std::to_string(connack->reason_code));
        }
        c.decoder.reset();
        c.state = State::kIdle;
        ++idle_;
      }
    }
  }

  // After `rc` from an SSL call: watches the socket for what OpenSSL is waiting for, or throws.
  void wait(Connection& c, int rc, const std::string& doing) {
    const int saved_errno = errno;
    const int error = SSL_get_error(c.ssl.get(), rc);
    std::uint32_t watched = 0;
    if (error == SSL_ERROR_WANT_READ) {
      watched = EPOLLIN;
    } else if (error == SSL_ERROR_WANT_WRITE) {
      watched = EPOLLOUT;
    } else if (error == SSL_ERROR_ZERO_RETURN ||
               (error == SSL_ERROR_SYSCALL && (saved_errno == 0 || saved_errno == ECONNRESET))) {
      throw failure("the broker closed connection " + std::to_string(c.index) + " " + doing);
    } else if (error == SSL_ERROR_SYSCALL) {
      throw failure(doing + ": " + std::strerror(saved_errno));
    } else {
      throw failure(doing + ": " + openssl_errors());
    }
    if (watched == c.watched) return;
    epoll_event event{};
    event.events = watched;
    event.data.u64 = c.index;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.socket.get(), &event) != 0) {
      throw failure(std::string("epoll_ctl: ") + std::strerror(errno));
    }
    c.watched = watched;
  }

  // Throws when a connection has waited kConnackTimeout: a broker out of descriptors leaves new
  // connections in its backlog, unanswered.
  void check_progress() {
    while (first_pending_ < connections_.size() &&
           connections_[first_pending_]->state == State::kIdle) {
      ++first_pending_;
    }
    const auto now = Clock::now();
    for (std::size_t i = first_pending_; i < connections_.size(); ++i) {
      const Connection& c = *connections_[i];
      if (c.state != State::kIdle && now - c.started > kConnackTimeout) {
        throw failure("connection " + std::to_string(i) + " had no CONNACK within " +
                      std::to_string(kConnackTimeout.count()) + " s");
      }
    }
  }

  SSL_CTX* context_;
  std::uint16_t port_;
  Clock::time_point deadline_;
  Descriptor epoll_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::size_t idle_ = 0;           // connections that had their CONNACK
  std::size_t first_pending_ = 0;  // every connection before it is idle
};

struct IdleTlsResult {
  std::size_t connections = 0;
  double baseline_bytes = 0;  // the broker's RSS before
  double per_connection = 0;  // bytes of RSS growth per idle connection
  double per_gib() const { return kGiB / per_connection; }
  // The broker's RSS with kTargetConnections, in GiB.
  double target_gib() const {
    return (baseline_bytes + per_connection * static_cast<double>(kTargetConnections)) / kGiB;
  }
};

std::size_t rss_of_running(Process& broker) {
  if (!broker.running()) throw std::runtime_error("the broker exited: " + broker.err());
  return rss_bytes(broker.pid());
}

IdleTlsResult idle_tls_cost(SSL_CTX* context, std::uint16_t port, Process& broker,
                            std::size_t count, Clock::time_point deadline) {
  {
    // The broker's first handshake sets up TLS state it keeps whatever the number of
    // connections (OpenSSL's per-thread and algorithm caches): not a cost of a connection.
    IdleTlsClients first(context, port, deadline);
    first.open(1);
  }
  std::this_thread::sleep_for(500ms);
  IdleTlsResult result;
  result.connections = count;
  const std::size_t before = rss_of_running(broker);
  IdleTlsClients clients(context, port, deadline);
  clients.open(count);
  // Time for the broker to finish with the handshakes (buffers released after the last read),
  // during which it must keep every connection.
  clients.hold(2s);
  const std::size_t after = rss_of_running(broker);
  result.baseline_bytes = static_cast<double>(before);
  result.per_connection =
      static_cast<double>(after > before ? after - before : 1) / static_cast<double>(count);
  return result;
}

// Descriptors for `connections` at once, in this process and in the brokers it starts (they
// inherit the limit): the soft limit up to the hard one, the hard one too where this process
// may (CAP_SYS_RESOURCE). Returns the limit now in force.
rlim_t raise_descriptor_limit(std::size_t connections) {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  const rlim_t wanted = connections + kSpareDescriptors;
  if (wanted > limit.rlim_max) {
    const rlimit higher{wanted, wanted};
    if (::setrlimit(RLIMIT_NOFILE, &higher) == 0) return wanted;
  }
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur;
}

struct Broker {
  std::string name;
  std::unique_ptr<Process> process;
  std::uint16_t port = 0;
};

// With `tls`, the broker's one listener speaks TLS only.
Broker start_mosquitto(const TempDir& dir, std::uint16_t port, const TlsFiles* tls) {
  const std::string tls_lines =
      tls ? "certfile " + tls->cert + "\nkeyfile " + tls->key + "\n" : std::string();
  const auto conf =
      dir.write("mosquitto.conf", "listener " + std::to_string(port) + " 127.0.0.1\n" + tls_lines +
                                      "allow_anonymous true\n"
                                      "persistence false\nmax_queued_messages 0\n"
                                      "log_type error\n");
  return {"mosquitto",
          std::make_unique<Process>(
              std::vector<std::string>{"/usr/sbin/mosquitto", "-c", conf.string()}, dir.path()),
          port};
}

Broker start_emsnode(const TempDir& dir, std::uint16_t port, std::uint16_t admin_port,
                     const TlsFiles* tls) {
  const std::string tls_lines =
      tls ? "tls_cert = \"" + tls->cert + "\"\ntls_key = \"" + tls->key + "\"\n" : std::string();
  const auto conf = dir.write(
      "node.toml", "[node]\nid = \"bench\"\ndata_dir = \"" + (dir / "node").string() +
                       "\"\n[database]\npath = \"" + (dir / "cluster.db").string() +
                       "\"\nmigrate = true\n[store]\npath = \"" + (dir / "share").string() +
                       "\"\n[log]\nconsole = false\nfile = \"" + (dir / "node.log").string() +
                       "\"\n[admin]\nlisten = \"127.0.0.1:" + std::to_string(admin_port) +
                       "\"\n[plugins.echo]\nenabled = false\n[plugins.mq]\nlisten = \"127.0.0.1:" +
                       std::to_string(port) +
                       "\"\nmax_connections = 65536\n"
                       // The load's window, not a session's bound, limits what is on its way.
                       "max_queued_messages = 10000\n" +
                       tls_lines);
  return {"emsnode",
          std::make_unique<Process>(
              std::vector<std::string>{EMSNODE_BINARY, "--conf", conf.string()}, dir.path()),
          port};
}

// The last `count` lines of `text`.
std::string tail(const std::string& text, std::size_t count) {
  std::size_t at = text.size();
  for (std::size_t lines = 0; at > 0 && lines <= count;) {
    if (text[--at] == '\n') ++lines;
  }
  return text.substr(at);
}

// Starts `target` and returns once it accepts TCP connections on `port`.
Broker start_broker(const std::string& target, const TempDir& dir, std::uint16_t port,
                    std::uint16_t admin_port, const TlsFiles* tls) {
  Broker broker = target == "mosquitto" ? start_mosquitto(dir, port, tls)
                                        : start_emsnode(dir, port, admin_port, tls);
  if (!eventually(
          [&] {
            const int fd = connect_tcp("127.0.0.1", broker.port, 200);
            if (fd >= 0) ::close(fd);
            return fd >= 0;
          },
          20s)) {
    throw std::runtime_error(target + " did not listen on port " + std::to_string(broker.port) +
                             ": " + broker.process->err());
  }
  return broker;
}

void check_deadline(Clock::time_point deadline, const std::string& next) {
  if (Clock::now() >= deadline) {
    throw std::runtime_error("the deadline (--deadline) passed before " + next);
  }
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  std::istringstream in(text);
  for (std::string part; std::getline(in, part, ',');) parts.push_back(part);
  return parts;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> targets = {"mosquitto", "emsnode"};
  std::vector<std::size_t> publishers = {1, 100, 1000};
  auto seconds = 3s;
  std::size_t idle = 5000;
  std::size_t idle_tls_asked = 5000;
  auto deadline_after = 1200s;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool known = arg == "--targets" || arg == "--publishers" || arg == "--seconds" ||
                       arg == "--idle" || arg == "--idle-tls" || arg == "--deadline";
    if (!known || i + 1 >= argc) {
      std::cerr << "usage: mq_bench [--targets mosquitto,emsnode] [--publishers 1,100,1000|none] "
                   "[--seconds N] [--idle N] [--idle-tls N] [--deadline SECONDS]\n";
      return 2;
    }
    const std::string value = argv[++i];
    if (arg == "--targets") {
      targets = split(value);
    } else if (arg == "--publishers") {
      publishers.clear();
      if (value != "none") {
        for (const auto& p : split(value)) publishers.push_back(std::stoul(p));
      }
    } else if (arg == "--seconds") {
      seconds = std::chrono::seconds(std::stoi(value));
    } else if (arg == "--idle") {
      idle = std::stoul(value);
    } else if (arg == "--idle-tls") {
      idle_tls_asked = std::stoul(value);
    } else {
      deadline_after = std::chrono::seconds(std::stoi(value));
    }
  }
  const auto deadline = Clock::now() + deadline_after;
  // OpenSSL writes to its sockets with write(): a connection the broker closed must be an error
  // of the run, not its end. (The brokers inherit this; both ignore SIGPIPE anyway.)
  ::signal(SIGPIPE, SIG_IGN);

  // Many connections: as many descriptors as the largest run needs, for us and the brokers.
  const std::size_t most_publishers =
      publishers.empty() ? 0 : *std::max_element(publishers.begin(), publishers.end());
  const rlim_t descriptors =
      raise_descriptor_limit(std::max({idle, idle_tls_asked, most_publishers + 1}));
  std::size_t idle_tls = idle_tls_asked;
  if (idle_tls + kSpareDescriptors > descriptors) {
    idle_tls = descriptors > kSpareDescriptors ? descriptors - kSpareDescriptors : 0;
    std::printf(
        "idle TLS: %zu connections asked, but the open-file limit is %llu and this process may "
        "not raise it (it needs CAP_SYS_RESOURCE, or a higher `ulimit -Hn` before the run): "
        "measuring %zu\n",
        idle_tls_asked, static_cast<unsigned long long>(descriptors), idle_tls);
  }

  std::map<std::string, std::map<std::string, double>> figures;
  std::map<std::string, IdleTlsResult> tls_figures;
  bool failed = false;
  try {
    TempDir tls_dir;
    std::optional<TlsFiles> tls_files;
    SslContext client_context;
    if (idle_tls > 0) {
      tls_files = make_tls_files(tls_dir);
      client_context = make_client_context(*tls_files);
    }
    for (const std::string& target : targets) {
      if (idle_tls > 0) {
        check_deadline(deadline, "the idle TLS connections to " + target);
        TempDir dir;
        PortReservation port;
        PortReservation admin_port;
        Broker broker = start_broker(target, dir, port.port(), admin_port.port(), &*tls_files);
        std::printf("%-9s opening %zu idle TLS connections\n", target.c_str(), idle_tls);
        std::fflush(stdout);
        try {
          const IdleTlsResult r =
              idle_tls_cost(client_context.get(), broker.port, *broker.process, idle_tls, deadline);
          std::printf(
              "%-9s %zu idle TLS connections: %.1f KiB each over %.0f MiB at rest, %.0f per GiB; "
              "%zu take %.2f GiB (%s)\n",
              target.c_str(), idle_tls, r.per_connection / 1024, r.baseline_bytes / 1024 / 1024,
              r.per_gib(), kTargetConnections, r.target_gib(),
              idle_tls >= kTargetConnections ? "measured" : "projected");
          tls_figures[target] = r;
        } catch (const std::runtime_error& e) {
          // A broker that cannot hold them all fails the run, but the other is still measured.
          std::printf("%-9s idle TLS: %s\n", target.c_str(), e.what());
          failed = true;
        }
        broker.process->signal(SIGTERM);
        broker.process->wait(10s);
      }
      if (idle == 0 && publishers.empty()) continue;
      check_deadline(deadline, "the plain TCP runs of " + target);
      TempDir dir;
      PortReservation port;
      PortReservation admin_port;
      Broker broker = start_broker(target, dir, port.port(), admin_port.port(), nullptr);
      // Idle connections first, while the broker holds no memory of earlier loads to reuse.
      if (idle > 0) {
        const double per_gib = idle_per_gib(broker.port, broker.process->pid(), idle);
        std::printf("%-9s %zu idle connections: %.0f connections per GiB\n", target.c_str(), idle,
                    per_gib);
        figures[target]["idle_connections_per_gib"] = per_gib;
      }
      for (const mq::QoS qos : {mq::QoS::kAtMostOnce, mq::QoS::kAtLeastOnce}) {
        for (const std::size_t p : publishers) {
          check_deadline(deadline, "the load runs of " + target);
          LoadResult r;
          try {
            r = run_load(broker.port, p, qos, seconds);
          } catch (const std::runtime_error& e) {
            // What the broker said about it is the first thing to read.
            if (target == "emsnode") {
              std::cerr << "emsnode's log ends with:\n" << tail(read_file(dir / "node.log"), 20);
            }
            throw;
          }
          const std::string key =
              "qos" + std::to_string(static_cast<int>(qos)) + "_p" + std::to_string(p);
          std::printf(
              "%-9s QoS %d, %4zu publishers: %9.0f msg/s, p50 %6.2f ms, p99 %6.2f ms, "
              "%zu dropped\n",
              target.c_str(), static_cast<int>(qos), p, r.messages_per_s, r.p50_ms, r.p99_ms,
              r.dropped);
          figures[target][key + "_msgs_per_s"] = r.messages_per_s;
          figures[target][key + "_p50_ms"] = r.p50_ms;
          figures[target][key + "_p99_ms"] = r.p99_ms;
        }
      }
      broker.process->signal(SIGTERM);
      broker.process->wait(10s);
    }
  } catch (const std::exception& e) {
    std::cerr << "mq_bench: " << e.what() << '\n';
    return 1;
  }
  for (const auto& [target, values] : figures) {
    for (const auto& [name, value] : values) {
      const bool ms = name.size() > 3 && name.compare(name.size() - 3, 3, "_ms") == 0;
      std::printf("bench: mq_%s_%s %.2f %s\n", target.c_str(), name.c_str(), value,
                  ms ? "ms" : (name.find("idle") != std::string::npos ? "conn/GiB" : "msg/s"));
    }
  }
  if (figures.count("mosquitto") && figures.count("emsnode")) {
    for (const auto& [name, value] : figures["emsnode"]) {
      if (name.find("msgs_per_s") == std::string::npos && name.find("idle") == std::string::npos) {
        continue;
      }
      const double peer = figures["mosquitto"][name];
      if (peer > 0)
        std::printf("bench: mq_%s_ratio_to_mosquitto %.2f x\n", name.c_str(), value / peer);
    }
  }
  for (const auto& [target, r] : tls_figures) {
    std::printf("bench: mq_idle_tls_conn_per_gib_%s %.2f conn/GiB\n", target.c_str(), r.per_gib());
    std::printf("bench: mq_idle_tls_50k_gib_%s %.3f GiB\n", target.c_str(), r.target_gib());
  }
  if (tls_figures.count("mosquitto") && tls_figures.count("emsnode")) {
    std::printf("bench: mq_idle_tls_conn_per_gib_ratio_to_mosquitto %.2f x\n",
                tls_figures["emsnode"].per_gib() / tls_figures["mosquitto"].per_gib());
  }
  return failed ? 1 : 0;
}
