// The whole mq plugin (entry glue, server, broker, committer) driven by the SDK's fake host
// through the lifecycle the node uses, with a database that fails on demand and MQTT 3.1.1
// clients on real loopback sockets: what a client sees, and what the plugin tells the host
// about its health, when the database blips, when the node is fenced, and after a restart.
#include <emsnode/plugin_abi.h>
#include <emsnode/testing/fake_host.hpp>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/net.hpp"
#include "support/process.hpp"

extern "C" const emsnode_plugin_api* emsnode_plugin_entry(uint16_t, uint16_t);

namespace sdk = emsnode::sdk;
using emsnode::testing::eventually;
using emsnode::testing::PortReservation;
using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

namespace {

// A 3.1.1 client on a blocking loopback socket, its packets written byte by byte as the
// standard gives them (short topics and ids only: one-byte remaining lengths).
class Client {
 public:
  // Connects to 127.0.0.1:port; connected() says whether the connect was accepted.
  explicit Client(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      error_ = errno;
    }
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return error_ == 0; }
  bool refused() const { return error_ == ECONNREFUSED; }

  // CONNECT; true when CONNACK 0 comes back.
  bool handshake(const std::string& client_id, bool clean = true) {
    Bytes connect = {0x10, static_cast<std::uint8_t>(12 + client_id.size()),
                     0,    4,
                     'M',  'Q',
                     'T',  'T',
                     4,    static_cast<std::uint8_t>(clean ? 0x02 : 0x00),
                     0,    60,
                     0,    static_cast<std::uint8_t>(client_id.size())};
    connect.insert(connect.end(), client_id.begin(), client_id.end());
    send(connect);
    return read_packet(5s) == Bytes{0x20, 2, 0, 0};
  }

  // SUBSCRIBE to `topic` at QoS 1; true when the SUBACK grants it.
  bool subscribe_qos1(const std::string& topic) {
    Bytes subscribe = {0x82, static_cast<std::uint8_t>(2 + 2 + topic.size() + 1),
                       0,    1,
                       0,    static_cast<std::uint8_t>(topic.size())};
    subscribe.insert(subscribe.end(), topic.begin(), topic.end());
    subscribe.push_back(1);
    send(subscribe);
    return read_packet(5s) == Bytes{0x90, 3, 0, 1, 1};
  }

  void publish_qos1(const std::string& topic, std::uint16_t packet_id) {
    Bytes publish = {0x32, static_cast<std::uint8_t>(2 + topic.size() + 2 + 1), 0,
                     static_cast<std::uint8_t>(topic.size())};
    publish.insert(publish.end(), topic.begin(), topic.end());
    publish.insert(publish.end(), {static_cast<std::uint8_t>(packet_id >> 8),
                                   static_cast<std::uint8_t>(packet_id & 0xFF), 'x'});
    send(publish);
  }

  static Bytes puback(std::uint16_t packet_id) {
    return {0x40, 2, static_cast<std::uint8_t>(packet_id >> 8),
            static_cast<std::uint8_t>(packet_id & 0xFF)};
  }

  // The next packet within `timeout`; nullopt when none came, and closed() when the server
  // closed the connection.
  std::optional<Bytes> read_packet(std::chrono::milliseconds timeout) {
    Bytes header(2);
    if (!read_exactly(header.data(), 2, timeout)) return std::nullopt;
    Bytes packet = header;
    packet.resize(2 + header[1]);
    if (header[1] > 0 && !read_exactly(packet.data() + 2, header[1], timeout)) return std::nullopt;
    return packet;
  }
  bool closed() const { return closed_; }

 private:
  void send(const Bytes& bytes) {
    REQUIRE(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
  }
  bool read_exactly(std::uint8_t* out, std::size_t size, std::chrono::milliseconds timeout) {
    std::size_t got = 0;
    while (got < size) {
      pollfd ready{fd_, POLLIN, 0};
      if (::poll(&ready, 1, static_cast<int>(timeout.count())) != 1) return false;
      const ssize_t n = ::recv(fd_, out + got, size - got, 0);
      if (n <= 0) {
        closed_ = true;
        return false;
      }
      got += static_cast<std::size_t>(n);
    }
    return true;
  }

  int fd_;
  int error_ = 0;
  bool closed_ = false;
};

// The fake host configured as the node fills mq's config (plugin.toml's defaults), on a
// reserved loopback port, with a database whose writes fail as the test says.
struct MqFixture {
  MqFixture() {
    fake.config("listen", "127.0.0.1:" + std::to_string(port.port()))
        .config("max_connections", 16)
        .config("max_pending_auth", 256)
        .config("max_packet_size", 1048576)
        .config("max_inflight", 32)
        .config("max_queued_messages", 1000)
        .config("max_queued_bytes", 16777216)
        .config("receive_maximum", 1000)
        .config("topic_alias_maximum", 10)
        .config("failover_will_delay", std::chrono::milliseconds(60000))
        .config("queue_full_policy", "drop_new")
        .config("commit_interval", std::chrono::milliseconds(5));
    fake.set_db_migrate([](const std::vector<std::string>&) {})
        .set_db_query([](std::string_view, const sdk::Params&) { return std::vector<sdk::Row>{}; })
        .set_db_exec([](std::string_view, const sdk::Params&) {
          return sdk::testing::FakeHost::DbExecResult{};
        })
        .set_db_write([this](const std::function<bool()>& run_body) {
          ++writes;
          if (fenced) throw sdk::FencedError("node2 holds the lease at epoch 2");
          if (unreachable) throw sdk::DbError("server closed the connection unexpectedly");
          run_body();
        });
    REQUIRE(fake.create(emsnode_plugin_entry(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR)) == EMSNODE_OK);
  }

