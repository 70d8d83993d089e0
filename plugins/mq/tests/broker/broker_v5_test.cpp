// The broker's MQTT 5.0 behaviour, packet by packet: session expiry, will delay, reason codes,
// receive maximum, maximum packet size, message expiry, topic aliases, forwarded properties,
// shared subscriptions and subscription options, and what of it survives a failover.
#include "broker_harness.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using emsnode::plugins::mq::AclRules;
using emsnode::plugins::mq::Auth;
using emsnode::plugins::mq::BrokerOptions;
using emsnode::plugins::mq::Bytes;
using emsnode::plugins::mq::Connack;
using emsnode::plugins::mq::Connect;
using emsnode::plugins::mq::Disconnect;
using emsnode::plugins::mq::Properties;
using emsnode::plugins::mq::ProtocolVersion;
using emsnode::plugins::mq::Puback;
using emsnode::plugins::mq::Pubcomp;
using emsnode::plugins::mq::Publish;
using emsnode::plugins::mq::Pubrec;
using emsnode::plugins::mq::Pubrel;
using emsnode::plugins::mq::QoS;
using emsnode::plugins::mq::RetainHandling;
using emsnode::plugins::mq::Suback;
using emsnode::plugins::mq::Subscribe;
using emsnode::plugins::mq::SubscriptionOptions;
using emsnode::plugins::mq::TopicSubscription;
using emsnode::plugins::mq::Unsuback;
using emsnode::plugins::mq::Unsubscribe;
using emsnode::plugins::mq::Will;
using emsnode::plugins::mq::testing::BrokerFixture;
using emsnode::plugins::mq::testing::MemoryStore;
namespace reason = emsnode::plugins::mq::reason;

namespace {

using Strings = std::vector<std::string>;

constexpr std::uint64_t kPublisher = 1;
constexpr std::uint64_t kSubscriber = 2;

// The wall clock the broker reads, moved by the test.
struct TestClock {
  std::int64_t now = 1'800'000'000'000;
  void advance_seconds(int seconds) { now += std::int64_t{seconds} * 1000; }
};

BrokerOptions with_clock(TestClock& clock, BrokerOptions options = {}) {
  options.clock = [&clock] { return clock.now; };
  return options;
}

Bytes bytes(const std::string& text) {
  return Bytes(text.begin(), text.end());
}

std::string text(const Bytes& data) {
  return std::string(data.begin(), data.end());
}

// A 5.0 CONNECT's settings, in the order tests vary them.
struct V5Connect {
  V5Connect(std::string id, bool clean = true, std::optional<std::uint32_t> expiry = {},
            std::optional<std::uint16_t> receive = {}, std::optional<std::uint32_t> packet = {},
            std::optional<Will> with_will = {})
      : client_id(std::move(id)),
        clean_start(clean),
        session_expiry(expiry),
        receive_maximum(receive),
        maximum_packet_size(packet),
        will(std::move(with_will)) {}

