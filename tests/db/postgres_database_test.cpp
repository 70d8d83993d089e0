// The PostgreSQL backend: the SQL rewriting, values across the wire, and what a lost or slow
// server does to a caller. Cases without a tag run on both backends (the same behaviour is the
// point); [postgresql] ones need the server of the test run, or one of their own.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <chrono>
#include <cstdlib>
#include <future>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "config/node_config.hpp"
#include "db/postgres_database.hpp"
#include "db_test_support.hpp"
#include "support/net.hpp"
#include "support/postgres_server.hpp"
#include "support/private_postgres.hpp"
#include "support/sanitizers.hpp"
#include "support/skip.hpp"

using namespace emsnode::db;
using Catch::Matchers::Contains;
using namespace std::string_literals;
using emsnode::db::testing::DbDir;
using std::chrono::milliseconds;

namespace {

PostgresOptions options_for(const std::string& url) {
  PostgresOptions options;
  options.url = url;
  options.sslmode = "disable";
  options.connect_timeout = std::chrono::seconds(2);
  options.statement_timeout = std::chrono::seconds(2);
  return options;
}

// The options a node builds from its [database] section.
PostgresOptions options_from_config(const std::string& toml) {
  const auto config = emsnode::config::parse_node_config(toml, "/tmp/node.toml");
  PostgresOptions options = options_for(config.database.url);
  if (config.database.password) options.password = config.database.password->reveal();
  return options;
}

}  // namespace

TEST_CASE("placeholders and portable type names are rewritten only outside quotes and comments") {
  CHECK(rewrite_for_postgres("SELECT ? , ?").sql == "SELECT $1 , $2");
  CHECK(rewrite_for_postgres("SELECT ? , ?").placeholders == 2);
  const RewrittenSql literal = rewrite_for_postgres(
      "SELECT '?', 'it''s ?', E'\\'?', \"?\", $$?$$, $t$ ? $t$, ? -- ?\n/* ? /* ? */ ? */, ?");
  CHECK(literal.sql ==
        "SELECT '?', 'it''s ?', E'\\'?', \"?\", $$?$$, $t$ ? $t$, $1 -- ?\n/* ? /* ? */ ? */, $2");
  CHECK(literal.placeholders == 2);
  CHECK(rewrite_for_postgres("CREATE TABLE t (a INTEGER, b blob, c Real, d TEXT, e BIGINT)").sql ==
        "CREATE TABLE t (a BIGINT, b BYTEA, c DOUBLE PRECISION, d TEXT, e BIGINT)");
  // Whole words only, and never a qualified column or a quoted name.
  CHECK(rewrite_for_postgres("SELECT integers, t.real, \"INTEGER\", 'BLOB', x_real, 1e5 FROM t")
            .sql == "SELECT integers, t.real, \"INTEGER\", 'BLOB', x_real, 1e5 FROM t");
  CHECK(rewrite_for_postgres("SELECT CAST(x AS INTEGER) FROM t WHERE y = ?").sql ==
        "SELECT CAST(x AS BIGINT) FROM t WHERE y = $1");
}