  // A fresh client that completed its CONNECT.
  std::unique_ptr<Client> connect(const std::string& client_id) {
    auto client = std::make_unique<Client>(port.port());
    REQUIRE(client->connected());
    REQUIRE(client->handshake(client_id));
    return client;
  }

  // A persistent session subscribed to "t": a QoS 1 message to "t" is then a durable write.
  std::unique_ptr<Client> subscriber() {
    auto client = std::make_unique<Client>(port.port());
    REQUIRE(client->connected());
    REQUIRE(client->handshake("subscriber", false));
    REQUIRE(client->subscribe_qos1("t"));
    return client;
  }

  // Starts the plugin, connects the subscriber and a publisher `client_id`, makes the database
  // fail as `failure` says, and publishes packet 1 to "t": a write that cannot commit.
  std::unique_ptr<Client> publish_failing(const std::string& client_id,
                                          std::atomic<bool>& failure) {
    REQUIRE(fake.start() == EMSNODE_OK);
    subscribed = subscriber();
    auto client = connect(client_id);
    failure = true;
    client->publish_qos1("t", 1);
    return client;
  }

  bool degraded() const { return fake.health() == EMSNODE_HEALTH_DEGRADED; }

  PortReservation port;
  sdk::testing::FakeHost fake;
  std::atomic<int> writes{0};
  std::atomic<bool> fenced{false};
  std::atomic<bool> unreachable{false};
  std::unique_ptr<Client> subscribed;
};

}  // namespace

TEST_CASE("a database blip holds the PUBACK, reports DEGRADED, then acknowledges and is OK") {
  MqFixture f;
  auto client = f.publish_failing("blip", f.unreachable);
  REQUIRE(eventually([&] { return f.degraded(); }));
  CHECK_THAT(f.fake.health_detail(), Catch::StartsWith("database writes retrying since"));
  CHECK_FALSE(client->read_packet(300ms).has_value());  // not committed: not acknowledged
  CHECK_FALSE(client->closed());
  // Still serving: a client connecting meanwhile is accepted (its CONNACK waits too).
  Client other(f.port.port());
  CHECK(other.connected());

  f.unreachable = false;
  CHECK(client->read_packet(5s) == Client::puback(1));
  CHECK(eventually([&] { return f.fake.health() == EMSNODE_HEALTH_OK; }));
  REQUIRE(f.fake.stop() == EMSNODE_OK);
}

TEST_CASE(
    "a fence during a retry drops every connection unacknowledged, closes the listener and "
    "reports FAILED") {
  MqFixture f;
  auto client = f.publish_failing("fenced", f.unreachable);
  REQUIRE(eventually([&] { return f.degraded(); }));

  SECTION("the node fences itself: the host's epoch turns 0") {
    f.fake.set_epoch(0);
  }
  SECTION("the database refuses the write as fenced") {
    f.fenced = true;
  }
  CHECK_FALSE(client->read_packet(5s).has_value());
  CHECK(client->closed());  // dropped, never acknowledged
  CHECK(f.fake.health() == EMSNODE_HEALTH_FAILED);
  CHECK_THAT(f.fake.health_detail(), Catch::StartsWith("not serving MQTT"));
  CHECK(Client(f.port.port()).refused());
  REQUIRE(f.fake.stop() == EMSNODE_OK);
}

TEST_CASE(
    "after a committer failure, stop and start serve again with a fresh committer on the same "
    "port") {
  MqFixture f;
  auto client = f.publish_failing("before", f.fenced);
  REQUIRE(eventually([&] { return f.fake.health() == EMSNODE_HEALTH_FAILED; }));
  CHECK(Client(f.port.port()).refused());

  // What the host does with a plugin that reports FAILED, once the database takes writes.
  REQUIRE(f.fake.stop() == EMSNODE_OK);
  f.fenced = false;
  REQUIRE(f.fake.start() == EMSNODE_OK);
  CHECK(f.fake.health() == EMSNODE_HEALTH_OK);
  auto subscriber_again = f.subscriber();
  auto again = f.connect("after");
  const int writes = f.writes;
  again->publish_qos1("t", 2);
  CHECK(again->read_packet(5s) == Client::puback(2));
  CHECK(f.writes > writes);  // committed by the new committer
  const auto delivered = subscriber_again->read_packet(5s);
  REQUIRE(delivered.has_value());
  CHECK((*delivered)[0] >> 4 == 3);  // PUBLISH
  CHECK(f.fake.health() == EMSNODE_HEALTH_OK);
  REQUIRE(f.fake.stop() == EMSNODE_OK);
  CHECK(f.fake.leaked_timers() == 0);
}

TEST_CASE("a stop during a retry meets its deadline and acknowledges nothing") {
  MqFixture f;
  auto client = f.publish_failing("stopping", f.unreachable);
  // By the sixth attempt the pauses are near their 1 s cap, far over the deadline below.
  REQUIRE(eventually([&] { return f.writes >= 7; }, 10s));
  const auto deadline = 200ms;
  REQUIRE(f.fake.stop(deadline) == EMSNODE_OK);
  CHECK(f.fake.last_stop_duration() < deadline + 400ms);
  CHECK_FALSE(client->read_packet(2s).has_value());
  CHECK(client->closed());
}