  std::string client_id;
  bool clean_start;
  std::optional<std::uint32_t> session_expiry;
  std::optional<std::uint16_t> receive_maximum;
  std::optional<std::uint32_t> maximum_packet_size;
  std::optional<Will> will;
};

Connack connect_v5(BrokerFixture& f, std::uint64_t connection, const V5Connect& how) {
  Connect connect;
  connect.version = ProtocolVersion::kV5;
  connect.client_id = how.client_id;
  connect.clean_start = how.clean_start;
  connect.keep_alive = 60;
  connect.properties.session_expiry_interval = how.session_expiry;
  connect.properties.receive_maximum = how.receive_maximum;
  connect.properties.maximum_packet_size = how.maximum_packet_size;
  connect.will = how.will;
  f.broker.on_packet(connection, connect);
  f.committer.commit();
  auto connacks = f.io.take<Connack>(connection);
  return connacks.empty() ? Connack{false, 0xFF, {}} : connacks.back();
}

Suback subscribe_with(BrokerFixture& f, std::uint64_t connection, const std::string& filter,
                      SubscriptionOptions options, std::uint16_t packet_id = 1) {
  Subscribe subscribe;
  subscribe.packet_id = packet_id;
  subscribe.subscriptions.push_back(TopicSubscription{filter, options});
  f.broker.on_packet(connection, subscribe);
  f.committer.commit();
  auto subacks = f.io.take<Suback>(connection);
  return subacks.empty() ? Suback{} : subacks.back();
}

SubscriptionOptions at(QoS qos) {
  SubscriptionOptions options;
  options.max_qos = qos;
  return options;
}

Will will_of(const std::string& topic, const std::string& payload,
             std::optional<std::uint32_t> delay = std::nullopt) {
  Will will;
  will.topic = topic;
  will.payload = bytes(payload);
  will.qos = QoS::kAtLeastOnce;
  will.properties.will_delay_interval = delay;
  return will;
}

void publish(BrokerFixture& f, std::uint64_t connection, Publish packet) {
  f.broker.on_packet(connection, std::move(packet));
  f.committer.commit();
}

Publish message(const std::string& topic, const std::string& payload, QoS qos = QoS::kAtMostOnce,
                std::uint16_t packet_id = 0) {
  Publish p;
  p.topic = topic;
  p.payload = bytes(payload);
  p.qos = qos;
  p.packet_id = packet_id;
  return p;
}

Disconnect disconnect_with(std::uint8_t code) {
  Disconnect d;
  d.reason_code = code;
  return d;
}

}  // namespace

TEST_CASE("a 5.0 client is accepted with the server's limits in its CONNACK") {
  BrokerOptions options;
  options.receive_maximum = 50;
  options.topic_alias_maximum = 5;
  options.maximum_packet_size = 4096;
  BrokerFixture f(options);
  const Connack connack = connect_v5(f, kPublisher, {""});
  CHECK(connack.reason_code == reason::kSuccess);
  CHECK(connack.properties.receive_maximum == std::optional<std::uint16_t>(50));
  CHECK(connack.properties.topic_alias_maximum == std::optional<std::uint16_t>(5));
  CHECK(connack.properties.maximum_packet_size == std::optional<std::uint32_t>(4096));
  CHECK(connack.properties.subscription_identifier_available == std::optional<bool>(false));
  // An empty client id gets one of the server's, and is told which.
  REQUIRE(connack.properties.assigned_client_identifier);
  CHECK(f.broker.has_session(*connack.properties.assigned_client_identifier));
}

