// The admin endpoint's plugin command routes, GET /plugins/ID/commands and
// POST /plugins/ID/commands/NAME, in front of a fake node whose plugins' commands a test scripts.
#include <catch2/catch.hpp>

#include <mutex>

#include <nlohmann/json.hpp>

#include "admin/admin_client.hpp"
#include "admin/admin_server.hpp"
#include "admin_test_support.hpp"

namespace emsnode::admin {
namespace {

using nlohmann::json;
using testing::FakeNode;

constexpr const char* kToken = "s3cret-token-0123456789";
constexpr const char* kEchoCommands =
    R"([{"name":"stats","summary":"Connections served","changes_state":false,)"
    R"("active_only":true,"args":[]}])";

// One call the endpoint passed on to the node's plugin host.
struct Call {
  std::string plugin;
  std::string command;
  std::string args;
  bool operator==(const Call& other) const {
    return plugin == other.plugin && command == other.command && args == other.args;
  }
};

// A node with one plugin, echo, that has one command, stats; its answer is what `answer` says.
class Commands {
 public:
  CommandReply answer{200, R"({"served":3,"open":1})", false};

  CommandModel model() {
    CommandModel model;
    model.list = [](const std::string& plugin) -> std::optional<std::string> {
      if (plugin != "echo") return std::nullopt;
      return std::string(kEchoCommands);
    };
    model.find = [](const std::string& plugin,
                    const std::string& command) -> std::optional<CommandInfo> {
      if (plugin != "echo" || command != "stats") return std::nullopt;
      return CommandInfo{false, true};
    };
    model.run = [this](const std::string& plugin, const std::string& command,
                       const std::string& args) {
      std::lock_guard lock(mutex_);
      calls_.push_back({plugin, command, args});
      return answer;
    };
    return model;
  }

  std::vector<Call> calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  std::mutex mutex_;
  std::vector<Call> calls_;
};

struct Fixture {
  explicit Fixture(ServerLimits limits = {}) : server("127.0.0.1:0", security(), model(), limits) {
    server.start();
  }

  static ServerSecurity security() { return ServerSecurity{std::string(kToken)}; }
  Model model() {
    Model model = node.model();
    model.commands = commands.model();
    return model;
  }
  Target target(std::optional<std::string> token = std::string(kToken)) const {
    return {"127.0.0.1", server.port(), std::move(token)};
  }
  Response post(const std::string& path, const std::string& body = "{}") const {
    return request(target(), "POST", path, body);
  }

