// Users, passwords and topic ACLs: the files, and what the broker does with them.
#include "access.hpp"
#include "broker_harness.hpp"

#include <catch2/catch.hpp>

#include <string>

using emsnode::plugins::mq::AccessFileError;
using emsnode::plugins::mq::AclRules;
using emsnode::plugins::mq::BrokerOptions;
using emsnode::plugins::mq::Bytes;
using emsnode::plugins::mq::Connack;
using emsnode::plugins::mq::Connect;
using emsnode::plugins::mq::filter_covers;
using emsnode::plugins::mq::hash_password;
using emsnode::plugins::mq::PasswordFile;
using emsnode::plugins::mq::ProtocolVersion;
using emsnode::plugins::mq::Puback;
using emsnode::plugins::mq::QoS;
using emsnode::plugins::mq::testing::BrokerFixture;
namespace connack_v311 = emsnode::plugins::mq::connack_v311;

namespace {

constexpr std::uint64_t kClient = 1;
constexpr std::uint64_t kOther = 2;

Connack connect_as(BrokerFixture& f, std::uint64_t connection, const std::string& client_id,
                   std::optional<std::string> username, std::optional<std::string> password,
                   const std::optional<std::string>& certificate_name = std::nullopt) {
  Connect connect;
  connect.version = ProtocolVersion::kV311;
  connect.client_id = client_id;
  connect.username = std::move(username);
  if (password) connect.password = Bytes(password->begin(), password->end());
  f.broker.on_packet(connection, connect, certificate_name);
  f.committer.commit();
  auto connacks = f.io.take<Connack>(connection);
  return connacks.empty() ? Connack{false, 0xFF, {}} : connacks.back();
}

BrokerOptions with_users() {
  BrokerOptions options;
  options.access.allow_anonymous = false;
  options.access.passwords =
      PasswordFile::parse("# users\nalice:" + hash_password("wonderland", 1000) +
                              "\nbob:" + hash_password("b", 1000) + "\n",
                          "passwords");
  return options;
}

}  // namespace

TEST_CASE("a password is accepted against its PBKDF2 hash and nothing else is") {
  const PasswordFile file =
      PasswordFile::parse("alice:" + hash_password("secret", 1000) + "\n", "pw");
  CHECK(file.verify("alice", "secret"));
  CHECK_FALSE(file.verify("alice", "Secret"));
  CHECK_FALSE(file.verify("alice", ""));
  CHECK_FALSE(file.verify("mallory", "secret"));
}

TEST_CASE("a malformed password or ACL file is refused naming its line") {
  CHECK_THROWS_WITH(PasswordFile::parse("\nalice:plain\n", "pw"), Catch::Contains("pw:2:"));
  CHECK_THROWS_WITH(PasswordFile::parse("alice:$pbkdf2-sha512$10$00$00\n", "pw"),
                    Catch::Contains("iteration count"));
  CHECK_THROWS_AS(AclRules::parse("topic read a/#/b\n", "acl"), AccessFileError);
  CHECK_THROWS_WITH(AclRules::parse("# x\nallow all\n", "acl"), Catch::Contains("acl:2:"));
}

TEST_CASE("good credentials connect, a wrong password gets 0x04, no credentials get 0x05") {
  BrokerFixture f(with_users());
  CHECK(connect_as(f, kClient, "c1", "alice", "wonderland").reason_code == connack_v311::kAccepted);
  CHECK(connect_as(f, kOther, "c2", "alice", "hunter2").reason_code ==
        connack_v311::kBadUserNameOrPassword);
  CHECK(f.io.closed.count(kOther) == 1);
  CHECK(connect_as(f, 3, "c3", "alice", std::nullopt).reason_code ==
        connack_v311::kBadUserNameOrPassword);
  CHECK(connect_as(f, 4, "c4", std::nullopt, std::nullopt).reason_code ==
        connack_v311::kNotAuthorized);
  CHECK(connect_as(f, 5, "c5", "nobody", "x").reason_code == connack_v311::kBadUserNameOrPassword);
  const auto refusals = f.fake().logs("mq.connect_refused");
  REQUIRE(refusals.size() == 4);
  CHECK(refusals[0].field("username") == std::optional<std::string>("alice"));
  for (const auto& record : f.fake().logs()) {
    for (const auto& [name, value] : record.fields) {
      CHECK(value.find("hunter2") == std::string::npos);  // the password is never logged
    }
  }
}

TEST_CASE("a client certificate's common name serves as the user name when configured") {
  BrokerOptions options;
  options.access.allow_anonymous = false;
  options.access.use_identity_as_username = true;
  options.access.acl = AclRules::parse("user device-7\ntopic write devices/7/#\n", "acl");
  BrokerFixture f(options);
  CHECK(connect_as(f, kClient, "c1", std::nullopt, std::nullopt, "device-7").reason_code ==
        connack_v311::kAccepted);
  CHECK(connect_as(f, kOther, "c2", std::nullopt, std::nullopt).reason_code ==
        connack_v311::kNotAuthorized);
}