TEST_CASE("a 5.0 session outlives its connection for its expiry interval and no longer") {
  TestClock clock;
  BrokerFixture f(with_clock(clock));
  connect_v5(f, kSubscriber, {"sub", false, 10});
  subscribe_with(f, kSubscriber, "t", at(QoS::kAtLeastOnce));
  f.broker.on_packet(kSubscriber, Disconnect{});
  f.committer.commit();
  REQUIRE(f.broker.has_session("sub"));
  REQUIRE(f.store().sessions.count("sub") == 1);
  CHECK(f.store().sessions.at("sub").expires_at == clock.now + 10'000);

  connect_v5(f, kPublisher, {"pub"});
  publish(f, kPublisher, message("t", "kept", QoS::kAtLeastOnce, 1));
  clock.advance_seconds(9);
  f.broker.tick();
  f.committer.commit();
  CHECK(f.broker.queued("sub") == 1);

  clock.advance_seconds(2);
  f.broker.tick();
  f.committer.commit();
  CHECK_FALSE(f.broker.has_session("sub"));
  CHECK(f.store().sessions.empty());
  CHECK(f.store().queue.empty());
  CHECK(f.store().messages.empty());
}

TEST_CASE("a 5.0 session without an expiry interval ends with its connection") {
  BrokerFixture f;
  CHECK_FALSE(connect_v5(f, kSubscriber, {"sub", false}).session_present);
  subscribe_with(f, kSubscriber, "t", at(QoS::kAtLeastOnce));
  CHECK(f.store().sessions.empty());
  f.broker.on_connection_lost(kSubscriber);
  CHECK_FALSE(f.broker.has_session("sub"));
}

TEST_CASE("the session expiry counts on after a failover, from the time stored") {
  TestClock clock;
  MemoryStore store;
  {
    BrokerFixture old_active(with_clock(clock), &store);
    connect_v5(old_active, kSubscriber, {"offline", false, 30});
    subscribe_with(old_active, kSubscriber, "t", at(QoS::kAtLeastOnce));
    old_active.broker.on_packet(kSubscriber, Disconnect{});
    connect_v5(old_active, 3, {"connected", false, 30});
    old_active.committer.commit();
  }
  clock.advance_seconds(20);
  BrokerFixture new_active(with_clock(clock), &store);
  REQUIRE(new_active.broker.has_session("offline"));
  REQUIRE(new_active.broker.has_session("connected"));
  clock.advance_seconds(11);
  new_active.broker.tick();
  new_active.committer.commit();
  // The offline one ran out at 30 s; the connected one lost its connection at the failover.
  CHECK_FALSE(new_active.broker.has_session("offline"));
  CHECK(new_active.broker.has_session("connected"));
  clock.advance_seconds(20);
  new_active.broker.tick();
  CHECK_FALSE(new_active.broker.has_session("connected"));
}

TEST_CASE("a will with a delay is published after it, and not if the client comes back") {
  TestClock clock;
  BrokerFixture f(with_clock(clock));
  connect_v5(f, kSubscriber, {"watcher"});
  subscribe_with(f, kSubscriber, "wills/#", at(QoS::kAtLeastOnce));

  connect_v5(f, 3, {"late", false, 3600, {}, {}, will_of("wills/late", "gone", 5)});
  connect_v5(f, 4, {"back", false, 3600, {}, {}, will_of("wills/back", "gone", 5)});
  f.broker.on_connection_lost(3);
  f.broker.on_connection_lost(4);
  f.committer.commit();
  CHECK(f.payloads(kSubscriber).empty());
  CHECK(f.broker.pending_will_count() == 2);
  REQUIRE(f.store().wills.count("late") == 1);
  CHECK(f.store().wills.at("late").publish_at == clock.now + 5000);

  clock.advance_seconds(3);
  CHECK(connect_v5(f, 5, {"back", false, 3600}).session_present);
  clock.advance_seconds(3);
  f.broker.tick();
  f.committer.commit();
  CHECK(f.payloads(kSubscriber) == Strings{"gone"});
  CHECK(f.broker.pending_will_count() == 0);
  CHECK(f.store().wills.empty());
}

TEST_CASE("a will waits no longer than its session lives") {
  TestClock clock;
  BrokerFixture f(with_clock(clock));
  connect_v5(f, kSubscriber, {"watcher"});
  subscribe_with(f, kSubscriber, "wills/#", at(QoS::kAtLeastOnce));
  connect_v5(f, 3, {"short", false, 2, {}, {}, will_of("wills/short", "gone", 600)});
  f.broker.on_connection_lost(3);
  clock.advance_seconds(2);
  f.broker.tick();
  f.committer.commit();
  CHECK(f.payloads(kSubscriber) == Strings{"gone"});
  CHECK_FALSE(f.broker.has_session("short"));
}

TEST_CASE("after a failover the will of a client that does not come back is published") {
  TestClock clock;
  MemoryStore store;
  {
    BrokerFixture old_active(with_clock(clock), &store);
    connect_v5(old_active, kSubscriber, {"watcher", false, 3600});
    subscribe_with(old_active, kSubscriber, "wills/#", at(QoS::kAtLeastOnce));
    old_active.connect(3, "dead-311", true, will_of("wills/dead", "gone"));
    old_active.connect(4, "alive-311", true, will_of("wills/alive", "gone"));
    REQUIRE(store.wills.size() == 2);
    old_active.broker.drop_all_connections();  // the node stops being active
    old_active.committer.commit();
    CHECK(old_active.payloads(kSubscriber).empty());
  }
  BrokerOptions options = with_clock(clock);
  options.failover_will_delay = 30;
  BrokerFixture new_active(options, &store);
  CHECK(new_active.broker.pending_will_count() == 2);
  connect_v5(new_active, 10, {"watcher", false, 3600});
  new_active.connect(11, "alive-311", true);  // back, without a will this time
  clock.advance_seconds(29);
  new_active.broker.tick();
  new_active.committer.commit();
  CHECK(new_active.payloads(10).empty());
  clock.advance_seconds(2);
  new_active.broker.tick();
  new_active.committer.commit();
  CHECK(new_active.payloads(10) == Strings{"gone"});
  CHECK(store.wills.empty());
}

TEST_CASE("DISCONNECT discards the will, unless a 5.0 client asks for it with 0x04") {
  BrokerFixture f;
  connect_v5(f, kSubscriber, {"watcher"});
  subscribe_with(f, kSubscriber, "wills/#", at(QoS::kAtLeastOnce));
  connect_v5(f, 3, {"quiet", true, {}, {}, {}, will_of("wills/quiet", "no")});
  connect_v5(f, 4, {"loud", true, {}, {}, {}, will_of("wills/loud", "yes")});
  REQUIRE(f.store().wills.size() == 2);
  f.broker.on_packet(3, Disconnect{});
  f.broker.on_packet(4, disconnect_with(reason::kDisconnectWithWill));
  f.committer.commit();
  CHECK(f.payloads(kSubscriber) == Strings{"yes"});
  CHECK(f.store().wills.empty());
}

TEST_CASE("a session expiry set at DISCONNECT is kept, but not after connecting with none") {
  BrokerFixture f;
  connect_v5(f, 3, {"extends", false, 10});
  Disconnect longer;
  longer.properties.session_expiry_interval = 3600;
  f.broker.on_packet(3, longer);
  f.committer.commit();
  REQUIRE(f.store().sessions.count("extends") == 1);
  CHECK(f.store().sessions.at("extends").expiry_interval == std::optional<std::uint32_t>(3600));

  connect_v5(f, 4, {"none", false});
  f.broker.on_packet(4, longer);
  const auto told = f.io.take<Disconnect>(4);
  REQUIRE(told.size() == 1);
  CHECK(told[0].reason_code == reason::kProtocolError);
  CHECK(f.io.closed.count(4) == 1);
}

TEST_CASE("PUBACK says when nobody subscribed, and when the publisher may not publish there") {
  BrokerOptions options;
  options.access.acl = AclRules::parse("topic write open/#\n", "acl");
  BrokerFixture f(options);
  connect_v5(f, kPublisher, {"pub"});
  publish(f, kPublisher, message("open/a", "x", QoS::kAtLeastOnce, 1));
  publish(f, kPublisher, message("closed/a", "x", QoS::kAtLeastOnce, 2));
  publish(f, kPublisher, message("closed/b", "x", QoS::kExactlyOnce, 3));
  const auto pubacks = f.io.take<Puback>(kPublisher);
  REQUIRE(pubacks.size() == 2);
  CHECK(pubacks[0].reason_code == reason::kNoMatchingSubscribers);
  CHECK(pubacks[1].reason_code == reason::kNotAuthorized);
  const auto pubrecs = f.io.take<Pubrec>(kPublisher);
  REQUIRE(pubrecs.size() == 1);
  CHECK(pubrecs[0].reason_code == reason::kNotAuthorized);
  // A refused QoS 2 message ends there: its packet id is free at once.
  f.broker.on_packet(kPublisher, Pubrel{3, reason::kSuccess, {}});
  f.committer.commit();
  const auto pubcomps = f.io.take<Pubcomp>(kPublisher);
  REQUIRE(pubcomps.size() == 1);
  CHECK(pubcomps[0].reason_code == reason::kPacketIdentifierNotFound);
}

TEST_CASE("a topic alias names its topic for later messages, and one out of range ends the link") {
  BrokerOptions options;
  options.topic_alias_maximum = 2;
  BrokerFixture f(options);
  connect_v5(f, kSubscriber, {"sub"});
  subscribe_with(f, kSubscriber, "long/topic/name", at(QoS::kAtMostOnce));
  connect_v5(f, kPublisher, {"pub"});
  Publish first = message("long/topic/name", "1");
  first.properties.topic_alias = 2;
  publish(f, kPublisher, first);
  Publish second = message("", "2");
  second.properties.topic_alias = 2;
  publish(f, kPublisher, second);
  CHECK(f.payloads(kSubscriber) == Strings{"1", "2"});

  Publish unknown = message("", "3");
  unknown.properties.topic_alias = 1;
  publish(f, kPublisher, unknown);
  auto told = f.io.take<Disconnect>(kPublisher);
  REQUIRE(told.size() == 1);
  CHECK(told[0].reason_code == reason::kProtocolError);

  connect_v5(f, 3, {"pub2"});
  Publish over = message("t", "4");
  over.properties.topic_alias = 3;
  publish(f, 3, over);
  told = f.io.take<Disconnect>(3);
  REQUIRE(told.size() == 1);
  CHECK(told[0].reason_code == reason::kTopicAliasInvalid);
}

TEST_CASE("a 5.0 client that sends more than the receive maximum is disconnected with 0x93") {
  BrokerOptions options;
  options.receive_maximum = 2;
  BrokerFixture f(options);
  connect_v5(f, kPublisher, {"pub"});
  // Not committed yet: three unacknowledged at once.
  f.broker.on_packet(kPublisher, message("t", "1", QoS::kAtLeastOnce, 1));
  f.broker.on_packet(kPublisher, message("t", "2", QoS::kExactlyOnce, 2));
  CHECK(f.io.take<Disconnect>(kPublisher).empty());
  f.broker.on_packet(kPublisher, message("t", "3", QoS::kAtLeastOnce, 3));
  const auto told = f.io.take<Disconnect>(kPublisher);
  REQUIRE(told.size() == 1);
  CHECK(told[0].reason_code == reason::kReceiveMaximumExceeded);
}

TEST_CASE("the server keeps to the client's receive maximum") {
  BrokerFixture f;
  connect_v5(f, kSubscriber, {"sub", true, {}, 2});
  subscribe_with(f, kSubscriber, "t", at(QoS::kAtLeastOnce));
  connect_v5(f, kPublisher, {"pub"});
  for (std::uint16_t i = 1; i <= 5; ++i) {
    publish(f, kPublisher, message("t", std::to_string(i), QoS::kAtLeastOnce, i));
  }
  const auto sent = f.io.take<Publish>(kSubscriber);
  REQUIRE(sent.size() == 2);
  f.broker.on_packet(kSubscriber, Puback{sent[0].packet_id, reason::kSuccess, {}});
  f.committer.commit();
  CHECK(f.payloads(kSubscriber) == Strings{"3"});
}

TEST_CASE("a message over the client's maximum packet size is dropped for that client only") {
  BrokerFixture f;
  connect_v5(f, kSubscriber, {"small", true, {}, {}, 64});
  subscribe_with(f, kSubscriber, "t", at(QoS::kAtLeastOnce));
  connect_v5(f, 3, {"large"});
  subscribe_with(f, 3, "t", at(QoS::kAtLeastOnce));
  connect_v5(f, kPublisher, {"pub"});
  publish(f, kPublisher, message("t", std::string(100, 'x'), QoS::kAtLeastOnce, 1));
  publish(f, kPublisher, message("t", "fits", QoS::kAtLeastOnce, 2));
  CHECK(f.payloads(kSubscriber) == Strings{"fits"});
  CHECK(f.payloads(3).size() == 2);
  CHECK(f.broker.queued("small") == 1);  // "fits", in flight; the large one is gone
}

TEST_CASE("an expired message is not delivered, and a forwarded one carries what is left") {
  TestClock clock;
  BrokerFixture f(with_clock(clock));
  connect_v5(f, kSubscriber, {"sub", false, 3600});
  subscribe_with(f, kSubscriber, "t", at(QoS::kAtLeastOnce));
  f.broker.on_connection_lost(kSubscriber);
  connect_v5(f, kPublisher, {"pub"});
  Publish short_lived = message("t", "short", QoS::kAtLeastOnce, 1);
  short_lived.properties.message_expiry_interval = 5;
  Publish long_lived = message("t", "long", QoS::kAtLeastOnce, 2);
  long_lived.properties.message_expiry_interval = 100;
  publish(f, kPublisher, short_lived);
  publish(f, kPublisher, long_lived);
  clock.advance_seconds(10);
  connect_v5(f, 3, {"sub", false, 3600});
  const auto sent = f.io.take<Publish>(3);
  REQUIRE(sent.size() == 1);
  CHECK(text(sent[0].payload) == "long");
  CHECK(sent[0].properties.message_expiry_interval == std::optional<std::uint32_t>(90));
}

TEST_CASE("an expired retained message is removed") {
  TestClock clock;
  BrokerFixture f(with_clock(clock));
  connect_v5(f, kPublisher, {"pub"});
  Publish policy = message("policy/a", "v1", QoS::kAtLeastOnce, 1);
  policy.retain = true;
  policy.properties.message_expiry_interval = 5;
  publish(f, kPublisher, policy);
  REQUIRE(f.store().retained.size() == 1);
  clock.advance_seconds(6);
  f.broker.tick();
  f.committer.commit();
  CHECK(f.broker.retained_count() == 0);
  CHECK(f.store().retained.empty());
  CHECK(f.store().messages.empty());
}

TEST_CASE("request and response properties reach the subscriber unchanged, after a failover too") {
  MemoryStore store;
  Properties asked;
  asked.response_topic = "replies/42";
  asked.correlation_data = bytes("req-42");
  asked.content_type = "application/json";
  asked.payload_format_indicator = true;
  asked.user_properties = {{"trace", "abc"}, {"trace", "def"}};
  {
    BrokerFixture old_active({}, &store);
    connect_v5(old_active, kSubscriber, {"worker", false, 3600});
    subscribe_with(old_active, kSubscriber, "requests/#", at(QoS::kAtLeastOnce));
    connect_v5(old_active, kPublisher, {"pub"});
    Publish request = message("requests/a", "{}", QoS::kAtLeastOnce, 1);
    request.properties = asked;
    publish(old_active, kPublisher, request);
    const auto sent = old_active.io.take<Publish>(kSubscriber);
    REQUIRE(sent.size() == 1);
    CHECK(sent[0].properties == asked);
  }
  BrokerFixture new_active({}, &store);
  connect_v5(new_active, 10, {"worker", false, 3600});
  const auto again = new_active.io.take<Publish>(10);
  REQUIRE(again.size() == 1);
  CHECK(again[0].dup);
  CHECK(again[0].properties == asked);
}

TEST_CASE("a 3.1.1 subscriber gets a 5.0 message without its properties") {
  BrokerFixture f;
  f.connect(kSubscriber, "old");
  f.subscribe(kSubscriber, "t", QoS::kAtMostOnce);
  connect_v5(f, kPublisher, {"pub"});
  Publish p = message("t", "x");
  p.properties.user_properties = {{"k", "v"}};
  publish(f, kPublisher, p);
  const auto sent = f.io.take<Publish>(kSubscriber);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].properties.empty());
}