  FakeNode node;
  Commands commands;
  AdminServer server;
};

std::string error_of(const Response& response) {
  const json body = json::parse(response.body, nullptr, false);
  return body.is_object() ? body.value("error", std::string()) : std::string();
}

}  // namespace

TEST_CASE("GET /plugins/ID/commands answers the plugin's command list as JSON") {
  Fixture fixture;
  const Response response = request(fixture.target(), "GET", "/plugins/echo/commands");
  CHECK(response.status == 200);
  CHECK(response.content_type == "application/json");
  CHECK(response.body == kEchoCommands);
}

TEST_CASE("the command routes answer 404 naming an unknown plugin or command, running nothing") {
  Fixture fixture;
  Response response = request(fixture.target(), "GET", "/plugins/nope/commands");
  CHECK(response.status == 404);
  CHECK(response.content_type == "application/json");
  CHECK(error_of(response) == "no plugin nope is enabled on this node");

  response = fixture.post("/plugins/nope/commands/stats");
  CHECK(response.status == 404);
  CHECK(error_of(response) == "no plugin nope is enabled on this node");

  response = fixture.post("/plugins/echo/commands/reset");
  CHECK(response.status == 404);
  CHECK(response.content_type == "application/json");
  CHECK(error_of(response) == "plugin echo has no command reset");
  CHECK(fixture.commands.calls().empty());
}

TEST_CASE("the command routes without the token are refused with 401 and run nothing") {
  Fixture fixture;
  for (const auto& token :
       {std::optional<std::string>(), std::optional<std::string>("wrong-token-0123456789")}) {
    CHECK(request(fixture.target(token), "GET", "/plugins/echo/commands").status == 401);
    // Even a command that changes nothing: what it reads is the operator's to see.
    CHECK(request(fixture.target(token), "POST", "/plugins/echo/commands/stats", "{}").status ==
          401);
  }
  CHECK(fixture.commands.calls().empty());
  CHECK(fixture.post("/plugins/echo/commands/stats").status == 200);
}

TEST_CASE("a command's arguments over the body limit are refused with 413 and run nothing") {
  ServerLimits limits;
  limits.body_limit = 1024;
  Fixture fixture(limits);
  const std::string at_limit = R"({"pad":")" + std::string(1024 - 10, 'x') + R"("})";
  REQUIRE(at_limit.size() == 1024);
  CHECK(fixture.post("/plugins/echo/commands/stats", at_limit).status == 200);
  const std::string over = R"({"pad":")" + std::string(1024 - 9, 'x') + R"("})";
  const Response response = fixture.post("/plugins/echo/commands/stats", over);
  CHECK(response.status == 413);
  CHECK(response.body == "request body over 1024 bytes\n");
  CHECK(fixture.commands.calls() == std::vector<Call>{{"echo", "stats", at_limit}});
}

TEST_CASE("a command body that is not a JSON object is refused with 400 and runs nothing") {
  Fixture fixture;
  for (const std::string body : {"[]", "\"stats\"", "42", "null", "{\"open\":", "not json"}) {
    INFO(body);
    const Response response = fixture.post("/plugins/echo/commands/stats", body);
    CHECK(response.status == 400);
    CHECK(response.content_type == "application/json");
    CHECK_THAT(error_of(response), Catch::StartsWith("the arguments must be a JSON object"));
  }
  CHECK(fixture.commands.calls().empty());

  // No body at all is no arguments, and an object goes to the plugin host as it came.
  CHECK(fixture.post("/plugins/echo/commands/stats", "").status == 200);
  CHECK(fixture.post("/plugins/echo/commands/stats", " {\"n\": 1} ").status == 200);
  CHECK(fixture.commands.calls() ==
        std::vector<Call>{{"echo", "stats", ""}, {"echo", "stats", " {\"n\": 1} "}});
}

TEST_CASE("the plugin's answer is passed on with its HTTP status and JSON body") {
  Fixture fixture;
  const std::vector<CommandReply> answers = {
      {200, R"({"served":3,"open":1})", false},
      {400, R"({"error":"the file is forged"})", false},
      {404, R"({"error":"no such license"})", false},
      {409, R"({"error":"fenced: the lease was lost"})", false},
      {500, R"({"error":"the handler threw"})", false},
      {503, R"({"error":"echo is faulted"})", false},
      {504, R"({"error":"no answer within 30000 ms"})", false},
  };
  for (const CommandReply& answer : answers) {
    INFO(answer.status);
    fixture.commands.answer = answer;
    const Response response = fixture.post("/plugins/echo/commands/stats");
    CHECK(response.status == answer.status);
    CHECK(response.content_type == "application/json");
    CHECK(response.body == answer.body);
  }
}

TEST_CASE("an active-only command refused on a passive node answers 409 naming the active one") {
  Fixture fixture;
  // This node is node-b; node-a holds the lease, and the registry has its admin address.
  fixture.node.status.node_id = "node-b";
  fixture.commands.answer = {409, R"({"error":"echo is not running on this node"})", true};
  Response response = fixture.post("/plugins/echo/commands/stats");
  CHECK(response.status == 409);
  CHECK(response.content_type == "application/json");
  CHECK(json::parse(response.body) == json::parse(R"({"error":"echo is not running on this node",
      "not_active":true,"node":"node-b",
      "active":{"id":"node-a","admin_address":"127.0.0.1:8440"}})"));

  // An expired lease names no active node: there is none to forward to.
  fixture.node.status.lease_expires_in_ms = 0;
  response = fixture.post("/plugins/echo/commands/stats");
  CHECK(response.status == 409);
  CHECK(json::parse(response.body) == json::parse(R"({"error":"echo is not running on this node",
      "not_active":true,"node":"node-b","active":null})"));
}

TEST_CASE("the command routes answer 503 on a node that serves no plugin commands") {
  FakeNode node;
  AdminServer server("127.0.0.1:0", ServerSecurity{std::string(kToken)}, node.model());
  server.start();
  const Target target{"127.0.0.1", server.port(), std::string(kToken)};
  CHECK(request(target, "GET", "/plugins/echo/commands").status == 503);
  const Response response = request(target, "POST", "/plugins/echo/commands/stats", "{}");
  CHECK(response.status == 503);
  CHECK(response.body == "this node serves no plugin commands\n");
}

}  // namespace emsnode::admin
