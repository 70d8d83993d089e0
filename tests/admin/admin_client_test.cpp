#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>

#include "admin/admin_client.hpp"
#include "admin/admin_server.hpp"
#include "admin_test_support.hpp"
#include "support/net.hpp"
#include "support/sanitizers.hpp"

namespace emsnode::admin {
namespace {

using namespace std::chrono_literals;
using testing::FakeNode;

constexpr const char* kToken = "client-token-0123456789";

// A running endpoint and the Target the CLI would derive for it.
struct Cluster {
  explicit Cluster(std::optional<std::string> token = std::string(kToken))
      : server("127.0.0.1:0", ServerSecurity{token}, node.model()) {
    server.start();
    target = {"127.0.0.1", server.port(), token};
  }

  FakeNode node;
  AdminServer server;
  Target target;
  std::ostringstream out;
  std::ostringstream err;
};

// A node config with this [admin] section, whose data_dir holds no token file.
config::NodeConfig admin_config(std::string listen, std::optional<std::string> token) {
  config::NodeConfig config;
  config.data_dir = "/nonexistent/emsnode-data";
  config.admin.listen = std::move(listen);
  if (token) config.admin.token = config::Secret(*token);
  return config;
}

}  // namespace

TEST_CASE("the target is the configured listen address, with wildcards made loopback") {
  Target target = target_from(admin_config("127.0.0.1:8440", std::string("t")));
  CHECK(target.host == "127.0.0.1");
  CHECK(target.port == 8440);
  CHECK(target.token == std::optional<std::string>("t"));
  target = target_from(admin_config("0.0.0.0:9000", std::nullopt));
  CHECK(target.host == "127.0.0.1");
  CHECK(target.port == 9000);
  CHECK(!target.token);
  CHECK(target_from(admin_config("[::]:9000", std::nullopt)).host == "::1");
  CHECK(target_from(admin_config("[fe80::1]:9000", std::nullopt)).host == "fe80::1");
  CHECK_THROWS_WITH(target_from(admin_config("127.0.0.1:0", std::nullopt)),
                    Catch::Contains("has port 0"));
  CHECK_THROWS_AS(target_from(admin_config("127.0.0.1", std::nullopt)), ClientError);
}

TEST_CASE("emsnode status prints the text summary, or the JSON") {
  Cluster cluster;
  CHECK(status_verb(cluster.target, false, cluster.out, cluster.err) == 0);
  CHECK(cluster.out.str().rfind("node    node-a (0.1.0)\n", 0) == 0);
  CHECK(cluster.out.str().find("PLUGIN  VERSION") != std::string::npos);
  CHECK(cluster.err.str().empty());

  std::ostringstream json;
  CHECK(status_verb(cluster.target, true, json, cluster.err) == 0);
  CHECK(json.str().rfind(R"({"node_id":"node-a",)", 0) == 0);
  CHECK(json.str().back() == '\n');
}

TEST_CASE("emsnode switchover, pause and resume print the node's answer") {
  Cluster cluster;
  CHECK(switchover_verb(cluster.target, std::string("node-b/2"), cluster.out, cluster.err) == 0);
  CHECK(pause_verb(cluster.target, cluster.out, cluster.err) == 0);
  CHECK(resume_verb(cluster.target, cluster.out, cluster.err) == 0);
  CHECK(cluster.out.str() ==
        "switchover to node-b/2 requested\n"
        "paused: this node will not take the lease until resumed\n"
        "resumed: this node may take the lease again\n");
  CHECK(cluster.node.switchovers() ==
        std::vector<std::optional<std::string>>{std::string("node-b/2")});
}

TEST_CASE("a refused verb prints the node's message and exits 1") {
  Cluster cluster;
  cluster.node.before_operation = [] {
    throw OperationError::conflict("not active: switchover runs on the active node (node-b)");
  };
  CHECK(switchover_verb(cluster.target, std::nullopt, cluster.out, cluster.err) == 1);
  CHECK(cluster.out.str().empty());
  CHECK(cluster.err.str() == "emsnode: not active: switchover runs on the active node (node-b)\n");

  cluster.target.token = "wrong";
  std::ostringstream err;
  CHECK(pause_verb(cluster.target, cluster.out, err) == 1);
  CHECK(err.str().rfind("emsnode: refused: missing or wrong token", 0) == 0);
}

TEST_CASE("emsnode settings lists, gets and sets cluster settings") {
  Cluster cluster;
  CHECK(settings_verb(cluster.target, {}, cluster.out, cluster.err) == 0);
  CHECK(cluster.out.str() == "no cluster settings are set\n");

  std::ostringstream out;
  CHECK(settings_verb(cluster.target, {"set", "remote/access", "on & off"}, out, cluster.err) == 0);
  CHECK(out.str() == "set remote/access\n");
  CHECK(cluster.node.settings().at(0).key == "remote/access");

  out.str("");
  CHECK(settings_verb(cluster.target, {"get", "remote/access"}, out, cluster.err) == 0);
  CHECK(out.str() == "on & off\n");

  out.str("");
  CHECK(settings_verb(cluster.target, {"list"}, out, cluster.err) == 0);
  CHECK(out.str().find("remote/access  on & off") != std::string::npos);
  CHECK(cluster.err.str().empty());

  CHECK(settings_verb(cluster.target, {"get", "missing"}, out, cluster.err) == 1);
  CHECK(cluster.err.str() == "emsnode: setting missing is not set\n");
}

TEST_CASE("emsnode settings with wrong arguments prints the usage and exits 2") {
  Cluster cluster;
  const std::vector<std::vector<std::string>> usages = {
      {"get"}, {"set", "k"}, {"delete", "k"}, {"list", "x"}};
  for (const std::vector<std::string>& args : usages) {
    std::ostringstream err;
    CHECK(settings_verb(cluster.target, args, cluster.out, err) == 2);
    CHECK(err.str() == "emsnode: usage: emsnode settings [list | get KEY | set KEY VALUE]\n");
  }
  CHECK(cluster.node.settings().empty());
}

TEST_CASE("a verb says how to fix it when nothing listens at the admin address") {
  const std::uint16_t port = emsnode::testing::free_port();
  const Target target{"127.0.0.1", port, std::nullopt};
  std::ostringstream out;
  std::ostringstream err;
  CHECK(status_verb(target, false, out, err) == 1);
  CHECK(err.str() ==
        "emsnode: cannot reach the node's admin endpoint at 127.0.0.1:" + std::to_string(port) +
            " (connection refused): is emsnode running with this config?\n");
  CHECK(out.str().empty());
}

TEST_CASE("a request to an endpoint that never answers fails after its timeout") {
  // A listening socket nobody accepts from: the kernel completes the connection, no one answers.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd, 4) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) == 0);
  const Target target{"127.0.0.1", ntohs(addr.sin_port), std::nullopt};

  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(
      request(target, "GET", "/status", "", 300ms),
      "the node's admin endpoint at 127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) +
          " did not answer (no answer within 300ms)");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(elapsed >= 250ms);
  CHECK_WALL_CLOCK(elapsed < 2s);
  ::close(fd);
}

TEST_CASE("percent-encoding leaves unreserved characters and escapes the rest") {
  CHECK(percent_encode("node-b_1.x~") == "node-b_1.x~");
  CHECK(percent_encode("a b/c?d&e=f%") == "a%20b%2Fc%3Fd%26e%3Df%25");
  CHECK(percent_encode("\xc3\xa9") == "%C3%A9");
}

}  // namespace emsnode::admin