TEST_CASE("a shared subscription gives each message to one member, in turn") {
  BrokerFixture f;
  for (std::uint64_t c : {3, 4, 5}) {
    connect_v5(f, c, {"worker-" + std::to_string(c)});
    subscribe_with(f, c, "$share/workers/jobs/+", at(QoS::kAtLeastOnce));
  }
  connect_v5(f, kSubscriber, {"auditor"});
  subscribe_with(f, kSubscriber, "jobs/#", at(QoS::kAtMostOnce));
  connect_v5(f, kPublisher, {"pub"});
  for (int i = 0; i < 6; ++i) {
    publish(f, kPublisher,
            message("jobs/x", "job-" + std::to_string(i), QoS::kAtLeastOnce,
                    static_cast<std::uint16_t>(i + 1)));
  }
  CHECK(f.payloads(kSubscriber).size() == 6);  // a plain subscription still gets every one
  for (std::uint64_t c : {3, 4, 5}) CHECK(f.payloads(c).size() == 2);
}

TEST_CASE("a shared subscription prefers connected members, and keeps messages for offline ones") {
  BrokerFixture f;
  connect_v5(f, 3, {"online"});
  subscribe_with(f, 3, "$share/g/t", at(QoS::kAtLeastOnce));
  connect_v5(f, 4, {"offline", false, 3600});
  subscribe_with(f, 4, "$share/g/t", at(QoS::kAtLeastOnce));
  f.broker.on_connection_lost(4);
  connect_v5(f, kPublisher, {"pub"});
  publish(f, kPublisher, message("t", "a", QoS::kAtLeastOnce, 1));
  publish(f, kPublisher, message("t", "b", QoS::kAtLeastOnce, 2));
  CHECK(f.payloads(3) == Strings{"a", "b"});

  f.broker.on_packet(3, Disconnect{});  // the only connected member leaves
  publish(f, kPublisher, message("t", "c", QoS::kAtLeastOnce, 3));
  CHECK(f.broker.queued("offline") == 1);
  connect_v5(f, 5, {"offline", false, 3600});
  CHECK(f.payloads(5) == Strings{"c"});
}

