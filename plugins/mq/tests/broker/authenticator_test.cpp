// Password checks on the authenticator's thread, and the users of the mq_users table it looks
// up (the database is the fake host's, a map the test edits between CONNECTs).
#include "authenticator.hpp"
#include "support/sanitizers.hpp"

#include <emsnode/plugin.hpp>
#include <emsnode/testing/fake_host.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using emsnode::plugins::mq::AccessControl;
using emsnode::plugins::mq::Authenticator;
using emsnode::plugins::mq::Bytes;
using emsnode::plugins::mq::Connect;
using emsnode::plugins::mq::database_users;
using emsnode::plugins::mq::hash_password;
using emsnode::plugins::mq::PasswordFile;
using emsnode::plugins::mq::StoredUser;
using emsnode::plugins::mq::UserLookup;
namespace connack_v311 = emsnode::plugins::mq::connack_v311;
namespace sdk = emsnode::sdk;
using namespace std::chrono_literals;

namespace {

Connect credentials(std::optional<std::string> username, std::optional<std::string> password) {
  Connect connect;
  connect.username = std::move(username);
  if (password) connect.password = Bytes(password->begin(), password->end());
  return connect;
}

// Submits one check and waits for its outcome.
AccessControl::Outcome check(Authenticator& authenticator, const Connect& connect) {
  std::promise<AccessControl::Outcome> outcome;
  auto delivered = outcome.get_future();
  REQUIRE(authenticator.submit(connect, std::nullopt, [&](AccessControl::Outcome result) {
    outcome.set_value(std::move(result));
  }));
  REQUIRE(delivered.wait_for(10s) == std::future_status::ready);
  return delivered.get();
}

// A lookup that holds every check until the test opens it, and says when the first one waits.
class Gate {
 public:
  // Opens the gate when it goes, so that a test that fails early does not leave the
  // authenticator's thread waiting (declare it after the authenticator).
  class OpenOnExit {
   public:
    explicit OpenOnExit(Gate& gate) : gate_(gate) {}
    ~OpenOnExit() { gate_.open(); }
    OpenOnExit(const OpenOnExit&) = delete;
    OpenOnExit& operator=(const OpenOnExit&) = delete;

   private:
    Gate& gate_;
  };

  UserLookup lookup() {
    return [this](const std::string&) -> std::optional<StoredUser> {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!told_) {
          told_ = true;
          entered_.set_value();
        }
      }
      opened_.wait();
      return std::nullopt;
    };
  }
  bool wait_entered() { return entered_future_.wait_for(10s) == std::future_status::ready; }
  void open() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (opened_once_) return;
    opened_once_ = true;
    open_.set_value();
  }

 private:
  std::mutex mutex_;
  bool told_ = false;
  bool opened_once_ = false;
  std::promise<void> entered_;
  std::future<void> entered_future_ = entered_.get_future();
  std::promise<void> open_;
  std::shared_future<void> opened_ = open_.get_future().share();
};

AccessControl with_database_users() {
  AccessControl access;
  access.allow_anonymous = false;
  access.database_users = true;
  return access;
}

// The mq_users table of a fake host's database.
class UsersTable {
 public:
  UsersTable() : host_(fake_.api(), fake_.ctx()) {
    fake_.set_db_query([this](std::string_view sql, const sdk::Params& params) {
      // On the authenticator's thread, where Catch2 cannot check: a statement other than the
      // lookup's fails the check, and with it the test.
      if (sql != "SELECT password_hash FROM mq_users WHERE username = ?") {
        throw std::logic_error("unexpected statement " + std::string(sql));
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (unreachable_) throw std::runtime_error("connection refused");
      auto found = rows_.find(params.at(0).text());
      if (found == rows_.end()) return std::vector<sdk::Row>{};
      return std::vector<sdk::Row>{sdk::Row{found->second}};
    });
  }

  void put(const std::string& name, const std::string& hash) {
    std::lock_guard<std::mutex> lock(mutex_);
    rows_[name] = hash;
  }
  void remove(const std::string& name) {
    std::lock_guard<std::mutex> lock(mutex_);
    rows_.erase(name);
  }
  void make_unreachable() {
    std::lock_guard<std::mutex> lock(mutex_);
    unreachable_ = true;
  }

  UserLookup lookup() { return database_users(host_.db(), host_.log()); }
  sdk::testing::FakeHost& fake() { return fake_; }
  sdk::Logger log() { return host_.log(); }

 private:
  sdk::testing::FakeHost fake_;
  sdk::Host host_;
  std::mutex mutex_;
  std::map<std::string, std::string> rows_;
  bool unreachable_ = false;
};

}  // namespace

