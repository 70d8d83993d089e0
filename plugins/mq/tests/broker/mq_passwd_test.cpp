// emsnode-mq-passwd as an operator runs it: the password on standard input, the output read back
// by the broker's own parser or run by the sqlite3 command.
#include "access.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

using emsnode::plugins::mq::PasswordFile;
using emsnode::plugins::mq::PasswordHash;
using emsnode::testing::Completed;
using emsnode::testing::run;
using emsnode::testing::TempDir;
using namespace std::chrono_literals;

namespace {

const std::string kPasswd = MQ_PASSWD_BINARY;
const std::string kSqlite = "/usr/bin/sqlite3";

// Runs the tool with `input` on its standard input.
Completed passwd(const TempDir& dir, const std::string& input, std::vector<std::string> args) {
  std::vector<std::string> argv = {
      "/bin/sh", "-c", "input=$1; shift; printf '%s' \"$input\" | \"$@\"", "sh", input, kPasswd};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, dir.path(), 30s);
}

Completed sqlite(const TempDir& dir, const std::string& sql) {
  return run({kSqlite, (dir.path() / "cluster.db").string(), sql}, dir.path(), 30s);
}

}  // namespace

TEST_CASE("emsnode-mq-passwd prints a password file line that admits the password it read") {
  TempDir dir;
  const Completed made = passwd(dir, "pa ss:wörd\n", {"alice"});
  INFO(made.err);
  REQUIRE(made.status == 0);
  CHECK(made.out.rfind("alice:$pbkdf2-sha512$10000$", 0) == 0);
  const PasswordFile file = PasswordFile::parse(made.out, "emsnode-mq-passwd");
  CHECK(file.verify("alice", "pa ss:wörd"));
  CHECK_FALSE(file.verify("alice", "pa ss:wörd\n"));
  CHECK_FALSE(file.verify("alice", "pa ss"));
}

TEST_CASE(
    "emsnode-mq-passwd --sql prints an upsert that sqlite3 runs, whatever the name's quotes") {
  INFO("the sqlite3 command comes from Debian's sqlite3 package (packaging/install-deps.sh)");
  REQUIRE(std::filesystem::exists(kSqlite));
  TempDir dir;
  REQUIRE(
      sqlite(dir, "CREATE TABLE mq_users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL)")
          .status == 0);
  for (const char* password : {"first", "second"}) {
    const Completed made = passwd(dir, password, {"--sql", "o'brien"});
    INFO(made.err);
    REQUIRE(made.status == 0);
    // SQL's single quotes: SQLite would also take double quotes, PostgreSQL would not.
    CHECK_THAT(made.out, Catch::StartsWith("INSERT INTO mq_users (username, password_hash) "
                                           "VALUES ('o''brien', '$pbkdf2-sha512$10000$"));
    const Completed applied = sqlite(dir, made.out);
    INFO(made.out << applied.err);
    REQUIRE(applied.status == 0);
  }
  CHECK(sqlite(dir, "SELECT COUNT(*) FROM mq_users").out == "1\n");
  const Completed stored =
      sqlite(dir, "SELECT password_hash FROM mq_users WHERE username = 'o''brien'");
  REQUIRE(stored.status == 0);
  const PasswordHash hash = PasswordHash::parse(stored.out.substr(0, stored.out.find('\n')));
  CHECK(hash.verify("second"));
  CHECK_FALSE(hash.verify("first"));
}

TEST_CASE("emsnode-mq-passwd refuses bad usage with status 2 and a bad name or password with 1") {
  TempDir dir;
  const auto refused = [&](const Completed& done, int status, const std::string& says) {
    INFO(done.err);
    CHECK(done.status == status);
    CHECK_THAT(done.err, Catch::Contains(says));
    CHECK(done.out.empty());
  };
  refused(passwd(dir, "pw\n", {}), 2, "usage: emsnode-mq-passwd");
  refused(passwd(dir, "pw\n", {"alice", "bob"}), 2, "one user name");
  refused(passwd(dir, "pw\n", {"--iterations", "alice"}), 2, "unknown option --iterations");
  refused(passwd(dir, "\n", {"alice"}), 1, "the password is empty");
  refused(passwd(dir, "", {"alice"}), 1, "the password is empty");
  refused(passwd(dir, "pw\n", {"al:ice"}), 1, "':'");
  refused(passwd(dir, "pw\n", {"al\tice"}), 1, "control character");
  refused(passwd(dir, "pw\n", {"--sql", "al\nice"}), 1, "control character");
  refused(passwd(dir, "pw\n", {"#alice"}), 1, "'#'");

  const Completed help = passwd(dir, "", {"--help"});
  CHECK(help.status == 0);
  CHECK_THAT(help.out, Catch::Contains("usage: emsnode-mq-passwd [--sql] NAME"));
  // Only the password file cares for a leading '#'; a name after "--" may start with '-'.
  CHECK(passwd(dir, "pw\n", {"--sql", "#alice"}).status == 0);
  CHECK(passwd(dir, "pw\n", {"--", "-alice"}).status == 0);
}
