// The admin endpoint against the attacks it must stop, one test case per attack, and a scan of
// every route with no token, a wrong one and the right one. ctest label: security.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <map>
#include <regex>
#include <string>
#include <vector>

#include "admin/admin_client.hpp"
#include "admin/admin_server.hpp"
#include "admin/local_token.hpp"
#include "admin/store_client.hpp"
#include "admin_test_support.hpp"
#include "config/node_config.hpp"
#include "store_test_support.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace emsnode::admin {
namespace {

using namespace std::chrono_literals;
using emsnode::testing::Completed;
using emsnode::testing::TempDir;
using testing::FakeNode;
using testing::kStoreToken;
using testing::RawConnection;
using testing::StoreNode;

constexpr const char* kToken = "a-good-long-token-0123456789";
constexpr const char* kWrongToken = "a-good-long-token-0123456788";

// An endpoint in front of a FakeNode, started; `listen` "0.0.0.0:0" is off loopback (reached
// through 127.0.0.1 all the same).
struct Endpoint {
  explicit Endpoint(ServerSecurity security, const std::string& listen = "127.0.0.1:0")
      : server(listen, security, node.model()) {
    server.start();
  }
  Target target(std::optional<std::string> token) const {
    return {"127.0.0.1", server.port(), std::move(token)};
  }
  unsigned status(const std::string& method, const std::string& path,
                  std::optional<std::string> token) const {
    return request(target(std::move(token)), method, path).status;
  }

