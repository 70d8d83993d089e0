#include "config/schema.hpp"

#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>

#include "scratch.hpp"

namespace emsnode::config {
namespace {

using namespace std::chrono_literals;
using testing::config_error;
using testing::ScopedEnv;
using testing::ScratchDir;

Field field(std::string name, Type type, std::optional<Value> default_value = std::nullopt) {
  Field f;
  f.name = std::move(name);
  f.type = type;
  f.default_value = std::move(default_value);
  return f;
}

Schema schema_of(std::vector<Field> fields) {
  Schema schema;
  schema.fields = std::move(fields);
  return schema;
}

Context context_at(const std::filesystem::path& base_dir, std::string table = "") {
  Context context;
  context.file = "t.toml";
  context.base_dir = base_dir;
  context.table = std::move(table);
  return context;
}

Values check(std::string_view text, const Schema& schema, const Context& context) {
  return validate(parse_text(text, "t.toml"), schema, context);
}

Values check(std::string_view text, const Schema& schema) {
  return check(text, schema, context_at("/etc/emsnode"));
}

ConfigError refusal(std::string_view text, const Schema& schema, const Context& context) {
  return config_error([&] { check(text, schema, context); });
}

ConfigError refusal(std::string_view text, const Schema& schema) {
  return refusal(text, schema, context_at("/etc/emsnode"));
}

// The whole line a user sees: "FILE:LINE:COL: message".
std::string refusal_line(std::string_view text, const Schema& schema, const Context& context) {
  return refusal(text, schema, context).what();
}

std::string refusal_line(std::string_view text, const Schema& schema) {
  return refusal(text, schema).what();
}

Schema manifest_schema(std::string_view manifest) {
  return schema_from_toml(parse_text(manifest, "plugin.toml"), context_at("/opt/plugin"));
}

ConfigError manifest_refusal(std::string_view manifest) {
  return config_error([&] { manifest_schema(manifest); });
}

void check_position(const ConfigError& error, const std::string& file, std::uint32_t line,
                    std::uint32_t column) {
  CAPTURE(error.what());
  CHECK(error.file() == file);
  CHECK(error.line() == line);
  CHECK(error.column() == column);
}

TEST_CASE("a config error reads as one line FILE:LINE:COL: message") {
  const ConfigError error("conf/node.toml", 12, 9, "[log] level: bad (expected good)");
  CHECK(std::string(error.what()) == "conf/node.toml:12:9: [log] level: bad (expected good)");
  CHECK(error.message() == "[log] level: bad (expected good)");
}

TEST_CASE("a TOML syntax error is refused at toml++'s position with its description") {
  const auto error = config_error([] { (void)parse_text("[node]\nid = \n", "bad.toml"); });
  check_position(error, "bad.toml", 2, 6);
  CHECK_THAT(error.message(), Catch::Contains("expected value"));
}

TEST_CASE("a missing config file is refused as unreadable at 1:1") {
  const auto error = config_error([] { (void)parse_file("/nonexistent/emsnode/node.toml"); });
  CHECK(std::string(error.what()) ==
        "/nonexistent/emsnode/node.toml:1:1: cannot read: No such file or directory");
}

TEST_CASE("a folder given as the config file is refused as unreadable") {
  const ScratchDir dir;
  const auto error = config_error([&] { (void)parse_file(dir.path()); });
  CHECK(std::string(error.what()) == dir.path().string() + ":1:1: cannot read: Is a directory");
}

TEST_CASE("durations accept us, ms, s, m and h with decimals, rounding up to the millisecond") {
  const std::vector<std::pair<std::string, std::chrono::milliseconds>> valid = {
      {"500ms", 500ms}, {"2s", 2s},
      {"1.5s", 1500ms}, {"5m", 5min},
      {"1h", 1h},       {"250us", 1ms},
      {"1000us", 1ms},  {"1001us", 2ms},
      {"0s", 0ms},      {"0.001s", 1ms},
      {"1.25m", 75s},   {"0.5h", 30min},
      {"05s", 5s},      {"1.000000001s", 1001ms}};
  for (const auto& [text, expected] : valid) {
    CAPTURE(text);
    const auto parsed = parse_duration(text);
    REQUIRE(parsed);
    CHECK(*parsed == expected);
  }
}

TEST_CASE("durations refuse bare numbers, negatives, unknown units and malformed numbers") {
  const std::vector<std::string> invalid = {"",
                                            "5",
                                            "5 s",
                                            "-5s",
                                            "+5s",
                                            "5 parsecs",
                                            "5parsecs",
                                            "s",
                                            ".5s",
                                            "5.s",
                                            "1.5.2s",
                                            "5S",
                                            "5sec",
                                            " 5s",
                                            "5s ",
                                            "1e3ms",
                                            "5ns",
                                            "99999999999999999999h",
                                            "9999999999999h",
                                            "1.0000000001s"};
  for (const auto& text : invalid) {
    CAPTURE(text);
    CHECK_FALSE(parse_duration(text));
  }
}

TEST_CASE("a duration is formatted in the largest unit that is exact") {
  const std::vector<std::pair<std::chrono::milliseconds, std::string>> cases = {
      {1500ms, "1500ms"}, {2000ms, "2s"}, {300000ms, "5m"}, {1h, "1h"},
      {90s, "90s"},       {0ms, "0s"},    {1ms, "1ms"},     {61min, "61m"}};
  for (const auto& [duration, text] : cases) {
    CAPTURE(text);
    CHECK(format_duration(duration) == text);
    CHECK(parse_duration(text) == duration);
  }
}

TEST_CASE("a duration key refuses a bare number and asks for a unit") {
  const auto schema = schema_of({field("timeout", Type::duration)});
  const auto error = refusal("timeout = 5\n", schema, context_at("/", "plugins.echo"));
  CHECK(std::string(error.what()) ==
        R"(t.toml:1:11: [plugins.echo] timeout: 5 is not a duration (expected a string such as )"
        R"("500ms", "2s", "5m"))");
}

TEST_CASE("a malformed duration is refused at its value") {
  const auto schema = schema_of({field("timeout", Type::duration)});
  const auto error = refusal("\ntimeout = \"5 parsecs\"\n", schema, context_at("/", "x"));
  CHECK(std::string(error.what()) ==
        R"(t.toml:2:11: [x] timeout: "5 parsecs" is not a duration (expected a string such as )"
        R"("500ms", "2s", "5m"))");
}

TEST_CASE("a duration outside its range is refused showing the range in duration units") {
  auto timeout = field("timeout", Type::duration);
  timeout.min = 100;
  timeout.max = 600000;
  const auto schema = schema_of({timeout});
  CHECK(check("timeout = \"10m\"\n", schema).get<std::chrono::milliseconds>("timeout")->count() ==
        600000);
  CHECK(refusal("timeout = \"20m\"\n", schema).message() ==
        R"(timeout: "20m" is out of range (expected 100ms..10m))");
  CHECK(refusal("timeout = \"99ms\"\n", schema).message() ==
        R"(timeout: "99ms" is out of range (expected 100ms..10m))");
}

TEST_CASE("an unknown key is refused with its line and column and the known keys") {
  Schema root;
  root.tables["node"] = schema_of({field("id", Type::string), field("address", Type::string)});
  const auto error = refusal("[node]\nid = \"n1\"\n  idd = 3\n", root);
  CHECK(std::string(error.what()) ==
        R"(t.toml:3:3: unknown key "idd" in [node] (known keys: id, address))");
}

TEST_CASE("of several unknown keys the first in the file is reported") {
  const auto schema = schema_of({field("id", Type::string)});
  const auto error = refusal("zz = 1\naa = 2\n", schema);
  check_position(error, "t.toml", 1, 1);
  CHECK_THAT(error.message(), Catch::Contains("\"zz\""));
}

TEST_CASE("an unknown table at the top is refused as an unknown section") {
  Schema root;
  root.tables["node"] = Schema{};
  root.tables["log"] = Schema{};
  const auto error = refusal("[node]\n[nodes]\n", root);
  CHECK(std::string(error.what()) ==
        "t.toml:2:2: unknown section [nodes] (known sections: log, node)");
}

TEST_CASE("a value of the wrong type names what was expected and what was found") {
  Schema root;
  root.tables["node"] = schema_of({field("id", Type::string)});
  CHECK(refusal_line("[node]\nid = 5\n", root) ==
        "t.toml:2:6: [node] id: expected a string, got an integer");

  const std::vector<std::tuple<Type, std::string, std::string>> cases = {
      {Type::integer, "1.5", "expected an integer, got a float"},
      {Type::floating, "\"x\"", "expected a number, got a string"},
      {Type::boolean, "\"yes\"", "expected true or false, got a string"},
      {Type::strings, "\"a\"", "expected an array of strings, got a string"},
      {Type::path, "[]", "expected a string, got an array"},
      {Type::address, "{ a = 1 }", "expected a string, got a table"},
      {Type::secret, "1979-05-27", "expected a string, got a date"},
      {Type::duration, "true", "expected a duration string, got a boolean"}};
  for (const auto& [type, written, message] : cases) {
    CAPTURE(written);
    CHECK(refusal("k = " + written + "\n", schema_of({field("k", type)})).message() ==
          "k: " + message);
  }
}

TEST_CASE("a table expected where a value is written is refused") {
  Schema root;
  root.tables["log"] = Schema{};
  CHECK(refusal_line("log = 3\n", root) == "t.toml:1:7: log: expected a table, got an integer");
}

TEST_CASE("a missing required key points at its table and says what the key is for") {
  Schema root;
  auto id = field("id", Type::string);
  id.required = true;
  id.description = "unique in the cluster";
  root.tables["node"] = schema_of({id});
  root.tables["log"] = Schema{};
  // Unknown keys are reported before missing ones: a misspelt key is the likelier mistake.
  CHECK_THAT(refusal("[node]\nidd = \"n1\"\n", root).message(),
             Catch::StartsWith("unknown key \"idd\""));
  CHECK(refusal_line("[log]\n\n[node]\n", root) ==
        R"(t.toml:3:1: missing required key "id" in [node] (unique in the cluster))");
}

TEST_CASE("a missing required key of an absent table points at the enclosing table") {
  Schema root;
  auto id = field("id", Type::string);
  id.required = true;
  root.tables["node"] = schema_of({id});
  CHECK(refusal_line("\n", root) ==
        R"(t.toml:1:1: missing required key "id" in [node] (expected a string))");
}

TEST_CASE("absent keys take their defaults and keys without one stay absent") {
  Schema root;
  root.tables["log"] =
      schema_of({field("level", Type::string, std::string("info")), field("file", Type::path),
                 field("console", Type::boolean, true)});
  const auto values = check("[log]\nconsole = false\n", root);
  CHECK(*values.get<std::string>("log.level") == "info");
  CHECK_FALSE(values.contains("log.file"));
  CHECK(*values.get<bool>("log.console") == false);
  CHECK(values.all().size() == 2);
}

TEST_CASE("values remember where each key was written, and defaults have no position") {
  const auto schema =
      schema_of({field("a", Type::integer), field("b", Type::integer, std::int64_t{2})});
  const auto values = check("\n  a = 1\n", schema);
  const auto where = values.source("a");
  REQUIRE(where);
  CHECK(where->begin.line == 2);
  CHECK(where->begin.column == 7);
  CHECK_FALSE(values.source("b"));
}

TEST_CASE("integers and floats are checked against their range, which the error shows") {
  auto port = field("port", Type::integer);
  port.min = 1;
  port.max = 65535;
  auto ratio = field("ratio", Type::floating);
  ratio.min = 0.5;
  auto workers = field("workers", Type::integer);
  workers.max = 8;
  const auto schema = schema_of({port, ratio, workers});

  const auto values = check("port = 8013\nratio = 2\nworkers = 8\n", schema);
  CHECK(*values.get<std::int64_t>("port") == 8013);
  CHECK(*values.get<double>("ratio") == 2.0);
  CHECK(refusal("port = 70000\n", schema).message() ==
        "port: 70000 is out of range (expected 1..65535)");
  CHECK(refusal("port = 0\n", schema).message() == "port: 0 is out of range (expected 1..65535)");
  CHECK(refusal("ratio = 0.25\n", schema).message() ==
        "ratio: 0.25 is out of range (expected at least 0.5)");
  CHECK(refusal("workers = 9\n", schema).message() ==
        "workers: 9 is out of range (expected at most 8)");
  CHECK(refusal("ratio = nan\n", schema).message() ==
        "ratio: nan is not a number (expected a number)");
}

TEST_CASE("a string with choices refuses any other value and lists the choices") {
  auto format = field("format", Type::string);
  format.choices = {"text", "json"};
  const auto schema = schema_of({format});
  CHECK(*check("format = \"json\"\n", schema).get<std::string>("format") == "json");
  CHECK(refusal("format = \"xml\"\n", schema).message() ==
        R"(format: "xml" is not an accepted value (expected one of: text, json))");
}

TEST_CASE("a field's own check refuses a value with its message at the value") {
  auto even = field("n", Type::integer);
  even.check = [](const Value& v) {
    return std::get<std::int64_t>(v) % 2 == 0 ? "" : "is odd (expected an even number)";
  };
  const auto schema = schema_of({even});
  CHECK(check("n = 4\n", schema).contains("n"));
  CHECK(refusal_line("n = 3\n", schema, context_at("/", "t")) ==
        "t.toml:1:5: [t] n: is odd (expected an even number)");
}

TEST_CASE("an array of strings points at the element that is not a string") {
  const auto schema = schema_of({field("dirs", Type::strings)});
  const auto values = check("dirs = [\"a\", \"b\"]\n", schema);
  CHECK(*values.get<std::vector<std::string>>("dirs") == std::vector<std::string>{"a", "b"});
  CHECK(refusal_line("dirs = [\"a\", 2]\n", schema, context_at("/", "plugin_host")) ==
        "t.toml:1:14: [plugin_host] dirs[1]: expected a string, got an integer");
}

TEST_CASE("paths resolve against the config folder and are normalised without needing to exist") {
  const auto schema =
      schema_of({field("p", Type::path), field("d", Type::path, std::string("var"))});
  const auto values = check("p = \"../var/./state/\"\n", schema, context_at("/etc/emsnode"));
  CHECK(*values.get<std::string>("p") == "/etc/var/state");
  CHECK(*values.get<std::string>("d") == "/etc/emsnode/var");
  CHECK(*check("p = \"/srv//x/../y\"\n", schema).get<std::string>("p") == "/srv/y");
  CHECK(refusal("p = \"\"\n", schema).message() == "p: the path is empty (expected a path)");
  CHECK(resolve_path("a/b", "/base") == std::filesystem::path("/base/a/b"));
}

TEST_CASE("addresses accept host:port and [v6]:port and refuse anything else") {
  const auto schema = schema_of({field("listen", Type::address)});
  for (const std::string good : {"127.0.0.1:8013", "[::1]:8013", "localhost:1",
                                 "node-2.example.com:65535", "[fe80::1]:80", "0.0.0.0:9443"}) {
    CAPTURE(good);
    CHECK(*check("listen = \"" + good + "\"\n", schema).get<std::string>("listen") == good);
  }
  for (const std::string bad :
       {"127.0.0.1", ":8013", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "host:80x",
        "::1:8013", "[::1]8013", "[]:80", "[::1:80", "my host:80", "host:-1", "host:123456"}) {
    CAPTURE(bad);
    CHECK(refusal("listen = \"" + bad + "\"\n", schema).message() ==
          "listen: \"" + bad +
              R"(" is not an address (expected "host:port" with a port in 1..65535, IPv6 as )"
              R"("[::1]:8013"))");
  }
}

TEST_CASE("keys the caller reserves are neither refused nor validated") {
  const auto schema = schema_of({field("a", Type::integer)});
  Context context = context_at("/");
  context.reserved_keys = {"plugins"};
  const auto values = check("a = 1\n[plugins.echo]\nx = 1\n", schema, context);
  CHECK(values.all().size() == 1);
  CHECK_THAT(refusal("a = 1\nplugins = 1\n", schema).message(),
             Catch::StartsWith("unknown key \"plugins\""));
}

TEST_CASE("a secret is taken inline, from an environment variable, or from a sibling file") {
  const ScratchDir dir;
  const auto schema = schema_of({field("token", Type::secret)});
  const auto context = context_at(dir.path());

  SECTION("inline") {
    CHECK(check("token = \"s3cret\"\n", schema, context).get<Secret>("token")->reveal() ==
          "s3cret");
  }
  SECTION("from the environment") {
    const ScopedEnv env("EMSNODE_TEST_TOKEN", "from-env");
    CHECK(check("token = \"env:EMSNODE_TEST_TOKEN\"\n", schema, context)
              .get<Secret>("token")
              ->reveal() == "from-env");
  }
  SECTION("from a file relative to the config folder, without one trailing newline") {
    dir.write_secret("secrets/token", "from-file\n\n");
    const auto values = check("\ntoken_file = \"secrets/token\"\n", schema, context);
    CHECK(values.get<Secret>("token")->reveal() == "from-file\n");
    CHECK_FALSE(values.contains("token_file"));
    CHECK(values.source("token")->begin.line == 2);
  }
}

TEST_CASE("a secret given both inline and through its file is refused at the file key") {
  const ScratchDir dir;
  dir.write_secret("token", "x");
  const auto schema = schema_of({field("token", Type::secret)});
  const auto error =
      refusal("token = \"s3cret\"\ntoken_file = \"token\"\n", schema, context_at(dir.path(), "t"));
  CHECK(std::string(error.what()) ==
        "t.toml:2:1: [t] token and token_file are both given (expected one of them)");
}

TEST_CASE("a secret from an unset environment variable is refused naming the variable") {
  const ScopedEnv env("EMSNODE_TEST_UNSET", std::nullopt);
  const ScopedEnv empty("EMSNODE_TEST_EMPTY", "");
  const auto schema = schema_of({field("token", Type::secret)});
  CHECK(refusal_line("token = \"env:EMSNODE_TEST_UNSET\"\n", schema) ==
        "t.toml:1:9: token: environment variable EMSNODE_TEST_UNSET is not set (expected it to "
        "hold the secret)");
  CHECK_THAT(refusal("token = \"env:EMSNODE_TEST_EMPTY\"\n", schema).message(),
             Catch::Contains("environment variable EMSNODE_TEST_EMPTY is not set"));
}

TEST_CASE("a secret file that cannot be read is refused naming the file") {
  const ScratchDir dir;
  const auto schema = schema_of({field("token", Type::secret)});
  const auto missing = (dir.path() / "missing").string();
  CHECK(refusal("token_file = \"missing\"\n", schema, context_at(dir.path())).message() ==
        "token_file: cannot read \"" + missing +
            "\": No such file or directory (expected a readable file holding the secret)");
  dir.write_secret("empty", "\n");
  CHECK_THAT(refusal("token_file = \"empty\"\n", schema, context_at(dir.path())).message(),
             Catch::Contains("is empty (expected a file holding the secret)"));
}

TEST_CASE("a secret file every user can read is refused, naming its mode") {
  const ScratchDir dir;
  const auto file = dir.write("token", "s3cret\n");
  std::filesystem::permissions(file, std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  const auto schema = schema_of({field("token", Type::secret)});
  const auto error = refusal("token_file = \"token\"\n", schema, context_at(dir.path()));
  CHECK_THAT(error.message(), Catch::Contains(file.string() + ": readable by every user (mode 0"));
  CHECK_THAT(error.message(), Catch::Contains("(chmod o-r)"));
  CHECK_THAT(error.message(), !Catch::Contains("s3cret"));
}

TEST_CASE("a _file key is accepted only beside a secret") {
  const auto schema = schema_of({field("name", Type::string)});
  CHECK_THAT(refusal("name_file = \"x\"\n", schema).message(),
             Catch::StartsWith("unknown key \"name_file\""));
}

TEST_CASE("a secret never appears in an error or in what is displayed") {
  const std::string secret = "hunter2-very-secret";
  const ScratchDir dir;
  dir.write_secret("token", secret + "\n");
  const ScopedEnv env("EMSNODE_TEST_SECRET", secret);
  auto token = field("token", Type::secret);
  token.check = [](const Value&) { return std::string("is too weak (expected a stronger one)"); };
  const auto schema = schema_of({token});
  const auto context = context_at(dir.path());

  const std::vector<std::string> refused = {
      "token = \"" + secret + "\"\n",
      "token = \"env:EMSNODE_TEST_SECRET\"\n",
      "token_file = \"token\"\n",
      "token = \"" + secret + "\"\ntoken_file = \"token\"\n",
  };
  for (const auto& text : refused) {
    CAPTURE(text);
    const auto error = refusal(text, schema, context);
    CHECK_THAT(error.what(), !Catch::Contains(secret));
  }

  const auto values =
      check("token = \"" + secret + "\"\n", schema_of({field("token", Type::secret)}));
  for (const auto& [key, value] : values.all()) CHECK(to_display(value) == "<redacted>");
  std::ostringstream printed;
  printed << *values.get<Secret>("token");
  CHECK(printed.str() == "<redacted>");
}

TEST_CASE("values display as an operator reads them") {
  CHECK(to_display(Value(std::string("node1"))) == "node1");
  CHECK(to_display(Value(std::int64_t{42})) == "42");
  CHECK(to_display(Value(0.25)) == "0.25");
  CHECK(to_display(Value(true)) == "true");
  CHECK(to_display(Value(std::chrono::milliseconds(5000))) == "5s");
  CHECK(to_display(Value(Secret("x"))) == "<redacted>");
  CHECK(to_display(Value(std::vector<std::string>{"a", "b \"c\""})) == R"(["a", "b \"c\""])");
}

TEST_CASE("a string in an error is quoted and kept on one line") {
  CHECK(quote("a\"b\\c\nd\x01") == R"("a\"b\\c\nd\u0001")");
}

TEST_CASE("a plugin manifest's [config] table becomes a schema in the order written") {
  const auto schema = manifest_schema(R"(
listen = { type = "address", description = "where to listen", default = "127.0.0.1:18013" }
[workers]
type = "integer"
min = 1
max = 64
default = 4
[timeout]
type = "duration"
min = "100ms"
max = "1m"
default = "5s"
[mode]
type = "string"
choices = ["fast", "safe"]
default = "safe"
[token]
type = "secret"
required = true
[spool]
type = "path"
default = "spool"
[ratio]
type = "float"
[peers]
type = "strings"
[verbose]
type = "boolean"
default = false
)");
  std::vector<std::string> names;
  for (const auto& f : schema.fields) names.push_back(f.name);
  CHECK(names == std::vector<std::string>{"listen", "workers", "timeout", "mode", "token", "spool",
                                          "ratio", "peers", "verbose"});
  const auto& f = schema.fields;
  CHECK(f[0].type == Type::address);
  CHECK(f[0].description == "where to listen");
  CHECK(std::get<std::string>(*f[0].default_value) == "127.0.0.1:18013");
  CHECK(f[1].min == 1.0);
  CHECK(f[1].max == 64.0);
  CHECK(std::get<std::int64_t>(*f[1].default_value) == 4);
  CHECK(f[2].min == 100.0);
  CHECK(f[2].max == 60000.0);
  CHECK(std::get<std::chrono::milliseconds>(*f[2].default_value) == 5s);
  CHECK(f[3].choices == std::vector<std::string>{"fast", "safe"});
  CHECK(f[4].required);
  CHECK_FALSE(f[4].default_value);
  CHECK(f[6].type == Type::floating);
  CHECK(f[7].type == Type::strings);
  CHECK(std::get<bool>(*f[8].default_value) == false);

  // A path default belongs to the config that uses it, not to the manifest's folder.
  const auto values = validate(parse_text("token = \"t\"\n", "node.toml"), schema,
                               context_at("/etc/emsnode", "plugins.x"));
  CHECK(*values.get<std::string>("spool") == "/etc/emsnode/spool");
  CHECK(refusal("workers = 65\ntoken = \"t\"\n", schema, context_at("/", "plugins.x")).message() ==
        "[plugins.x] workers: 65 is out of range (expected 1..64)");
}

TEST_CASE("a malformed plugin schema is refused at its position in the manifest") {
  struct Case {
    std::string manifest;
    std::uint32_t line;
    std::uint32_t column;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"[a]\ntype = \"str\"\n", 2, 8,
       R"([config.a] type: "str" is not a type (expected one of: string, integer, float, )"
       R"(boolean, duration, secret, path, address, strings))"},
      {"[a]\ntype = \"string\"\ndflt = \"x\"\n", 3, 1,
       R"(unknown key "dflt" in [config.a] (known keys: type, description, default, required, )"
       R"(min, max, choices))"},
      {"[a]\ndescription = \"x\"\n", 1, 1,
       R"(missing required key "type" in [config.a] (expected one of: string, integer, float, )"
       R"(boolean, duration, secret, path, address, strings))"},
      {"a = \"string\"\n", 1, 5,
       "[config] a: expected a table describing the key (type, description, default, ...), got a "
       "string"},
      {"[a]\ntype = \"integer\"\ndefault = \"4\"\n", 3, 11,
       "[config.a] default: expected an integer, got a string"},
      {"[a]\ntype = \"integer\"\nmax = 3\ndefault = 4\n", 4, 11,
       "[config.a] default: 4 is out of range (expected at most 3)"},
      {"[a]\ntype = \"duration\"\nmin = \"1s\"\ndefault = \"500ms\"\n", 4, 11,
       R"([config.a] default: "500ms" is out of range (expected at least 1s))"},
      {"[a]\ntype = \"integer\"\nmin = 10\nmax = 5\n", 4, 7,
       "[config.a] max: 5 is below min 10 (expected max >= min)"},
      {"[a]\ntype = \"integer\"\nchoices = [\"1\"]\n", 3, 11,
       "[config.a] choices: a key of type integer cannot have choices (expected choices only on "
       "string keys)"},
      {"[a]\ntype = \"string\"\nmin = 1\n", 3, 7,
       "[config.a] min: a key of type string has no range (expected min and max only on "
       "integer, float and duration keys)"},
      {"[a]\ntype = \"string\"\nchoices = [\"x\"]\ndefault = \"y\"\n", 4, 11,
       R"([config.a] default: "y" is not an accepted value (expected one of: x))"},
      {"[a]\ntype = \"string\"\nchoices = []\n", 3, 11,
       "[config.a] choices: the list is empty (expected at least one choice)"},
      {"[a]\ntype = \"string\"\nrequired = true\ndefault = \"x\"\n", 3, 12,
       "[config.a] required: a key with a default is never missing (expected either required = "
       "true or a default)"},
      {"[a]\ntype = \"secret\"\ndefault = \"hunter2\"\n", 3, 11,
       "[config.a] default: a secret cannot have a default (expected the operator to set it in "
       "the node config)"},
      {"[a]\ntype = \"address\"\ndefault = \"nowhere\"\n", 3, 11,
       R"([config.a] default: "nowhere" is not an address (expected "host:port" with a port in )"
       R"(1..65535, IPv6 as "[::1]:8013"))"},
      {"[a]\ntype = \"integer\"\nmin = 1.5\n", 3, 7,
       "[config.a] min: expected an integer, got a float"},
      {"[a]\ntype = 3\n", 2, 8, "[config.a] type: expected a string, got an integer"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.manifest);
    const auto error = manifest_refusal(c.manifest);
    CHECK(error.message() == c.message);
    check_position(error, "plugin.toml", c.line, c.column);
  }
}

}  // namespace
}  // namespace emsnode::config
