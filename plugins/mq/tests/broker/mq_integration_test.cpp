// The mq plugin in real emsnode processes, spoken to by real MQTT clients from Debian:
// mosquitto_pub and mosquitto_sub (mosquitto-clients), and paho (python3-paho-mqtt) through
// mqtt_client.py. Every client is started by PID and bounded in time.
#include <catch2/catch.hpp>

#include "mq_test_support.hpp"
#include "support/sanitizers.hpp"

#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>

using namespace mq_test;  // NOLINT(google-build-using-namespace): the tests' vocabulary
using namespace std::chrono_literals;

TEST_CASE("mosquitto clients round-trip QoS 0, 1 and 2 messages through the node") {
  require_clients();
  MqCluster mq(1);
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));

  auto sub = mq.start_sub({"-t", "rt/#", "-q", "2", "-v", "-C", "3", "-W", "15"});
  REQUIRE(subscribed(*sub));
  for (const char* qos : {"0", "1", "2"}) {
    // mosquitto_pub exits 0 at QoS 1 and 2 only once the node acknowledged the message.
    const Completed pub =
        mq.pub({"-t", std::string("rt/q") + qos, "-q", qos, "-m", std::string("payload ") + qos});
    INFO(pub.err);
    CHECK(pub.status == 0);
  }
  REQUIRE(sub->wait(15s) == 0);
  const std::string out = sub->out();
  CHECK_THAT(out, Catch::Contains("rt/q0 payload 0"));
  CHECK_THAT(out, Catch::Contains("rt/q1 payload 1"));
  CHECK_THAT(out, Catch::Contains("rt/q2 payload 2"));
}

TEST_CASE("a retained message reaches later subscribers, survives a restart, and can be cleared") {
  require_clients();
  MqCluster mq(1);
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));

  REQUIRE(mq.pub({"-t", "status/door", "-q", "1", "-r", "-m", "open"}).status == 0);
  CHECK(mq.sub({"-t", "status/+", "-v", "-C", "1", "-W", "5"}).out == "status/door open\n");

  REQUIRE(mq.cluster().stop(0) == 0);
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  CHECK(mq.sub({"-t", "status/#", "-v", "-C", "1", "-W", "5"}).out == "status/door open\n");

  REQUIRE(mq.pub({"-t", "status/door", "-q", "1", "-r", "-n"}).status == 0);
  const Completed none = mq.sub({"-t", "status/#", "-v", "-C", "1", "-W", "2"});
  CHECK(none.status != 0);  // timed out: nothing retained
  CHECK(none.out.empty());
}

TEST_CASE("a will is published when its client dies, and not when it disconnects") {
  require_clients();
  MqCluster mq(1);
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  auto sub = mq.start_sub({"-t", "wills/#", "-q", "1", "-v", "-C", "1", "-W", "20"});
  REQUIRE(subscribed(*sub));

  // mosquitto_pub ends with DISCONNECT: its will is discarded.
  REQUIRE(mq.pub({"-t", "other", "-m", "x", "--will-topic", "wills/polite", "--will-payload",
                  "should not appear"})
              .status == 0);

  const auto connected = mq.dir() / "will.out";
  auto client = mq.start_client({"will", "--id", "doomed", "--topic", "wills/doomed", "--message",
                                 "doomed died", "--out", connected.string(), "--duration", "30"});
  REQUIRE(eventually([&] { return std::filesystem::exists(connected); }, 10s));
  client->signal(SIGKILL);
  client->wait(5s);

  REQUIRE(sub->wait(15s) == 0);
  CHECK_THAT(sub->out(), Catch::Contains("wills/doomed doomed died"));
  CHECK_THAT(sub->out(), !Catch::Contains("should not appear"));
}