TEST_CASE("no local, retain as published and retain handling do what the subscriber asked") {
  BrokerFixture f;
  connect_v5(f, kPublisher, {"pub"});
  Publish retained = message("r/a", "kept", QoS::kAtMostOnce);
  retained.retain = true;
  publish(f, kPublisher, retained);

  connect_v5(f, kSubscriber, {"sub"});
  SubscriptionOptions no_retained = at(QoS::kAtMostOnce);
  no_retained.retain_handling = RetainHandling::kDoNotSend;
  subscribe_with(f, kSubscriber, "r/#", no_retained);
  CHECK(f.payloads(kSubscriber).empty());

  SubscriptionOptions only_new = at(QoS::kAtMostOnce);
  only_new.retain_handling = RetainHandling::kSendOnNewSubscribe;
  only_new.retain_as_published = true;
  subscribe_with(f, kSubscriber, "r/a", only_new);
  auto sent = f.io.take<Publish>(kSubscriber);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].retain);
  subscribe_with(f, kSubscriber, "r/a", only_new);  // exists now: nothing sent
  CHECK(f.payloads(kSubscriber).empty());

  // Retain as published keeps RETAIN on a live message; without it the flag is cleared.
  publish(f, kPublisher, retained);
  sent = f.io.take<Publish>(kSubscriber);
  REQUIRE(sent.size() == 1);  // one delivery for both matching subscriptions
  CHECK(sent[0].retain);

  SubscriptionOptions no_local = at(QoS::kAtMostOnce);
  no_local.no_local = true;
  subscribe_with(f, kPublisher, "echo", no_local);
  publish(f, kPublisher, message("echo", "mine"));
  CHECK(f.payloads(kPublisher).empty());
}