TEST_CASE("integers, reals, text, blobs and NULL round-trip through typed columns") {
  DbDir dir;
  auto db = dir.open();
  const std::vector<Value> values = {
      std::int64_t{0},
      std::numeric_limits<std::int64_t>::max(),
      std::numeric_limits<std::int64_t>::min(),
      std::int64_t{-1},
  };
  const std::vector<double> reals = {0.0, -2.5, 1e300, -1e-300, std::numeric_limits<double>::max(),
                                     0.1};
  const std::vector<std::string> texts = {"", "na\xc3\xafve \xe2\x82\xac \xf0\x9f\x98\x80 text",
                                          "quote ' and ? and \\ inside"};
  const std::vector<std::string> blobs = {""s, "\x00"s, "\x00\xff\x01 binary \x00 NUL"s,
                                          std::string(70000, '\x00')};
  db->transaction([&](Transaction& tx) {
    tx.exec("CREATE TABLE v (k INTEGER NOT NULL, i INTEGER, r REAL, s TEXT, b BLOB)");
    std::int64_t k = 0;
    for (const Value& value : values) {
      tx.exec("INSERT INTO v (k, i) VALUES (?, ?)", {k++, value});
    }
    for (const double real : reals) tx.exec("INSERT INTO v (k, r) VALUES (?, ?)", {k++, real});
    for (const auto& text : texts) tx.exec("INSERT INTO v (k, s) VALUES (?, ?)", {k++, text});
    for (const auto& blob : blobs) tx.exec("INSERT INTO v (k, b) VALUES (?, ?)", {k++, Blob{blob}});
    tx.exec("INSERT INTO v (k, i, r, s, b) VALUES (?, ?, ?, ?, ?)",
            {k++, nullptr, nullptr, nullptr, nullptr});
  });
  const Rows rows = db->query("SELECT i, r, s, b FROM v ORDER BY k");
  REQUIRE(rows.size() == values.size() + reals.size() + texts.size() + blobs.size() + 1);
  std::size_t row = 0;
  for (const Value& value : values) CHECK(rows[row++][0] == value);
  for (const double real : reals) CHECK(rows[row++].floating(1) == real);
  for (const auto& text : texts) CHECK(rows[row++].text(2) == text);
  for (const auto& blob : blobs) CHECK(rows[row++].blob(3) == blob);
  for (std::size_t column = 0; column < 4; ++column) CHECK(rows[row].is_null(column));
  // Parameters compare with the columns' types, as SQLite's do.
  CHECK(db->query("SELECT k FROM v WHERE i = ?", {std::numeric_limits<std::int64_t>::min()})
            .front()
            .integer(0) == 2);
  CHECK(db->query("SELECT COUNT(*) FROM v WHERE b = ?", {Blob{"\x00"s}}).front().integer(0) == 1);
}

TEST_CASE("a question mark inside a string literal is text, not a parameter") {
  DbDir dir;
  auto db = dir.open();
  const Rows rows = db->query("SELECT 'why?', ?, 'it''s ?'", {"answer"s});
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].text(0) == "why?");
  CHECK(rows[0].text(1) == "answer");
  CHECK(rows[0].text(2) == "it's ?");
  CHECK_THROWS_WITH(db->query("SELECT '?'", {"extra"s}), Contains("takes 0 parameters, given 1"));
}

TEST_CASE("sums cast to BIGINT read as integers on both backends") {
  DbDir dir;
  auto db = dir.open();
  db->transaction([](Transaction& tx) {
    tx.exec("CREATE TABLE n (x INTEGER NOT NULL)");
    tx.exec("INSERT INTO n (x) VALUES (?)", {std::int64_t{40}});
    tx.exec("INSERT INTO n (x) VALUES (?)", {std::int64_t{2}});
  });
  CHECK(db->query("SELECT CAST(SUM(x) AS BIGINT), COUNT(*), MAX(x) FROM n").front().columns() ==
        std::vector<Value>{std::int64_t{42}, std::int64_t{2}, std::int64_t{40}});
}

TEST_CASE("a numeric result is refused with the cast that fixes it", "[postgresql]") {
  DbDir dir;
  auto db = dir.open();
  db->transaction([](Transaction& tx) {
    tx.exec("CREATE TABLE n (x INTEGER NOT NULL)");
    tx.exec("INSERT INTO n (x) VALUES (1)");
  });
  CHECK_THROWS_WITH(db->query("SELECT SUM(x) AS total FROM n"),
                    Contains("SELECT SUM(x) AS total ...") && Contains("(total) is numeric") &&
                        Contains("CAST(... AS BIGINT)"));
}