TEST_CASE(
    "a persistent session receives what was published while it was offline, "
    "across a restart of the node") {
  require_clients();
  MqCluster mq(1);
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));

  // -E: subscribe, then leave; the session stays (-c: no clean session).
  REQUIRE(mq.sub({"-t", "offline/#", "-q", "1", "-c", "-i", "sleeper", "-E"}).status == 0);
  for (const char* n : {"1", "2", "3"}) {
    REQUIRE(
        mq.pub({"-t", std::string("offline/") + n, "-q", "1", "-m", std::string("m") + n}).status ==
        0);
  }
  REQUIRE(mq.cluster().stop(0) == 0);
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));

  const Completed back =
      mq.sub({"-t", "offline/#", "-q", "1", "-c", "-i", "sleeper", "-v", "-C", "3", "-W", "10"});
  CHECK(back.status == 0);
  CHECK(back.out == "offline/1 m1\noffline/2 m2\noffline/3 m3\n");

  // Acknowledged: a third connection gets nothing more.
  const Completed again =
      mq.sub({"-t", "offline/#", "-q", "1", "-c", "-i", "sleeper", "-v", "-C", "1", "-W", "2"});
  CHECK(again.out.empty());
  // And nothing of them is left in the database: queue rows and messages are gone.
  CHECK(eventually(
      [&] {
        return mq.sql(
                     "SELECT (SELECT COUNT(*) FROM mq_queue) + (SELECT COUNT(*) FROM "
                     "mq_messages)")
                   .out == "0\n";
      },
      5s));
}

TEST_CASE("a malformed packet closes its connection and the node keeps serving") {
  require_clients();
  MqCluster mq(1);
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  // A CONNECT with protocol level 3 and garbage: 3.1.1 answers CONNACK 1 and closes.
  const std::string bad_connect("\x10\x0c\x00\x04MQTT\x03\x02\x00\x3c\x00\x00", 14);
  const auto reply = emsnode::testing::tcp_exchange("127.0.0.1", mq.port(), bad_connect, 3000,
                                                    [](const std::string&) { return false; });
  REQUIRE(reply.has_value());
  CHECK(*reply == std::string("\x20\x02\x00\x01", 4));
  const std::string garbage("\xff\xff\xff\xff\xff", 5);
  emsnode::testing::tcp_exchange("127.0.0.1", mq.port(), garbage, 3000,
                                 [](const std::string&) { return false; });
  // Random bytes after a valid CONNECT, from a fixed seed so that a failure replays.
  std::mt19937 random(20261121);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(1, 64);
  const std::string connect("\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02fz", 16);
  for (int round = 0; round < 50; ++round) {
    std::string noise = connect;
    for (int i = length(random); i > 0; --i) noise += static_cast<char>(byte(random));
    emsnode::testing::tcp_exchange("127.0.0.1", mq.port(), noise, 200,
                                   [](const std::string&) { return false; });
  }
  CHECK(mq.pub({"-t", "still/here", "-q", "1", "-m", "ok"}).status == 0);
  CHECK(mq.cluster().running(0));
  CHECK_THAT(mq.cluster().log_of(0), !Catch::Contains("mq.packet_failed"));
  const std::string metrics = mq.cluster().admin(0, "GET", "/metrics").body;
  const std::string errors = "emsnode_plugin_mq_protocol_errors_total{plugin=\"mq\"} ";
  const std::size_t at = metrics.find(errors);
  REQUIRE(at != std::string::npos);
  CAPTURE(metrics.substr(at, errors.size() + 4));
  CHECK(std::stoi(metrics.substr(at + errors.size())) >= 25);  // most of the noise was refused
}