TEST_CASE("SUBACK and UNSUBACK carry a 5.0 reason per filter") {
  BrokerOptions options;
  options.access.acl = AclRules::parse("topic read allowed/#\n", "acl");
  BrokerFixture f(options);
  connect_v5(f, kSubscriber, {"sub"});
  Subscribe subscribe;
  subscribe.packet_id = 1;
  subscribe.subscriptions = {{"allowed/x", at(QoS::kExactlyOnce)},
                             {"denied/x", at(QoS::kAtMostOnce)},
                             {"bad/#/x", at(QoS::kAtMostOnce)},
                             {"$share/g/allowed/y", at(QoS::kAtLeastOnce)}};
  f.broker.on_packet(kSubscriber, subscribe);
  f.committer.commit();
  const auto subacks = f.io.take<Suback>(kSubscriber);
  REQUIRE(subacks.size() == 1);
  CHECK(subacks[0].reason_codes ==
        std::vector<std::uint8_t>{reason::kGrantedQos2, reason::kNotAuthorized,
                                  reason::kTopicFilterInvalid, reason::kGrantedQos1});
  Unsubscribe unsubscribe;
  unsubscribe.packet_id = 2;
  unsubscribe.filters = {"allowed/x", "never/subscribed"};
  f.broker.on_packet(kSubscriber, unsubscribe);
  f.committer.commit();
  const auto unsubacks = f.io.take<Unsuback>(kSubscriber);
  REQUIRE(unsubacks.size() == 1);
  CHECK(unsubacks[0].reason_codes ==
        std::vector<std::uint8_t>{reason::kSuccess, reason::kNoSubscriptionExisted});
}

