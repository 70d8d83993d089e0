// Unit tests of the echo plugin on the SDK's fake host: the plugin's exported table is driven
// through the node's lifecycle in-process, and real TCP clients talk to it.
#include <emsnode/plugin_abi.h>
#include <emsnode/testing/fake_host.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

// Defined by EMSNODE_PLUGIN in echo_plugin.cpp, linked into this test.
extern "C" const emsnode_plugin_api* emsnode_plugin_entry(uint16_t, uint16_t);

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using emsnode::sdk::testing::FakeHost;
using namespace std::chrono_literals;

const emsnode_plugin_api* echo_plugin() {
  return emsnode_plugin_entry(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR);
}

// The plugin's config as the node would hand it over, on a port the system picks.
void configure(FakeHost& fake, const char* listen = "127.0.0.1:0") {
  fake.config("listen", listen)
      .config("max_connections", 8)
      .config("idle_timeout", std::chrono::milliseconds(60s))
      .declare_command("stats");  // as plugin.toml declares it
}

// The port of the latest echo.listening record: the one the system picked for port 0.
unsigned short listening_port(const FakeHost& fake) {
  const auto record = fake.last_log("echo.listening");
  REQUIRE(record);
  const std::string address = record->field("address").value_or("");
  const auto colon = address.rfind(':');
  REQUIRE(colon != std::string::npos);
  return static_cast<unsigned short>(std::stoi(address.substr(colon + 1)));
}

tcp::endpoint loopback(unsigned short port) {
  return tcp::endpoint(asio::ip::make_address("127.0.0.1"), port);
}

// A blocking client with a bounded wait, so that a broken server fails the test, not hangs it.
class Client {
 public:
  explicit Client(unsigned short port) : socket_(io_) { socket_.connect(loopback(port)); }

  std::string roundtrip(const std::string& payload) {
    asio::write(socket_, asio::buffer(payload));
    std::string reply(payload.size(), '\0');
    asio::read(socket_, asio::buffer(reply));
    return reply;
  }

