// The broker's state machine, packet by packet, with the durable writes committed by hand.
#include "broker_harness.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using emsnode::plugins::mq::BrokerOptions;
using emsnode::plugins::mq::Connack;
using emsnode::plugins::mq::Connect;
using emsnode::plugins::mq::Disconnect;
using emsnode::plugins::mq::Pingreq;
using emsnode::plugins::mq::Pingresp;
using emsnode::plugins::mq::ProtocolVersion;
using emsnode::plugins::mq::Puback;
using emsnode::plugins::mq::Pubcomp;
using emsnode::plugins::mq::Publish;
using emsnode::plugins::mq::Pubrec;
using emsnode::plugins::mq::Pubrel;
using emsnode::plugins::mq::QoS;
using emsnode::plugins::mq::QueueFullPolicy;
using emsnode::plugins::mq::Unsuback;
using emsnode::plugins::mq::Unsubscribe;
using emsnode::plugins::mq::Will;
using emsnode::plugins::mq::testing::BrokerFixture;
using emsnode::plugins::mq::testing::MemoryStore;

namespace {

using Strings = std::vector<std::string>;

constexpr std::uint64_t kPublisher = 1;
constexpr std::uint64_t kSubscriber = 2;

Will will_of(const std::string& topic, const std::string& payload) {
  Will will;
  will.topic = topic;
  will.payload.assign(payload.begin(), payload.end());
  will.qos = QoS::kAtLeastOnce;
  return will;
}

}  // namespace

TEST_CASE("a QoS 1 message is acknowledged and delivered only once its batch has committed") {
  BrokerFixture f;
  f.connect(kPublisher, "pub");
  f.connect(kSubscriber, "sub");
  REQUIRE(f.subscribe(kSubscriber, "a/b", QoS::kAtLeastOnce).reason_codes ==
          std::vector<std::uint8_t>{1});

  f.publish(kPublisher, "a/b", "m1", QoS::kAtLeastOnce, 7);
  CHECK(f.io.take<Puback>(kPublisher).empty());
  CHECK(f.io.take<Publish>(kSubscriber).empty());

  f.committer.commit();
  const auto pubacks = f.io.take<Puback>(kPublisher);
  REQUIRE(pubacks.size() == 1);
  CHECK(pubacks[0].packet_id == 7);
  const auto delivered = f.io.take<Publish>(kSubscriber);
  REQUIRE(delivered.size() == 1);
  CHECK(delivered[0].qos == QoS::kAtLeastOnce);
  CHECK_FALSE(delivered[0].dup);
  CHECK(delivered[0].packet_id != 0);

  f.acknowledge<Puback>(kSubscriber, delivered[0].packet_id);
  f.committer.commit();
  CHECK(f.broker.queued("sub") == 0);
}

TEST_CASE("a message lost with its batch is never acknowledged") {
  BrokerFixture f;
  f.connect(kPublisher, "pub");
  f.connect(kSubscriber, "sub");
  f.subscribe(kSubscriber, "t", QoS::kAtLeastOnce);
  f.publish(kPublisher, "t", "lost", QoS::kAtLeastOnce, 1);
  f.committer.lose();  // the node was fenced
  CHECK(f.io.take<Puback>(kPublisher).empty());
  CHECK(f.io.take<Publish>(kSubscriber).empty());
}

TEST_CASE("QoS 2 goes PUBREC, PUBREL, PUBCOMP both ways and a resent PUBLISH is not routed twice") {
  BrokerFixture f;
  f.connect(kPublisher, "pub");
  f.connect(kSubscriber, "sub");
  f.subscribe(kSubscriber, "q2", QoS::kExactlyOnce);

  f.publish(kPublisher, "q2", "once", QoS::kExactlyOnce, 3);
  f.committer.commit();
  REQUIRE(f.io.take<Pubrec>(kPublisher).size() == 1);
  // The publisher did not see the PUBREC and sends again, with DUP.
  f.publish(kPublisher, "q2", "once", QoS::kExactlyOnce, 3, false, true);
  f.committer.commit();
  CHECK(f.io.take<Pubrec>(kPublisher).size() == 1);
  f.acknowledge<Pubrel>(kPublisher, 3);
  CHECK(f.io.take<Pubcomp>(kPublisher).empty());  // not before the release is committed
  f.committer.commit();
  REQUIRE(f.io.take<Pubcomp>(kPublisher).size() == 1);

  const auto delivered = f.io.take<Publish>(kSubscriber);
  REQUIRE(delivered.size() == 1);
  CHECK(delivered[0].qos == QoS::kExactlyOnce);
  f.acknowledge<Pubrec>(kSubscriber, delivered[0].packet_id);
  CHECK(f.io.take<Pubrel>(kSubscriber).empty());  // not before the release is committed
  f.committer.commit();
  const auto pubrels = f.io.take<Pubrel>(kSubscriber);
  REQUIRE(pubrels.size() == 1);
  CHECK(pubrels[0].packet_id == delivered[0].packet_id);
  f.acknowledge<Pubcomp>(kSubscriber, delivered[0].packet_id);
  f.committer.commit();
  CHECK(f.broker.queued("sub") == 0);

  // The same packet id, released, now names a new message.
  f.publish(kPublisher, "q2", "again", QoS::kExactlyOnce, 3);
  f.committer.commit();
  CHECK(f.payloads(kSubscriber) == Strings{"again"});
}