TEST_CASE("text with a NUL byte is refused, pointing to blobs", "[postgresql]") {
  DbDir dir;
  auto db = dir.open();
  CHECK_THROWS_WITH(db->query("SELECT ?", {"a\0b"s}), Contains("NUL byte") && Contains("blob"));
}

TEST_CASE("the password comes from env: or a file, and a wrong one is a clear error",
          "[postgresql]") {
  DbDir dir;
  const auto& server = dir.server();
  const std::string url = server.url_of("postgres", "emsnode_pw");
  const emsnode::testing::TempDir files;

  ::setenv("EMSNODE_TEST_PG_PASSWORD", server.password().c_str(), 1);
  const std::string base =
      "[node]\nid = \"n1\"\n[database]\nbackend = \"postgresql\"\nurl = \"" + url + "\"\n";
  auto by_env =
      open_postgres(options_from_config(base + "password = \"env:EMSNODE_TEST_PG_PASSWORD\"\n"));
  CHECK(by_env->query("SELECT current_user").front().text(0) == "emsnode_pw");

  const auto file = files.write_secret("pg-password", server.password() + "\n");
  auto by_file =
      open_postgres(options_from_config(base + "password_file = \"" + file.string() + "\"\n"));
  CHECK(by_file->query("SELECT current_user").front().text(0) == "emsnode_pw");

  const std::string wrong = "not-the-password-1234";
  auto refused = open_postgres(options_from_config(base + "password = \"" + wrong + "\"\n"));
  CHECK_THROWS_AS(refused->now_ms(), UnreachableError);
  CHECK_THROWS_WITH(
      refused->now_ms(),
      Contains("password authentication failed for user \"emsnode_pw\"") && !Contains(wrong));
  CHECK_THAT(refused->describe(), !Contains(wrong) && Contains("127.0.0.1"));
  ::unsetenv("EMSNODE_TEST_PG_PASSWORD");
}

TEST_CASE("a connection string holding a password is refused") {
  CHECK_THROWS_WITH(open_postgres(options_for("postgresql://u:secret@127.0.0.1:5432/db")),
                    Contains("holds a password") && !Contains("secret"));
  CHECK_THROWS_WITH(open_postgres(options_for("host=127.0.0.1 password=secret dbname=db")),
                    Contains("holds a password") && !Contains("secret"));
  CHECK(describe_postgres_url("postgresql://u@db1:6543/emsnode?sslmode=require") ==
        "postgresql://db1:6543/emsnode");
  CHECK(describe_postgres_url("host=db2 dbname=x") == "postgresql://db2:5432/x");
}

TEST_CASE("the servers of a connection string and whether each is on loopback") {
  CHECK(postgres_target("postgresql://u@db1:6543/emsnode").hosts ==
        std::vector<std::string>{"db1"});
  CHECK(postgres_target("postgresql://u@db1,db2/emsnode?sslmode=require").sslmode == "require");
  CHECK(postgres_target("host=a,b hostaddr=10.0.0.1,10.0.0.2 dbname=x").hosts ==
        std::vector<std::string>{"a", "b", "10.0.0.1", "10.0.0.2"});
  CHECK(postgres_target("postgresql://u@[::1]/x").hosts == std::vector<std::string>{"::1"});
  CHECK_THROWS_AS(postgres_target("host='unterminated"), std::invalid_argument);
  for (const char* host :
       {"", "/run/postgresql", "localhost", "127.0.0.1", "127.9.8.7", "::1", "0:0:0:0:0:0:0:1"}) {
    CAPTURE(host);
    CHECK(is_loopback_host(host));
  }
  for (const char* host :
       {"db1", "10.0.0.1", "128.0.0.1", "::2", "localhost.example", "::ffff:127.0.0.1"}) {
    CAPTURE(host);
    CHECK_FALSE(is_loopback_host(host));
  }
}