TEST_CASE(
    "every message acknowledged before the active is killed reaches every persistent "
    "subscriber after the failover") {
  require_clients();
  // QoS 1 and 2 over 3.1.1 persistent sessions; QoS 1 over 5.0 sessions with an expiry.
  const auto [qos, v5] = GENERATE(table<int, bool>({{1, false}, {2, false}, {1, true}}));
  const int count = 300;
  CAPTURE(qos, v5);
  MqCluster mq(2);
  const bool use_v5 = v5;  // a structured binding cannot be captured in C++17
  const auto start_client = [&](std::vector<std::string> args) {
    if (use_v5) args.emplace_back("--v5");
    return mq.start_client(std::move(args));
  };
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  mq.cluster().start(1);
  REQUIRE(mq.cluster().await_passive(1));

  const std::string qos_text = std::to_string(qos);
  std::vector<std::filesystem::path> received;
  std::vector<std::unique_ptr<Process>> subscribers;
  for (int i = 0; i < 2; ++i) {
    received.push_back(mq.dir() / ("sub" + std::to_string(i) + ".out"));
    subscribers.push_back(
        start_client({"sub", "--id", "failover-sub-" + std::to_string(i), "--topic", "orders/#",
                      "--qos", qos_text, "--out", received.back().string(), "--duration", "120"}));
  }
  for (const auto& out : received) {
    REQUIRE(eventually([&] { return std::filesystem::exists(out.string() + ".ready"); }, 15s));
  }

  const auto acked_file = mq.dir() / "acked.out";
  auto publisher = start_client({"pub", "--id", "failover-pub", "--topic", "orders/new", "--qos",
                                 qos_text, "--count", std::to_string(count), "--interval", "0.01",
                                 "--out", acked_file.string(), "--duration", "90"});
  // Kill the active in the middle of the stream.
  REQUIRE(eventually([&] { return lines_of(read_file(acked_file)).size() >= 60; }, 30s));
  mq.cluster().kill(0);
  const std::size_t acked_before_kill = lines_of(read_file(acked_file)).size();
  CHECK(acked_before_kill < static_cast<std::size_t>(count));
  REQUIRE(mq.await_serving(1, 30s));
  // The new active took over the subscribers' sessions from the database.
  CHECK_THAT(mq.cluster().log_of(1), Catch::Contains("mq.loaded sessions=3"));

  // The publisher goes on against the new active and finishes.
  CHECK(publisher->wait(100s) == 0);
  const std::set<std::string> acked = set_of(lines_of(read_file(acked_file)));
  CHECK(acked.size() == static_cast<std::size_t>(count));

  for (const auto& out : received) {
    CAPTURE(out.string());
    const bool all = eventually(
        [&] {
          const auto got = set_of(lines_of(read_file(out)));
          return std::includes(got.begin(), got.end(), acked.begin(), acked.end());
        },
        60s);
    const std::vector<std::string> lines = lines_of(read_file(out));
    const std::set<std::string> got = set_of(lines);
    std::vector<std::string> missing;
    std::set_difference(acked.begin(), acked.end(), got.begin(), got.end(),
                        std::back_inserter(missing));
    CAPTURE(missing.size(), lines.size());
    CHECK(all);
    if (qos == 2) {
      CHECK(lines.size() == got.size());  // none twice
    }
    std::ofstream(out.string() + ".stop") << "stop\n";
  }
  for (auto& subscriber : subscribers) CHECK(subscriber->wait(10s) == 0);
}

TEST_CASE("a client silent for one and a half keep-alive periods is closed and its will sent") {
  require_clients();
  MqCluster mq(1);
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  auto sub = mq.start_sub({"-t", "wills/#", "-q", "1", "-v", "-C", "1", "-W", "20"});
  REQUIRE(subscribed(*sub));

  // CONNECT, keep-alive 1 s, clean session, will "wills/ka" = "silent" at QoS 1; then nothing.
  std::string connect("\x10\x20\x00\x04MQTT\x04\x0e\x00\x01", 12);
  connect += std::string("\x00\x02ka", 4) + std::string("\x00\x08wills/ka", 10) +
             std::string("\x00\x06silent", 8);
  const auto began = std::chrono::steady_clock::now();
  const auto reply = emsnode::testing::tcp_exchange("127.0.0.1", mq.port(), connect, 5000,
                                                    [](const std::string&) { return false; });
  const auto closed_after = std::chrono::steady_clock::now() - began;
  REQUIRE(reply.has_value());
  CHECK(*reply == std::string("\x20\x02\x00\x00", 4));  // accepted, then closed by the node
  CHECK(closed_after >= 1400ms);
  CHECK_WALL_CLOCK(closed_after < 4000ms);
  REQUIRE(sub->wait(15s) == 0);
  CHECK_THAT(sub->out(), Catch::Contains("wills/ka silent"));
}