TEST_CASE("a persistent session gets its unacknowledged messages again, with DUP, on reconnect") {
  BrokerFixture f;
  f.connect(kSubscriber, "sub", false);
  f.subscribe(kSubscriber, "t/#", QoS::kAtLeastOnce);
  f.connect(kPublisher, "pub");
  f.publish(kPublisher, "t/1", "m1", QoS::kAtLeastOnce, 1);
  f.committer.commit();
  const auto first = f.io.take<Publish>(kSubscriber);
  REQUIRE(first.size() == 1);

  f.broker.on_connection_lost(kSubscriber);  // no PUBACK was sent
  f.publish(kPublisher, "t/2", "m2", QoS::kAtLeastOnce, 2);
  f.committer.commit();

  const Connack connack = f.connect(3, "sub", false);
  CHECK(connack.session_present);
  const auto again = f.io.take<Publish>(3);
  REQUIRE(again.size() == 2);
  CHECK(again[0].dup);
  CHECK(again[0].packet_id == first[0].packet_id);
  CHECK(std::string(again[1].payload.begin(), again[1].payload.end()) == "m2");
  CHECK_FALSE(again[1].dup);
}

TEST_CASE("a new active loaded from the store delivers what the old one acknowledged") {
  MemoryStore store;
  std::uint16_t unacknowledged_id = 0;
  {
    BrokerFixture old_active({}, &store);
    old_active.connect(kSubscriber, "sub-a", false);
    old_active.subscribe(kSubscriber, "orders/+", QoS::kAtLeastOnce);
    old_active.connect(3, "sub-b", false);
    old_active.subscribe(3, "orders/#", QoS::kExactlyOnce);
    old_active.broker.on_connection_lost(3);
    old_active.connect(kPublisher, "pub");
    for (int i = 1; i <= 3; ++i) {
      old_active.publish(kPublisher, "orders/new", "order-" + std::to_string(i), QoS::kAtLeastOnce,
                         static_cast<std::uint16_t>(i));
    }
    old_active.committer.commit();
    REQUIRE(old_active.io.take<Puback>(kPublisher).size() == 3);
    const auto sent = old_active.io.take<Publish>(kSubscriber);
    REQUIRE(sent.size() == 3);
    // sub-a acknowledges the first only, then the node dies.
    old_active.acknowledge<Puback>(kSubscriber, sent[0].packet_id);
    old_active.committer.commit();
    unacknowledged_id = sent[1].packet_id;
  }
  // Each message is stored once, whatever the number of sessions it waits for.
  CHECK(store.messages.size() == 3);
  CHECK(store.queue.size() == 5);

  BrokerOptions options;
  options.id_base = std::uint64_t{2} << 40;
  BrokerFixture new_active(options, &store);
  CHECK(new_active.connect(10, "sub-a", false).session_present);
  const auto redelivered = new_active.io.take<Publish>(10);
  REQUIRE(redelivered.size() == 2);
  CHECK(redelivered[0].packet_id == unacknowledged_id);
  CHECK(redelivered[0].dup);
  CHECK(new_active.connect(11, "sub-b", false).session_present);
  CHECK(new_active.payloads(11) == Strings{"order-1", "order-2", "order-3"});
}

