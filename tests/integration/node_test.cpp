// The real emsnode binary, started as operators start it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <regex>
#include <sstream>

#include "support/net.hpp"
#include "support/process.hpp"
#include "support/sanitizers.hpp"

using namespace std::chrono_literals;
using emsnode::testing::echo_roundtrip;
using emsnode::testing::eventually;
using emsnode::testing::free_port;
using emsnode::testing::Process;
using emsnode::testing::read_file;
using emsnode::testing::run;
using emsnode::testing::TempDir;

namespace {

const std::string kEmsnode = EMSNODE_BINARY;

// A node config in `dir` serving echo on `port`, logging to node.log in `dir`.
// The sections every node of these tests has: its own database (which it may create) and its
// own admin port, so that tests run side by side.
std::string base_config(const std::string& id = "itest") {
  return "[node]\nid = \"" + id + "\"\ndata_dir = \"state\"\n[database]\nmigrate = true\n" +
         "[admin]\nlisten = \"127.0.0.1:" + std::to_string(free_port()) + "\"\n";
}

std::filesystem::path write_node_config(const TempDir& dir, std::uint16_t port,
                                        const std::string& extra_log = "") {
  return dir.write("node.toml",
                   base_config() + "[log]\nconsole = false\nfile = \"node.log\"\n" + extra_log +
                       "\n[plugins.echo]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\n");
}

bool serves_echo(std::uint16_t port) {
  return echo_roundtrip(port, "ping") == "ping";
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

TEST_CASE("emsnode --version prints the version and the plugin ABI") {
  TempDir dir;
  const auto result = run({kEmsnode, "--version"}, dir.path());
  CHECK(result.status == 0);
  CHECK_THAT(result.out, Catch::Matches(R"(emsnode \d+\.\d+\.\d+ \(plugin ABI \d+\.\d+\)\n)"));
}

TEST_CASE("emsnode --help lists every verb and the exit statuses") {
  TempDir dir;
  const auto result = run({kEmsnode, "--help"}, dir.path());
  CHECK(result.status == 0);
  for (const char* verb : {"run", "check", "version", "help"}) {
    CHECK_THAT(result.out, Catch::Contains(std::string("\n  ") + verb + " "));
  }
  CHECK_THAT(result.out, Catch::Contains("--conf FILE"));
  CHECK_THAT(result.out, Catch::Contains("Exit status"));
}

TEST_CASE("an unknown verb, an unknown option or a missing --conf is a usage error") {
  TempDir dir;
  const auto [args, message] = GENERATE(table<std::vector<std::string>, std::string>({
      {{"frobnicate"}, "unknown verb frobnicate"},
      {{"--frobnicate"}, "unknown option --frobnicate"},
      {{"check"}, "check needs --conf FILE"},
      {{"--conf"}, "--conf needs a FILE"},
  }));
  std::vector<std::string> argv{kEmsnode};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto result = run(argv, dir.path());
  CHECK(result.status == 2);
  CHECK(result.err == "emsnode: " + message + " (see emsnode --help)\n");
}

TEST_CASE("check accepts the embedded default config and shows the echo plugin's settings") {
  TempDir dir;
  const auto result =
      run({kEmsnode, "check", "--conf", EMSNODE_SOURCE_DIR "/conf/node.toml"}, dir.path());
  INFO(result.err);
  CHECK(result.status == 0);
  CHECK_THAT(result.out, Catch::Contains("conf/node.toml: valid"));
  CHECK_THAT(result.out, Catch::Contains("node.id = node1"));
  CHECK_THAT(result.out, Catch::Contains("plugin echo "));
  CHECK_THAT(result.out, Catch::Contains("listen = 127.0.0.1:18013"));
}

TEST_CASE("a config with an unknown key is refused with FILE:LINE:COL and exit status 2") {
  TempDir dir;
  const auto conf =
      dir.write("node.toml", "[node]\nid = \"n1\"\n\n[log]\nlevel = \"info\"\ncolour = true\n");
  for (const char* verb : {"check", "run"}) {
    const auto result = run({kEmsnode, verb, "--conf", conf.string()}, dir.path());
    CHECK(result.status == 2);
    CHECK_THAT(result.err, Catch::StartsWith(conf.string() + ":6:1: "));
    CHECK_THAT(result.err, Catch::Contains("colour"));
    CHECK(lines_of(result.err).size() == 1);
  }
  CHECK_FALSE(std::filesystem::exists(dir / "var"));
}

// A PostgreSQL config for `check` (which does not connect): [database] with `extra` lines.
std::filesystem::path postgres_config(const TempDir& dir, const std::string& url,
                                      const std::string& extra) {
  return dir.write("node.toml",
                   "[node]\nid = \"n1\"\n[database]\nbackend = \"postgresql\"\n"
                   "url = \"" +
                       url + "\"\n" + extra);
}

TEST_CASE("a database server off loopback reached without server authentication is refused",
          "[security]") {
  TempDir dir;
  for (const std::string mode : {"disable", "allow", "prefer"}) {
    CAPTURE(mode);
    const auto conf = postgres_config(dir, "postgresql://emsnode@db1.example:5432/emsnode",
                                      "sslmode = \"" + mode + "\"\n");
    for (const char* verb : {"check", "run"}) {
      const auto result = run({kEmsnode, verb, "--conf", conf.string()}, dir.path());
      CHECK(result.status == 2);
      CHECK_THAT(result.err,
                 Catch::StartsWith(conf.string() + ":6:11: [database] sslmode = \"" + mode +
                                   "\" for the server db1.example, which is "
                                   "not on loopback"));
      CHECK_THAT(result.err, Catch::Contains("insecure = true"));
    }
  }
  // Any of the servers a connection string lists counts.
  const auto listed =
      postgres_config(dir, "host=127.0.0.1,10.0.0.7 dbname=emsnode", "sslmode = \"prefer\"\n");
  const auto listed_result = run({kEmsnode, "check", "--conf", listed.string()}, dir.path());
  CHECK(listed_result.status == 2);
  CHECK_THAT(listed_result.err, Catch::Contains("for the server 10.0.0.7, which is not on"));
  // sslmode inside the url would be overridden by [database] sslmode: it is refused there.
  const auto in_url =
      postgres_config(dir, "postgresql://emsnode@db1.example/emsnode?sslmode=disable", "");
  const auto in_url_result = run({kEmsnode, "check", "--conf", in_url.string()}, dir.path());
  CHECK(in_url_result.status == 2);
  CHECK_THAT(in_url_result.err,
             Catch::StartsWith(in_url.string() + ":5:7: [database] url sets sslmode=disable"));
}

TEST_CASE(
    "an unauthenticated database connection is accepted on loopback, or off it when "
    "insecure is set") {
  TempDir dir;
  for (const auto& [url, extra] : std::vector<std::pair<std::string, std::string>>{
           {"postgresql://emsnode@127.0.0.1:5432/emsnode", "sslmode = \"disable\"\n"},
           {"postgresql://emsnode@localhost/emsnode", "sslmode = \"prefer\"\n"},
           {"postgresql://emsnode@[::1]/emsnode", "sslmode = \"allow\"\n"},
           {"host=/run/postgresql dbname=emsnode", "sslmode = \"disable\"\n"},
           {"postgresql://emsnode@db1.example/emsnode", "sslmode = \"prefer\"\ninsecure = true\n"},
           {"postgresql://emsnode@db1.example/emsnode", "sslmode = \"require\"\n"},
           {"postgresql://emsnode@db1.example/emsnode", ""}}) {  // verify-full by default
    CAPTURE(url, extra);
    const auto conf = postgres_config(dir, url, extra);
    const auto result = run({kEmsnode, "check", "--conf", conf.string()}, dir.path());
    CHECK(result.err.empty());
    CHECK(result.status == 0);
  }
}

TEST_CASE("a statement timeout that is not below renew_deadline is refused with the reason",
          "[security]") {
  TempDir dir;
  const auto conf = postgres_config(dir, "postgresql://emsnode@127.0.0.1/emsnode",
                                    "statement_timeout = \"5s\"\n");
  for (const char* verb : {"check", "run"}) {
    const auto result = run({kEmsnode, verb, "--conf", conf.string()}, dir.path());
    CHECK(result.status == 2);
    CHECK_THAT(result.err,
               Catch::StartsWith(conf.string() +
                                 ":6:21: [database] statement_timeout (5000 ms) must be below "
                                 "[role] renew_deadline (1200 ms)"));
  }
  // Not written: the default (1 s) against a lowered renew_deadline, reported at the latter.
  const auto lowered = postgres_config(dir, "postgresql://emsnode@127.0.0.1/emsnode",
                                       "[role]\nrenew_interval = \"200ms\"\n"
                                       "renew_deadline = \"800ms\"\n");
  const auto result = run({kEmsnode, "check", "--conf", lowered.string()}, dir.path());
  CHECK(result.status == 2);
  CHECK_THAT(result.err,
             Catch::StartsWith(lowered.string() +
                               ":8:18: [database] statement_timeout (1000 ms) must be below "
                               "[role] renew_deadline (800 ms)"));
  // The defaults agree with each other.
  const auto defaults = postgres_config(dir, "postgresql://emsnode@127.0.0.1/emsnode", "");
  CHECK(run({kEmsnode, "check", "--conf", defaults.string()}, dir.path()).status == 0);
}

TEST_CASE("an invalid plugin section is refused at its place in the node config") {
  TempDir dir;
  const auto conf =
      dir.write("node.toml", "[node]\nid = \"n1\"\n[plugins.echo]\nlisten = \"no-port\"\n");
  const auto result = run({kEmsnode, "check", "--conf", conf.string()}, dir.path());
  CHECK(result.status == 2);
  CHECK_THAT(result.err, Catch::StartsWith(conf.string() + ":4:10: "));
  CHECK_THAT(result.err, Catch::Contains("listen"));
}

TEST_CASE("a value the plugin itself refuses is reported at its place in the node config") {
  TempDir dir;
  // The schema takes any duration; the echo plugin's create refuses 0, naming the key.
  const auto conf = dir.write("node.toml",
                              "[node]\nid = \"n1\"\n[database]\nmigrate = true\n[plugins.echo]\n\n"
                              "idle_timeout = \"0ms\"\n");
  for (const char* verb : {"check", "run"}) {
    const auto result = run({kEmsnode, verb, "--conf", conf.string()}, dir.path());
    CHECK(result.status == 2);
    CHECK_THAT(result.err,
               Catch::Contains(conf.string() + ":7:16: [plugins.echo] config key "
                                               "'idle_timeout': must be longer than 0ms"));
  }
}

TEST_CASE("a running node serves its plugins and stops cleanly on SIGTERM or SIGINT") {
  const int stop_signal = GENERATE(SIGTERM, SIGINT);
  TempDir dir;
  const std::uint16_t port = free_port();
  Process node({kEmsnode, "--conf", write_node_config(dir, port).string()}, dir.path());

  REQUIRE(eventually([&] { return serves_echo(port); }));
  node.signal(stop_signal);
  REQUIRE(node.wait(10s) == 0);

  CHECK_FALSE(echo_roundtrip(port, "ping"));
  const std::string log = read_file(dir / "node.log");
  for (const char* event :
       {"node.started", "plugin.started", "node.stopping", "plugin.stopped", "node.stopped"}) {
    CHECK_THAT(log, Catch::Contains(event));
  }
  CHECK(std::filesystem::is_directory(dir / "state"));
}

TEST_CASE("SIGHUP makes the node reopen its log file") {
  TempDir dir;
  const std::uint16_t port = free_port();
  Process node({kEmsnode, "--conf", write_node_config(dir, port).string()}, dir.path());
  REQUIRE(eventually([&] { return serves_echo(port); }));

  std::filesystem::rename(dir / "node.log", dir / "node.log.1");
  node.signal(SIGHUP);
  REQUIRE(eventually([&] { return std::filesystem::exists(dir / "node.log"); }));
  node.signal(SIGTERM);
  REQUIRE(node.wait(10s) == 0);

  CHECK_THAT(read_file(dir / "node.log.1"), Catch::Contains("plugin.started"));
  CHECK_THAT(read_file(dir / "node.log"), Catch::Contains("log.reopened"));
  CHECK_THAT(read_file(dir / "node.log"), Catch::Contains("node.stopped"));
  CHECK_THAT(read_file(dir / "node.log.1"), !Catch::Contains("node.stopped"));
}

TEST_CASE("a log file that cannot be reopened on SIGHUP is reported and the node keeps its log") {
  TempDir dir;
  const std::uint16_t port = free_port();
  std::filesystem::create_directories(dir / "logs");
  Process node(
      {kEmsnode, "--conf",
       dir.write("node.toml", base_config() + "[log]\nconsole = false\nfile = \"logs/node.log\"\n" +
                                  "[plugins.echo]\nlisten = \"127.0.0.1:" + std::to_string(port) +
                                  "\"\n")
           .string()},
      dir.path());
  REQUIRE(eventually([&] { return serves_echo(port); }));

  // The folder is moved away and a file takes its name: the log's path cannot be opened.
  std::filesystem::rename(dir / "logs", dir / "logs.old");
  dir.write("logs", "not a folder\n");
  node.signal(SIGHUP);
  REQUIRE(eventually([&] {
    return read_file(dir / "logs.old" / "node.log").find("log.reopen_failed") != std::string::npos;
  }));
  CHECK(serves_echo(port));
  node.signal(SIGTERM);
  REQUIRE(node.wait(10s) == 0);
  CHECK_THAT(read_file(dir / "logs.old" / "node.log"), Catch::Contains("node.stopped"));
}

TEST_CASE("JSON logs are one object per line and plugin records carry the plugin's tag") {
  TempDir dir;
  const std::uint16_t port = free_port();
  Process node({kEmsnode, "--conf", write_node_config(dir, port, "format = \"json\"\n").string()},
               dir.path());
  REQUIRE(eventually([&] { return serves_echo(port); }));
  node.signal(SIGTERM);
  REQUIRE(node.wait(10s) == 0);

  const auto lines = lines_of(read_file(dir / "node.log"));
  REQUIRE(lines.size() >= 4);
  const std::regex object(
      R"(\{"ts":"[^"]+","level":"[a-z]+","component":"[a-z._-]+","event":"[a-z._]+"(,"[a-z_]+":"([^"\\]|\\.)*")*\})");
  for (const auto& line : lines) CHECK(std::regex_match(line, object));
  CHECK_THAT(read_file(dir / "node.log"), Catch::Contains(R"("component":"plugin.echo")"));
}

TEST_CASE("relative paths in a config resolve against the config file's folder") {
  TempDir dir;
  TempDir elsewhere;
  const std::uint16_t port = free_port();
  const auto conf = write_node_config(dir, port);
  // Started from another working directory: the config's folder is the anchor, not the cwd.
  Process node({kEmsnode, "--conf", conf.string()}, elsewhere.path(), {}, elsewhere.path());
  REQUIRE(eventually([&] { return serves_echo(port); }));
  node.signal(SIGTERM);
  REQUIRE(node.wait(10s) == 0);
  CHECK(std::filesystem::exists(dir / "node.log"));
  CHECK(std::filesystem::is_directory(dir / "state"));
  CHECK_FALSE(std::filesystem::exists(elsewhere / "node.log"));
  CHECK_FALSE(std::filesystem::exists(elsewhere / "state"));
}

TEST_CASE("a node with a broken enabled plugin refuses to start, naming the file and the reason") {
  TempDir dir;
  const auto [plugin, reason] = GENERATE(table<std::string, std::string>({
      {"t-no-entry", "no entry point emsnode_plugin_entry"},
      {"t-abi-major", "a different major cannot work"},
      {"t-version-mismatch", "version"},
  }));
  const auto conf = dir.write("node.toml", base_config() + "[plugin_host]\ndirs = [\"" +
                                               std::string(EMSNODE_TEST_PLUGIN_DIR) +
                                               "\"]\n[plugins." + plugin + "]\n");
  const auto result = run({kEmsnode, "--conf", conf.string()}, dir.path());
  CHECK(result.status == 2);
  INFO(result.err);
  CHECK_THAT(result.err, Catch::Contains(plugin + ".so"));
  CHECK_THAT(result.err, Catch::Contains(reason));
  CHECK_THAT(result.err, !Catch::Contains("node.started"));
  // Refused before it touched the shared database: nothing created, nothing migrated.
  CHECK_FALSE(std::filesystem::exists(dir / "state" / "emsnode.db"));
}

TEST_CASE("emsnode status and the /status JSON show the facts a plugin contributes") {
  TempDir dir;
  const std::uint16_t port = free_port();
  // t-api-user takes seats.v1 from t-api-exporter and shows it as facts; listed before its
  // exporter, which the node starts first all the same.
  const auto conf = dir.write(
      "node.toml", base_config() + "[log]\nconsole = false\nfile = \"node.log\"\n" +
                       "[plugin_host]\ndirs = [\"" + std::string(EMSNODE_TEST_PLUGIN_DIR) +
                       "\"]\n[plugins.t-api-user]\n[plugins.t-api-exporter]\n[plugins.echo]\n" +
                       "listen = \"127.0.0.1:" + std::to_string(port) + "\"\n");
  Process node({kEmsnode, "--conf", conf.string()}, dir.path());
  REQUIRE(eventually([&] { return serves_echo(port); }));
  // The user's start sets "exporter" to "started" once it runs: status reads the live panel.
  REQUIRE(eventually([&] {
    return run({kEmsnode, "status", "--conf", conf.string()}, dir.path())
               .out.find("  - exporter: started\n") != std::string::npos;
  }));

  const auto text = run({kEmsnode, "status", "--conf", conf.string()}, dir.path());
  REQUIRE(text.status == 0);
  INFO(text.out);
  const std::vector<std::string> lines = lines_of(text.out);
  const auto user = std::find_if(lines.begin(), lines.end(), [](const std::string& line) {
    return line.rfind("t-api-user ", 0) == 0;
  });
  REQUIRE(user != lines.end());
  REQUIRE(lines.end() - user >= 3);
  CHECK(user[1] == "  - seats: 500 seats");
  CHECK(user[2] == "  - exporter: started");

  const auto json = run({kEmsnode, "status", "--json", "--conf", conf.string()}, dir.path());
  REQUIRE(json.status == 0);
  CHECK_THAT(json.out, Catch::Contains(R"("id":"t-api-user",)"));
  CHECK_THAT(json.out,
             Catch::Contains(R"("facts":[{"name":"seats","value":"500 seats","severity":"info"},)"
                             R"({"name":"exporter","value":"started","severity":"info"}]})"));
  CHECK_THAT(json.out, Catch::Contains(R"("id":"t-api-exporter",)"));

  node.signal(SIGTERM);
  CHECK(node.wait(10s) == 0);
}

TEST_CASE("a plugin that never stops does not hold the node's shutdown hostage") {
  TempDir dir;
  const std::uint16_t port = free_port();
  const auto conf = dir.write(
      "node.toml", base_config() +
                       "[log]\nconsole = false\nfile = \"node.log\"\n"
                       "[plugin_host]\nstop_deadline = \"300ms\"\ndirs = [\"" +
                       std::string(EMSNODE_TEST_PLUGIN_DIR) +
                       "\"]\n[plugins.t-never-stops]\n[plugins.echo]\nlisten = \"127.0.0.1:" +
                       std::to_string(port) + "\"\n");
  Process node({kEmsnode, "--conf", conf.string()}, dir.path());
  REQUIRE(eventually([&] { return serves_echo(port); }));

  const auto asked = std::chrono::steady_clock::now();
  node.signal(SIGTERM);
  REQUIRE(node.wait(10s) == 0);
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - asked < 2s);
  const std::string log = read_file(dir / "node.log");
  CHECK_THAT(log, Catch::Contains("plugin.stop_deadline_missed id=t-never-stops"));
  CHECK_THAT(log, Catch::Contains("node.stopped"));
}

TEST_CASE("a symbolic link planted where a lock file goes is refused, not followed") {
  TempDir dir;
  const auto victim = dir.write("victim", "keep me\n");
  std::filesystem::create_directories(dir / "state");
  std::filesystem::create_symlink(victim, dir / "state" / "emsnode.db.node-itest");
  const auto conf = dir.write("node.toml", base_config() + "[plugins.echo]\nlisten = \"127.0.0.1:" +
                                               std::to_string(free_port()) + "\"\n");
  const auto result = run({kEmsnode, "--conf", conf.string()}, dir.path(), 20s);
  CHECK(result.status != 0);
  CHECK_THAT(result.err, Catch::Contains("emsnode.db.node-itest"));
  CHECK_THAT(result.err, Catch::Contains("symbolic link"));
  CHECK(read_file(victim) == "keep me\n");
}

TEST_CASE("a secret never appears in check output or in the node's log") {
  TempDir dir;
  const std::string secret = "s3cr3t-Value-42";
  const auto conf =
      dir.write("node.toml", base_config() +
                                 "[log]\nconsole = false\nfile = \"node.log\"\n"
                                 "level = \"trace\"\n[plugin_host]\ndirs = [\"" +
                                 std::string(EMSNODE_TEST_PLUGIN_DIR) +
                                 "\"]\n[plugins.t-healthy]\ntoken = \"env:EMSNODE_TEST_TOKEN\"\n"
                                 "journal = \"journal.txt\"\nlog_level = \"trace\"\n");
  const std::vector<std::string> env{"EMSNODE_TEST_TOKEN=" + secret};

  const auto checked = run({kEmsnode, "check", "--conf", conf.string()}, dir.path(), 30s, env);
  INFO(checked.err);
  REQUIRE(checked.status == 0);
  CHECK_THAT(checked.out, Catch::Contains("token = <redacted>"));
  CHECK_THAT(checked.out + checked.err, !Catch::Contains(secret));

  Process node({kEmsnode, "--conf", conf.string()}, dir.path(), env);
  REQUIRE(eventually([&] {
    return read_file(dir / "node.log").find("plugin.started id=t-healthy") != std::string::npos;
  }));
  node.signal(SIGTERM);
  REQUIRE(node.wait(10s) == 0);
  // The plugin did receive it (its journal says so); the node never wrote it anywhere.
  CHECK_THAT(read_file(dir / "journal.txt"), Catch::Contains(secret));
  CHECK_THAT(read_file(dir / "node.log") + node.out() + node.err(), !Catch::Contains(secret));
}

TEST_CASE("a config whose lease timers break an invariant is refused with the reason") {
  TempDir dir;
  const auto conf = dir.write("node.toml", base_config() +
                                               "[role]\nlease_ttl = \"2s\"\n"
                                               "renew_deadline = \"1900ms\"\n");
  for (const char* verb : {"check", "run"}) {
    const auto result = run({kEmsnode, verb, "--conf", conf.string()}, dir.path());
    CHECK(result.status == 2);
    CHECK_THAT(result.err, Catch::StartsWith(conf.string() + ":"));
    CHECK_THAT(result.err, Catch::Contains(": [role] renew_deadline (1900 ms) + 200 ms must be <= "
                                           "lease_ttl (2000 ms)"));
    CHECK_THAT(result.err, !Catch::Contains("[role] [role]"));
  }
  CHECK_FALSE(std::filesystem::exists(dir / "state"));
}