TEST_CASE("a subscription identifier, AUTH, or an authentication method is refused") {
  BrokerFixture f;
  connect_v5(f, kSubscriber, {"sub"});
  Subscribe subscribe;
  subscribe.packet_id = 1;
  subscribe.properties.subscription_identifiers = {7};
  subscribe.subscriptions = {{"t", at(QoS::kAtMostOnce)}};
  f.broker.on_packet(kSubscriber, subscribe);
  auto told = f.io.take<Disconnect>(kSubscriber);
  REQUIRE(told.size() == 1);
  CHECK(told[0].reason_code == reason::kSubscriptionIdentifiersNotSupported);

  connect_v5(f, 3, {"auth"});
  f.broker.on_packet(3, Auth{});
  told = f.io.take<Disconnect>(3);
  REQUIRE(told.size() == 1);
  CHECK(told[0].reason_code == reason::kProtocolError);

  Connect connect;
  connect.version = ProtocolVersion::kV5;
  connect.client_id = "scram";
  connect.properties.authentication_method = "SCRAM-SHA-1";
  f.broker.on_packet(4, connect);
  const auto connacks = f.io.take<Connack>(4);
  REQUIRE(connacks.size() == 1);
  CHECK(connacks[0].reason_code == reason::kBadAuthenticationMethod);
  CHECK(f.io.closed.count(4) == 1);
}