TEST_CASE("a clean session discards what the client's earlier session left") {
  BrokerFixture f;
  f.connect(kSubscriber, "sub", false);
  f.subscribe(kSubscriber, "t", QoS::kAtLeastOnce);
  f.broker.on_connection_lost(kSubscriber);
  f.connect(kPublisher, "pub");
  f.publish(kPublisher, "t", "queued", QoS::kAtLeastOnce, 1);
  f.committer.commit();
  REQUIRE(f.broker.queued("sub") == 1);

  CHECK_FALSE(f.connect(3, "sub", true).session_present);
  CHECK(f.io.take<Publish>(3).empty());
  CHECK(f.store().sessions.empty());
  CHECK(f.store().queue.empty());
  CHECK(f.store().messages.empty());
  // And it no longer subscribes to anything.
  f.publish(kPublisher, "t", "later", QoS::kAtLeastOnce, 2);
  f.committer.commit();
  CHECK(f.io.take<Publish>(3).empty());

  // A clean session itself ends with its connection.
  f.io.take<Disconnect>(3);
  f.broker.on_packet(3, Disconnect{});
  CHECK_FALSE(f.broker.has_session("sub"));
}

TEST_CASE("a client id connecting again takes the session over and closes the old connection") {
  BrokerFixture f;
  f.connect(kSubscriber, "same", false);
  f.subscribe(kSubscriber, "x", QoS::kAtLeastOnce);
  CHECK(f.connect(3, "same", false).session_present);
  CHECK(f.io.closed.count(kSubscriber) == 1);
  CHECK(f.broker.connection_count() == 1);
  // The old connection's packets are ignored from now on; the new one receives.
  f.connect(kPublisher, "pub");
  f.publish(kPublisher, "x", "to-new", QoS::kAtLeastOnce, 1);
  f.committer.commit();
  CHECK(f.payloads(3) == Strings{"to-new"});
  CHECK(f.payloads(kSubscriber).empty());
}

TEST_CASE("the will is published when the connection is lost, and not after DISCONNECT") {
  BrokerFixture f;
  f.connect(kSubscriber, "watcher");
  f.subscribe(kSubscriber, "wills/#", QoS::kAtLeastOnce);

  f.connect(3, "dies", true, will_of("wills/dies", "gone"));
  f.broker.on_connection_lost(3);
  f.committer.commit();
  CHECK(f.payloads(kSubscriber) == Strings{"gone"});

  f.connect(4, "leaves", true, will_of("wills/leaves", "gone too"));
  f.broker.on_packet(4, Disconnect{});
  f.committer.commit();
  CHECK(f.payloads(kSubscriber).empty());
  CHECK(f.io.closed.count(4) == 1);
}

TEST_CASE("a retained message is sent on subscribe with RETAIN set, and an empty one clears it") {
  BrokerFixture f;
  f.connect(kPublisher, "pub");
  f.publish(kPublisher, "status/door", "open", QoS::kAtLeastOnce, 1, true);
  f.publish(kPublisher, "status/door", "closed", QoS::kAtMostOnce, 0, true);
  f.committer.commit();
  CHECK(f.store().retained.size() == 1);
  CHECK(f.store().messages.size() == 1);  // the replaced retained message is gone

  f.connect(kSubscriber, "late");
  f.subscribe(kSubscriber, "status/+", QoS::kAtLeastOnce);
  auto delivered = f.io.take<Publish>(kSubscriber);
  REQUIRE(delivered.size() == 1);
  CHECK(delivered[0].retain);
  CHECK(std::string(delivered[0].payload.begin(), delivered[0].payload.end()) == "closed");
  CHECK(delivered[0].qos == QoS::kAtMostOnce);  // as it was published

  // A live subscriber gets a retained publication with RETAIN 0.
  f.publish(kPublisher, "status/door", "", QoS::kAtLeastOnce, 2, true);
  f.committer.commit();
  delivered = f.io.take<Publish>(kSubscriber);
  REQUIRE(delivered.size() == 1);
  CHECK_FALSE(delivered[0].retain);
  CHECK(f.broker.retained_count() == 0);
  CHECK(f.store().retained.empty());
  CHECK(f.store().messages.empty());

  f.connect(3, "later");
  f.subscribe(3, "status/#", QoS::kAtLeastOnce);
  CHECK(f.io.take<Publish>(3).empty());
}

TEST_CASE("topics starting with $ are not matched by # or + at the first level") {
  BrokerFixture f;
  f.connect(kSubscriber, "all");
  f.subscribe(kSubscriber, "#", QoS::kAtMostOnce, 1);
  f.subscribe(kSubscriber, "+/info", QoS::kAtMostOnce, 2);
  f.connect(3, "sys");
  f.subscribe(3, "$SYS/#", QoS::kAtMostOnce);
  f.connect(kPublisher, "pub");
  f.publish(kPublisher, "$SYS/info", "system", QoS::kAtMostOnce);
  f.publish(kPublisher, "app/info", "app", QoS::kAtMostOnce);
  f.committer.commit();
  CHECK(f.payloads(kSubscriber) == Strings{"app"});
  CHECK(f.payloads(3) == Strings{"system"});
}

