#include <catch2/catch.hpp>

#include <sstream>

#include "log/log.hpp"
#include "support/temp_dir.hpp"

using emsnode::testing::read_file;
using emsnode::testing::TempDir;
namespace elog = emsnode::log;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

elog::Settings file_only(const std::filesystem::path& file,
                         elog::Format format = elog::Format::text) {
  elog::Settings settings;
  settings.console = false;
  settings.file = file;
  settings.format = format;
  return settings;
}

}  // namespace

TEST_CASE("a text record has time, level, component, event and key=value fields") {
  TempDir dir;
  elog::init(file_only(dir / "node.log"));
  elog::Logger("host").info("plugin.started", {{"id", "echo"}, {"version", "1.0.0"}});
  elog::flush();

  const auto lines = lines_of(read_file(dir / "node.log"));
  REQUIRE(lines.size() == 1);
  CHECK_THAT(
      lines[0],
      Catch::Matches(
          R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info +host plugin\.started id=echo version=1\.0\.0)"));
}

TEST_CASE("a text field value with spaces, quotes or newlines is quoted and escaped") {
  TempDir dir;
  elog::init(file_only(dir / "node.log"));
  elog::Logger("host").warning("plugin.start_failed",
                               {{"reason", "bind: \"address\" in use\nagain"}, {"empty", ""}});
  elog::flush();

  const auto lines = lines_of(read_file(dir / "node.log"));
  REQUIRE(lines.size() == 1);
  CHECK_THAT(lines[0], Catch::EndsWith(R"(reason="bind: \"address\" in use\nagain" empty="")"));
}

TEST_CASE("a JSON record is one object per line with every field escaped") {
  TempDir dir;
  elog::init(file_only(dir / "node.log", elog::Format::json));
  elog::Logger("plugin.echo").error("echo.failed", {{"detail", "tab\there \"q\" \x01"}});
  elog::flush();

  const auto lines = lines_of(read_file(dir / "node.log"));
  REQUIRE(lines.size() == 1);
  CHECK_THAT(
      lines[0],
      Catch::Matches(
          R"(\{"ts":"[0-9T:.Z-]+","level":"error","component":"plugin\.echo","event":"echo\.failed","detail":"tab\\there \\"q\\" \\u0001"\})"));
}

TEST_CASE("each component logs at its own level") {
  TempDir dir;
  auto settings = file_only(dir / "node.log");
  settings.level = elog::Level::warning;
  settings.levels["host"] = elog::Level::debug;
  elog::init(settings);

  elog::Logger("host").debug("host.detail");
  elog::Logger("config").info("config.detail");
  elog::Logger("config").warning("config.problem");
  elog::flush();

  const auto text = read_file(dir / "node.log");
  CHECK(text.find("host.detail") != std::string::npos);
  CHECK(text.find("config.detail") == std::string::npos);
  CHECK(text.find("config.problem") != std::string::npos);
  CHECK(elog::enabled("host", elog::Level::debug));
  CHECK_FALSE(elog::enabled("host", elog::Level::trace));
  CHECK_FALSE(elog::enabled("other", elog::Level::info));
}

TEST_CASE("reopen starts a new file after the old one was moved away") {
  TempDir dir;
  elog::init(file_only(dir / "node.log"));
  elog::Logger("main").info("before.rotate");
  std::filesystem::rename(dir / "node.log", dir / "node.log.1");
  elog::reopen();
  elog::Logger("main").info("after.rotate");
  elog::flush();

  CHECK(read_file(dir / "node.log.1").find("before.rotate") != std::string::npos);
  CHECK(read_file(dir / "node.log.1").find("after.rotate") == std::string::npos);
  CHECK(read_file(dir / "node.log").find("after.rotate") != std::string::npos);
}

TEST_CASE("a log file that cannot be opened is refused with its path") {
  TempDir dir;
  dir.write("blocker", "a file where a folder should be");
  CHECK_THROWS_WITH(elog::init(file_only(dir / "blocker" / "node.log")),
                    Catch::Contains("blocker/node.log"));
}

TEST_CASE("level names parse and print") {
  CHECK(elog::parse_level("warn") == elog::Level::warning);
  CHECK(elog::parse_level("trace") == elog::Level::trace);
  CHECK_FALSE(elog::parse_level("verbose"));
  CHECK(elog::level_name(elog::Level::error) == "error");
}
