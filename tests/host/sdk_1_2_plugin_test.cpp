// A plugin built against SDK 1.2 runs unchanged on this host: the echo example exactly as it
// shipped at ABI 1.2 (tests/host/echo_1_2, built against the 1.2 headers in tests/sdk/abi_1_2),
// loaded, started on an active node, talked to over a real socket, and stopped.
#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "host/plugin_host.hpp"
#include "host_test_support.hpp"

namespace emsnode::host {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using emsnode::testing::eventually;
using testing::LogCapture;
using testing::Sandbox;

// A loopback port nothing listens on now (the node config, unlike the fake host, refuses 0).
unsigned short free_port() {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  return acceptor.local_endpoint().port();
}

// Sends `bytes` to 127.0.0.1:`port` and returns as many bytes as it sent, read back.
std::string round_trip(unsigned short port, const std::string& bytes) {
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
  asio::write(socket, asio::buffer(bytes));
  std::string back(bytes.size(), '\0');
  asio::read(socket, asio::buffer(back));
  return back;
}

bool refuses_connections(unsigned short port) {
  asio::io_context io;
  tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port), ec);
  return ec == asio::error::connection_refused;
}

}  // namespace

TEST_CASE("the echo plugin built against SDK 1.2 loads, serves while active and stops") {
  Sandbox box;
  LogCapture log(box.root() / "log.txt");
  box.add_from(testing::kBuiltPlugins.parent_path() / "plugins_1_2", "echo");
  // Only the sandbox's directory: the built-in one holds the current build of echo.
  const unsigned short port = free_port();
  PluginHost host(
      box.node_config("[plugins.echo]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\n"),
      {box.plugin_dir()}, nullptr);
  host.load();
  host.create_all();
  CHECK(host.status().at(0).id == "echo");

  // Promotion: the node holds the lease and starts its plugins.
  host.set_epoch(3);
  REQUIRE(host.start_all());
  CHECK(host.status().at(0).state == PluginState::running);
  CHECK(contains(log.text(), "abi=1.2"));
  CHECK(contains(log.text(), "echo.listening"));
  REQUIRE(eventually([&] { return host.status().at(0).health == Health::ok; }));

  const std::string bytes("hello from 1.2\0\xff\n", 17);
  CHECK(round_trip(port, bytes) == bytes);
  REQUIRE(eventually([&] {
    return contains(host.metrics().render_prometheus(),
                    "emsnode_plugin_echo_bytes_echoed_total{plugin=\"echo\"} 17");
  }));

  // Demotion: the port closes with the plugin's stop.
  host.stop_all();
  CHECK(host.status().at(0).state == PluginState::stopped);
  CHECK(refuses_connections(port));
  CHECK(contains(log.text(), "echo.stopped"));

  // And serves again on the next promotion, as every plugin must.
  host.set_epoch(4);
  REQUIRE(host.start_all());
  CHECK(round_trip(port, "again") == "again");
  host.destroy_all();
  CHECK(refuses_connections(port));
}

}  // namespace emsnode::host