TEST_CASE("overlapping subscriptions deliver one copy at the highest QoS granted") {
  BrokerFixture f;
  f.connect(kSubscriber, "sub");
  f.subscribe(kSubscriber, "home/#", QoS::kAtMostOnce, 1);
  f.subscribe(kSubscriber, "home/+/temp", QoS::kExactlyOnce, 2);
  f.subscribe(kSubscriber, "home/kitchen/temp", QoS::kAtLeastOnce, 3);
  f.connect(kPublisher, "pub");
  f.publish(kPublisher, "home/kitchen/temp", "21", QoS::kExactlyOnce, 9);
  f.committer.commit();
  const auto delivered = f.io.take<Publish>(kSubscriber);
  REQUIRE(delivered.size() == 1);
  CHECK(delivered[0].qos == QoS::kExactlyOnce);

  // A publication at a lower QoS is delivered at that QoS.
  f.publish(kPublisher, "home/kitchen/temp", "22", QoS::kAtLeastOnce, 10);
  f.committer.commit();
  const auto lower = f.io.take<Publish>(kSubscriber);
  REQUIRE(lower.size() == 1);
  CHECK(lower[0].qos == QoS::kAtLeastOnce);
}

TEST_CASE("unsubscribing stops the deliveries and is acknowledged") {
  BrokerFixture f;
  f.connect(kSubscriber, "sub", false);
  f.subscribe(kSubscriber, "u/#", QoS::kAtLeastOnce);
  REQUIRE(f.store().subscriptions.size() == 1);
  Unsubscribe unsubscribe;
  unsubscribe.packet_id = 4;
  unsubscribe.filters = {"u/#"};
  f.broker.on_packet(kSubscriber, unsubscribe);
  f.committer.commit();
  const auto unsubacks = f.io.take<Unsuback>(kSubscriber);
  REQUIRE(unsubacks.size() == 1);
  CHECK(unsubacks[0].packet_id == 4);
  CHECK(f.store().subscriptions.empty());
  f.connect(kPublisher, "pub");
  f.publish(kPublisher, "u/1", "nobody", QoS::kAtLeastOnce, 1);
  f.committer.commit();
  CHECK(f.io.take<Publish>(kSubscriber).empty());
}

TEST_CASE("no more than max_inflight messages wait for an acknowledgement at once") {
  BrokerOptions options;
  options.max_inflight = 2;
  BrokerFixture f(options);
  f.connect(kSubscriber, "sub");
  f.subscribe(kSubscriber, "w", QoS::kAtLeastOnce);
  f.connect(kPublisher, "pub");
  for (std::uint16_t i = 1; i <= 5; ++i) {
    f.publish(kPublisher, "w", std::to_string(i), QoS::kAtLeastOnce, i);
  }
  f.committer.commit();
  auto sent = f.io.take<Publish>(kSubscriber);
  REQUIRE(sent.size() == 2);
  f.acknowledge<Puback>(kSubscriber, sent[0].packet_id);
  sent = f.io.take<Publish>(kSubscriber);
  REQUIRE(sent.size() == 1);
  CHECK(std::string(sent[0].payload.begin(), sent[0].payload.end()) == "3");
}