TEST_CASE("a statement that outlives statement_timeout fails with that reason", "[postgresql]") {
  DbDir dir;
  PostgresOptions options = options_for(dir.url());
  options.statement_timeout = milliseconds(300);
  auto db = open_postgres(options);
  const auto started = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(db->query("SELECT pg_sleep(5)"),
                    Contains("statement_timeout 300 ms") && Contains("SELECT pg_sleep(5)"));
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - started < milliseconds(2000));
  // The connection is still good.
  CHECK(db->now_ms() > 0);
}

TEST_CASE("a server stopped under a Database makes calls unreachable until it is back",
          "[postgresql]") {
  // A server of this test's own: the run's server must stay up for the others.
  (void)DbDir();  // skips, with the fixture's reason, where PostgreSQL cannot run
  emsnode::testing::PrivatePostgres server(EMSNODE_PG_FIXTURE);
  auto db = open_postgres(options_for(server.url()));
  db->transaction([](Transaction& tx) {
    tx.exec("CREATE TABLE t (x INTEGER NOT NULL)");
    tx.exec("INSERT INTO t (x) VALUES (1)");
  });
  auto listener = db->listen("emsnode_test");
  REQUIRE(listener);
  CHECK(listener->wait(milliseconds(10)));  // connected: told to re-read

  server.stop();
  const auto started = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(db->query("SELECT x FROM t"), UnreachableError);
  CHECK_THROWS_AS(db->transaction([](Transaction& tx) { tx.exec("UPDATE t SET x = 2"); }),
                  UnreachableError);
  CHECK_THROWS_AS(listener->wait(milliseconds(500)), UnreachableError);
  CHECK_THROWS_AS(db->now_ms(), UnreachableError);
  // Each call fails at once (a refused connection), never in a retry loop.
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - started < milliseconds(3000));

  server.start();
  CHECK(db->query("SELECT x FROM t").front().integer(0) == 1);
  db->transaction([](Transaction& tx) { tx.exec("UPDATE t SET x = 3"); });
  CHECK(db->query("SELECT x FROM t").front().integer(0) == 3);
  CHECK(listener->wait(milliseconds(10)));  // reconnected: told to re-read
}

TEST_CASE("a notification wakes a listener on commit and not before") {
  DbDir dir;
  auto db = dir.open();
  auto listener = db->listen("emsnode_test");
  if (!dir.postgres()) {
    CHECK_FALSE(listener);  // SQLite: the caller polls
    return;
  }
  REQUIRE(listener);
  CHECK(listener->wait(milliseconds(10)));  // first connection
  CHECK_FALSE(listener->wait(milliseconds(50)));
  std::promise<void> notified;
  std::promise<void> checked;
  std::thread writer([&] {
    db->transaction([&](Transaction& tx) {
      tx.notify("emsnode_test");
      notified.set_value();
      checked.get_future().wait();
    });
  });
  notified.get_future().wait();
  CHECK_FALSE(listener->wait(milliseconds(200)));  // not committed yet
  checked.set_value();
  const auto started = std::chrono::steady_clock::now();
  CHECK(listener->wait(milliseconds(2000)));
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - started < milliseconds(500));
  writer.join();
  CHECK_THROWS_AS(db->listen("Not A Channel"), std::invalid_argument);
}

TEST_CASE("an interrupt also fails a call queued behind another thread's", "[postgresql]") {
  DbDir dir;
  const auto database = dir.open(10000);
  auto slow = std::async(std::launch::async, [&] { database->query("SELECT pg_sleep(5)"); });
  std::this_thread::sleep_for(milliseconds(300));
  auto queued = std::async(std::launch::async, [&] { database->query("SELECT 1"); });
  std::this_thread::sleep_for(milliseconds(200));
  const auto interrupted = std::chrono::steady_clock::now();
  database->interrupt();
  CHECK_THROWS_AS(slow.get(), UnreachableError);
  CHECK_THROWS_AS(queued.get(), UnreachableError);
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - interrupted < std::chrono::seconds(2));
  CHECK(database->query("SELECT 1").front().integer(0) == 1);
}

