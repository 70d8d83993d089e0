// The PostgreSQL server of a test run and the databases tests create on it, without any of the
// core's code (the integration tests drive real processes and never link it).
//
// ctest sets EMSNODE_TEST_DB for the `pg: ` variants of the tests (tests/CMakeLists.txt):
//   EMSNODE_TEST_DB unset or "sqlite"   the tests run on SQLite
//   EMSNODE_TEST_DB="postgresql:DIR"    on the server whose URL is in DIR/url, which
//                                       tests/support/postgres_fixture.sh started
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace emsnode::testing {

class TestServer {
 public:
  // The server of this test run; nullopt when the tests run on SQLite. Throws, with a message
  // that starts with the skip marker every test's SKIP_REGULAR_EXPRESSION matches
  // ("EMSNODE_SKIP:", support/skip.hpp), when the fixture could not start a server and said why:
  // the case is reported as skipped, not failed. Throwing, because it happens in a constructor
  // before the case has checked anything.
  static std::optional<TestServer> from_environment() {
    const char* selected = std::getenv("EMSNODE_TEST_DB");
    if (!selected || std::string(selected).empty() || std::string(selected) == "sqlite") {
      return std::nullopt;
    }
    const std::string value = selected;
    const std::string prefix = "postgresql:";
    if (value.rfind(prefix, 0) != 0) {
      throw std::runtime_error("EMSNODE_TEST_DB=" + value +
                               ": expected \"sqlite\" or \"postgresql:<fixture state dir>\"");
    }
    TestServer server;
    server.state_dir_ = value.substr(prefix.size());
    server.url_ = first_line(server.state_dir_ + "/url");
    if (server.url_.empty()) {
      throw std::runtime_error("EMSNODE_SKIP: PostgreSQL test server: no URL in " +
                               server.state_dir_ + "/url (did the postgres fixture run?)");
    }
    if (server.url_.rfind("unavailable:", 0) == 0) {
      throw std::runtime_error("EMSNODE_SKIP: PostgreSQL test server " + server.url_);
    }
    return server;
  }

  // The maintenance database, as the superuser (trusted on loopback).
  const std::string& url() const { return url_; }
  // The password of the role emsnode_pw, which must authenticate with it.
  std::string password() const { return first_line(state_dir_ + "/password"); }

  // The URL of database `name` on this server, as `user`.
  std::string url_of(const std::string& name, const std::string& user = "postgres") const {
    const std::size_t at = url_.find('@');
    const std::size_t slash = url_.rfind('/');
    return "postgresql://" + user + url_.substr(at, slash - at) + "/" + name;
  }

  // Runs one statement outside any transaction (CREATE DATABASE cannot run in one) with psql.
  void admin(const std::string& sql) const {
    const TempDir out;
    const Completed done = run(
        {"/usr/bin/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url_, "-c", sql}, out.path());
    if (done.status != 0) throw std::runtime_error("psql " + sql + ": " + done.err);
  }

 private:
  static std::string first_line(const std::string& file) {
    std::string text = read_file(file);
    const std::size_t end = text.find('\n');
    return end == std::string::npos ? text : text.substr(0, end);
  }

  std::string state_dir_;
  std::string url_;
};

// A database of one test's own on the run's server, created with the object and dropped with it.
// Its collation is ICU's en-US, as production databases often have, where text does not sort by
// bytes: SQL that needs byte order must say COLLATE "C", and the tests show when it does not.
class TestDatabase {
 public:
  explicit TestDatabase(TestServer server) : server_(std::move(server)) {
    static std::atomic<int> counter{0};
    std::random_device random;
    name_ = "emsnode_t" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
            std::to_string(random() % 1000000);
    server_.admin("CREATE DATABASE " + name_ +
                  " TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'");
  }
  ~TestDatabase() {
    try {
      server_.admin("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (const std::exception& error) {
      // Only a leftover database on a throw-away server; the test's result stands.
      std::fprintf(stderr, "TestDatabase: %s\n", error.what());
    }
  }
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  const TestServer& server() const { return server_; }
  std::string url() const { return server_.url_of(name_); }

 private:
  TestServer server_;
  std::string name_;
};

// The [database] keys of a node config (without migrate) for a node on the test run's database:
// a PostgreSQL database of the test's own, or the SQLite file `sqlite_file`.
class NodeDatabase {
 public:
  explicit NodeDatabase(std::string sqlite_file) : sqlite_file_(std::move(sqlite_file)) {
    if (auto server = TestServer::from_environment()) database_.emplace(std::move(*server));
  }
  bool postgres() const { return database_.has_value(); }
  std::string toml() const {
    if (!database_) return "path = \"" + sqlite_file_ + "\"\n";
    return "backend = \"postgresql\"\nurl = \"" + database_->url() + "\"\nsslmode = \"disable\"\n";
  }
  // Runs `sql` (statements as an operator would type them) with the operator's command: sqlite3,
  // waiting up to 5 s for the nodes' write lock, or psql. Its output goes to `output_dir`.
  Completed run_sql(const std::string& sql, const std::filesystem::path& output_dir) const {
    if (!database_) {
      return run({"/usr/bin/sqlite3", "-cmd", ".timeout 5000", sqlite_file_, sql}, output_dir);
    }
    return run({"/usr/bin/psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d",
                database_->url(), "-c", sql},
               output_dir);
  }

 private:
  std::string sqlite_file_;
  std::optional<TestDatabase> database_;
};

}  // namespace emsnode::testing