TEST_CASE("a full queue drops the new message, drops the oldest, or disconnects, as configured") {
  BrokerOptions options;
  options.max_queued_messages = 2;
  const auto fill = [](BrokerFixture& f) {
    f.connect(kSubscriber, "slow", false);
    f.subscribe(kSubscriber, "q", QoS::kAtLeastOnce);
    f.connect(kPublisher, "pub");
    for (std::uint16_t i = 1; i <= 3; ++i) {
      f.publish(kPublisher, "q", "m" + std::to_string(i), QoS::kAtLeastOnce, i);
      f.committer.commit();
    }
  };

  SECTION("drop_new keeps the first messages") {
    options.queue_full_policy = QueueFullPolicy::kDropNew;
    BrokerFixture f(options);
    fill(f);
    CHECK(f.payloads(kSubscriber) == Strings{"m1", "m2"});
    CHECK(f.io.take<Puback>(kPublisher).size() == 3);  // the publisher's message was taken
    CHECK(f.fake().metric("dropped_messages_total", {{"reason", "queue_full"}})->value == 1);
    CHECK(f.fake().last_log("mq.queue_full").has_value());
  }
  SECTION("drop_oldest keeps the latest of those not in flight") {
    options.queue_full_policy = QueueFullPolicy::kDropOldest;
    options.max_inflight = 1;
    BrokerFixture f(options);
    fill(f);
    auto sent = f.payloads(kSubscriber);
    CHECK(sent == Strings{"m1"});  // in flight: kept
    f.acknowledge<Puback>(kSubscriber, 1);
    CHECK(f.payloads(kSubscriber) == Strings{"m3"});
    CHECK(f.fake().metric("dropped_messages_total", {{"reason", "queue_full"}})->value == 1);
  }
  SECTION("disconnect closes the client that does not keep up") {
    options.queue_full_policy = QueueFullPolicy::kDisconnect;
    BrokerFixture f(options);
    f.connect(kSubscriber, "slow", false);
    f.subscribe(kSubscriber, "q", QoS::kAtLeastOnce);
    f.connect(kPublisher, "pub");
    // The client never acknowledges; with a window of 32 all are sent, and the queue holds 2.
    for (std::uint16_t i = 1; i <= 3; ++i) {
      f.publish(kPublisher, "q", "m" + std::to_string(i), QoS::kAtLeastOnce, i);
    }
    f.committer.commit();
    CHECK(f.io.closed.count(kSubscriber) == 1);
    CHECK(f.broker.has_session("slow"));  // persistent: it keeps what it had
    CHECK(f.broker.queued("slow") == 2);
  }
}

TEST_CASE("QoS 0 messages are not kept for an offline session nor piled on a slow connection") {
  BrokerOptions options;
  options.max_backlog_bytes = 100;
  BrokerFixture f(options);
  f.connect(kSubscriber, "sub", false);
  f.subscribe(kSubscriber, "z", QoS::kAtMostOnce);
  f.connect(kPublisher, "pub");
  f.io.backlogs[kSubscriber] = 1000;
  f.publish(kPublisher, "z", "dropped", QoS::kAtMostOnce);
  f.committer.commit();
  CHECK(f.payloads(kSubscriber).empty());
  CHECK(f.fake().metric("dropped_messages_total", {{"reason", "slow_consumer"}})->value == 1);
  f.broker.on_connection_lost(kSubscriber);
  f.publish(kPublisher, "z", "offline", QoS::kAtMostOnce);
  f.committer.commit();
  CHECK(f.broker.queued("sub") == 0);
}

TEST_CASE("PINGREQ is answered with PINGRESP") {
  BrokerFixture f;
  f.connect(kPublisher, "pinger");
  f.broker.on_packet(kPublisher, Pingreq{});
  CHECK(f.io.take<Pingresp>(kPublisher).size() == 1);
}

TEST_CASE("a client is refused when anonymous clients are not allowed") {
  BrokerOptions options;
  options.access.allow_anonymous = false;
  BrokerFixture f(options);
  const Connack connack = f.connect(kPublisher, "anon");
  CHECK(connack.reason_code == emsnode::plugins::mq::connack_v311::kNotAuthorized);
  CHECK(f.io.closed.count(kPublisher) == 1);
  CHECK_FALSE(f.broker.has_session("anon"));
}

TEST_CASE("demotion drops every connection without publishing wills") {
  BrokerFixture f;
  f.connect(kSubscriber, "watcher", false);
  f.subscribe(kSubscriber, "wills/#", QoS::kAtLeastOnce);
  f.broker.on_connection_lost(kSubscriber);
  f.connect(3, "client", true, will_of("wills/client", "gone"));
  f.broker.drop_all_connections();
  f.committer.commit();
  CHECK(f.io.closed.count(3) == 1);
  CHECK(f.broker.queued("watcher") == 0);
  CHECK(f.broker.connection_count() == 0);
}