TEST_CASE("an interrupt cuts short a connect to a server that does not answer", "[postgresql]") {
  // A loopback listener whose accept queue is full: the kernel drops further SYNs, so a
  // connect hangs as it would towards a partitioned server.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(listener, 0) == 0);
  socklen_t length = sizeof address;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  const int port = ntohs(address.sin_port);
  std::vector<int> fillers;
  for (int i = 0; i < 2; ++i) {  // fill the queue (backlog 0 still admits one)
    fillers.push_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    ::connect(fillers.back(), reinterpret_cast<sockaddr*>(&address), sizeof address);
  }
  std::this_thread::sleep_for(milliseconds(100));

  PostgresOptions options =
      options_for("postgresql://nobody@127.0.0.1:" + std::to_string(port) + "/none");
  options.connect_timeout = std::chrono::seconds(20);
  const auto database = open_postgres(options);
  const auto started = std::chrono::steady_clock::now();
  auto call = std::async(std::launch::async, [&] { database->query("SELECT 1"); });
  std::this_thread::sleep_for(milliseconds(500));
  database->interrupt();
  CHECK_THROWS_WITH(call.get(), Contains("interrupted"));
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - started < std::chrono::seconds(3));
  for (int fd : fillers) ::close(fd);
  ::close(listener);
}

TEST_CASE(
    "sslmode verify-full connects over TLS to a server whose certificate the CA signed, and "
    "refuses one it did not",
    "[postgresql]") {
  if (const auto why = emsnode::testing::PostgresServer::unavailable()) {
    emsnode::testing::skip_test(*why);
    return;
  }
  emsnode::testing::TempDir dir;
  const auto openssl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "/usr/bin/openssl");
    const auto done = emsnode::testing::run(args, dir.path());
    REQUIRE(done.status == 0);
  };
  // A CA, a server certificate for 127.0.0.1 signed by it, and a CA that signed nothing.
  const std::string d = dir.path().string() + "/";
  for (const char* ca : {"ca", "other-ca"}) {
    openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             std::string("/CN=") + ca, "-keyout", d + ca + ".key", "-out", d + ca + ".pem"});
  }
  openssl({"req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
           d + "server.key", "-out", d + "server.csr"});
  dir.write("san.ext", "subjectAltName = IP:127.0.0.1\n");
  openssl({"x509", "-req", "-in", d + "server.csr", "-CA", d + "ca.pem", "-CAkey", d + "ca.key",
           "-CAcreateserial", "-days", "2", "-extfile", d + "san.ext", "-out", d + "server.pem"});

  emsnode::testing::PortReservation port;
  emsnode::testing::PostgresServer server(dir, "127.0.0.1", port.port());
  // The server reads its key only if postgres owns it and nobody else may read it.
  for (const char* file : {"server.pem", "server.key"}) {
    const auto done = emsnode::testing::run(
        {"/usr/bin/install", "-o", "postgres", "-m", "0600", d + file, d + "postgres/" + file},
        dir.path());
    REQUIRE(done.status == 0);
  }
  server.psql("ALTER SYSTEM SET ssl_cert_file = '" + d + "postgres/server.pem'");
  server.psql("ALTER SYSTEM SET ssl_key_file = '" + d + "postgres/server.key'");
  server.psql("ALTER SYSTEM SET ssl = on");
  server.psql("SELECT pg_reload_conf()");
  std::this_thread::sleep_for(milliseconds(300));

  PostgresOptions options = options_for(server.url("postgres"));
  options.sslmode = "verify-full";
  options.sslrootcert = d + "ca.pem";
  const auto database = open_postgres(options);
  CHECK(database->query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .front()
            .integer(0) == 1);

  options.sslrootcert = d + "other-ca.pem";
  CHECK_THROWS_WITH(open_postgres(options)->query("SELECT 1"), Contains("certificate"));
}