  // True when the server closes the connection within `limit`.
  bool closed_by_server_within(std::chrono::milliseconds limit) {
    socket_.non_blocking(true);
    const auto until = std::chrono::steady_clock::now() + limit;
    char byte = 0;
    while (std::chrono::steady_clock::now() < until) {
      boost::system::error_code ec;
      socket_.read_some(asio::buffer(&byte, 1), ec);
      if (ec == asio::error::eof || ec == asio::error::connection_reset) {
        return true;
      }
      if (ec != asio::error::would_block) {
        return false;
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

 private:
  asio::io_context io_;
  tcp::socket socket_;
};

bool accepts_connections(unsigned short port) {
  asio::io_context io;
  tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect(loopback(port), ec);
  return !ec;
}

}  // namespace

TEST_CASE("the echo plugin sends back what a client sends while it is started") {
  FakeHost fake;
  configure(fake);
  REQUIRE(fake.create(echo_plugin()) == EMSNODE_OK);
  REQUIRE(fake.start() == EMSNODE_OK);
  const unsigned short port = listening_port(fake);
  CHECK(port != 0);
  CHECK(fake.health() == EMSNODE_HEALTH_OK);

  {
    Client client(port);
    CHECK(client.roundtrip("hello") == "hello");
    CHECK(client.roundtrip(std::string(10000, 'x')) == std::string(10000, 'x'));
  }

  REQUIRE(fake.stop() == EMSNODE_OK);
  CHECK(fake.last_log("echo.stopped"));
  CHECK(fake.metric("connections_total")->value == 1);
  CHECK(fake.metric("bytes_echoed_total")->value == 10005);
  CHECK(fake.metric("connections_open")->value == 0);
  CHECK(fake.leaked_timers() == 0);
  CHECK_FALSE(accepts_connections(port));
}

TEST_CASE("the echo plugin serves again after a stop and a new start") {
  FakeHost fake;
  configure(fake);
  REQUIRE(fake.create(echo_plugin()) == EMSNODE_OK);
  REQUIRE(fake.start() == EMSNODE_OK);
  REQUIRE(fake.stop() == EMSNODE_OK);

  REQUIRE(fake.start() == EMSNODE_OK);
  Client client(listening_port(fake));
  CHECK(client.roundtrip("again") == "again");
  REQUIRE(fake.stop() == EMSNODE_OK);
  CHECK(fake.logs("echo.listening").size() == 2);
  CHECK(fake.logs("echo.stopped").size() == 2);
}

TEST_CASE("stopping the echo plugin closes open connections within the deadline") {
  FakeHost fake;
  configure(fake);
  REQUIRE(fake.create(echo_plugin()) == EMSNODE_OK);
  REQUIRE(fake.start() == EMSNODE_OK);
  Client client(listening_port(fake));
  CHECK(client.roundtrip("x") == "x");

  REQUIRE(fake.stop(2s) == EMSNODE_OK);
  CHECK(fake.last_stop_duration() < 2s);
  CHECK(fake.last_log("echo.stopped")->field("drained") == "true");
  CHECK(client.closed_by_server_within(2s));
}

TEST_CASE("the echo plugin accepts stop twice in a row and stop without a start") {
  FakeHost fake;
  configure(fake);
  REQUIRE(fake.create(echo_plugin()) == EMSNODE_OK);
  CHECK(fake.stop() == EMSNODE_OK);
  REQUIRE(fake.start() == EMSNODE_OK);
  CHECK(fake.stop() == EMSNODE_OK);
  CHECK(fake.stop() == EMSNODE_OK);
  CHECK(fake.logs("echo.stopped").size() == 1);
}

TEST_CASE("the echo plugin refuses a listen value that is not an IP address and port") {
  const char* listen =
      GENERATE("localhost:18013", "127.0.0.1", "127.0.0.1:99999", "::1:80", "[::1]80");
  FakeHost fake;
  configure(fake, listen);
  CHECK(fake.create(echo_plugin()) == EMSNODE_ERROR);
  CHECK_THAT(fake.last_error(), Catch::StartsWith("config key 'listen': '" + std::string(listen)));
}

TEST_CASE("the echo plugin refuses max_connections outside 1..65536 at create") {
  FakeHost fake;
  configure(fake);
  fake.config("max_connections", 0);
  CHECK(fake.create(echo_plugin()) == EMSNODE_ERROR);
  CHECK_THAT(fake.last_error(), Catch::Contains("max_connections"));
}

TEST_CASE("the echo plugin fails create when a config key is missing, naming the key") {
  FakeHost fake;
  configure(fake);
  fake.erase_config("idle_timeout");
  CHECK(fake.create(echo_plugin()) == EMSNODE_ERROR);
  CHECK_THAT(fake.last_error(), Catch::Contains("'idle_timeout'"));
}

TEST_CASE("the echo plugin fails start with the address and the reason when the port is taken") {
  asio::io_context io;
  tcp::acceptor taken(io, loopback(0));
  const std::string address = "127.0.0.1:" + std::to_string(taken.local_endpoint().port());

  FakeHost fake;
  configure(fake, address.c_str());
  REQUIRE(fake.create(echo_plugin()) == EMSNODE_OK);
  CHECK(fake.start() == EMSNODE_ERROR);
  CHECK_THAT(fake.last_error(),
             Catch::Contains("cannot listen on " + address) && Catch::Contains("in use"));
  CHECK(fake.stop() == EMSNODE_OK);  // as the node does after a failed start
}

TEST_CASE("the echo plugin listens on an IPv6 address") {
  FakeHost fake;
  configure(fake, "[::1]:0");
  REQUIRE(fake.create(echo_plugin()) == EMSNODE_OK);
  if (fake.start() != EMSNODE_OK) {
    // A host without IPv6 (some containers) cannot bind ::1; nothing else to check then.
    CHECK_THAT(fake.last_error(), Catch::Contains("cannot listen on [::1]:0"));
    return;
  }
  CHECK_THAT(fake.last_log("echo.listening")->field("address").value_or(""),
             Catch::StartsWith("[::1]:"));
}

TEST_CASE("the echo plugin closes a connection beyond max_connections at once") {
  FakeHost fake;
  configure(fake);
  fake.config("max_connections", 1);
  REQUIRE(fake.create(echo_plugin()) == EMSNODE_OK);
  REQUIRE(fake.start() == EMSNODE_OK);
  const unsigned short port = listening_port(fake);

  Client first(port);
  CHECK(first.roundtrip("1") == "1");
  Client second(port);
  CHECK(second.closed_by_server_within(2s));
  CHECK(first.roundtrip("still") == "still");
  CHECK(fake.metric("connections_rejected_total")->value == 1);
}

TEST_CASE("the echo plugin closes a connection that stays silent past idle_timeout") {
  FakeHost fake;
  configure(fake);
  fake.config("idle_timeout", std::chrono::milliseconds(100));
  REQUIRE(fake.create(echo_plugin()) == EMSNODE_OK);
  REQUIRE(fake.start() == EMSNODE_OK);

  Client client(listening_port(fake));
  CHECK(client.roundtrip("ping") == "ping");
  CHECK(client.closed_by_server_within(3s));
}

TEST_CASE("the echo plugin's entry point refuses a host of another ABI major") {
  CHECK(emsnode_plugin_entry(EMSNODE_ABI_MAJOR + 1, 0) == nullptr);
  CHECK(emsnode_plugin_entry(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR + 1) != nullptr);
}

TEST_CASE("the echo plugin's compiled-in id and version are those of its plugin.toml") {
  std::ifstream file(ECHO_MANIFEST);
  REQUIRE(file);
  std::ostringstream text;
  text << file.rdbuf();
  const auto top_level = [&](const char* key) {
    std::smatch match;
    const std::string manifest = text.str();
    const std::regex line(std::string("(^|\\n)") + key + " = \"([^\"]*)\"");
    return std::regex_search(manifest, match, line) ? match[2].str() : std::string();
  };
  const emsnode_plugin_api* api = echo_plugin();
  REQUIRE(api != nullptr);
  CHECK(std::string(api->id.ptr, api->id.len) == top_level("id"));
  CHECK(std::string(api->version.ptr, api->version.len) == top_level("version"));
  CHECK(top_level("abi") == std::to_string(api->abi_major) + "." + std::to_string(api->abi_minor));
}

TEST_CASE("the echo plugin's stats command counts the connections served and open") {
  FakeHost fake;
  configure(fake);
  REQUIRE(fake.create(echo_plugin()) == EMSNODE_OK);
  // active_only: refused before start, as the node refuses it on a passive.
  CHECK(fake.call_command("stats").status == EMSNODE_ERROR);
  REQUIRE(fake.start() == EMSNODE_OK);
  const unsigned short port = listening_port(fake);
  CHECK(fake.call_command("stats").reply == R"({"served":0,"open":0})");
  {
    Client first(port);
    CHECK(first.roundtrip("a") == "a");
    Client second(port);
    CHECK(second.roundtrip("b") == "b");
    const FakeHost::CommandResult result = fake.call_command("stats");
    CHECK(result.status == EMSNODE_OK);
    CHECK(result.reply == R"({"served":2,"open":2})");
  }
  CHECK(fake.call_command("stats", {{"verbose", true}}).status == EMSNODE_INVALID);
  REQUIRE(fake.stop() == EMSNODE_OK);
}

TEST_CASE("the echo plugin fails create when plugin.toml does not declare its stats command") {
  FakeHost fake;
  fake.config("listen", "127.0.0.1:0")
      .config("max_connections", 8)
      .config("idle_timeout", std::chrono::milliseconds(60s));
  CHECK(fake.create(echo_plugin()) == EMSNODE_ERROR);
  CHECK_THAT(fake.last_error(), Catch::Contains("stats"));
}