TEST_CASE("the authenticator hands each outcome to its callback on its own thread") {
  UsersTable table;
  AccessControl access;
  access.passwords = PasswordFile::parse("alice:" + hash_password("secret", 1000) + "\n", "pw");
  Authenticator authenticator(access, {}, 8, table.log());

  std::promise<std::thread::id> thread;
  std::promise<AccessControl::Outcome> outcome;
  REQUIRE(authenticator.submit(credentials("alice", "secret"), std::nullopt,
                               [&](AccessControl::Outcome result) {
                                 thread.set_value(std::this_thread::get_id());
                                 outcome.set_value(std::move(result));
                               }));
  const AccessControl::Outcome accepted = outcome.get_future().get();
  CHECK(accepted.connack_code == connack_v311::kAccepted);
  CHECK(accepted.username == std::optional<std::string>("alice"));
  CHECK(thread.get_future().get() != std::this_thread::get_id());
  CHECK(check(authenticator, credentials("alice", "Secret")).connack_code ==
        connack_v311::kBadUserNameOrPassword);
}

TEST_CASE("a slow check does not hold up the thread that submitted it") {
  UsersTable table;
  Gate gate;
  const AccessControl access = with_database_users();
  Authenticator authenticator(access, gate.lookup(), 8, table.log());
  const Gate::OpenOnExit open_on_exit(gate);
  std::promise<AccessControl::Outcome> outcome;
  auto delivered = outcome.get_future();

  const auto before = std::chrono::steady_clock::now();
  REQUIRE(authenticator.submit(
      credentials("alice", "secret"), std::nullopt,
      [&](AccessControl::Outcome result) { outcome.set_value(std::move(result)); }));
  REQUIRE(gate.wait_entered());
  // The check is stuck in its lookup, and the submitter went on long before.
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - before < 5s);
  CHECK(delivered.wait_for(100ms) == std::future_status::timeout);
  CHECK(authenticator.pending() == 1);
  gate.open();
  REQUIRE(delivered.wait_for(10s) == std::future_status::ready);
  CHECK(delivered.get().connack_code == connack_v311::kBadUserNameOrPassword);
}

TEST_CASE("a full authenticator refuses the next check at once and takes one again later") {
  UsersTable table;
  Gate gate;
  const AccessControl access = with_database_users();
  Authenticator authenticator(access, gate.lookup(), 2, table.log());
  const Gate::OpenOnExit open_on_exit(gate);
  std::promise<void> first;
  std::promise<void> second;
  REQUIRE(authenticator.submit(credentials("a", "x"), std::nullopt,
                               [&](AccessControl::Outcome) { first.set_value(); }));
  REQUIRE(authenticator.submit(credentials("b", "x"), std::nullopt,
                               [&](AccessControl::Outcome) { second.set_value(); }));
  bool called = false;
  CHECK_FALSE(authenticator.submit(credentials("c", "x"), std::nullopt,
                                   [&](AccessControl::Outcome) { called = true; }));
  CHECK(authenticator.pending() == 2);

  gate.open();
  REQUIRE(first.get_future().wait_for(10s) == std::future_status::ready);
  REQUIRE(second.get_future().wait_for(10s) == std::future_status::ready);
  CHECK(check(authenticator, credentials("c", "x")).connack_code ==
        connack_v311::kBadUserNameOrPassword);
  CHECK_FALSE(called);
}

TEST_CASE("stopping drops the checks not started and lets the running one deliver") {
  UsersTable table;
  Gate gate;
  const AccessControl access = with_database_users();
  Authenticator authenticator(access, gate.lookup(), 8, table.log());
  const Gate::OpenOnExit open_on_exit(gate);
  std::promise<void> running;
  int dropped_called = 0;
  REQUIRE(authenticator.submit(credentials("a", "x"), std::nullopt,
                               [&](AccessControl::Outcome) { running.set_value(); }));
  REQUIRE(gate.wait_entered());
  for (int i = 0; i < 3; ++i) {
    REQUIRE(authenticator.submit(credentials("b", "x"), std::nullopt,
                                 [&](AccessControl::Outcome) { ++dropped_called; }));
  }
  CHECK(authenticator.pending() == 4);

  auto stopped = std::async(std::launch::async, [&] { authenticator.stop(); });
  // stop() has dropped the queue and now waits for the check in its lookup.
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (authenticator.pending() != 1 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(5ms);
  }
  CHECK(authenticator.pending() == 1);
  CHECK(stopped.wait_for(50ms) == std::future_status::timeout);
  gate.open();
  REQUIRE(stopped.wait_for(10s) == std::future_status::ready);
  CHECK(running.get_future().wait_for(0s) == std::future_status::ready);
  CHECK(dropped_called == 0);
  CHECK_FALSE(authenticator.submit(credentials("c", "x"), std::nullopt,
                                   [&](AccessControl::Outcome) { ++dropped_called; }));
}