TEST_CASE(
    "a new active sends PUBREL, not the message again, for a QoS 2 delivery already received") {
  MemoryStore store;
  std::uint16_t packet_id = 0;
  {
    BrokerFixture old_active({}, &store);
    old_active.connect(kSubscriber, "sub", false);
    old_active.subscribe(kSubscriber, "x", QoS::kExactlyOnce);
    old_active.connect(kPublisher, "pub");
    old_active.publish(kPublisher, "x", "exactly", QoS::kExactlyOnce, 1);
    old_active.committer.commit();
    const auto sent = old_active.io.take<Publish>(kSubscriber);
    REQUIRE(sent.size() == 1);
    packet_id = sent[0].packet_id;
    old_active.acknowledge<Pubrec>(kSubscriber, packet_id);
    old_active.committer.commit();
    REQUIRE(old_active.io.take<Pubrel>(kSubscriber).size() == 1);
  }
  BrokerOptions options;
  options.id_base = std::uint64_t{2} << 40;
  BrokerFixture new_active(options, &store);
  new_active.connect(5, "sub", false);
  CHECK(new_active.io.take<Publish>(5).empty());
  const auto pubrels = new_active.io.take<Pubrel>(5);
  REQUIRE(pubrels.size() == 1);
  CHECK(pubrels[0].packet_id == packet_id);
  new_active.acknowledge<Pubcomp>(5, packet_id);
  new_active.committer.commit();
  CHECK(store.queue.empty());
  CHECK(store.messages.empty());
}

TEST_CASE("a publisher is not read from while too many of its messages wait for their commit") {
  BrokerOptions options;
  options.max_uncommitted_publishes = 4;
  options.max_uncommitted_bytes = 1 << 20;
  BrokerFixture f(options);
  f.connect(kPublisher, "fast");
  for (std::uint16_t id = 1; id <= 3; ++id) f.publish(kPublisher, "t", "m", QoS::kAtLeastOnce, id);
  CHECK(f.broker.accepts_more(kPublisher));
  f.publish(kPublisher, "t", "m", QoS::kAtLeastOnce, 4);
  CHECK_FALSE(f.broker.accepts_more(kPublisher));
  CHECK(f.io.resumed.empty());
  f.committer.commit();
  CHECK(f.io.resumed == std::vector<std::uint64_t>{kPublisher});  // once, not once per message
  CHECK(f.broker.accepts_more(kPublisher));
  CHECK(f.io.take<Puback>(kPublisher).size() == 4);
}

TEST_CASE("a publisher of large messages is paused by bytes waiting for their commit") {
  BrokerOptions options;
  options.max_uncommitted_bytes = 1000;
  BrokerFixture f(options);
  f.connect(kPublisher, "big");
  f.publish(kPublisher, "t", std::string(600, 'x'), QoS::kAtMostOnce);
  CHECK(f.broker.accepts_more(kPublisher));
  f.publish(kPublisher, "t", std::string(600, 'x'), QoS::kAtMostOnce);
  CHECK_FALSE(f.broker.accepts_more(kPublisher));
  f.committer.commit();
  CHECK(f.io.resumed.size() == 1);
}

TEST_CASE("no PUBREL goes out before the release is committed, even to a resumed connection") {
  MemoryStore store;
  std::uint16_t packet_id = 0;
  {
    BrokerFixture old_active({}, &store);
    old_active.connect(kSubscriber, "sub", false);
    old_active.subscribe(kSubscriber, "q2", QoS::kExactlyOnce);
    old_active.connect(kPublisher, "pub");
    old_active.publish(kPublisher, "q2", "once", QoS::kExactlyOnce, 1);
    old_active.committer.commit();
    const auto sent = old_active.io.take<Publish>(kSubscriber);
    REQUIRE(sent.size() == 1);
    packet_id = sent[0].packet_id;
    old_active.acknowledge<Pubrec>(kSubscriber, packet_id);
    // The client comes back before the release is in the database.
    Connect again;
    again.version = ProtocolVersion::kV311;
    again.clean_start = false;
    again.client_id = "sub";
    old_active.broker.on_packet(3, again);
    old_active.io.take<Connack>(3);
    CHECK(old_active.io.take<Pubrel>(3).empty());
    old_active.committer.lose();  // and the node dies: the client never saw a PUBREL
  }
  // The new active resends the message under its id: the client, which still holds it
  // unreleased, takes it once.
  BrokerFixture new_active({}, &store);
  new_active.connect(10, "sub", false);
  const auto resent = new_active.io.take<Publish>(10);
  REQUIRE(resent.size() == 1);
  CHECK(resent[0].packet_id == packet_id);
  CHECK(resent[0].dup);

  // Once committed, the PUBREL reaches the connection the session has then.
  new_active.acknowledge<Pubrec>(10, packet_id);
  new_active.connect(11, "sub", false);
  CHECK(new_active.io.take<Pubrel>(10).empty());
  const auto pubrels = new_active.io.take<Pubrel>(11);
  REQUIRE(pubrels.size() == 1);
  CHECK(pubrels[0].packet_id == packet_id);
}
