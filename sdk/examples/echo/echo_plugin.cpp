// The echo plugin's entry glue: the config it reads, and what it does on each lifecycle call.
// The service itself is in echo_server.cpp.
#include "echo_server.hpp"

#include <emsnode/listen_address.hpp>
#include <emsnode/plugin.hpp>

#include <boost/asio/ip/address.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

namespace emsnode::examples::echo {
namespace {

EchoOptions read_options(const sdk::Config& config) {
  EchoOptions options;
  try {
    const sdk::ListenAddress listen = sdk::parse_listen_address(config.string("listen"));
    options.listen = {boost::asio::ip::make_address(listen.host), listen.port};
  } catch (const std::invalid_argument& e) {
    throw sdk::ConfigError("listen", e.what());
  }
  // The node checks the schema's 1..65536 already; check again so the fake host and a host that
  // skipped validation cannot hand the server nonsense.
  const std::int64_t max_connections = config.integer("max_connections");
  if (max_connections < 1 || max_connections > 65536) {
    throw sdk::ConfigError("max_connections",
                           std::to_string(max_connections) + " is outside 1..65536");
  }
  options.max_connections = static_cast<std::size_t>(max_connections);
  options.idle_timeout = config.duration("idle_timeout");
  if (options.idle_timeout.count() <= 0) {
    throw sdk::ConfigError("idle_timeout", "must be longer than 0ms");
  }
  return options;
}

class EchoPlugin final : public sdk::Plugin {
 public:
  // create: runs on every node, active or not. Checks the config; binds nothing.
  // Attaches the handler of each command plugin.toml declares.
  explicit EchoPlugin(sdk::Host& host) : Plugin(host), options_(read_options(host.config())) {
    // active_only: the host runs it only between start and stop, never concurrently with them.
    host.command("stats", [this](sdk::CommandCall& call) {
      std::lock_guard<std::mutex> lock(server_mutex_);
      const std::uint64_t served = server_ ? server_->served() : 0;
      const std::uint64_t open = server_ ? server_->open_now() : 0;
      call.reply(sdk::JsonObject().add("served", served).add("open", open).str());
    });
  }

  // The node became active. A fresh server per active period: nothing carries over a flip.
  void start() override {
    auto server = std::make_unique<EchoServer>(host(), options_);
    server->start();
    std::lock_guard<std::mutex> lock(server_mutex_);
    server_ = std::move(server);
  }

  // Also called after a failed start, when server_ exists but never listened.
  void stop(std::chrono::milliseconds deadline) override {
    std::unique_ptr<EchoServer> server;
    {
      std::lock_guard<std::mutex> lock(server_mutex_);
      server = std::move(server_);
    }
    if (server) server->stop(deadline);
  }

 private:
  EchoOptions options_;
  std::mutex server_mutex_;  // server_ is read by the stats command's thread
  std::unique_ptr<EchoServer> server_;
};

}  // namespace
}  // namespace emsnode::examples::echo

EMSNODE_PLUGIN(emsnode::examples::echo::EchoPlugin, "echo", "1.0.0")
