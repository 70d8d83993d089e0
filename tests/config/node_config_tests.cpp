#include "config/node_config.hpp"

#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "scratch.hpp"

namespace emsnode::config {
namespace {

using namespace std::chrono_literals;
using testing::config_error;
using testing::ScratchDir;

const std::filesystem::path kConfigFile = "/etc/emsnode/node.toml";

NodeConfig parse(std::string_view text) {
  return parse_node_config(text, kConfigFile);
}

ConfigError refusal(std::string_view text, const std::filesystem::path& file = kConfigFile) {
  return config_error([&] { parse_node_config(text, file); });
}

// The whole line a user sees: "FILE:LINE:COL: message".
std::string refusal_line(std::string_view text, const std::filesystem::path& file = kConfigFile) {
  return refusal(text, file).what();
}

std::string with_node(std::string_view rest) {
  return "[node]\nid = \"n1\"\n" + std::string(rest);
}

// The 1-based line of the first line of `file` that starts with `prefix`.
std::uint32_t line_starting_with(const std::filesystem::path& file, std::string_view prefix) {
  std::ifstream in(file);
  std::string line;
  for (std::uint32_t number = 1; std::getline(in, line); ++number) {
    if (line.compare(0, prefix.size(), prefix) == 0) return number;
  }
  FAIL("no line starts with " << prefix);
  return 0;
}

TEST_CASE("the embedded conf/node.toml loads with the values it documents") {
  const std::filesystem::path file = EMSNODE_DEFAULT_CONF;
  const auto top = file.parent_path().parent_path();
  const auto config = load_node_config(file);

  CHECK(config.file == file);
  CHECK(config.node_id == "node1");
  CHECK(config.address == "127.0.0.1");
  CHECK(config.data_dir == top / "var");
  CHECK(config.backup_dir == top / "var" / "backup");

  CHECK(config.log.format == log::Format::text);
  CHECK(config.log.level == log::Level::info);
  CHECK(config.log.console);
  CHECK_FALSE(config.log.file);
  CHECK_FALSE(config.log.syslog);
  CHECK(config.log.levels.empty());

  CHECK(config.database.backend == "sqlite");
  CHECK(config.database.path == top / "var" / "emsnode.db");
  CHECK(config.database.migrate);
  CHECK(config.store.backend == "share");
  CHECK(config.store.path == top / "var" / "share");

  CHECK(config.plugin_host.dirs.empty());
  CHECK(config.plugin_host.start_timeout == 10s);
  CHECK(config.plugin_host.stop_deadline == 5s);

  REQUIRE(config.plugins.size() == 2);  // echo, and the message queue
  CHECK(config.plugins[1].id == "mq");
  CHECK(config.plugins[1].enabled);
  const auto& echo = config.plugins[0];
  CHECK(echo.id == "echo");
  CHECK(echo.enabled);
  CHECK_FALSE(echo.log_level);
  CHECK_FALSE(echo.settings.contains("enabled"));
  const auto* listen = echo.settings.get("listen");
  REQUIRE(listen);
  CHECK(listen->value<std::string>() == "127.0.0.1:18013");
  CHECK(listen->source().begin.line == line_starting_with(file, "listen = \"127.0.0.1:18013\""));

  CHECK(*config.values.get<std::string>("node.backup_dir") == (top / "var" / "backup").string());
  CHECK(*config.values.get<bool>("plugins.echo.enabled"));
}

TEST_CASE("a config with only a node id takes every default under the config folder") {
  const auto config = parse("[node]\nid = \"n1\"\n");
  CHECK(config.node_id == "n1");
  CHECK(config.address == "127.0.0.1");
  CHECK(config.data_dir == "/etc/emsnode/var");
  CHECK(config.backup_dir == "/etc/emsnode/var/backup");
  CHECK(config.database.backend == "sqlite");
  CHECK(config.database.path == "/etc/emsnode/var/emsnode.db");
  CHECK_FALSE(config.database.migrate);
  CHECK(config.store.path == "/etc/emsnode/var/share");
  CHECK(config.plugin_host.start_timeout == 10s);
  CHECK(config.plugin_host.stop_deadline == 5s);
  CHECK(config.plugins.empty());
  CHECK(*config.values.get<std::string>("database.path") == "/etc/emsnode/var/emsnode.db");
  CHECK(*config.values.get<std::string>("store.path") == "/etc/emsnode/var/share");
}

TEST_CASE("derived paths follow a data_dir that is given") {
  const auto config = parse("[node]\nid = \"n1\"\ndata_dir = \"/srv/ems\"\n");
  CHECK(config.backup_dir == "/srv/ems/backup");
  CHECK(config.database.path == "/srv/ems/emsnode.db");
  CHECK(config.store.path == "/srv/ems/share");
}

TEST_CASE("a config without a node id is refused at [node] saying what the id is for") {
  CHECK(refusal_line("[log]\nlevel = \"info\"\n\n[node]\naddress = \"h\"\n") ==
        "/etc/emsnode/node.toml:4:1: missing required key \"id\" in [node] (the node's id, unique "
        "in the cluster: 1 to 64 letters, digits, '-', '_' or '.')");
  const auto error = refusal("[log]\n");
  CHECK(error.line() == 1);
  CHECK(error.column() == 1);
  CHECK_THAT(error.message(), Catch::StartsWith("missing required key \"id\" in [node]"));
}

TEST_CASE("an unknown key in [node] is refused at the key with the known keys") {
  CHECK(refusal_line("[node]\nid = \"n1\"\nidd = \"n2\"\n", "node.toml") ==
        R"(node.toml:3:1: unknown key "idd" in [node] (known keys: id, address, data_dir, )"
        R"(backup_dir))");
}

TEST_CASE("a node id outside letters, digits, '-', '_' and '.' or longer than 64 is refused") {
  for (const auto& good : std::vector<std::string>{"node1", "n", "a.b-c_d", std::string(64, 'x')}) {
    CAPTURE(good);
    CHECK(parse("[node]\nid = \"" + good + "\"\n").node_id == good);
  }
  for (const auto& bad :
       std::vector<std::string>{"", "node 1", "nöde", "n/1", std::string(65, 'x')}) {
    CAPTURE(bad);
    const auto error = refusal("[node]\nid = \"" + bad + "\"\n");
    CHECK(error.line() == 2);
    CHECK(error.column() == 6);
    CHECK_THAT(error.message(),
               Catch::EndsWith("is not a node id (expected 1 to 64 letters, digits, '-', '_' or "
                               "'.')"));
  }
  CHECK(refusal_line("[node]\nid = 7\n", "node.toml") ==
        "node.toml:2:6: [node] id: expected a string, got an integer");
}

TEST_CASE("the node address is a host without a port") {
  for (const std::string good : {"10.0.0.5", "ems-1.example.com", "::1", "fe80::1"}) {
    CAPTURE(good);
    CHECK(parse(with_node("address = \"" + good + "\"\n")).address == good);
  }
  for (const std::string bad : {"10.0.0.5:8013", "", "my host", "[::1]:80"}) {
    CAPTURE(bad);
    CHECK_THAT(refusal(with_node("address = \"" + bad + "\"\n")).message(),
               Catch::EndsWith("is not a host (expected a host name or an IP address, without a "
                               "port)"));
  }
}

TEST_CASE("an unknown top-level section is refused with the known sections") {
  CHECK(refusal_line(with_node("[nodes]\nid = 1\n"), "node.toml") ==
        "node.toml:3:2: unknown section [nodes] (known sections: admin, database, log, node, "
        "plugin_host, role, store, plugins)");
}

TEST_CASE("a log level that is not a level is refused at its value") {
  const std::string text = with_node("\n\n\n\n\n\n\n\n[log]\nlevel = \"verbose\"\n");
  CHECK(refusal_line(text, "conf/node.toml") ==
        R"(conf/node.toml:12:9: [log] level: "verbose" is not a log level (expected one of: )"
        R"(trace, debug, info, warning, error))");
}

TEST_CASE("the log section sets format, level, sinks and per-component levels") {
  const auto config = parse(with_node(R"(
[log]
format = "json"
level = "warning"
console = false
file = "log/emsnode.log"
syslog = true
[log.levels]
host = "debug"
main = "error"
)"));
  CHECK(config.log.format == log::Format::json);
  CHECK(config.log.level == log::Level::warning);
  CHECK_FALSE(config.log.console);
  CHECK(config.log.file == std::filesystem::path("/etc/emsnode/log/emsnode.log"));
  CHECK(config.log.syslog);
  CHECK(config.log.levels == std::map<std::string, log::Level, std::less<>>{
                                 {"host", log::Level::debug}, {"main", log::Level::error}});
  CHECK_THAT(refusal(with_node("[log]\nformat = \"xml\"\n")).message(),
             Catch::Contains("expected one of: text, json"));
}

TEST_CASE("a per-component level for an unknown component is refused listing the components") {
  CHECK(refusal_line(with_node("[log.levels]\nhost = \"debug\"\nmq = \"debug\"\n"), "node.toml") ==
        R"(node.toml:5:1: unknown key "mq" in [log.levels] (known keys: main, config, host))");
  CHECK(refusal(with_node("[log.levels]\nhost = \"loud\"\n")).message() ==
        R"([log.levels] host: "loud" is not a log level (expected one of: trace, debug, info, )"
        R"(warning, error))");
}

TEST_CASE("the database backend is sqlite or postgresql, and postgresql needs a url") {
  CHECK(refusal(with_node("[database]\nbackend = \"mysql\"\n")).message() ==
        R"([database] backend: "mysql" is not a database backend (expected "sqlite" or )"
        R"("postgresql"))");
  CHECK(refusal_line(with_node("[database]\nbackend = \"postgresql\"\n")) ==
        "/etc/emsnode/node.toml:4:11: [database] backend = \"postgresql\" needs url (expected "
        "the server's connection string, such as url = "
        "\"postgresql://emsnode@db1:5432/emsnode\")");
  CHECK(refusal_line(with_node("[database]\nbackend = \"postgresql\"\nurl = \"db1\"\n")) ==
        "/etc/emsnode/node.toml:5:7: [database] url: \"db1\" is not a PostgreSQL connection "
        "string (expected \"postgresql://user@host:port/dbname\" or keyword=value pairs such as "
        "\"host=db1 dbname=emsnode user=emsnode\")");
  CHECK_THAT(refusal_line(with_node("[database]\nbackend = \"postgresql\"\nurl = "
                                    "\"postgresql://e@db1/e\"\nsslmode = \"strict\"\n")),
             Catch::StartsWith("/etc/emsnode/node.toml:6:11: [database] sslmode:") &&
                 Catch::Contains("verify-full"));
  CHECK_THAT(refusal_line(with_node("[database]\nbackend = \"postgresql\"\nurl = "
                                    "\"postgresql://e@db1/e\"\nstatement_timeout = \"1h\"\n")),
             Catch::StartsWith("/etc/emsnode/node.toml:6:21: [database] statement_timeout:"));
}

TEST_CASE("a postgresql database takes its url, a secret password, timeouts and TLS settings") {
  ScratchDir dir;
  const auto password_file = dir.write_secret("db-password", "s3cret\n");
  const auto config = parse(with_node(
      "[database]\nbackend = \"postgresql\"\nurl = \"postgresql://emsnode@db1:5432/emsnode\"\n"
      "password_file = \"" +
      password_file.string() +
      "\"\nconnect_timeout = \"2s\"\nstatement_timeout = \"750ms\"\n"
      "sslmode = \"verify-full\"\nsslrootcert = \"ca.pem\"\n"));
  CHECK(config.database.backend == "postgresql");
  CHECK(config.database.url == "postgresql://emsnode@db1:5432/emsnode");
  REQUIRE(config.database.password);
  CHECK(config.database.password->reveal() == "s3cret");
  CHECK(to_display(*config.values.find("database.password")) == "<redacted>");
  CHECK(config.database.connect_timeout == 2s);
  CHECK(config.database.statement_timeout == 750ms);
  CHECK(config.database.sslmode == "verify-full");
  CHECK(config.database.sslrootcert == std::filesystem::path("/etc/emsnode/ca.pem"));

  const auto defaults =
      parse(with_node("[database]\nbackend = \"postgresql\"\nurl = "
                      "\"host=db1 dbname=emsnode\"\n"));
  CHECK_FALSE(defaults.database.password);
  CHECK(defaults.database.connect_timeout == 5s);
  CHECK(defaults.database.statement_timeout == 1s);
  // Chosen by the server's address when the node checks the config (node::postgres_sslmode).
  CHECK_FALSE(defaults.database.sslmode);
  CHECK_FALSE(defaults.database.insecure);
}

TEST_CASE("the store backend is a share or the blob table") {
  CHECK(parse(with_node("")).store.backend == "share");
  CHECK(parse(with_node("[store]\nbackend = \"blob\"\n")).store.backend == "blob");
  CHECK(refusal(with_node("[store]\nbackend = \"floppy\"\n")).message() ==
        R"([store] backend: "floppy" is not a store backend (expected "share" or "blob"))");
}

TEST_CASE("plugin directories resolve against the config folder") {
  const auto config =
      parse(with_node("[plugin_host]\ndirs = [\"plugins\", \"/opt/ems/plugins/\"]\n"));
  CHECK(config.plugin_host.dirs ==
        std::vector<std::filesystem::path>{"/etc/emsnode/plugins", "/opt/ems/plugins"});
  CHECK(*config.values.get<std::vector<std::string>>("plugin_host.dirs") ==
        std::vector<std::string>{"/etc/emsnode/plugins", "/opt/ems/plugins"});
  CHECK(refusal(with_node("[plugin_host]\ndirs = [\"a\", \"\"]\n")).message() ==
        "[plugin_host] dirs: entry 1 is empty (expected a path)");
}

TEST_CASE("plugin timeouts are durations between 100ms and 10m") {
  const auto config =
      parse(with_node("[plugin_host]\nstart_timeout = \"1.5s\"\nstop_deadline = \"100ms\"\n"));
  CHECK(config.plugin_host.start_timeout == 1500ms);
  CHECK(config.plugin_host.stop_deadline == 100ms);
  CHECK(refusal_line(with_node("[plugin_host]\nstop_deadline = \"5 parsecs\"\n"), "node.toml") ==
        R"(node.toml:4:17: [plugin_host] stop_deadline: "5 parsecs" is not a duration (expected )"
        R"(a string such as "500ms", "2s", "5m"))");
  CHECK(refusal(with_node("[plugin_host]\nstop_deadline = \"20m\"\n")).message() ==
        R"([plugin_host] stop_deadline: "20m" is out of range (expected 100ms..10m))");
  CHECK(refusal(with_node("[plugin_host]\nstart_timeout = 10\n")).message() ==
        R"([plugin_host] start_timeout: 10 is not a duration (expected a string such as "500ms", )"
        R"("2s", "5m"))");
}

TEST_CASE("the role timers, hooks and admin endpoint have working defaults") {
  const auto config = parse(with_node(""));
  CHECK(config.role.lease_ttl == 2s);
  CHECK(config.role.renew_interval == 400ms);
  CHECK(config.role.renew_deadline == 1200ms);
  CHECK(config.role.poll_interval == 200ms);
  CHECK(config.role.hook_timeout == 5s);
  CHECK(config.role.pre_promote.empty());
  CHECK(config.admin.listen == "127.0.0.1:8440");
  CHECK_FALSE(config.admin.token);
  CHECK(config.database.busy_timeout == 2s);
}

TEST_CASE("hooks resolve against the config folder and the admin token is a secret") {
  ScratchDir dir;
  const auto token_file = dir.write_secret("token", "t0ken-from-a-file-0123\n");
  const auto config =
      parse(with_node("[role]\nlease_ttl = \"5s\"\npre_promote = [\"hooks/vip.sh\", "
                      "\"/usr/bin/true\"]\n[admin]\nlisten = \"127.0.0.1:9000\"\n"
                      "token_file = \"" +
                      token_file.string() + "\"\n"));
  CHECK(config.role.lease_ttl == 5s);
  CHECK(config.role.pre_promote ==
        std::vector<std::filesystem::path>{"/etc/emsnode/hooks/vip.sh", "/usr/bin/true"});
  CHECK(config.admin.listen == "127.0.0.1:9000");
  REQUIRE(config.admin.token);
  CHECK(config.admin.token->reveal() == "t0ken-from-a-file-0123");
  CHECK(to_display(*config.values.find("admin.token")) == "<redacted>");
}

TEST_CASE("a hook another user could have written is refused where the config names it") {
  ScratchDir dir;
  const auto hook = dir.write("hooks/vip.sh", "#!/bin/sh\nexit 0\n");
  std::filesystem::permissions(hook, std::filesystem::perms::owner_all |
                                         std::filesystem::perms::group_write |
                                         std::filesystem::perms::others_exec);
  const std::string config = with_node("[role]\npre_promote = [\"" + hook.string() + "\"]\n");
  CHECK_THAT(refusal_line(config),
             Catch::StartsWith("/etc/emsnode/node.toml:4:15: " + hook.string() +
                               ": writable by group or others (mode 0721)"));
  // The same hook in a folder every user may write to, without the sticky bit.
  std::filesystem::permissions(hook, std::filesystem::perms::owner_all);
  std::filesystem::permissions(hook.parent_path(), std::filesystem::perms::all);
  CHECK_THAT(refusal_line(config),
             Catch::StartsWith("/etc/emsnode/node.toml:4:15: " + hook.parent_path().string() +
                               ": writable by group or others (mode 0777); a folder above"));
  std::filesystem::permissions(hook.parent_path(), std::filesystem::perms::owner_all);
  CHECK(parse(config).role.pre_promote == std::vector<std::filesystem::path>{hook});
}

TEST_CASE("role timers outside their ranges and a malformed admin address are refused") {
  CHECK(refusal_line(with_node("[role]\nlease_ttl = \"2h\"\n")) ==
        "/etc/emsnode/node.toml:4:13: [role] lease_ttl: \"2h\" is out of range (expected "
        "200ms..1m)");
  CHECK_THAT(refusal_line(with_node("[admin]\nlisten = \"localhost\"\n")),
             Catch::StartsWith("/etc/emsnode/node.toml:4:10: [admin] listen:"));
  CHECK_THAT(refusal_line(with_node("[role]\npost_demote = [\"\"]\n")),
             Catch::Contains("entry 0 is empty (expected a path)"));
}

TEST_CASE("plugin sections are kept in file order with the host's keys taken out") {
  const auto config = parse(with_node(R"(
[plugins.zeta]
enabled = false
log_level = "debug"
port = 8013

[plugins.alpha]
listen = "127.0.0.1:1"
[plugins.alpha.tls]
cert = "c.pem"
)"));
  REQUIRE(config.plugins.size() == 2);
  const auto& zeta = config.plugins[0];
  CHECK(zeta.id == "zeta");
  CHECK_FALSE(zeta.enabled);
  CHECK(zeta.log_level == log::Level::debug);
  CHECK(zeta.settings.size() == 1);
  CHECK(zeta.settings["port"].value<std::int64_t>() == 8013);

  const auto& alpha = config.plugins[1];
  CHECK(alpha.id == "alpha");
  CHECK(alpha.enabled);
  CHECK_FALSE(alpha.log_level);
  CHECK(alpha.settings["tls"]["cert"].value<std::string>() == "c.pem");

  CHECK(*config.values.get<bool>("plugins.zeta.enabled") == false);
  CHECK(*config.values.get<std::string>("plugins.zeta.log_level") == "debug");
  CHECK(*config.values.get<bool>("plugins.alpha.enabled"));
}

TEST_CASE("plugin settings keep the file, line and column where each key was written") {
  auto config = parse(with_node("[plugins.echo]\n  listen = \"127.0.0.1:1\"\n"));
  // Positions must survive the moves a caller makes: toml++ drops them only on copy.
  const NodeConfig moved = std::move(config);
  const auto& settings = moved.plugins.at(0).settings;
  const auto* listen = settings.get("listen");
  REQUIRE(listen);
  CHECK(listen->source().begin.line == 4);
  CHECK(listen->source().begin.column == 12);
  REQUIRE(listen->source().path);
  CHECK(*listen->source().path == kConfigFile.string());
  CHECK(settings.source().begin.line == 3);

  // So the host can refuse a plugin key exactly where it was written.
  Schema plugin;
  Field port;
  port.name = "listen";
  port.type = Type::integer;
  plugin.fields = {port};
  Context context{"node.toml", "/etc/emsnode", {}, "plugins.echo"};
  const auto error = config_error([&] { validate(settings, plugin, context); });
  CHECK(std::string(error.what()) ==
        "/etc/emsnode/node.toml:4:12: [plugins.echo] listen: expected an integer, got a string");
}

TEST_CASE("a plugin id must be a lowercase letter then lowercase letters, digits, '_' or '-'") {
  for (const auto& good :
       std::vector<std::string>{"echo", "m", "mq-2", "license_sync", "a" + std::string(63, 'b')}) {
    CAPTURE(good);
    CHECK(parse(with_node("[plugins." + good + "]\n")).plugins.at(0).id == good);
  }
  for (const auto& bad :
       std::vector<std::string>{"Echo", "2mq", "_x", "a.b", "a" + std::string(64, 'b')}) {
    CAPTURE(bad);
    const auto error = refusal(with_node("[plugins.\"" + bad + "\"]\n"));
    CHECK(error.line() == 3);
    CHECK(error.message() == "[plugins] \"" + bad +
                                 "\" is not a plugin id (expected a lowercase letter, then up to "
                                 "63 lowercase letters, digits, '_' or '-')");
  }
}

TEST_CASE("the host's keys in a plugin section are validated by the host") {
  CHECK(refusal_line(with_node("[plugins.echo]\nenabled = \"yes\"\n"), "node.toml") ==
        "node.toml:4:11: [plugins.echo] enabled: expected true or false, got a string");
  CHECK(refusal(with_node("[plugins.echo]\nlog_level = \"chatty\"\n")).message() ==
        R"([plugins.echo] log_level: "chatty" is not a log level (expected one of: trace, debug, )"
        R"(info, warning, error))");
  CHECK(refusal("plugins = 3\n[node]\nid = \"n1\"\n").message() ==
        "plugins: expected a table of [plugins.<id>] sections, got an integer");
  CHECK(refusal(with_node("[plugins]\necho = 3\n")).message() ==
        "[plugins] echo: expected a table, got an integer");
}

TEST_CASE("loading a file resolves paths against its folder and names it as the user gave it") {
  const ScratchDir dir;
  dir.write("conf/node.toml", "[node]\nid = \"n1\"\ndata_dir = \"state\"\n");
  const auto config = load_node_config(dir.path() / "conf" / "." / "node.toml");
  CHECK(config.file == dir.path() / "conf" / "node.toml");
  CHECK(config.data_dir == dir.path() / "conf" / "state");

  dir.write("conf/bad.toml", "[node]\nid = 5\n");
  const auto given = dir.path() / "conf" / ".." / "conf" / "bad.toml";
  const auto error = config_error([&] { load_node_config(given); });
  CHECK(error.file() == given.string());
  CHECK(error.line() == 2);

  const auto missing = config_error([&] { load_node_config(dir.path() / "nope.toml"); });
  CHECK(std::string(missing.what()) ==
        (dir.path() / "nope.toml").string() + ":1:1: cannot read: No such file or directory");
}

}  // namespace
}  // namespace emsnode::config