TEST_CASE("a rule covers a subscription only when it matches every topic the filter matches") {
  CHECK(filter_covers("a/#", "a/b/+"));
  CHECK(filter_covers("a/+/c", "a/x/c"));
  CHECK(filter_covers("#", "#"));
  CHECK_FALSE(filter_covers("a/+", "a/#"));
  CHECK_FALSE(filter_covers("a/b", "a/+"));
  CHECK_FALSE(filter_covers("a/b", "a/b/c"));
  CHECK(filter_covers("a/+/c", "a/+/c"));
}

TEST_CASE("ACL rules apply per user, to anonymous clients before any user line, and by pattern") {
  const AclRules acl = AclRules::parse(
      "topic read public/#\n"
      "pattern readwrite clients/%c/#\n"
      "pattern write users/%u/out\n"
      "user alice\n"
      "topic readwrite alice/#\n",
      "acl");
  const std::optional<std::string> alice = "alice";
  const std::optional<std::string> anonymous;
  CHECK(acl.may_read("c", anonymous, "public/news"));
  CHECK_FALSE(acl.may_read("c", alice, "public/news"));  // alice has her own rules
  CHECK_FALSE(acl.may_write("c", anonymous, "public/news"));
  CHECK(acl.may_write("c", alice, "alice/x"));
  CHECK_FALSE(acl.may_write("c", anonymous, "alice/x"));
  CHECK(acl.may_write("dev1", anonymous, "clients/dev1/temp"));
  CHECK(acl.may_read("dev1", alice, "clients/dev1/#"));
  CHECK_FALSE(acl.may_write("dev1", anonymous, "clients/dev2/temp"));
  CHECK(acl.may_write("c", alice, "users/alice/out"));
  CHECK_FALSE(acl.may_read("c", alice, "users/alice/out"));
  CHECK_FALSE(acl.may_write("c", anonymous, "users//out"));  // no user name: no %u rule
  // A client id that is a wildcard must not widen a pattern.
  CHECK_FALSE(acl.may_read("+", anonymous, "clients/+/x"));
}

TEST_CASE(
    "a publish to a denied topic is acknowledged but not delivered; a denied subscribe "
    "gets 0x80") {
  BrokerOptions options = with_users();
  options.access.acl = AclRules::parse(
      "user alice\ntopic readwrite open/#\ntopic read closed/#\n"
      "user bob\ntopic read #\n",
      "acl");
  BrokerFixture f(options);
  REQUIRE(connect_as(f, kOther, "reader", "bob", "b").reason_code == connack_v311::kAccepted);
  CHECK(f.subscribe(kOther, "#", QoS::kAtLeastOnce).reason_codes == std::vector<std::uint8_t>{1});
  REQUIRE(connect_as(f, kClient, "writer", "alice", "wonderland").reason_code ==
          connack_v311::kAccepted);
  CHECK(f.subscribe(kClient, "secret/#", QoS::kAtLeastOnce).reason_codes ==
        std::vector<std::uint8_t>{0x80});
  f.publish(kClient, "closed/x", "denied", QoS::kAtLeastOnce, 7);
  f.publish(kClient, "open/x", "allowed", QoS::kAtLeastOnce, 8);
  f.committer.commit();
  const auto pubacks = f.io.take<Puback>(kClient);
  REQUIRE(pubacks.size() == 2);
  CHECK(pubacks[0].packet_id == 7);
  CHECK(f.payloads(kOther) == std::vector<std::string>{"allowed"});
}

TEST_CASE("a persistent session resumed by another user delivers only what that user may read") {
  BrokerOptions options = with_users();
  options.access.acl = AclRules::parse("user bob\ntopic readwrite users/#\n", "acl");
  BrokerFixture f(options);
  Connect connect;
  connect.version = ProtocolVersion::kV311;
  connect.clean_start = false;
  connect.client_id = "shared";
  connect.username = "bob";
  connect.password = Bytes{'b'};
  f.broker.on_packet(kClient, connect);
  f.committer.commit();
  REQUIRE(f.subscribe(kClient, "users/#", QoS::kAtLeastOnce).reason_codes ==
          std::vector<std::uint8_t>{1});
  f.broker.on_connection_lost(kClient);
  f.committer.commit();
  REQUIRE(connect_as(f, kOther, "writer", "bob", "b").reason_code == connack_v311::kAccepted);
  f.publish(kOther, "users/x", "for bob", QoS::kAtLeastOnce, 1);
  f.committer.commit();
  REQUIRE(f.broker.queued("shared") == 1);

  connect.username = "alice";
  connect.password = Bytes{'w', 'o', 'n', 'd', 'e', 'r', 'l', 'a', 'n', 'd'};
  f.broker.on_packet(3, connect);
  f.committer.commit();
  CHECK(f.payloads(3).empty());
  CHECK(f.broker.queued("shared") == 0);
  CHECK(f.fake().metric("dropped_messages_total", {{"reason", "not_authorized"}})->value == 1);
}
