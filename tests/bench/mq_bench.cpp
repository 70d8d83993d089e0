// The message queue against Debian's mosquitto, with one load client for both, in one run:
// QoS 0 and QoS 1 messages per second delivered and publish-to-delivery latency (p50, p99) with
// 1, 100 and 1000 publishers, and idle connections per GiB of the broker's memory.
//
//   mq_bench [--targets mosquitto,emsnode] [--publishers 1,100,1000] [--seconds 3] [--idle 5000]
//
// The load is closed-loop: at most kWindow messages are on their way at once (sent, not yet
// delivered), spread over the publishers, so both brokers are measured at the same bounded
// queue instead of being flooded. One subscriber receives everything (topic bench/#) at the
// QoS of the run and acknowledges QoS 1. emsnode runs one node on SQLite with the mq plugin:
// its QoS 1 acknowledgements wait for the commit to the database, mosquitto's do not (it runs
// without persistence, as Debian configures it). Figures end as `bench: NAME VALUE UNIT`.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
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
#include <sstream>
#include <string>
#include <thread>
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
using emsnode::testing::TempDir;

constexpr std::size_t kWindow = 1000;     // messages on their way at once, all publishers
constexpr std::size_t kPayloadSize = 64;  // publisher index, sequence, send time, padding
constexpr auto kWarmUp = 500ms;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// One MQTT 3.1.1 client connection: non-blocking socket, decoder, pending output.
struct Client {
  int fd = -1;
  mq::Decoder decoder{mq::ProtocolVersion::kV311};
  mq::Bytes out;
  std::size_t out_sent = 0;
  bool connected = false;  // CONNACK received
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

std::unique_ptr<Client> open_client(std::uint16_t port, const std::string& id) {
  auto client = std::make_unique<Client>();
  client->fd = connect_tcp("127.0.0.1", port, 5000);
  if (client->fd < 0)
    throw std::runtime_error("cannot connect to the broker on port " + std::to_string(port));
  ::fcntl(client->fd, F_SETFL, ::fcntl(client->fd, F_GETFL) | O_NONBLOCK);
  mq::Connect connect;
  connect.version = mq::ProtocolVersion::kV311;
  connect.client_id = id;
  connect.clean_start = true;
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
      } else if (auto* publish = std::get_if<mq::Publish>(&*result.packet)) {
        on_publish(*publish);
      }
    }
  }
}

LoadResult run_load(std::uint16_t port, std::size_t publishers, mq::QoS qos,
                    std::chrono::milliseconds duration) {
  auto subscriber = open_client(port, "bench-sub");
  std::vector<std::unique_ptr<Client>> pubs;
  for (std::size_t i = 0; i < publishers; ++i) {
    pubs.push_back(open_client(port, "bench-pub-" + std::to_string(i)));
  }
  const std::size_t per_publisher = std::max<std::size_t>(1, kWindow / publishers);

  // Connect everyone, then subscribe and wait for the SUBACK (seen as the first poll rounds).
  std::vector<std::int64_t> latencies;
  LoadResult result;
  bool subscribed = false;
  const auto measure_from = Clock::now() + kWarmUp + 2s;  // connecting counts as warm-up too
  const auto until = measure_from + duration;
  std::size_t delivered = 0;
  std::vector<pollfd> fds(publishers + 1);

  const auto on_delivery = [&](const mq::Publish& publish) {
    if (publish.payload.size() < 16) return;
    std::uint32_t index = 0;
    std::int64_t sent = 0;
    std::memcpy(&index, publish.payload.data(), 4);
    std::memcpy(&sent, publish.payload.data() + 8, 8);
    if (index < pubs.size() && pubs[index]->on_the_way > 0) {
      --pubs[index]->on_the_way;
      pubs[index]->last_delivery = Clock::now();
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

  while (Clock::now() < until) {
    if (!subscribed && subscriber->connected) {
      mq::Subscribe subscribe;
      subscribe.packet_id = 1;
      subscribe.subscriptions.push_back({"bench/#", mq::SubscriptionOptions{qos}});
      subscriber->queue(subscribe);
      subscribed = true;
    }
    // Publishers send while they have room in their window (after the subscription is in).
    for (std::size_t i = 0; subscribed && i < pubs.size(); ++i) {
      Client& pub = *pubs[i];
      // A message the broker dropped would hold its slot for ever: give it back after a while.
      if (pub.on_the_way > 0 && Clock::now() - pub.last_delivery > 5s) {
        result.dropped += pub.on_the_way;
        pub.on_the_way = 0;
        pub.last_delivery = Clock::now();
      }
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
    }
    for (std::size_t i = 0; i <= publishers; ++i) {
      Client& c = i == 0 ? *subscriber : *pubs[i - 1];
      if (!c.flush()) throw std::runtime_error("a connection broke while sending");
      fds[i] = pollfd{c.fd, static_cast<short>(POLLIN | (c.out.empty() ? 0 : POLLOUT)), 0};
    }
    ::poll(fds.data(), fds.size(), 10);
    for (std::size_t i = 0; i <= publishers; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLERR | POLLHUP))) continue;
      Client& c = i == 0 ? *subscriber : *pubs[i - 1];
      // Publishers only get CONNACK and PUBACK; the subscriber gets the deliveries.
      if (!receive(c, on_delivery)) ++result.lost;
    }
    if (result.lost > 0) throw std::runtime_error("the broker closed connections during the run");
  }
  ::close(subscriber->fd);
  for (auto& p : pubs) ::close(p->fd);

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

