#include <catch2/catch.hpp>

#include <atomic>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <thread>

#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>

#include "admin/admin_client.hpp"
#include "admin/admin_server.hpp"
#include "admin_test_support.hpp"
#include "log/log.hpp"
#include "support/sanitizers.hpp"
#include "support/temp_dir.hpp"

namespace emsnode::admin {
namespace {

using namespace std::chrono_literals;
using testing::FakeNode;
using testing::RawConnection;

constexpr const char* kToken = "s3cret-token-0123456789";

// A started endpoint on 127.0.0.1 (an ephemeral port) in front of a FakeNode.
struct Fixture {
  explicit Fixture(std::optional<std::string> token = std::string(kToken), ServerLimits limits = {})
      : server("127.0.0.1:0", ServerSecurity{std::move(token)}, node.model(), limits) {
    server.start();
  }

  Target target(std::optional<std::string> token = std::string(kToken)) const {
    return {"127.0.0.1", server.port(), std::move(token)};
  }
  Response get(const std::string& path) const { return request(target(), "GET", path); }

  FakeNode node;
  AdminServer server;
};

boost::property_tree::ptree parse_json(const std::string& text) {
  std::istringstream in(text);
  boost::property_tree::ptree tree;
  boost::property_tree::read_json(in, tree);
  return tree;
}

bool has_header(const std::string& response, const std::string& header) {
  return response.find("\r\n" + header + "\r\n") != std::string::npos;
}

}  // namespace

TEST_CASE("GET /status answers the status JSON with the required keys") {
  Fixture fixture;
  const Response response = fixture.get("/status");
  CHECK(response.status == 200);
  CHECK(response.content_type == "application/json");
  const auto tree = parse_json(response.body);
  std::vector<std::string> keys;
  for (const auto& [key, value] : tree) keys.push_back(key);
  CHECK(keys == std::vector<std::string>{"node_id", "version", "role", "epoch", "not_active_reason",
                                         "paused", "lease_holder", "lease_epoch",
                                         "lease_expires_in_ms", "last_transition", "transitions",
                                         "nodes", "plugins"});
  CHECK(tree.get<std::string>("node_id") == "node-a");
  CHECK(tree.get<std::string>("last_transition.reason") == "acquired");
  CHECK(tree.get_child("nodes").size() == 2);
  CHECK(tree.get_child("plugins").size() == 2);
}

TEST_CASE("the status JSON stays valid and faithful whatever the strings hold") {
  Fixture fixture;
  const std::string hostile = std::string("a\"b\\c\nd\x01\x1f</script>\0end", 22);
  fixture.node.status.node_id = hostile;
  fixture.node.status.plugins[0].last_error = "bad \xff byte";
  const auto tree = parse_json(fixture.get("/status").body);
  CHECK(tree.get<std::string>("node_id") == hostile);
  CHECK(tree.get_child("plugins").front().second.get<std::string>("last_error") ==
        "bad \xef\xbf\xbd byte");
}

TEST_CASE("GET /status?format=text answers what emsnode status prints") {
  Fixture fixture;
  const Response response = fixture.get("/status?format=text");
  CHECK(response.status == 200);
  CHECK(response.content_type == "text/plain; charset=utf-8");
  CHECK(response.body.rfind("node    node-a (0.1.0)\nrole    active, epoch 7\n", 0) == 0);
  CHECK(fixture.get("/status?format=xml").status == 400);
}

TEST_CASE("/healthz/active answers 200 only while the node is active, without a token") {
  Fixture fixture(std::nullopt);
  Response response = fixture.get("/healthz/active");
  CHECK(response.status == 200);
  CHECK(response.body == "active\n");
  fixture.node.active = false;
  response = fixture.get("/healthz/active");
  CHECK(response.status == 503);
  CHECK(response.body == "passive\n");
  response = request(fixture.target(), "HEAD", "/healthz/active");
  CHECK(response.status == 503);
  CHECK(response.body.empty());
}

TEST_CASE("each /healthz probe answers 200 or 503 with the line that says which part is missing") {
  Fixture fixture(std::nullopt);
  fixture.node.health = Health{{true, "live"},
                               {false, "not ready: plugin_faulted"},
                               {false, "active but not serving: mq failed: bind refused"}};
  Response response = fixture.get("/healthz/active");
  CHECK(response.status == 503);
  CHECK(response.body == "active but not serving: mq failed: bind refused\n");
  response = fixture.get("/healthz/live");
  CHECK(response.status == 200);
  CHECK(response.body == "live\n");
  response = fixture.get("/healthz/ready");
  CHECK(response.status == 503);
  CHECK(response.body == "not ready: plugin_faulted\n");
  fixture.node.health = Health{{false, "not live: the role manager has not run for 9000 ms"},
                               {true, "ready"},
                               {false, "passive: lease_held"}};
  CHECK(fixture.get("/healthz/live").status == 503);
  CHECK(fixture.get("/healthz/ready").status == 200);
  CHECK(fixture.get("/healthz/nothing").status == 404);
  CHECK(request(fixture.target(), "POST", "/healthz/ready").status == 405);
}

TEST_CASE("HEAD /healthz/active answers the status without a body") {
  Fixture fixture;
  RawConnection connection(fixture.server.port());
  connection.send("HEAD /healthz/active HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  bool closed = false;
  const std::string response = connection.read_until_closed(2s, &closed);
  CHECK(closed);
  CHECK(response.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(has_header(response, "Content-Length: 7"));
  CHECK(response.substr(response.size() - 4) == "\r\n\r\n");
}

TEST_CASE("GET /metrics answers the metrics with the Prometheus content type") {
  Fixture fixture;
  const Response response = fixture.get("/metrics");
  CHECK(response.status == 200);
  CHECK(response.content_type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(response.body == fixture.node.metrics);
}

TEST_CASE("GET / answers a self-contained status page that cannot run injected script") {
  Fixture fixture;
  fixture.node.status.node_id = "<script>alert(1)</script>";
  RawConnection connection(fixture.server.port());
  connection.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  const std::string response = connection.read_until_closed(2s);
  CHECK(response.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(has_header(response, "Content-Type: text/html; charset=utf-8"));
  CHECK(has_header(response,
                   "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'"));
  CHECK(response.find("<script") == std::string::npos);
  CHECK(response.find("&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
}

TEST_CASE("POST /switchover with the token hands over, to a named node when asked") {
  Fixture fixture;
  Response response = request(fixture.target(), "POST", "/switchover");
  CHECK(response.status == 200);
  CHECK(response.body == "switchover requested\n");
  response = request(fixture.target(), "POST", "/switchover?to=node%20b");
  CHECK(response.status == 200);
  CHECK(response.body == "switchover to node b requested\n");
  CHECK(fixture.node.switchovers() ==
        std::vector<std::optional<std::string>>{std::nullopt, std::string("node b")});
  CHECK(request(fixture.target(), "POST", "/switchover?to=").status == 400);
}

TEST_CASE("POST /pause and /resume reach the node") {
  Fixture fixture;
  CHECK(request(fixture.target(), "POST", "/pause").status == 200);
  CHECK(request(fixture.target(), "POST", "/resume").status == 200);
  CHECK(fixture.node.calls() == std::vector<std::string>{"pause", "resume"});
}

TEST_CASE("a state change without the right token is refused with 401 and changes nothing") {
  Fixture fixture;
  for (const auto& token : {std::optional<std::string>(), std::optional<std::string>("wrong"),
                            std::optional<std::string>(std::string(kToken) + "-and-more"),
                            std::optional<std::string>("s3cret-token-012345678"),
                            std::optional<std::string>("s3cret-token-012345678A")}) {
    const Response response = request(fixture.target(token), "POST", "/pause");
    CHECK(response.status == 401);
    CHECK(response.body.find("Authorization: Bearer") != std::string::npos);
  }
  CHECK(request(fixture.target(std::nullopt), "PUT", "/settings/fqdn", "x").status == 401);
  CHECK(fixture.node.calls().empty());
  CHECK(fixture.node.settings().empty());

  RawConnection connection(fixture.server.port());
  connection.send(
      "POST /switchover HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic czNjcmV0\r\n"
      "Content-Length: 0\r\nConnection: close\r\n\r\n");
  const std::string raw = connection.read_until_closed(2s);
  CHECK(raw.rfind("HTTP/1.1 401 Unauthorized\r\n", 0) == 0);
  CHECK(has_header(raw, "WWW-Authenticate: Bearer realm=\"emsnode\""));
  CHECK(fixture.node.switchovers().empty());
}

TEST_CASE("the bearer scheme is matched without regard to case") {
  Fixture fixture;
  RawConnection connection(fixture.server.port());
  connection.send(std::string("POST /pause HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: bearer ") +
                  kToken + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  CHECK(connection.read_until_closed(2s).rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(fixture.node.calls() == std::vector<std::string>{"pause"});
}

TEST_CASE("with no token every route that needs one is refused with 403, the open ones work") {
  Fixture fixture(std::nullopt);
  const Response response = request(fixture.target("anything"), "POST", "/switchover");
  CHECK(response.status == 403);
  CHECK(response.body.find("[admin] token") != std::string::npos);
  CHECK(request(fixture.target("anything"), "PUT", "/settings/a", "b").status == 403);
  CHECK(fixture.get("/settings").status == 403);
  CHECK(fixture.node.switchovers().empty());
  CHECK(fixture.get("/status").status == 200);
  CHECK(fixture.get("/healthz/live").status == 200);
}

TEST_CASE("an operation's refusal is answered with its status and message") {
  Fixture fixture;
  fixture.node.before_operation = [] {
    throw OperationError::conflict("not active: switchover runs on the active node (node-b)");
  };
  Response response = request(fixture.target(), "POST", "/switchover");
  CHECK(response.status == 409);
  CHECK(response.body == "not active: switchover runs on the active node (node-b)\n");

  fixture.node.before_operation = [] {
    throw OperationError::unavailable("database unreachable: connection refused");
  };
  CHECK(request(fixture.target(), "POST", "/pause").status == 503);

  fixture.node.before_operation = [] { throw std::runtime_error("disk on fire"); };
  response = request(fixture.target(), "POST", "/resume");
  CHECK(response.status == 500);
  CHECK(response.body == "internal error: disk on fire\n");
}

TEST_CASE("settings are listed, read one by one, and set with the token") {
  Fixture fixture;
  fixture.node.add_setting({"fqdn", "ems.example.com", 1'700'000'000'000, "node-a", 3});

  Response response = fixture.get("/settings");
  CHECK(response.status == 200);
  CHECK(response.content_type == "application/json");
  CHECK(response.body.rfind(R"([{"key":"fqdn","value":"ems.example.com",)", 0) == 0);
  CHECK(fixture.get("/settings?format=text").body.find("fqdn  ems.example.com") !=
        std::string::npos);

  response = fixture.get("/settings/fqdn");
  CHECK(response.status == 200);
  CHECK(response.content_type == "text/plain; charset=utf-8");
  CHECK(response.body == "ems.example.com");

  response = fixture.get("/settings/remote%20access");
  CHECK(response.status == 404);
  CHECK(response.body == "setting remote access is not set\n");

  const std::string value = "multi\nline \"value\"";
  CHECK(request(fixture.target(), "PUT", "/settings/remote%20access", value).status == 200);
  CHECK(fixture.get("/settings/remote%20access").body == value);
  CHECK(fixture.node.settings().back().key == "remote access");
}

TEST_CASE("a setting value of the body limit is accepted and one byte more is refused with 413") {
  Fixture fixture;
  const std::string largest(64 * 1024, 'v');
  CHECK(request(fixture.target(), "PUT", "/settings/big", largest).status == 200);
  const Response response = request(fixture.target(), "PUT", "/settings/big", largest + "v");
  CHECK(response.status == 413);
  CHECK(response.body == "request body over 65536 bytes\n");
  CHECK(fixture.node.settings().at(0).value == largest);
  CHECK(fixture.get("/status").status == 200);
}

TEST_CASE("a header over 8 KiB is refused with 431") {
  Fixture fixture;
  RawConnection connection(fixture.server.port());
  connection.send("GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: " + std::string(9000, 'f') +
                  "\r\n\r\n");
  CHECK(connection.read_until_closed(2s).rfind("HTTP/1.1 431 ", 0) == 0);
}

TEST_CASE("unknown paths answer 404 and wrong methods 405 with the allowed ones") {
  Fixture fixture;
  Response response = fixture.get("/nope");
  CHECK(response.status == 404);
  CHECK(response.body == "no such endpoint: /nope\n");
  CHECK(fixture.get("/settings/").status == 404);
  CHECK(request(fixture.target(), "DELETE", "/settings/a").status == 405);
  CHECK(fixture.get("/switchover").status == 405);
  CHECK(request(fixture.target(), "POST", "/status").status == 405);
  CHECK(fixture.node.switchovers().empty());

  RawConnection connection(fixture.server.port());
  connection.send(std::string("BREW /pause HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ") +
                  kToken + "\r\nConnection: close\r\n\r\n");
  const std::string raw = connection.read_until_closed(2s);
  CHECK(raw.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0) == 0);
  CHECK(has_header(raw, "Allow: POST"));
}

TEST_CASE("a malformed request is answered 400 and the endpoint keeps serving") {
  Fixture fixture;
  const std::vector<std::string> requests = {
      "this is not http\r\n\r\n", "GET /status HTTP/1.1\r\nNo colon here\r\n\r\n",
      "GET /status HTTP/1.1\r\nContent-Length: abc\r\n\r\n", std::string("\0\x01\x02\r\n\r\n", 7),
      std::string("GET /settings/%zz HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ") +
          kToken + "\r\nConnection: close\r\n\r\n"};
  for (const std::string& garbage : requests) {
    RawConnection connection(fixture.server.port());
    connection.send(garbage);
    bool closed = false;
    const std::string response = connection.read_until_closed(2s, &closed);
    CHECK(response.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
  }
  CHECK(fixture.get("/status").status == 200);
}

TEST_CASE("a client that trickles its request is cut off after the read timeout") {
  ServerLimits limits;
  limits.read_timeout = 300ms;
  Fixture fixture(std::string(kToken), limits);
  RawConnection slow(fixture.server.port());
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  for (int i = 0; i < 40 && !closed; ++i) {
    // One byte every 50 ms: each read makes progress, yet the request never completes.
    if (!slow.send("G")) break;
    slow.read_until_closed(50ms, &closed);
  }
  if (!closed) slow.read_until_closed(2s, &closed);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(closed);
  CHECK(elapsed >= 250ms);
  CHECK_WALL_CLOCK(elapsed < 1500ms);
  CHECK(fixture.get("/status").status == 200);
}

TEST_CASE("an idle keep-alive connection is closed after the read timeout") {
  ServerLimits limits;
  limits.read_timeout = 200ms;
  Fixture fixture(std::string(kToken), limits);
  RawConnection idle(fixture.server.port());
  idle.send("GET /healthz/active HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  CHECK(idle.read_responses(1, 2s).rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  bool closed = false;
  idle.read_until_closed(2s, &closed);
  CHECK(closed);
}

TEST_CASE("a keep-alive connection serves several requests in order") {
  Fixture fixture;
  fixture.node.active = false;
  RawConnection connection(fixture.server.port());
  connection.send(
      "GET /healthz/active HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
      "GET /settings HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
      std::string(kToken) + "\r\n\r\n");
  const std::string responses = connection.read_responses(2, 2s);
  const std::size_t second = responses.find("HTTP/1.1 200 OK\r\n");
  CHECK(responses.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0);
  REQUIRE(second != std::string::npos);
  CHECK(responses.substr(responses.size() - 2) == "[]");
}

TEST_CASE("connections over the cap are answered 503 and closed until one frees up") {
  ServerLimits limits;
  limits.max_connections = 2;
  Fixture fixture(std::string(kToken), limits);
  auto first = std::make_unique<RawConnection>(fixture.server.port());
  RawConnection second(fixture.server.port());
  {
    RawConnection third(fixture.server.port());
    bool closed = false;
    const std::string refused = third.read_until_closed(2s, &closed);
    CHECK(closed);
    CHECK(refused.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0);
    CHECK(refused.find("too many connections") != std::string::npos);
  }
  // The connections within the cap are served as usual.
  first->send("GET /healthz/active HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  bool closed = false;
  CHECK(first->read_until_closed(2s, &closed).rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(closed);
  first.reset();
  // With `first` gone there is room again (once the endpoint has noticed).
  Response response;
  for (int i = 0; i < 50 && response.status != 200; ++i) {
    response = fixture.get("/healthz/active");
    if (response.status != 200) std::this_thread::sleep_for(20ms);
  }
  CHECK(response.status == 200);
}

TEST_CASE("health checks are answered while slow operations occupy every worker") {
  Fixture fixture;
  std::future<unsigned> switchover;
  std::future<unsigned> pause;
  // Declared last, so destroyed first: the operations are released even when a check throws.
  struct Gate {
    std::promise<void> opened;
    std::shared_future<void> wait = opened.get_future().share();
    ~Gate() { opened.set_value(); }
  } gate;
  std::atomic<int> entered{0};
  // A copy of the future: the workers may still be leaving wait() when `gate` is destroyed.
  fixture.node.before_operation = [&entered, opened = gate.wait] {
    ++entered;
    opened.wait();
  };
  switchover = std::async(std::launch::async,
                          [&] { return request(fixture.target(), "POST", "/switchover").status; });
  pause = std::async(std::launch::async,
                     [&] { return request(fixture.target(), "POST", "/pause").status; });
  while (entered < 2) std::this_thread::sleep_for(5ms);
  const auto start = std::chrono::steady_clock::now();
  CHECK(request(fixture.target(), "GET", "/healthz/active", "", 1s).status == 200);
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - start < 1s);
}

TEST_CASE("start fails naming the address and the reason when the port is taken") {
  FakeNode node;
  AdminServer first("127.0.0.1:0", ServerSecurity{}, node.model());
  first.start();
  const std::string taken = "127.0.0.1:" + std::to_string(first.port());
  AdminServer second(taken, ServerSecurity{}, node.model());
  CHECK_THROWS_WITH(second.start(),
                    "admin endpoint: cannot listen on " + taken + " (address already in use)");
  AdminServer malformed("127.0.0.1", ServerSecurity{}, node.model());
  CHECK_THROWS_WITH(malformed.start(),
                    Catch::Contains("cannot listen on 127.0.0.1 (") && Catch::Contains("no port"));
}

TEST_CASE("stop closes the listener and open connections, and may be called twice") {
  Fixture fixture;
  const Target target = fixture.target();
  RawConnection open(fixture.server.port());
  fixture.server.stop();
  bool closed = false;
  open.read_until_closed(2s, &closed);
  CHECK(closed);
  CHECK_THROWS_AS(request(target, "GET", "/status"), ClientError);
  fixture.server.stop();
}

TEST_CASE("requests are logged at debug without the token, refusals at warning") {
  emsnode::testing::TempDir dir;
  log::Settings settings;
  settings.console = false;
  settings.file = dir / "node.log";
  settings.level = log::Level::debug;
  log::init(settings);
  {
    Fixture fixture;
    CHECK(fixture.get("/status").status == 200);
    CHECK(request(fixture.target(), "POST", "/pause").status == 200);
    CHECK(request(fixture.target("guess"), "POST", "/pause").status == 401);
  }
  log::flush();
  std::ifstream in(dir / "node.log");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  log::init({});
  CHECK(text.find("admin.listening address=127.0.0.1:") != std::string::npos);
  CHECK_THAT(text, Catch::Matches(
                       R"([\s\S]*debug +admin admin\.request method=GET path=/status status=200 )"
                       R"(elapsed_ms=\d+[\s\S]*)"));
  CHECK_THAT(text, Catch::Matches(R"([\s\S]*warning +admin admin\.refused reason=wrong_token )"
                                  R"(method=POST path=/pause remote=127\.0\.0\.1:\d+[\s\S]*)"));
  CHECK(text.find(kToken) == std::string::npos);
  CHECK(text.find("guess") == std::string::npos);
}

}  // namespace emsnode::admin