  FakeNode node;
  AdminServer server;
};

// One raw request; the status code of the answer (0: none).
unsigned raw_status(std::uint16_t port, const std::string& head) {
  RawConnection connection(port);
  connection.send(head + "Connection: close\r\n\r\n");
  const std::string answer = connection.read_until_closed(2s);
  return answer.rfind("HTTP/1.1 ", 0) == 0 ? std::stoul(answer.substr(9, 3)) : 0;
}

// A CA, a server certificate for 127.0.0.1 and localhost signed by it, one it signed for another
// host (elsewhere.example), and a second CA that signed nothing here.
void make_certificates(const TempDir& dir) {
  const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  dir.write("certs.sh",
            "set -e\n"
            "openssl req -x509 " +
                key +
                " -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca\n"
                "openssl req -x509 " +
                key +
                " -keyout other-ca.key -out other-ca.crt -days 2 -subj /CN=other-ca\n"
                "openssl req " +
                key +
                " -keyout server.key -out server.csr -subj /CN=localhost\n"
                "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext\n"
                "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                "-out server.crt -days 2 -extfile server.ext\n"
                "openssl req " +
                key +
                " -keyout elsewhere.key -out elsewhere.csr -subj /CN=elsewhere.example\n"
                "printf 'subjectAltName=DNS:elsewhere.example\\n' > elsewhere.ext\n"
                "openssl x509 -req -in elsewhere.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                "-out elsewhere.crt -days 2 -extfile elsewhere.ext\n");
  const Completed made = emsnode::testing::run(
      {"/bin/sh", "-c", "cd '" + dir.path().string() + "' && sh certs.sh"}, dir.path(), 30s);
  INFO(made.err);
  REQUIRE(made.status == 0);
}

// The message of the ConfigError that `text` (a node.toml) is refused with; empty if accepted.
std::string refusal_of(const std::string& text) {
  try {
    config::parse_node_config(text, "/etc/emsnode/node.toml");
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return {};
}

std::string node_toml(const std::string& admin) {
  return "[node]\nid = \"n1\"\n[admin]\n" + admin;
}

mode_t mode_of(const std::filesystem::path& file) {
  struct stat info {};
  REQUIRE(::stat(file.c_str(), &info) == 0);
  return info.st_mode & 0777;
}

}  // namespace

TEST_CASE("an unauthenticated client cannot download shared files or read settings") {
  StoreNode node;
  REQUIRE(request(node.target(), "PUT", "/store/payroll.csv", "secret rows").status == 200);
  node.node.add_setting({"db_password", "hunter2", 1'700'000'000'000, "node-a", 7});
  for (const std::optional<std::string>& token :
       {std::optional<std::string>(), std::optional<std::string>(kWrongToken)}) {
    for (const char* path : {"/store/payroll.csv", "/store", "/store-stat/payroll.csv", "/settings",
                             "/settings/db_password", "/settings?format=text"}) {
      INFO(path);
      const Response answer = request(node.target(token), "GET", path);
      CHECK(answer.status == 401);
      CHECK(answer.body.find("secret rows") == std::string::npos);
      CHECK(answer.body.find("hunter2") == std::string::npos);
    }
  }
  CHECK(request(node.target(), "GET", "/store/payroll.csv").body == "secret rows");
  CHECK(request(node.target(), "GET", "/settings/db_password").body == "hunter2");
}

TEST_CASE(
    "a remote client reads no status or metrics without the token unless the config opens "
    "them") {
  Endpoint local(ServerSecurity{kToken});
  Endpoint remote(ServerSecurity{kToken}, "0.0.0.0:0");
  ServerSecurity opened{kToken};
  opened.open_reads = {"/metrics"};
  Endpoint metrics_opened(opened, "0.0.0.0:0");
  for (const char* path : {"/", "/status", "/metrics"}) {
    INFO(path);
    CHECK(local.status("GET", path, std::nullopt) == 200);
    CHECK(remote.status("GET", path, std::nullopt) == 401);
    CHECK(remote.status("GET", path, std::string(kToken)) == 200);
    CHECK(remote.status("GET", "/healthz/live", std::nullopt) == 200);
  }
  CHECK(metrics_opened.status("GET", "/metrics", std::nullopt) == 200);
  CHECK(metrics_opened.status("GET", "/status", std::nullopt) == 401);
}

TEST_CASE("an admin endpoint exposed off loopback without TLS and a token is refused at start") {
  const std::string refused = refusal_of(node_toml("listen = \"0.0.0.0:8440\"\n"));
  CHECK_THAT(refused, Catch::StartsWith("/etc/emsnode/node.toml:4:10: [admin] listen"));
  CHECK_THAT(refused, Catch::Contains("needs TLS (tls_cert, tls_key) and a token;"));
  CHECK_THAT(refused, Catch::Contains("insecure = true"));
  const std::string tls = "tls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\n";
  CHECK_THAT(refusal_of(node_toml("listen = \"192.0.2.1:8440\"\n" + tls)),
             Catch::Contains("it needs a token;"));
  CHECK_THAT(refusal_of(node_toml("listen = \"[2001:db8::1]:8440\"\ntoken = \"" +
                                  std::string(kToken) + "\"\n")),
             Catch::Contains("it needs TLS (tls_cert, tls_key);"));
  CHECK(refusal_of(node_toml("listen = \"192.0.2.1:8440\"\ntoken = \"" + std::string(kToken) +
                             "\"\n" + tls)) == "");
  CHECK(refusal_of(node_toml("listen = \"0.0.0.0:8440\"\ninsecure = true\n")) == "");
  CHECK(refusal_of(node_toml("listen = \"127.0.0.2:8440\"\n")) == "");
  CHECK(refusal_of(node_toml("listen = \"[::1]:8440\"\n")) == "");
  CHECK_THAT(refusal_of(node_toml("listen = \"127.0.0.1:8440\"\ntls_cert = \"/c.pem\"\n")),
             Catch::Contains("tls_cert and tls_key go together"));
}

TEST_CASE("an eavesdropper sees only TLS, and the CLI talks only to the certified endpoint") {
  TempDir dir;
  make_certificates(dir);
  ServerSecurity security{kStoreToken};
  security.tls_cert = dir / "server.crt";
  security.tls_key = dir / "server.key";
  StoreNode node(security);
  node.node.add_setting({"fqdn", "ems.example.com", 1'700'000'000'000, "node-a", 7});
  Target target = node.target();
  target.tls = true;
  target.ca = dir / "ca.crt";

  const Response answer = request(target, "GET", "/settings/fqdn");
  CHECK(answer.status == 200);
  CHECK(answer.body == "ems.example.com");
  std::ostringstream out;
  std::ostringstream err;
  CHECK(settings_verb(target, {"set", "fqdn", "new.example.com"}, out, err) == 0);
  CHECK(node.node.settings().at(0).value == "new.example.com");
  // The store's streaming client too, both ways.
  std::istringstream in("file over TLS");
  StoreStreams streams{in, out, err, nullptr};
  CHECK(store_verb(target, {"put", "k", "-"}, streams) == 0);
  std::ostringstream file;
  StoreStreams fetch{in, file, err, nullptr};
  CHECK(store_verb(target, {"get", "k", "-"}, fetch) == 0);
  CHECK(file.str() == "file over TLS");
  target.host = "localhost";
  CHECK(request(target, "GET", "/status").status == 200);

  // Plain HTTP on the TLS port: no answer in the clear, let alone the setting.
  RawConnection plain(node.server->port());
  plain.send("GET /settings/fqdn HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
             std::string(kStoreToken) + "\r\n\r\n");
  const std::string clear = plain.read_until_closed(2s);
  CHECK(clear.find("HTTP/1.1") == std::string::npos);
  CHECK(clear.find("example.com") == std::string::npos);

  // A CLI that does not trust the issuer, or reaches a name the certificate does not carry.
  target.ca = dir / "other-ca.crt";
  CHECK_THROWS_WITH(
      request(target, "GET", "/status"),
      Catch::Contains("its certificate was refused") && Catch::Contains("[admin] tls_ca"));
  CHECK(store_verb(target, {"ls"}, streams) == 1);
  CHECK_THAT(err.str(), Catch::Contains("its certificate was refused"));
  ServerSecurity elsewhere{kToken};
  elsewhere.tls_cert = dir / "elsewhere.crt";
  elsewhere.tls_key = dir / "elsewhere.key";
  const Endpoint impostor(elsewhere);
  Target fooled = impostor.target(std::string(kToken));
  fooled.tls = true;
  fooled.ca = dir / "ca.crt";
  CHECK_THROWS_WITH(request(fooled, "GET", "/status"),
                    Catch::Contains("certificate was refused: IP address mismatch"));

  // A certificate that cannot be used stops the endpoint at start, naming the file.
  ServerSecurity broken{kToken};
  broken.tls_cert = dir / "ca.key";
  broken.tls_key = dir / "server.key";
  FakeNode fake;
  AdminServer refused("127.0.0.1:0", broken, fake.model());
  CHECK_THROWS_WITH(refused.start(),
                    Catch::Contains("[admin] tls_cert " + broken.tls_cert.string()));
}

TEST_CASE("another local user cannot use the token the node made for its operator") {
  TempDir dir;
  const std::string token = ensure_local_token(dir.path());
  CHECK(token.size() == 64);
  CHECK(mode_of(local_token_path(dir.path())) == 0600);
  CHECK(ensure_local_token(dir.path()) == token);  // the same across restarts
  CHECK(read_local_token(dir.path()) == token);

  // The CLI with the same config and no token in it sends the node's.
  config::NodeConfig config;
  config.data_dir = dir.path();
  config.admin.listen = "127.0.0.1:8440";
  CHECK(target_from(config).token == token);

  // A token file the group or others may read is refused: they could be using it.
  std::filesystem::permissions(local_token_path(dir.path()), std::filesystem::perms::group_read,
                               std::filesystem::perm_options::add);
  CHECK_THROWS_WITH(ensure_local_token(dir.path()), Catch::Contains("group or others"));
  TempDir other;
  other.write("admin.token", "short\n");
  ::chmod((other / "admin.token").c_str(), 0600);
  CHECK_THROWS_WITH(ensure_local_token(other.path()), Catch::Contains("fewer than 16"));
}

TEST_CASE("a web page that rebinds its name to 127.0.0.1 cannot use the endpoint") {
  ServerSecurity security{kToken};
  security.host_names = {"ems-admin.internal"};
  Endpoint endpoint(security);
  const std::uint16_t port = endpoint.server.port();
  const std::string tail = ":" + std::to_string(port) + "\r\n";
  CHECK(raw_status(port, "GET /status HTTP/1.1\r\nHost: attacker.example" + tail) == 421);
  CHECK(raw_status(port, "GET / HTTP/1.1\r\nHost: attacker.example" + tail) == 421);
  CHECK(raw_status(port, "GET /healthz/live HTTP/1.1\r\nHost: 127.0.0.1.attacker.example" + tail) ==
        421);
  CHECK(raw_status(port, std::string("POST /pause HTTP/1.1\r\nHost: attacker.example") + tail +
                             "Authorization: Bearer " + kToken + "\r\nContent-Length: 0\r\n") ==
        421);
  CHECK(endpoint.node.calls().empty());
  for (const char* host : {"127.0.0.1", "localhost", "LOCALHOST", "[::1]", "ems-admin.internal"}) {
    INFO(host);
    CHECK(raw_status(port, std::string("GET /status HTTP/1.1\r\nHost: ") + host + tail) == 200);
  }
  // Off loopback the Host is whatever name the network gives the node; the token guards it.
  Endpoint remote(ServerSecurity{kToken}, "0.0.0.0:0");
  CHECK(raw_status(remote.server.port(), "GET /healthz/live HTTP/1.1\r\nHost: node1.example:" +
                                             std::to_string(remote.server.port()) + "\r\n") == 200);
}

TEST_CASE("a short token is refused, and a guess close to the token gets nowhere") {
  CHECK_THAT(refusal_of(node_toml("token = \"fifteen-bytes!!\"\n")),
             Catch::StartsWith("/etc/emsnode/node.toml:4:9: [admin] token is shorter than 16"));
  CHECK(refusal_of(node_toml("token = \"sixteen-bytes!!!\"\n")) == "");
  FakeNode node;
  CHECK_THROWS_AS(AdminServer("127.0.0.1:0", ServerSecurity{"fifteen-bytes!!"}, node.model()),
                  std::invalid_argument);

  Endpoint endpoint(ServerSecurity{kToken});
  const std::string good = kToken;
  for (const std::string& guess : {good.substr(0, good.size() - 1), good + "9", good + good,
                                   std::string(kWrongToken), std::string(), std::string(" ")}) {
    INFO(guess);
    CHECK(endpoint.status("POST", "/pause", guess) == 401);
  }
  CHECK(endpoint.node.calls().empty());
  CHECK(endpoint.status("POST", "/pause", good) == 200);
}

// Every route, as a scanner walks them: the status expected with no token, a wrong one and the
// right one, on loopback and off it. The table is the endpoint's access contract.
TEST_CASE("an authenticated scan of every admin route answers the expected status table") {
  struct Row {
    const char* method;
    const char* path;
    unsigned none, wrong, good;  // on loopback
    unsigned remote_none;        // off loopback, without a token
  };
  const std::vector<Row> table = {
      {"GET", "/healthz/live", 200, 200, 200, 200},
      {"GET", "/healthz/ready", 200, 200, 200, 200},
      {"GET", "/healthz/active", 200, 200, 200, 200},
      {"GET", "/", 200, 200, 200, 401},
      {"GET", "/status", 200, 200, 200, 401},
      {"GET", "/status?format=text", 200, 200, 200, 401},
      {"GET", "/metrics", 200, 200, 200, 401},
      {"GET", "/settings", 401, 401, 200, 401},
      {"GET", "/settings/fqdn", 401, 401, 200, 401},
      {"PUT", "/settings/fqdn", 401, 401, 200, 401},
      {"POST", "/switchover", 401, 401, 200, 401},
      {"POST", "/pause", 401, 401, 200, 401},
      {"POST", "/resume", 401, 401, 200, 401},
      {"GET", "/store", 401, 401, 200, 401},
      {"PUT", "/store/k", 401, 401, 200, 401},
      {"GET", "/store/k", 401, 401, 200, 401},
      {"HEAD", "/store/k", 401, 401, 200, 401},
      {"GET", "/store-stat/k", 401, 401, 200, 401},
      {"DELETE", "/store/k", 401, 401, 200, 401},
      {"POST", "/store-migrate?to=blob", 401, 401, 200, 401},
      // Authorized, then 503: the fake node behind this endpoint serves no plugin commands.
      {"GET", "/plugins/mq/commands", 401, 401, 503, 401},
      {"GET", "/no-such-route", 401, 401, 404, 401},
      {"GET", "/healthz/no-such-probe", 404, 404, 404, 404},
  };
  StoreNode local(ServerLimits{}, std::string(kStoreToken));
  local.node.add_setting({"fqdn", "ems.example.com", 1'700'000'000'000, "node-a", 7});
  Endpoint remote(ServerSecurity{kStoreToken}, "0.0.0.0:0");
  const auto status = [](const Target& target, const Row& row) {
    return request(target, row.method, row.path, row.method == std::string("PUT") ? "v" : "")
        .status;
  };
  for (const Row& row : table) {
    INFO(row.method << ' ' << row.path);
    CHECK(status(local.target(std::nullopt), row) == row.none);
    CHECK(status(local.target(kWrongToken), row) == row.wrong);
    CHECK(status(local.target(), row) == row.good);
    CHECK(status(remote.target(std::nullopt), row) == row.remote_none);
  }
}

}  // namespace emsnode::admin
