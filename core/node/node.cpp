#include "node/node.hpp"

#include <csignal>
#include <functional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "host/plugin_host.hpp"

namespace emsnode::node {

log::Settings log_settings(const config::NodeConfig& config) {
  log::Settings settings = config.log;
  for (const auto& plugin : config.plugins) {
    if (plugin.log_level) settings.levels["plugin." + plugin.id] = *plugin.log_level;
  }
  return settings;
}

int run(const config::NodeConfig& config, std::string_view version) {
  const log::Logger log{"main"};

  // Signals are caught before any plugin code runs, so a stop requested during start-up is a
  // clean stop once start-up is done, never the default action's abrupt exit.
  boost::asio::io_context events;
  boost::asio::signal_set stop_signals(events, SIGTERM, SIGINT);
  boost::asio::signal_set reopen_signal(events, SIGHUP);
  std::function<void()> await_reopen = [&] {
    reopen_signal.async_wait([&](const boost::system::error_code& error, int) {
      if (error) return;
      log::reopen();
      log.info("log.reopened");
      await_reopen();
    });
  };
  await_reopen();
  stop_signals.async_wait([&](const boost::system::error_code& error, int signal) {
    if (error) return;
    log.info("node.stopping", {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"}});
    reopen_signal.cancel();
  });

  std::filesystem::create_directories(config.data_dir);
  host::PluginHost plugins(config);
  plugins.load();
  plugins.create_all();
  log.info("node.started", {{"node", config.node_id},
                            {"version", std::string(version)},
                            {"config", config.file.string()},
                            {"plugins", std::to_string(plugins.status().size())}});

  // Until the role manager decides, a lone node serves as active under the first epoch.
  plugins.set_epoch(1);
  plugins.start_all();
  log.info("node.active", {{"node", config.node_id}, {"epoch", "1"}});

  events.run();

  plugins.stop_all();
  plugins.destroy_all();
  log.info("node.stopped", {{"node", config.node_id}});
  log::flush();
  return 0;
}

}  // namespace emsnode::node
