// The embedded default config (conf/node.toml, its ports moved so that tests run side by side)
// on a real node: the operator's CLI on the same host works with it as it is, and another local
// user, who cannot read the node's data, gets nowhere.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <regex>

#include "support/net.hpp"
#include "support/process.hpp"
#include "support/skip.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using emsnode::testing::Completed;
using emsnode::testing::eventually;
using emsnode::testing::free_port;
using emsnode::testing::http_request;
using emsnode::testing::Process;
using emsnode::testing::read_file;
using emsnode::testing::TempDir;

const std::string kEmsnode = EMSNODE_BINARY;

// conf/node.toml with each listen port replaced by a free one; nothing else changes.
std::string default_config_on_free_ports(std::uint16_t admin_port) {
  std::string text = read_file(std::string(EMSNODE_SOURCE_DIR) + "/conf/node.toml");
  const auto move_port = [&](const std::string& from, std::uint16_t to) {
    const std::string needle = "\"127.0.0.1:" + from + "\"";
    const std::size_t at = text.find(needle);
    REQUIRE(at != std::string::npos);
    text.replace(at, needle.size(), "\"127.0.0.1:" + std::to_string(to) + "\"");
  };
  move_port("8440", admin_port);
  move_port("8013", free_port());
  move_port("18013", free_port());
  return text;
}

// A node started on the default config in a temporary folder, active.
struct DefaultNode {
  DefaultNode()
      : admin_port(free_port()),
        conf(dir.write("conf/node.toml", default_config_on_free_ports(admin_port))),
        node({kEmsnode, "--conf", conf.string()}, dir.path()) {
    REQUIRE(eventually(
        [&] { return http_request(admin_port, "GET", "/healthz/active").status == 200; }, 20s));
  }

  Completed cli(std::vector<std::string> args, const std::vector<std::string>& as_user = {}) {
    args.insert(args.begin(), {kEmsnode, "--conf", conf.string()});
    args.insert(args.begin(), as_user.begin(), as_user.end());
    return emsnode::testing::run(args, dir.path());
  }

  TempDir dir;
  std::uint16_t admin_port;
  std::filesystem::path conf;
  Process node;
};

}  // namespace

TEST_CASE("the local operator's CLI changes state on the default config without editing it") {
  DefaultNode node;
  struct stat info {};
  REQUIRE(::stat((node.dir / "var/admin.token").c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);

  Completed done = node.cli({"settings", "set", "fqdn", "ems.example.com"});
  INFO(done.err);
  CHECK(done.status == 0);
  CHECK(node.cli({"settings", "get", "fqdn"}).out == "ems.example.com\n");
  const std::filesystem::path file = node.dir.write("report.txt", "quarterly numbers\n");
  CHECK(node.cli({"store", "put", "reports/q1.txt", file.string()}).status == 0);
  CHECK(node.cli({"store", "get", "reports/q1.txt", "-"}).out == "quarterly numbers\n");
  CHECK(node.cli({"pause"}).status == 0);
  CHECK(node.cli({"resume"}).status == 0);
  // Alone in its cluster the node has nobody to hand over to; what matters is that it was asked.
  done = node.cli({"switchover"});
  CHECK_THAT(done.err, !Catch::Contains("token"));
  CHECK(node.cli({"status"}).status == 0);

  // Without the token: the open probes and the loopback status, nothing else.
  CHECK(http_request(node.admin_port, "GET", "/status").status == 200);
  CHECK(http_request(node.admin_port, "GET", "/settings/fqdn").status == 401);
  CHECK(http_request(node.admin_port, "GET", "/store/reports/q1.txt").status == 401);
}

TEST_CASE("another local user who can read the config cannot use the node's token") {
  if (::geteuid() != 0) {
    emsnode::testing::skip_test("running the CLI as another user needs root");
    return;
  }
  DefaultNode node;
  REQUIRE(node.cli({"settings", "set", "fqdn", "ems.example.com"}).status == 0);
  // The config is readable (an operator's copy could be); the node's data is not.
  std::filesystem::permissions(
      node.dir.path(), std::filesystem::perms::others_read | std::filesystem::perms::others_exec,
      std::filesystem::perm_options::add);
  const Completed other =
      node.cli({"settings", "set", "fqdn", "evil.example.com"},
               {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  CHECK(other.status == 1);
  CHECK_THAT(other.err, Catch::Contains("missing or wrong token"));
  CHECK(node.cli({"settings", "get", "fqdn"}).out == "ems.example.com\n");
}