struct Broker {
  std::string name;
  std::unique_ptr<Process> process;
  std::uint16_t port = 0;
};

Broker start_mosquitto(const TempDir& dir, std::uint16_t port) {
  const auto conf = dir.write("mosquitto.conf", "listener " + std::to_string(port) +
                                                    " 127.0.0.1\nallow_anonymous true\n"
                                                    "persistence false\nmax_queued_messages 0\n"
                                                    "log_type error\n");
  return {"mosquitto",
          std::make_unique<Process>(
              std::vector<std::string>{"/usr/sbin/mosquitto", "-c", conf.string()}, dir.path()),
          port};
}

Broker start_emsnode(const TempDir& dir, std::uint16_t port, std::uint16_t admin_port) {
  const auto conf = dir.write(
      "node.toml", "[node]\nid = \"bench\"\ndata_dir = \"" + (dir / "node").string() +
                       "\"\n[database]\npath = \"" + (dir / "cluster.db").string() +
                       "\"\nmigrate = true\n[store]\npath = \"" + (dir / "share").string() +
                       "\"\n[log]\nconsole = false\nfile = \"" + (dir / "node.log").string() +
                       "\"\n[admin]\nlisten = \"127.0.0.1:" + std::to_string(admin_port) +
                       "\"\n[plugins.echo]\nenabled = false\n[plugins.mq]\nlisten = \"127.0.0.1:" +
                       std::to_string(port) + "\"\nmax_connections = 65536\n");
  return {"emsnode",
          std::make_unique<Process>(
              std::vector<std::string>{EMSNODE_BINARY, "--conf", conf.string()}, dir.path()),
          port};
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
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) {
      std::cerr << "usage: mq_bench [--targets mosquitto,emsnode] [--publishers 1,100,1000] "
                   "[--seconds N] [--idle N]\n";
      return 2;
    }
    const std::string value = argv[++i];
    if (arg == "--targets") {
      targets = split(value);
    } else if (arg == "--publishers") {
      publishers.clear();
      for (const auto& p : split(value)) publishers.push_back(std::stoul(p));
    } else if (arg == "--seconds") {
      seconds = std::chrono::seconds(std::stoi(value));
    } else if (arg == "--idle") {
      idle = std::stoul(value);
    }
  }
  // Many connections: as many descriptors as the hard limit allows, for us and the brokers.
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);

  std::map<std::string, std::map<std::string, double>> figures;
  try {
    for (const std::string& target : targets) {
      TempDir dir;
      PortReservation port;
      PortReservation admin_port;
      Broker broker = target == "mosquitto" ? start_mosquitto(dir, port.port())
                                            : start_emsnode(dir, port.port(), admin_port.port());
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
      // Idle connections first, while the broker holds no memory of earlier loads to reuse.
      if (idle > 0) {
        const double per_gib = idle_per_gib(broker.port, broker.process->pid(), idle);
        std::printf("%-9s %zu idle connections: %.0f connections per GiB\n", target.c_str(), idle,
                    per_gib);
        figures[target]["idle_connections_per_gib"] = per_gib;
      }
      for (const mq::QoS qos : {mq::QoS::kAtMostOnce, mq::QoS::kAtLeastOnce}) {
        for (const std::size_t p : publishers) {
          const LoadResult r = run_load(broker.port, p, qos, seconds);
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
  return 0;
}
