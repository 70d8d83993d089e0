// What the mq integration tests share: one node (or a cluster sharing one database) with mq on
// a reserved port, the Debian MQTT clients around it, and small text helpers.
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/cluster.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_postgres.hpp"

namespace mq_test {

using namespace std::chrono_literals;
using emsnode::testing::Cluster;
using emsnode::testing::Completed;
using emsnode::testing::eventually;
using emsnode::testing::NodeDatabase;
using emsnode::testing::PortReservation;
using emsnode::testing::Process;
using emsnode::testing::read_file;
using emsnode::testing::run;
using emsnode::testing::TempDir;

inline const std::string kEmsnode = EMSNODE_BINARY;
inline const std::string kClientScript = MQ_CLIENT_SCRIPT;
inline const std::string kPython = "/usr/bin/python3";
inline const std::string kMosquittoPub = "/usr/bin/mosquitto_pub";
inline const std::string kMosquittoSub = "/usr/bin/mosquitto_sub";

inline void require_clients() {
  INFO(
      "the MQTT clients come from Debian: packaging/install-deps.sh installs mosquitto-clients "
      "and python3-paho-mqtt");
  REQUIRE(std::filesystem::exists(kMosquittoPub));
  REQUIRE(std::filesystem::exists(kMosquittoSub));
  REQUIRE(
      run({kPython, "-c", "import paho.mqtt.client"}, std::filesystem::temp_directory_path(), 10s)
          .status == 0);
}

inline std::string mq_section(std::uint16_t port, const std::string& more) {
  return "[plugins.mq]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\n" + more;
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

inline std::set<std::string> set_of(const std::vector<std::string>& lines) {
  return {lines.begin(), lines.end()};
}

// One node, or several sharing one database, all configuring mq on one address. The database
// is SQLite, or a PostgreSQL database of the test's own in the "pg: " variants.
class MqCluster {
 public:
  // `mq`: more keys of [plugins.mq], one per line.
  explicit MqCluster(std::size_t size, const std::string& mq = "")
      : database_((dir_ / "cluster.db").string()),
        cluster_(kEmsnode, dir_, database_.toml(), size, [this, mq](std::size_t) {
          Cluster::NodeOptions options;
          options.extra = mq_section(port_.port(), mq);
          return options;
        }) {}

  Cluster& cluster() { return cluster_; }
  const TempDir& dir() const { return dir_; }
  std::uint16_t port() const { return port_.port(); }
  std::string port_text() const { return std::to_string(port_.port()); }

  // Node i is the active one and its mq service listens.
  bool await_serving(std::size_t i, std::chrono::milliseconds timeout = 20s) {
    return cluster_.await_active(i, timeout) &&
           eventually([&] { return cluster_.log_of(i).find("mq.listening") != std::string::npos; },
                      timeout);
  }

  Completed pub(std::vector<std::string> args) const {
    args.insert(args.begin(), {kMosquittoPub, "-h", "127.0.0.1", "-p", port_text()});
    return run(std::move(args), dir_.path(), 20s);
  }

  Completed sub(std::vector<std::string> args) const {
    args.insert(args.begin(), {kMosquittoSub, "-h", "127.0.0.1", "-p", port_text()});
    return run(std::move(args), dir_.path(), 20s);
  }

  // A mosquitto_sub left running; -d makes it report its SUBACK, line-buffered so that the
  // test sees it at once.
  std::unique_ptr<Process> start_sub(std::vector<std::string> args) const {
    args.insert(args.begin(), {"/usr/bin/stdbuf", "-oL", kMosquittoSub, "-h", "127.0.0.1", "-p",
                               port_text(), "-d"});
    return std::make_unique<Process>(std::move(args), dir_.path());
  }

  // Runs `statements` on the cluster's database with sqlite3 or psql, as an operator would.
  Completed sql(const std::string& statements) const {
    return database_.run_sql(statements, dir_.path());
  }

  std::unique_ptr<Process> start_client(std::vector<std::string> args) const {
    args.insert(args.begin(), {kPython, kClientScript});
    args.push_back("--port");
    args.push_back(port_text());
    return std::make_unique<Process>(std::move(args), dir_.path());
  }

 private:
  TempDir dir_;
  NodeDatabase database_;
  PortReservation port_;
  Cluster cluster_;
};

inline bool subscribed(Process& sub) {
  return eventually([&] { return sub.out().find("received SUBACK") != std::string::npos; }, 10s);
}

}  // namespace mq_test