TEST_CASE("the configured limits on packet size and connections are enforced") {
  require_clients();
  MqCluster mq(1, "max_packet_size = 1024\nmax_connections = 2\n");
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));

  CHECK(mq.pub({"-t", "size", "-q", "1", "-m", std::string(900, 'a')}).status == 0);
  // Over 1024 bytes: the node closes the connection without acknowledging.
  CHECK(mq.pub({"-t", "size", "-q", "1", "-m", std::string(2000, 'a')}).status != 0);

  auto first = mq.start_sub({"-t", "a", "-W", "20"});
  auto second = mq.start_sub({"-t", "b", "-W", "20"});
  REQUIRE(subscribed(*first));
  REQUIRE(subscribed(*second));
  const Completed third = mq.pub({"-t", "c", "-q", "1", "-m", "refused"});
  CHECK(third.status != 0);
  first->signal(SIGTERM);
  first->wait(5s);
  CHECK(eventually([&] { return mq.pub({"-t", "c", "-q", "1", "-m", "ok"}).status == 0; }, 5s));
}

TEST_CASE("a listener off loopback is refused unless the config says insecure", "[sqlite]") {
  TempDir dir;
  const auto conf = [&](const std::string& mq) {
    return dir.write("node.toml",
                     "[node]\nid = \"n1\"\ndata_dir = \"state\"\n"
                     "[plugins.mq]\nlisten = \"0.0.0.0:18013\"\n" +
                         mq);
  };
  const Completed refused = run({kEmsnode, "check", "--conf", conf("").string()}, dir.path());
  CHECK(refused.status != 0);
  CHECK_THAT(refused.out + refused.err, Catch::Contains("insecure = true"));
  const Completed allowed =
      run({kEmsnode, "check", "--conf", conf("insecure = true\n").string()}, dir.path());
  INFO(allowed.out + allowed.err);
  CHECK(allowed.status == 0);
}

TEST_CASE("a switchover closes every connection at once and the other node serves the sessions") {
  require_clients();
  MqCluster mq(2);
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  mq.cluster().start(1);
  REQUIRE(mq.cluster().await_passive(1));
  REQUIRE(mq.sub({"-t", "moved/#", "-q", "1", "-c", "-i", "mover", "-E"}).status == 0);

  // A client that stays connected, keep-alive 60 s: only the demotion ends its connection.
  std::string connect("\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c", 12);
  connect += std::string("\x00\x02st", 4);
  auto connection = std::async(std::launch::async, [&] {
    return emsnode::testing::tcp_exchange("127.0.0.1", mq.port(), connect, 20000,
                                          [](const std::string&) { return false; });
  });
  REQUIRE(eventually(
      [&] {
        return mq.cluster()
                   .admin(0, "GET", "/metrics")
                   .body.find("emsnode_plugin_mq_connections_open{plugin=\"mq\"} 1") !=
               std::string::npos;
      },
      10s));
  const auto began = std::chrono::steady_clock::now();
  const Completed moved = mq.cluster().cli(0, {"switchover"});
  INFO(moved.err);
  REQUIRE(moved.status == 0);
  REQUIRE(connection.wait_for(10s) == std::future_status::ready);
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - began < 10s);
  const auto reply = connection.get();
  REQUIRE(reply.has_value());
  CHECK(*reply == std::string("\x20\x02\x00\x00", 4));  // the CONNACK, then the close

  REQUIRE(mq.await_serving(1, 20s));
  REQUIRE(mq.pub({"-t", "moved/1", "-q", "1", "-m", "after the switchover"}).status == 0);
  const Completed back =
      mq.sub({"-t", "moved/#", "-q", "1", "-c", "-i", "mover", "-v", "-C", "1", "-W", "10"});
  CHECK(back.out == "moved/1 after the switchover\n");
}