TEST_CASE("a 5.0 client whose session is taken over is told so") {
  BrokerFixture f;
  connect_v5(f, 3, {"same", false, 3600});
  connect_v5(f, 4, {"same", false, 3600});
  const auto told = f.io.take<Disconnect>(3);
  REQUIRE(told.size() == 1);
  CHECK(told[0].reason_code == reason::kSessionTakenOver);
}

TEST_CASE("a refused 5.0 CONNECT gets the 5.0 reason code") {
  BrokerOptions options;
  options.access.allow_anonymous = false;
  BrokerFixture f(options);
  CHECK(connect_v5(f, 3, {"anon"}).reason_code == reason::kNotAuthorized);
}

TEST_CASE("the longest session expiry is the server's, and the CONNACK says so") {
  TestClock clock;
  BrokerOptions options = with_clock(clock);
  options.max_session_expiry = 60;
  BrokerFixture f(options);
  const Connack connack = connect_v5(f, 3, {"forever", false, 0xFFFFFFFF});
  CHECK(connack.properties.session_expiry_interval == std::optional<std::uint32_t>(60));
  // A 3.1.1 persistent session is bounded alike.
  f.connect(4, "old", false);
  f.broker.on_connection_lost(3);
  f.broker.on_connection_lost(4);
  clock.advance_seconds(61);
  f.broker.tick();
  CHECK_FALSE(f.broker.has_session("forever"));
  CHECK_FALSE(f.broker.has_session("old"));
}