TEST_CASE("only a CONNECT with a password or a database user's name costs a check") {
  AccessControl access;
  access.passwords = PasswordFile::parse("alice:" + hash_password("secret", 1000) + "\n", "pw");
  CHECK(access.costly(credentials("alice", "secret")));
  CHECK_FALSE(access.costly(credentials("alice", std::nullopt)));
  CHECK_FALSE(access.costly(credentials(std::nullopt, std::nullopt)));
  access.database_users = true;
  CHECK(access.costly(credentials("bob", std::nullopt)));
  access.use_identity_as_username = true;  // the certificate decides, no password is read
  CHECK_FALSE(access.costly(credentials("alice", "secret")));
}

TEST_CASE("a user of the mq_users table connects with its password and with no other") {
  UsersTable table;
  table.put("carol", hash_password("in the table", 1000));
  const AccessControl access = with_database_users();
  Authenticator authenticator(access, table.lookup(), 8, table.log());

  const AccessControl::Outcome accepted =
      check(authenticator, credentials("carol", "in the table"));
  CHECK(accepted.connack_code == connack_v311::kAccepted);
  CHECK(accepted.username == std::optional<std::string>("carol"));
  CHECK(check(authenticator, credentials("carol", "guess")).connack_code ==
        connack_v311::kBadUserNameOrPassword);
  // Known, so neither herself nor anonymous without her password.
  CHECK(check(authenticator, credentials("carol", std::nullopt)).connack_code ==
        connack_v311::kBadUserNameOrPassword);
}

TEST_CASE("an unknown user name is refused as a wrong password is") {
  UsersTable table;
  table.put("carol", hash_password("in the table", 1000));
  const AccessControl access = with_database_users();
  Authenticator authenticator(access, table.lookup(), 8, table.log());
  const AccessControl::Outcome unknown = check(authenticator, credentials("mallory", "x"));
  CHECK(unknown.connack_code == connack_v311::kBadUserNameOrPassword);
  CHECK(unknown.reason == check(authenticator, credentials("carol", "x")).reason);
}

TEST_CASE("a row added to or removed from mq_users counts from the next CONNECT") {
  UsersTable table;
  const AccessControl access = with_database_users();
  Authenticator authenticator(access, table.lookup(), 8, table.log());
  CHECK(check(authenticator, credentials("dave", "pw")).connack_code ==
        connack_v311::kBadUserNameOrPassword);
  table.put("dave", hash_password("pw", 1000));
  CHECK(check(authenticator, credentials("dave", "pw")).connack_code == connack_v311::kAccepted);
  table.remove("dave");
  CHECK(check(authenticator, credentials("dave", "pw")).connack_code ==
        connack_v311::kBadUserNameOrPassword);
}

TEST_CASE("the password file answers for its users before the database is asked") {
  UsersTable table;
  table.put("alice", hash_password("database", 1000));
  AccessControl access = with_database_users();
  access.passwords = PasswordFile::parse("alice:" + hash_password("file", 1000) + "\n", "pw");
  Authenticator authenticator(access, table.lookup(), 8, table.log());
  CHECK(check(authenticator, credentials("alice", "file")).connack_code == connack_v311::kAccepted);
  CHECK(check(authenticator, credentials("alice", "database")).connack_code ==
        connack_v311::kBadUserNameOrPassword);
}

TEST_CASE("a malformed stored hash refuses its user and is logged with the name, not the hash") {
  UsersTable table;
  const std::string malformed = "$pbkdf2-sha512$12$00ff$abcdef0123";
  table.put("erin", malformed);
  const AccessControl access = with_database_users();
  Authenticator authenticator(access, table.lookup(), 8, table.log());

  const AccessControl::Outcome refused = check(authenticator, credentials("erin", "anything"));
  CHECK(refused.connack_code == connack_v311::kBadUserNameOrPassword);
  const auto warnings = table.fake().logs("mq.user_hash_malformed");
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].level == EMSNODE_LOG_WARNING);
  CHECK(warnings[0].field("username") == std::optional<std::string>("erin"));
  for (const auto& record : table.fake().logs()) {
    for (const auto& [name, value] : record.fields) {
      CHECK(value.find("abcdef0123") == std::string::npos);
    }
  }
}

TEST_CASE("a database that cannot be read refuses the CONNECT as server unavailable") {
  UsersTable table;
  table.make_unreachable();
  const AccessControl access = with_database_users();
  Authenticator authenticator(access, table.lookup(), 8, table.log());
  const AccessControl::Outcome refused = check(authenticator, credentials("carol", "x"));
  CHECK(refused.connack_code == connack_v311::kServerUnavailable);
  const auto failures = table.fake().logs("mq.authentication_failed");
  REQUIRE(failures.size() == 1);
  CHECK(failures[0].field("username") == std::optional<std::string>("carol"));
}
