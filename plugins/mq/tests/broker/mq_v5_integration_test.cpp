// MQTT 5.0 through real emsnode processes, spoken by Debian's mosquitto_pub and mosquitto_sub
// (-V mqttv5) and paho: properties end to end, session expiry and shared subscriptions, and
// wills across a failover.
#include <catch2/catch.hpp>

#include "mq_test_support.hpp"

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

using namespace mq_test;  // NOLINT(google-build-using-namespace): the tests' vocabulary
using namespace std::chrono_literals;

TEST_CASE("mosquitto clients pass MQTT 5.0 properties through the node, request and response") {
  require_clients();
  MqCluster mq(1);
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));

  auto sub = mq.start_sub({"-V", "mqttv5", "-t", "requests/#", "-q", "1", "-C", "1", "-W", "15",
                           "-F", "%t|%p|%R|%D|%C|%P|%E"});
  REQUIRE(subscribed(*sub));
  const Completed pub = mq.pub({"-V",
                                "mqttv5",
                                "-t",
                                "requests/42",
                                "-q",
                                "1",
                                "-m",
                                "hello",
                                "-D",
                                "publish",
                                "response-topic",
                                "replies/42",
                                "-D",
                                "publish",
                                "correlation-data",
                                "req-42",
                                "-D",
                                "publish",
                                "content-type",
                                "text/plain",
                                "-D",
                                "publish",
                                "user-property",
                                "trace",
                                "abc",
                                "-D",
                                "publish",
                                "message-expiry-interval",
                                "60"});
  INFO(pub.err);
  REQUIRE(pub.status == 0);
  REQUIRE(sub->wait(15s) == 0);
  const std::string out = sub->out();
  CAPTURE(out);
  CHECK_THAT(out, Catch::Contains("requests/42|hello|replies/42|req-42|text/plain|trace:abc|"));
  // The expiry forwarded is what is left of the 60 s.
  const auto expiry_at = out.find("trace:abc|");
  REQUIRE(expiry_at != std::string::npos);
  const int left = std::stoi(out.substr(expiry_at + 10));
  CHECK(left > 0);
  CHECK(left <= 60);
}

TEST_CASE("a 5.0 session keeps its messages across a failover and ends when its expiry runs out") {
  require_clients();
  MqCluster mq(2);
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  mq.cluster().start(1);
  REQUIRE(mq.cluster().await_passive(1));

  // -c -x: a session that outlives the connection by an hour, or by two seconds; -E: leave.
  REQUIRE(
      mq.sub({"-V", "mqttv5", "-c", "-x", "3600", "-i", "sleeper", "-q", "1", "-t", "late/#", "-E"})
          .status == 0);
  REQUIRE(mq.sub({"-V", "mqttv5", "-c", "-x", "2", "-i", "brief", "-q", "1", "-t", "late/#", "-E"})
              .status == 0);
  for (const char* n : {"1", "2", "3"}) {
    REQUIRE(mq.pub({"-V", "mqttv5", "-t", std::string("late/") + n, "-q", "1", "-m",
                    std::string("m") + n})
                .status == 0);
  }
  mq.cluster().kill(0);
  REQUIRE(mq.await_serving(1, 30s));
  std::this_thread::sleep_for(3s);  // past brief's two seconds, and a tick of the new active

  const Completed back = mq.sub({"-V", "mqttv5", "-c", "-x", "3600", "-i", "sleeper", "-q", "1",
                                 "-t", "late/#", "-v", "-C", "3", "-W", "10"});
  CHECK(back.status == 0);
  CHECK(back.out == "late/1 m1\nlate/2 m2\nlate/3 m3\n");
  const Completed expired = mq.sub(
      {"-V", "mqttv5", "-c", "-x", "2", "-i", "brief", "-q", "1", "-v", "-C", "1", "-W", "2"});
  CHECK(expired.out.empty());
  CHECK_THAT(mq.cluster().log_of(1), Catch::Contains("mq.loaded sessions=2"));
}

TEST_CASE("a shared subscription spreads the messages over its members") {
  require_clients();
  MqCluster mq(1);
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  std::vector<std::unique_ptr<Process>> workers;
  for (int i = 0; i < 2; ++i) {
    workers.push_back(mq.start_sub(
        {"-V", "mqttv5", "-t", "$share/workers/jobs/#", "-q", "1", "-C", "5", "-W", "20"}));
    REQUIRE(subscribed(*workers.back()));
  }
  for (int n = 0; n < 10; ++n) {
    REQUIRE(mq.pub({"-V", "mqttv5", "-t", "jobs/new", "-q", "1", "-m", "job-" + std::to_string(n)})
                .status == 0);
  }
  std::set<std::string> jobs;
  for (auto& worker : workers) {
    REQUIRE(worker->wait(20s) == 0);  // each got its five
    for (const std::string& line : lines_of(worker->out())) {
      if (line.rfind("job-", 0) == 0) jobs.insert(line);
    }
  }
  CHECK(jobs.size() == 10);  // and no job went to both
}

TEST_CASE("after a failover the will of a client that is gone is published, not of one back") {
  require_clients();
  MqCluster mq(2, "failover_will_delay = \"6s\"\n");
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  mq.cluster().start(1);
  REQUIRE(mq.cluster().await_passive(1));

  const auto wills = mq.dir() / "wills.out";
  auto watcher = mq.start_client({"sub", "--id", "watcher", "--topic", "wills/#", "--out",
                                  wills.string(), "--duration", "90"});
  REQUIRE(eventually([&] { return std::filesystem::exists(wills.string() + ".ready"); }, 15s));
  std::map<std::string, std::unique_ptr<Process>> clients;
  for (const char* name : {"stays", "goes"}) {
    const auto connected = mq.dir() / (std::string(name) + ".out");
    clients[name] = mq.start_client({"will", "--id", name, "--topic", std::string("wills/") + name,
                                     "--message", std::string(name) + " died", "--out",
                                     connected.string(), "--duration", "90"});
    REQUIRE(eventually([&] { return std::filesystem::exists(connected); }, 10s));
  }

  mq.cluster().kill(0);
  clients["goes"]->signal(SIGKILL);  // gone with the node; "stays" reconnects to the next one
  clients["goes"]->wait(5s);
  REQUIRE(mq.await_serving(1, 30s));
  CHECK_THAT(mq.cluster().log_of(1), Catch::Contains("wills=2"));
  CHECK(eventually([&] { return read_file(wills).find("goes died") != std::string::npos; }, 30s));
  std::this_thread::sleep_for(2s);
  CHECK(read_file(wills).find("stays died") == std::string::npos);
  std::ofstream(wills.string() + ".stop") << "stop\n";
  CHECK(watcher->wait(10s) == 0);
}
