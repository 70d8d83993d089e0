// The mq plugin's entry glue: the config it reads, and what it does on each lifecycle call. The
// service is in mq_server.cpp (network), broker.cpp (MQTT sessions) and session_store.cpp
// (durable state).
#include "mq_server.hpp"

#include <emsnode/listen_address.hpp>
#include <emsnode/plugin.hpp>

#include <boost/asio/ip/address.hpp>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace emsnode::plugins::mq {
namespace {

std::size_t read_count(const sdk::Config& config, const char* key, std::int64_t min,
                       std::int64_t max) {
  // The node checks the schema's bounds; checked again for hosts that do not (the fake host).
  const std::int64_t value = config.integer(key);
  if (value < min || value > max) {
    throw sdk::ConfigError(key, std::to_string(value) + " is outside " + std::to_string(min) +
                                    ".." + std::to_string(max));
  }
  return static_cast<std::size_t>(value);
}

bool flag(const sdk::Config& config, const char* key) {
  return config.find<bool>(key).value_or(false);
}

// TLS, users and ACLs, and the rule that keeps an open listener off the network.
void read_security(const sdk::Config& config, ServerOptions& options) {
  const auto cert = config.find<std::string>("tls_cert");
  const auto key = config.find<std::string>("tls_key");
  const auto ca = config.find<std::string>("tls_ca");
  const bool require_cert = flag(config, "require_client_cert");
  const bool identity = flag(config, "use_identity_as_username");
  if (cert.has_value() != key.has_value()) {
    throw sdk::ConfigError(cert ? "tls_key" : "tls_cert",
                           "TLS needs both tls_cert and tls_key (PEM files)");
  }
  if (ca && !cert) throw sdk::ConfigError("tls_ca", "client certificates need TLS: set tls_cert");
  if (require_cert && !ca) {
    throw sdk::ConfigError("require_client_cert",
                           "client certificates are checked against tls_ca: set it");
  }
  if (identity && !require_cert) {
    throw sdk::ConfigError("use_identity_as_username",
                           "the identity comes from a client certificate: set "
                           "require_client_cert = true");
  }
  if (cert) {
    TlsOptions tls;
    tls.cert = *cert;
    tls.key = *key;
    tls.ca = ca.value_or("");
    tls.require_client_cert = require_cert;
    try {
      options.tls = make_tls_context(tls);
    } catch (const TlsConfigError& e) {
      throw sdk::ConfigError(e.key(), e.what());
    }
  }
  AccessControl& access = options.broker.access;
  access.use_identity_as_username = identity;
  try {
    if (const auto path = config.find<std::string>("password_file")) {
      access.passwords = PasswordFile::load(*path);
    }
  } catch (const AccessFileError& e) {
    throw sdk::ConfigError("password_file", e.what());
  }
  access.database_users = flag(config, "database_users");
  try {
    if (const auto path = config.find<std::string>("acl_file")) access.acl = AclRules::load(*path);
  } catch (const AccessFileError& e) {
    throw sdk::ConfigError("acl_file", e.what());
  }
  const bool loopback = options.listen.address().is_loopback();
  const bool authenticated = access.passwords.has_value() || access.database_users || require_cert;
  // Like mosquitto 2's local-only mode: anonymous clients by default only where nobody but
  // this host can connect, and only when no way to authenticate is configured.
  access.allow_anonymous =
      config.find<bool>("allow_anonymous").value_or(loopback && !authenticated);
  if (!loopback && !flag(config, "insecure")) {
    std::string missing;
    if (!options.tls) missing = "TLS (tls_cert, tls_key)";
    if (!authenticated || access.allow_anonymous) {
      if (!missing.empty()) missing += " and ";
      missing +=
          "authentication (password_file, database_users or require_client_cert, with "
          "allow_anonymous = false)";
    }
    if (!missing.empty()) {
      throw sdk::ConfigError("listen", config.string("listen") +
                                           " is not a loopback address and has no " + missing +
                                           ": listen on 127.0.0.1, configure them, or set "
                                           "insecure = true");
    }
  }
}

ServerOptions read_options(const sdk::Config& config) {
  ServerOptions options;
  try {
    const sdk::ListenAddress listen = sdk::parse_listen_address(config.string("listen"));
    options.listen = {boost::asio::ip::make_address(listen.host), listen.port};
  } catch (const std::invalid_argument& e) {
    throw sdk::ConfigError("listen", e.what());
  }
  read_security(config, options);
  options.max_connections = read_count(config, "max_connections", 1, 65536);
  options.max_pending_auth = read_count(config, "max_pending_auth", 1, 65536);
  options.max_packet_size = read_count(config, "max_packet_size", 64, 268435460);
  options.broker.max_inflight = read_count(config, "max_inflight", 1, 65535);
  options.broker.max_queued_messages = read_count(config, "max_queued_messages", 1, 65000);
  options.broker.max_queued_bytes =
      read_count(config, "max_queued_bytes", 1024, std::int64_t{1} << 40);
  options.broker.max_backlog_bytes = options.broker.max_queued_bytes;
  options.broker.maximum_packet_size = static_cast<std::uint32_t>(options.max_packet_size);
  options.broker.receive_maximum =
      static_cast<std::uint16_t>(read_count(config, "receive_maximum", 1, 65535));
  options.broker.topic_alias_maximum =
      static_cast<std::uint16_t>(read_count(config, "topic_alias_maximum", 0, 65535));
  if (const auto expiry = config.find<std::chrono::milliseconds>("max_session_expiry")) {
    if (expiry->count() < 0 || expiry->count() / 1000 >= 0xFFFFFFFF) {
      throw sdk::ConfigError("max_session_expiry", "must be from 0s to 136 years");
    }
    options.broker.max_session_expiry = static_cast<std::uint32_t>(expiry->count() / 1000);
  }
  const auto will_delay = config.duration("failover_will_delay");
  if (will_delay.count() < 0 || will_delay.count() / 1000 >= 0xFFFFFFFF) {
    throw sdk::ConfigError("failover_will_delay", "must be from 0s to 136 years");
  }
  options.broker.failover_will_delay = static_cast<std::uint32_t>(will_delay.count() / 1000);
  const std::string policy = config.string("queue_full_policy");
  if (policy == "drop_new") {
    options.broker.queue_full_policy = QueueFullPolicy::kDropNew;
  } else if (policy == "drop_oldest") {
    options.broker.queue_full_policy = QueueFullPolicy::kDropOldest;
  } else if (policy == "disconnect") {
    options.broker.queue_full_policy = QueueFullPolicy::kDisconnect;
  } else {
    throw sdk::ConfigError("queue_full_policy",
                           "'" + policy + "' is not drop_new, drop_oldest or disconnect");
  }
  options.commit.interval = config.duration("commit_interval");
  if (options.commit.interval.count() < 0 || options.commit.interval.count() > 1000) {
    throw sdk::ConfigError("commit_interval", "must be from 0ms to 1s");
  }
  return options;
}

class MqPlugin final : public sdk::Plugin {
 public:
  // create: runs on every node, active or not. Checks the config; binds nothing.
  explicit MqPlugin(sdk::Host& host) : Plugin(host), options_(read_options(host.config())) {}

  // The node became active: a fresh server, which loads the durable state left by the
  // previous active.
  void start() override {
    server_ = std::make_unique<MqServer>(host(), options_);
    server_->start();
  }

  // Also called after a failed start.
  void stop(std::chrono::milliseconds deadline) override {
    if (server_) {
      server_->stop(deadline);
      server_.reset();
    }
  }

 private:
  ServerOptions options_;
  std::unique_ptr<MqServer> server_;
};

}  // namespace
}  // namespace emsnode::plugins::mq

EMSNODE_PLUGIN(emsnode::plugins::mq::MqPlugin, "mq", "0.1.0")
