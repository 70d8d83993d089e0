// Control commands (ABI 1.3): their declaration in plugin.toml, the checks of their arguments,
// and how the host runs a handler and maps its outcome to what the caller sees.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "host/command_args.hpp"
#include "host/plugin_host.hpp"
#include "host_test_support.hpp"

namespace emsnode::host {
namespace {

using nlohmann::json;
using testing::LogCapture;
using testing::Sandbox;

const std::string kManifest =
    "id = \"lic\"\nname = \"License\"\nversion = \"1.0.0\"\nabi = \"1.3\"\n"
    "description = \"License\"\n\n"
    "[commands.install]\n"
    "summary = \"Install a license file\"\n"
    "[commands.install.args.file]\n"
    "type = \"path\"\n"
    "required = true\n"
    "[commands.install.args.seats]\n"
    "type = \"integer\"\n"
    "min = 1\n"
    "max = 100\n"
    "default = 10\n"
    "[commands.show]\n"
    "summary = \"Show the license\"\n"
    "changes_state = false\n"
    "active_only = false\n";

std::string manifest_refusal(const emsnode::testing::TempDir& dir, const std::string& text) {
  try {
    read_manifest(dir.write("lic/plugin.toml", text));
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  return text.replace(text.find(from), from.size(), to);
}

std::string args_refusal(const CommandSpec& command, const std::string& args) {
  try {
    parse_command_args(command, args, "/base");
  } catch (const CommandArgsError& e) {
    return e.what();
  }
  return "";
}

json body(const CommandAnswer& answer) {
  return json::parse(answer.body);
}

}  // namespace

TEST_CASE("a manifest declares commands with a summary, flags and typed arguments") {
  emsnode::testing::TempDir dir;
  const Manifest manifest = read_manifest(dir.write("lic/plugin.toml", kManifest));
  REQUIRE(manifest.commands.size() == 2);
  const CommandSpec& install = manifest.commands[0];
  CHECK(install.name == "install");
  CHECK(install.summary == "Install a license file");
  CHECK(install.changes_state);
  CHECK(install.active_only);
  REQUIRE(install.args.fields.size() == 2);
  CHECK(install.args.fields[0].name == "file");
  CHECK(install.args.fields[0].type == config::Type::path);
  CHECK(install.args.fields[0].required);
  const CommandSpec* show = find_command(manifest, "show");
  REQUIRE(show != nullptr);
  CHECK_FALSE(show->changes_state);
  CHECK_FALSE(show->active_only);
  CHECK(find_command(manifest, "remove") == nullptr);
}

TEST_CASE("a malformed command declaration is refused at its place in the manifest") {
  emsnode::testing::TempDir dir;
  const std::string file = (dir / "lic/plugin.toml").string();
  CHECK(manifest_refusal(dir, replace(kManifest, "[commands.show]", "[commands.Show]")) ==
        file + ":17:11: command \"Show\" is not a command name ([a-z][a-z0-9-]{0,63})");
  CHECK(manifest_refusal(dir, replace(kManifest, "summary = \"Show the license\"\n", "")) ==
        file +
            ":17:1: missing required key \"summary\" in [commands.show] (one line on what the "
            "command does)");
  CHECK(contains(
      manifest_refusal(dir, replace(kManifest, "changes_state = false", "changes_state = \"no\"")),
      file + ":19:17: [commands.show] changes_state: expected true or false"));
  CHECK(contains(manifest_refusal(dir, replace(kManifest, "type = \"integer\"", "type = \"int\"")),
                 "[commands.install.args.seats] type: \"int\" is not a type"));
  CHECK(contains(manifest_refusal(dir, replace(kManifest, "args.seats]", "args.Seats]")),
                 "argument \"Seats\" of [commands.install] is not an argument name"));
  CHECK(
      contains(manifest_refusal(dir, kManifest + "[commands.show.args.tags]\ntype = \"strings\"\n"),
               "strings is not an argument type"));
  CHECK(contains(manifest_refusal(dir, kManifest + "[commands.show.args.x]\nkind = 1\n"),
                 "unknown key \"kind\" in [commands.show.args.x]"));
  CHECK(contains(manifest_refusal(dir, kManifest + "[commands.show.extra]\nx = 1\n"),
                 "unknown key \"extra\" in [commands.show]"));
}

TEST_CASE("command arguments are checked as config keys are, naming the argument") {
  emsnode::testing::TempDir dir;
  const Manifest manifest = read_manifest(dir.write("lic/plugin.toml", kManifest));
  const CommandSpec& install = manifest.commands[0];

  const config::Values values = parse_command_args(install, R"({"file": "lic.pem"})", "/base");
  CHECK(*values.get<std::string>("file") == "/base/lic.pem");
  CHECK(*values.get<std::int64_t>("seats") == 10);

  CHECK(args_refusal(install, R"({"file": "a", "seets": 3})") ==
        "unknown key \"seets\" among the arguments of install (known keys: file, seats)");
  CHECK(args_refusal(install, R"({"file": "a", "seats": "3"})") ==
        "seats: expected an integer, got a string");
  CHECK(args_refusal(install, R"({"file": "a", "seats": 0})") ==
        "seats: 0 is out of range (expected 1..100)");
  CHECK(args_refusal(install, R"({"seats": 3})") ==
        "missing required key \"file\" among the arguments of install (expected a path)");
  CHECK(args_refusal(install, R"({"file": null})") ==
        "\"file\": expected a value of type path, got null");
  CHECK(args_refusal(install, "[1]") ==
        "the arguments must be a JSON object of name: value, got an array");
  CHECK(contains(args_refusal(install, "{"), "the arguments are not JSON"));
}

TEST_CASE("a secret argument is taken as given, never read from the node's environment") {
  emsnode::testing::TempDir dir;
  const Manifest manifest = read_manifest(
      dir.write("lic/plugin.toml", kManifest + "[commands.show.args.key]\ntype = \"secret\"\n"));
  const CommandSpec& show = manifest.commands[1];
  const config::Values values = parse_command_args(show, R"({"key": "env:HOME"})", "/base");
  CHECK(values.get<config::Secret>("key")->reveal() == "env:HOME");
  CHECK(contains(args_refusal(show, R"({"key_file": "/etc/shadow"})"), "unknown key \"key_file\""));
}

TEST_CASE("a command's handler answers with JSON and reads every type of argument") {
  Sandbox box;
  box.add("t-commander");
  LogCapture capture(box.root() / "log.txt");
  PluginHost host(box.node_config(box.section("t-commander")));
  host.load();
  host.create_all();

  const CommandAnswer answer = host.run_command(
      "t-commander", "echo-args",
      R"({"name": "ops", "times": 3, "loud": true, "ratio": 0.25, "token": "s3cret"})");
  CHECK(answer.http_status == 200);
  CHECK(body(answer) == json::parse(R"({"name":"ops","times":3,"loud":1,"wait_ms":1000,
                                         "ratio":0.25,"token":"s3cret"})"));
  const std::string logged = capture.text();
  CHECK(contains(logged, "plugin.command id=t-commander command=echo-args outcome=ok ms="));
  CHECK_FALSE(contains(logged, "s3cret"));
}

TEST_CASE("bad arguments are refused with 400 before the handler runs") {
  Sandbox box;
  box.add("t-commander");
  PluginHost host(box.node_config(box.section("t-commander")));
  host.load();
  host.create_all();
  const CommandAnswer answer = host.run_command("t-commander", "echo-args", R"({"times": 9})");
  CHECK(answer.http_status == 400);
  CHECK(body(answer)["error"] ==
        "missing required key \"name\" among the arguments of echo-args (who to greet)");
  CHECK(
      body(host.run_command("t-commander", "echo-args", R"({"name": "a", "times": 9})"))["error"] ==
      "times: 9 is out of range (expected 1..5)");
}

TEST_CASE("a handler's status reaches the caller as its HTTP status, with its reason") {
  Sandbox box;
  box.add("t-commander");
  PluginHost host(box.node_config(box.section("t-commander")));
  host.load();
  host.create_all();
  const auto run = [&](const std::string& status) {
    return host.run_command("t-commander", "fail", R"({"status": ")" + status + "\"}");
  };
  CHECK(run("invalid").http_status == 400);
  CHECK(body(run("invalid"))["error"] == "failed with status invalid");
  CHECK(run("not_found").http_status == 404);
  CHECK(run("fenced").http_status == 409);
  CHECK_FALSE(run("fenced").not_active);
  CHECK(run("error").http_status == 500);
  CHECK(body(run("silent"))["error"] == "fail failed without a reason (call command_fail first)");
}

TEST_CASE("an unknown plugin or command is answered 404 naming what exists") {
  Sandbox box;
  box.add("t-commander");
  PluginHost host(box.node_config(box.section("t-commander")));
  host.load();
  host.create_all();
  CHECK(host.run_command("nope", "x", "").http_status == 404);
  const CommandAnswer answer = host.run_command("t-commander", "reboot", "");
  CHECK(answer.http_status == 404);
  CHECK(body(answer)["error"] ==
        "plugin t-commander has no command \"reboot\" (its commands: echo-args, active, fail)");
  REQUIRE(host.commands("t-commander") != nullptr);
  CHECK(host.commands("t-commander")->size() == 3);
  CHECK(host.commands("nope") == nullptr);
}

TEST_CASE("an active-only command runs only while the plugin is started") {
  Sandbox box;
  box.add("t-commander");
  PluginHost host(box.node_config(box.section("t-commander")));
  host.load();
  host.create_all();
  const CommandAnswer passive = host.run_command("t-commander", "active", "{}");
  CHECK(passive.http_status == 409);
  CHECK(passive.not_active);
  CHECK(body(passive)["error"] ==
        "active runs only while t-commander is started, on the active node");
  // Any-node commands run on a passive node.
  CHECK(host.run_command("t-commander", "echo-args", R"({"name": "x"})").http_status == 200);

  REQUIRE(host.start_all());
  const CommandAnswer active = host.run_command("t-commander", "active", "{}");
  CHECK(active.http_status == 200);
  CHECK(active.body == "{}");
  host.stop_all();
  CHECK(host.run_command("t-commander", "active", "{}").http_status == 409);
}

TEST_CASE("a plugin whose declared command has no handler is refused at create") {
  Sandbox box;
  box.add("t-command-unhandled");
  PluginHost host(box.node_config(box.section("t-command-unhandled")));
  host.load();
  try {
    host.create_all();
    FAIL("create_all accepted a plugin with an unhandled command");
  } catch (const HostError& e) {
    CHECK(contains(e.what(),
                   "create failed: command \"orphan\" is declared in plugin.toml but "
                   "has no handler"));
  }
}

TEST_CASE("a handler past the command timeout is answered 504 and blocks the next call") {
  Sandbox box;
  box.add("t-command-hangs");
  PluginHost host(box.node_config(box.section("t-command-hangs"), "2s", "2s", "200ms"));
  host.load();
  host.create_all();
  const auto began = std::chrono::steady_clock::now();
  const CommandAnswer late = host.run_command("t-command-hangs", "hang", "");
  CHECK(late.http_status == 504);
  CHECK(body(late)["error"] == "hang did not answer within 200ms");
  CHECK(std::chrono::steady_clock::now() - began < std::chrono::milliseconds(1000));
  // One call at a time: the first still runs.
  const CommandAnswer busy = host.run_command("t-command-hangs", "hang", "");
  CHECK(busy.http_status == 503);
  CHECK(contains(body(busy)["error"].get<std::string>(), "an earlier command"));
  // Past its timeout the late handler ends; the plugin is then destroyed as usual.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  host.destroy_all();
  CHECK(host.status().front().state == PluginState::loaded);
}

TEST_CASE("destroy waits for a command handler that is still running") {
  Sandbox box;
  box.add("t-command-hangs");
  LogCapture capture(box.root() / "log.txt");
  PluginHost host(box.node_config(box.section("t-command-hangs"), "2s", "2s", "1s"));
  host.load();
  host.create_all();
  const auto began = std::chrono::steady_clock::now();
  CHECK(host.run_command("t-command-hangs", "hang", "").http_status == 504);
  host.destroy_all();
  // The handler sleeps 1.5 s: destroy returned only after it did, and then destroyed.
  CHECK(std::chrono::steady_clock::now() - began >= std::chrono::milliseconds(1400));
  CHECK(contains(capture.text(), "plugin.destroyed id=t-command-hangs"));
}

TEST_CASE("destroy gives up on a handler that outlives the command timeout, leaving it loaded") {
  Sandbox box;
  box.add("t-command-hangs");
  LogCapture capture(box.root() / "log.txt");
  PluginHost host(box.node_config(box.section("t-command-hangs"), "2s", "2s", "200ms"));
  host.load();
  host.create_all();
  CHECK(host.run_command("t-command-hangs", "hang", "").http_status == 504);
  host.destroy_all();
  CHECK(contains(capture.text(), "a command handler was still running after 200ms; not destroyed"));
}

}  // namespace emsnode::host
