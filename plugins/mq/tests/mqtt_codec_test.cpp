// The codec's behaviour: round trips of every packet in both versions, every rule the decoder
// enforces (one test each), and decoding in pieces.
#include "codec_test_support.hpp"

#include <set>
#include <string>

namespace emsnode::plugins::mq {
namespace {

using namespace test;
constexpr ProtocolVersion kV311 = ProtocolVersion::kV311;
constexpr ProtocolVersion kV5 = ProtocolVersion::kV5;

Properties message_properties() {
  Properties p;
  p.payload_format_indicator = true;
  p.message_expiry_interval = 3600;
  p.content_type = "application/json";
  p.response_topic = "replies/c1";
  p.correlation_data = Bytes{0, 1, 2, 0xFF};
  p.user_properties = {{"trace", "1"}, {"trace", "2"}, {"", ""}};
  return p;
}

struct Sample {
  Packet packet;
  Role receiver;
};

// One of each packet type the version has, sent in the direction the standard allows, with
// every field and (5.0) every property the packet may carry.
std::vector<Sample> samples(ProtocolVersion version) {
  const bool v5 = version == kV5;
  std::vector<Sample> out;

  Connect connect;
  connect.version = version;
  connect.clean_start = false;
  connect.keep_alive = 65535;
  connect.client_id = "client-\xC3\xA9";
  connect.will = Will{"last/will", Bytes{'b', 'y', 'e', 0}, QoS::kExactlyOnce, true, {}};
  connect.username = "user";
  connect.password = Bytes{0, 0xFF, 'p'};
  if (v5) {
    Properties& p = connect.properties;
    p.session_expiry_interval = 0xFFFFFFFF;
    p.authentication_method = "SCRAM-SHA-1";
    p.authentication_data = Bytes{1, 2, 3};
    p.request_problem_information = false;
    p.request_response_information = true;
    p.receive_maximum = 20;
    p.topic_alias_maximum = 10;
    p.maximum_packet_size = 65536;
    p.user_properties = {{"k", "v"}};
    connect.will->properties = message_properties();
    connect.will->properties.will_delay_interval = 30;
  }
  out.push_back({connect, Role::kServer});

  Connect minimal;
  minimal.version = version;
  minimal.client_id = v5 ? "" : "m";
  out.push_back({minimal, Role::kServer});

  Connack connack{true, reason::kSuccess, {}};
  if (v5) {
    Properties& p = connack.properties;
    p.session_expiry_interval = 120;
    p.assigned_client_identifier = "auto-7";
    p.server_keep_alive = 30;
    p.authentication_method = "SCRAM-SHA-1";
    p.authentication_data = Bytes{9};
    p.response_information = "resp/";
    p.server_reference = "other:8013";
    p.reason_string = "welcome";
    p.receive_maximum = 100;
    p.topic_alias_maximum = 5;
    p.maximum_qos = QoS::kAtLeastOnce;
    p.retain_available = false;
    p.user_properties = {{"node", "a"}};
    p.maximum_packet_size = 1 << 20;
    p.wildcard_subscription_available = true;
    p.subscription_identifier_available = false;
    p.shared_subscription_available = true;
  }
  out.push_back({connack, Role::kClient});
  out.push_back({Connack{false, v5 ? reason::kNotAuthorized : connack_v311::kNotAuthorized, {}},
                 Role::kClient});

  Publish publish{true, QoS::kExactlyOnce, true, "a/b/c", 0xFFFF, {}, Bytes(300, 'x')};
  if (v5) {
    publish.properties = message_properties();
    publish.properties.topic_alias = 3;
  }
  out.push_back({publish, Role::kServer});
  out.push_back({Publish{false, QoS::kAtMostOnce, false, "t", 0, {}, {}}, Role::kServer});
  if (v5) {
    Publish to_client{false, QoS::kAtLeastOnce, false, "a/b", 7, {}, Bytes{1}};
    to_client.properties.subscription_identifiers = {1, 268435455};
    out.push_back({to_client, Role::kClient});
    Publish by_alias{false, QoS::kAtMostOnce, false, "", 0, {}, Bytes{2}};
    by_alias.properties.topic_alias = 3;
    out.push_back({by_alias, Role::kServer});
  }

  Properties ack_properties;
  if (v5) {
    ack_properties.reason_string = "why";
    ack_properties.user_properties = {{"a", "b"}};
  }
  out.push_back({Puback{1, reason::kSuccess, {}}, Role::kServer});
  out.push_back({Pubrec{2, reason::kSuccess, {}}, Role::kClient});
  out.push_back({Pubrel{3, reason::kSuccess, {}}, Role::kServer});
  out.push_back({Pubcomp{4, reason::kSuccess, {}}, Role::kClient});
  if (v5) {
    out.push_back({Puback{5, reason::kNoMatchingSubscribers, {}}, Role::kClient});
    out.push_back({Puback{6, reason::kQuotaExceeded, ack_properties}, Role::kServer});
    out.push_back({Pubrec{7, reason::kPayloadFormatInvalid, ack_properties}, Role::kClient});
    out.push_back({Pubrel{8, reason::kPacketIdentifierNotFound, ack_properties}, Role::kServer});
    out.push_back({Pubcomp{9, reason::kSuccess, ack_properties}, Role::kClient});
  }

  Subscribe subscribe{10, {}, {}};
  subscribe.subscriptions.push_back({"a/+/c", {QoS::kAtMostOnce}});
  subscribe.subscriptions.push_back({"#", {QoS::kExactlyOnce}});
  if (v5) {
    subscribe.subscriptions.push_back(
        {"x/#", {QoS::kAtLeastOnce, true, true, RetainHandling::kDoNotSend}});
    subscribe.subscriptions.push_back(
        {"$share/workers/jobs/+",
         {QoS::kAtLeastOnce, false, false, RetainHandling::kSendOnNewSubscribe}});
    subscribe.properties.subscription_identifiers = {268435455};
    subscribe.properties.user_properties = {{"u", "1"}};
  }
  out.push_back({subscribe, Role::kServer});

  Suback suback{10, {}, {0x00, 0x01, 0x02, 0x80}};
  if (v5) {
    suback.reason_codes = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
    suback.properties = ack_properties;
  }
  out.push_back({suback, Role::kClient});

  Unsubscribe unsubscribe{11, {}, {"a/+/c", "#"}};
  if (v5) unsubscribe.properties.user_properties = {{"u", "2"}};
  out.push_back({unsubscribe, Role::kServer});

  Unsuback unsuback{11, {}, {}};
  if (v5) {
    unsuback.reason_codes = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
    unsuback.properties = ack_properties;
  }
  out.push_back({unsuback, Role::kClient});

  out.push_back({Pingreq{}, Role::kServer});
  out.push_back({Pingresp{}, Role::kClient});
  out.push_back({Disconnect{}, Role::kServer});
  if (v5) {
    Disconnect disconnect{reason::kDisconnectWithWill, {}};
    disconnect.properties.session_expiry_interval = 0;
    disconnect.properties.reason_string = "bye";
    disconnect.properties.user_properties = {{"a", "b"}};
    out.push_back({disconnect, Role::kServer});
    Disconnect moved{reason::kServerMoved, {}};
    moved.properties.server_reference = "b:8013";
    out.push_back({moved, Role::kClient});
    out.push_back({Disconnect{reason::kSessionTakenOver, {}}, Role::kClient});

    Auth auth{reason::kContinueAuthentication, {}};
    auth.properties.authentication_method = "SCRAM-SHA-1";
    auth.properties.authentication_data = Bytes{4, 5};
    auth.properties.reason_string = "more";
    auth.properties.user_properties = {{"x", "y"}};
    out.push_back({auth, Role::kServer});
    out.push_back({Auth{}, Role::kClient});
  }
  return out;
}

Packet round_trip(const Sample& sample, ProtocolVersion version) {
  const Bytes encoded = encode(sample.packet, version);
  REQUIRE(encoded.size() == encoded_size(sample.packet, version));
  Decoded decoded;
  if (sample.receiver == Role::kServer && packet_type(sample.packet) != PacketType::kConnect) {
    decoded = server_decodes(version, encoded);
  } else if (sample.receiver == Role::kServer) {
    Decoder decoder;
    decoded = decode_all(decoder, encoded);
  } else {
    decoded = client_decodes(version, encoded);
  }
  if (decoded.error) FAIL(describe(sample.packet) << " refused: " << decoded.error->message);
  REQUIRE(decoded.packets.size() == 1);
  return decoded.packets.front();
}

TEST_CASE("every 3.1.1 packet type decodes to the packet that was encoded") {
  std::set<PacketType> types;
  for (const Sample& sample : samples(kV311)) {
    INFO(describe(sample.packet));
    CHECK(round_trip(sample, kV311) == sample.packet);
    types.insert(packet_type(sample.packet));
  }
  CHECK(types.size() == 14);  // all but AUTH
}

TEST_CASE("every 5.0 packet type with every property it allows decodes to what was encoded") {
  std::set<PacketType> types;
  for (const Sample& sample : samples(kV5)) {
    INFO(describe(sample.packet));
    CHECK(round_trip(sample, kV5) == sample.packet);
    types.insert(packet_type(sample.packet));
  }
  CHECK(types.size() == 15);
}

// ---- decoding in pieces --------------------------------------------------------------------

Bytes session_stream(ProtocolVersion version, Role receiver) {
  Bytes stream;
  for (const Sample& sample : samples(version)) {
    if (sample.receiver != receiver) continue;
    if (receiver == Role::kServer && packet_type(sample.packet) == PacketType::kConnect) {
      if (!stream.empty()) continue;  // one CONNECT, first
    }
    encode(sample.packet, version, stream);
  }
  return stream;
}

TEST_CASE("decoding byte by byte gives the same packets as decoding the whole buffer") {
  for (ProtocolVersion version : {kV311, kV5}) {
    for (Role receiver : {Role::kServer, Role::kClient}) {
      const Bytes stream = session_stream(version, receiver);
      const auto make = [&] { return receiver == Role::kServer ? Decoder() : Decoder(version); };
      Decoder whole_decoder = make();
      const Decoded whole = decode_all(whole_decoder, stream);
      REQUIRE_FALSE(whole.error);
      REQUIRE(whole.packets.size() > 5);
      for (std::size_t piece : {1, 2, 3, 7, 64}) {
        INFO("version " << static_cast<int>(version) << ", pieces of " << piece);
        Decoder decoder = make();
        const Decoded pieces = decode_all(decoder, stream, piece);
        REQUIRE_FALSE(pieces.error);
        CHECK(pieces.packets == whole.packets);
        CHECK(decoder.buffered() == 0);
      }
    }
  }
}

TEST_CASE("a packet split across feeds is returned when its last byte arrives") {
  const Bytes publish =
      encode(Publish{false, QoS::kAtLeastOnce, false, "a/b", 5, {}, Bytes(40)}, kV311);
  Decoder decoder(kV311);
  for (std::size_t i = 0; i + 1 < publish.size(); ++i) {
    const Decoder::Result result = decoder.feed(&publish[i], 1);
    REQUIRE(result.status == Decoder::Status::kNeedMore);
    REQUIRE(result.consumed == 1);
  }
  CHECK(decoder.buffered() == publish.size() - 1);
  const Decoder::Result last = decoder.feed(&publish.back(), 1);
  REQUIRE(last.status == Decoder::Status::kPacket);
  CHECK(std::get<Publish>(*last.packet).packet_id == 5);
  CHECK(decoder.buffered() == 0);
}

TEST_CASE("the decoder takes one packet per feed and leaves the bytes after it") {
  const Bytes two = encode(Pingresp{}, kV311) + encode(Puback{9, 0, {}}, kV311);
  Decoder decoder(kV311);
  const Decoder::Result first = decoder.feed(two.data(), two.size());
  REQUIRE(first.status == Decoder::Status::kPacket);
  CHECK(first.consumed == 2);
  const Decoder::Result second = decoder.feed(two.data() + 2, two.size() - 2);
  REQUIRE(second.status == Decoder::Status::kPacket);
  CHECK(second.consumed == 4);
  CHECK(std::holds_alternative<Puback>(*second.packet));
}

TEST_CASE("the server learns the protocol version from the CONNECT") {
  for (ProtocolVersion version : {kV311, kV5}) {
    Decoder decoder;
    CHECK_FALSE(decoder.version());
    decode_all(decoder, connect_bytes(version));
    CHECK(decoder.version() == version);
    // A 5.0 short PUBACK and a 3.1.1 PUBACK look alike; a 5.0 one with a reason code does not.
    const Decoded decoded = decode_all(decoder, bytes({0x40, 0x03, 0x00, 0x01, 0x10}));
    CHECK(decoded.error.has_value() == (version == kV311));
  }
}

// ---- the decoder's rules, one test each ----------------------------------------------------

TEST_CASE("a first packet other than CONNECT is a protocol error") {
  Decoder decoder;
  const Decoded decoded = decode_all(decoder, encode(Pingreq{}, kV311));
  REQUIRE(decoded.error);
  CHECK(decoded.error->kind == DecodeErrorKind::kProtocolError);
}

TEST_CASE("a packet before CONNECT is refused from its first byte") {
  Decoder decoder;
  const std::uint8_t publish_first_byte = 0x30;
  const Decoder::Result result = decoder.feed(&publish_first_byte, 1);
  CHECK(result.status == Decoder::Status::kError);
}

TEST_CASE("a second CONNECT is a protocol error") {
  Decoder decoder;
  const Decoded decoded = decode_all(decoder, connect_bytes(kV311) + connect_bytes(kV311));
  REQUIRE(decoded.packets.size() == 1);
  REQUIRE(decoded.error);
  CHECK(decoded.error->kind == DecodeErrorKind::kProtocolError);
  CHECK(decoded.error->reason_code == reason::kProtocolError);
}

TEST_CASE("a remaining length longer than four bytes is malformed") {
  DecoderOptions options;
  options.maximum_packet_size = SIZE_MAX;  // the length rule, not the size limit, must refuse it
  Decoder decoder(kV5, options);
  const Decoded decoded = decode_all(decoder, bytes({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}));
  REQUIRE(decoded.error);
  CHECK(decoded.error->kind == DecodeErrorKind::kMalformedPacket);
}

TEST_CASE("a packet over the maximum packet size is refused from its fixed header alone") {
  DecoderOptions options;
  options.maximum_packet_size = 100;
  Decoder decoder(kV5, options);
  // 2 + 98 bytes is exactly the limit; one more is over it.
  const Bytes at_limit =
      encode(Publish{false, QoS::kAtMostOnce, false, "t", 0, {}, Bytes(94)}, kV5);
  REQUIRE(at_limit.size() == 100);
  CHECK(decode_all(decoder, at_limit).packets.size() == 1);
  const Bytes header = bytes({0x30, 0x63});  // a PUBLISH of 2 + 99 bytes; no body sent
  const Decoder::Result result = decoder.feed(header.data(), header.size());
  REQUIRE(result.status == Decoder::Status::kError);
  CHECK(result.error.kind == DecodeErrorKind::kPacketTooLarge);
  CHECK(result.error.reason_code == reason::kPacketTooLarge);
  CHECK(decoder.buffered() == 0);
}

TEST_CASE("a huge announced length is refused without reserving memory for it") {
  Decoder decoder(kV311);
  const Decoded decoded = decode_all(decoder, bytes({0x30, 0xFF, 0xFF, 0xFF, 0x7F}));
  REQUIRE(decoded.error);
  CHECK(decoded.error->kind == DecodeErrorKind::kPacketTooLarge);
}

TEST_CASE("reserved flag bits in a fixed header are malformed") {
  for (ProtocolVersion version : {kV311, kV5}) {
    for (const Bytes& packet : {bytes({0x41, 0x02, 0x00, 0x01}),  // PUBACK with flags 1
                                bytes({0x60, 0x02, 0x00, 0x01}),  // PUBREL without its 0010
                                bytes({0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00}),
                                bytes({0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, 'a'}),
                                bytes({0xC8, 0x00}), bytes({0xE2, 0x00})}) {
      INFO("first byte " << static_cast<int>(packet[0]));
      const DecodeError error = server_error(version, packet);
      CHECK(error.kind == DecodeErrorKind::kMalformedPacket);
      CHECK(error.reason_code == reason::kMalformedPacket);
    }
  }
}

TEST_CASE("a PUBLISH with QoS 3 is malformed") {
  const DecodeError error = server_error(kV311, bytes({0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01}));
  CHECK(error.kind == DecodeErrorKind::kMalformedPacket);
}

TEST_CASE("a PUBLISH with DUP set and QoS 0 is malformed") {
  const DecodeError error = server_error(kV311, bytes({0x38, 0x03, 0x00, 0x01, 't'}));
  CHECK(error.kind == DecodeErrorKind::kMalformedPacket);
}

TEST_CASE("a packet id of 0 where one is required is a protocol error") {
  for (ProtocolVersion version : {kV311, kV5}) {
    const bool v5 = version == kV5;
    for (const Bytes& packet : {v5 ? bytes({0x32, 0x06, 0x00, 0x01, 't', 0x00, 0x00, 0x00})
                                   : bytes({0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00}),
                                bytes({0x40, 0x02, 0x00, 0x00}), bytes({0x50, 0x02, 0x00, 0x00}),
                                bytes({0x62, 0x02, 0x00, 0x00}), bytes({0x70, 0x02, 0x00, 0x00}),
                                v5 ? bytes({0x82, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, 'a', 0x00})
                                   : bytes({0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 'a', 0x00}),
                                v5 ? bytes({0xA2, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, 'a'})
                                   : bytes({0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, 'a'})}) {
      INFO("version " << static_cast<int>(version) << ", first byte "
                      << static_cast<int>(packet[0]));
      CHECK(server_error(version, packet).kind == DecodeErrorKind::kProtocolError);
    }
  }
}

TEST_CASE("a SUBSCRIBE without topic filters is a protocol error") {
  CHECK(server_error(kV311, bytes({0x82, 0x02, 0x00, 0x01})).kind ==
        DecodeErrorKind::kProtocolError);
  CHECK(server_error(kV5, bytes({0x82, 0x03, 0x00, 0x01, 0x00})).kind ==
        DecodeErrorKind::kProtocolError);
}

TEST_CASE("an UNSUBSCRIBE without topic filters is a protocol error") {
  CHECK(server_error(kV311, bytes({0xA2, 0x02, 0x00, 0x01})).kind ==
        DecodeErrorKind::kProtocolError);
  CHECK(server_error(kV5, bytes({0xA2, 0x03, 0x00, 0x01, 0x00})).kind ==
        DecodeErrorKind::kProtocolError);
}

TEST_CASE("reserved subscription option bits are malformed") {
  // 3.1.1 reserves bits 2-7; 5.0 only bits 6-7.
  CHECK(server_error(kV311, bytes({0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x04})).kind ==
        DecodeErrorKind::kMalformedPacket);
  CHECK(server_error(kV5, bytes({0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x40})).kind ==
        DecodeErrorKind::kMalformedPacket);
  const Packet accepted =
      server_packet(kV5, bytes({0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x2D}));
  const SubscriptionOptions& options = std::get<Subscribe>(accepted).subscriptions[0].options;
  CHECK(options.max_qos == QoS::kAtLeastOnce);
  CHECK(options.no_local);
  CHECK(options.retain_as_published);
  CHECK(options.retain_handling == RetainHandling::kDoNotSend);
}

TEST_CASE("a subscription with QoS 3 is malformed") {
  CHECK(server_error(kV311, bytes({0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x03})).kind ==
        DecodeErrorKind::kMalformedPacket);
}

TEST_CASE("retain handling 3 is a protocol error") {
  CHECK(server_error(kV5, bytes({0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30})).kind ==
        DecodeErrorKind::kProtocolError);
}

TEST_CASE("no local on a shared subscription is a protocol error") {
  Subscribe subscribe{1, {}, {{"$share/g/a", {}}}};
  Bytes encoded = encode(subscribe, kV5);
  encoded.back() |= 0x04;
  CHECK(server_error(kV5, encoded).kind == DecodeErrorKind::kProtocolError);
}

Bytes connect_with_flags(ProtocolVersion version, std::uint8_t flags, const Bytes& payload) {
  Bytes variable =
      bytes({0x00, 0x04, 'M', 'Q', 'T', 'T', static_cast<int>(version), flags, 0x00, 0x3C});
  if (version == kV5) variable.push_back(0x00);  // no properties
  const Bytes body = variable + payload;
  return bytes({0x10, static_cast<int>(body.size())}) + body;
}

DecodeError connect_error(const Bytes& connect) {
  Decoder decoder;
  const Decoded decoded = decode_all(decoder, connect);
  REQUIRE(decoded.error);
  return *decoded.error;
}

TEST_CASE("the CONNECT reserved flag is malformed") {
  for (ProtocolVersion version : {kV311, kV5}) {
    const DecodeError error =
        connect_error(connect_with_flags(version, 0x03, mqtt_string(text("c"))));
    CHECK(error.kind == DecodeErrorKind::kMalformedPacket);
    CHECK_FALSE(error.connack_v311());  // 3.1.1: closed without a CONNACK
  }
}

TEST_CASE("a will QoS or will retain without the will flag is malformed") {
  for (std::uint8_t flags : {0x0A, 0x22}) {
    CHECK(connect_error(connect_with_flags(kV311, flags, mqtt_string(text("c")))).kind ==
          DecodeErrorKind::kMalformedPacket);
  }
}

TEST_CASE("a will QoS of 3 is malformed") {
  const Bytes will = mqtt_string(text("c")) + mqtt_string(text("w")) + mqtt_string(text("m"));
  CHECK(connect_error(connect_with_flags(kV311, 0x1E, will)).kind ==
        DecodeErrorKind::kMalformedPacket);
}

TEST_CASE("a will topic with wildcards is refused as an invalid topic name") {
  const Bytes will =
      mqtt_string(text("c")) + bytes({0x00}) + mqtt_string(text("w/#")) + mqtt_string(text("m"));
  const DecodeError error = connect_error(connect_with_flags(kV5, 0x06, will));
  CHECK(error.kind == DecodeErrorKind::kTopicNameInvalid);
  CHECK(error.reason_code == reason::kTopicNameInvalid);
}

TEST_CASE("a 3.1.1 password without a user name is malformed, and allowed in 5.0") {
  const Bytes payload = mqtt_string(text("c")) + mqtt_string(text("secret"));
  CHECK(connect_error(connect_with_flags(kV311, 0x42, payload)).kind ==
        DecodeErrorKind::kMalformedPacket);
  Decoder decoder;
  const Decoded decoded = decode_all(decoder, connect_with_flags(kV5, 0x42, payload));
  REQUIRE_FALSE(decoded.error);
  CHECK(std::get<Connect>(decoded.packets[0]).password == text("secret"));
  CHECK_FALSE(std::get<Connect>(decoded.packets[0]).username);
}

TEST_CASE("a 3.1.1 empty client id without a clean session is refused with identifier rejected") {
  const DecodeError error = connect_error(connect_with_flags(kV311, 0x00, mqtt_string({})));
  CHECK(error.kind == DecodeErrorKind::kClientIdentifierNotValid);
  CHECK(error.connack_v311() == connack_v311::kIdentifierRejected);
  CHECK(error.reason_code == reason::kClientIdentifierNotValid);
}

TEST_CASE("an empty client id is accepted with a 3.1.1 clean session and always in 5.0") {
  for (const Bytes& connect : {connect_with_flags(kV311, 0x02, mqtt_string({})),
                               connect_with_flags(kV5, 0x00, mqtt_string({}))}) {
    Decoder decoder;
    const Decoded decoded = decode_all(decoder, connect);
    REQUIRE_FALSE(decoded.error);
    CHECK(std::get<Connect>(decoded.packets[0]).client_id.empty());
  }
}

TEST_CASE("an unknown protocol name or level is refused as an unsupported version") {
  const Bytes mqtt31 = bytes({0x10, 0x10, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0x02,
                              0x00, 0x3C, 0x00, 0x02, 'c', 'c'});
  const Bytes level6 =
      bytes({0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x3C, 0x00, 0x01, 'c'});
  const Bytes other =
      bytes({0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'X', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, 'c'});
  for (const Bytes& connect : {mqtt31, level6, other}) {
    const DecodeError error = connect_error(connect);
    CHECK(error.kind == DecodeErrorKind::kUnsupportedProtocolVersion);
    CHECK(error.reason_code == reason::kUnsupportedProtocolVersion);
    CHECK(error.connack_v311() == connack_v311::kUnacceptableProtocolVersion);
  }
}

TEST_CASE("a refused 5.0 CONNECT still tells the decoder its version, for the CONNACK") {
  Decoder decoder;
  const Decoded decoded = decode_all(decoder, connect_with_flags(kV5, 0x01, mqtt_string({})));
  REQUIRE(decoded.error);
  CHECK(decoder.version() == kV5);
  CHECK(decoded.error->reason_code == reason::kMalformedPacket);
}

// A QoS 0 PUBLISH without payload (and, in 5.0, without properties) to a topic of raw bytes.
Bytes publish_with_topic(const Bytes& raw_topic, ProtocolVersion version = kV311) {
  const Bytes body = mqtt_string(raw_topic) + (version == kV5 ? bytes({0x00}) : Bytes{});
  return bytes({0x30, static_cast<int>(body.size())}) + body;
}

TEST_CASE("strings that are not well-formed UTF-8 are malformed") {
  const std::vector<std::pair<const char*, Bytes>> cases = {
      {"U+0000", bytes({'a', 0x00})},
      {"an overlong NUL", bytes({0xC0, 0x80})},
      {"an overlong slash", bytes({0xE0, 0x80, 0xAF})},
      {"a high surrogate", bytes({0xED, 0xA0, 0x80})},
      {"a low surrogate", bytes({0xED, 0xBF, 0xBF})},
      {"above U+10FFFF", bytes({0xF4, 0x90, 0x80, 0x80})},
      {"a lone continuation byte", bytes({0x80})},
      {"a truncated sequence", bytes({'a', 0xE2, 0x82})},
      {"an invalid lead byte", bytes({0xFF})},
      {"a five-byte form", bytes({0xF8, 0x88, 0x80, 0x80, 0x80})},
  };
  for (const auto& [name, topic] : cases) {
    INFO(name);
    CHECK_FALSE(is_valid_mqtt_utf8(std::string(topic.begin(), topic.end())));
    CHECK(server_error(kV311, publish_with_topic(topic)).kind == DecodeErrorKind::kMalformedPacket);
  }
}

TEST_CASE("well-formed UTF-8 from every plane is accepted, a BOM included") {
  // "A" and U+2A6D4, the standard's own example, then U+FEFF, U+10FFFF and a control.
  const Bytes topic =
      bytes({'A', 0xF0, 0xAA, 0x9B, 0x94, 0xEF, 0xBB, 0xBF, 0xF4, 0x8F, 0xBF, 0xBF, 0x01});
  const Packet packet = server_packet(kV5, publish_with_topic(topic, kV5));
  CHECK(std::get<Publish>(packet).topic == std::string(topic.begin(), topic.end()));
}

TEST_CASE("a topic name with wildcards is refused as an invalid topic name") {
  for (const char* topic : {"a/+", "#", "a/b#"}) {
    const DecodeError error = server_error(kV311, publish_with_topic(text(topic)));
    CHECK(error.kind == DecodeErrorKind::kTopicNameInvalid);
  }
}

TEST_CASE("a 3.1.1 PUBLISH with an empty topic is refused") {
  CHECK(server_error(kV311, publish_with_topic({})).kind == DecodeErrorKind::kTopicNameInvalid);
}

TEST_CASE("a 5.0 PUBLISH with an empty topic needs a topic alias") {
  CHECK(server_error(kV5, publish_with_topic({}, kV5)).kind == DecodeErrorKind::kProtocolError);
  const Packet packet = server_packet(kV5, bytes({0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x07}));
  CHECK(std::get<Publish>(packet).properties.topic_alias == 7);
}

TEST_CASE("bytes after the end of a packet's fields are malformed") {
  CHECK(server_error(kV311, bytes({0xC0, 0x01, 0x00})).kind == DecodeErrorKind::kMalformedPacket);
  CHECK(server_error(kV311, bytes({0x40, 0x03, 0x00, 0x01, 0x00})).kind ==
        DecodeErrorKind::kMalformedPacket);
  CHECK(server_error(kV311, bytes({0xE0, 0x01, 0x00})).kind == DecodeErrorKind::kMalformedPacket);
}

TEST_CASE("a field running past the end of its packet is malformed") {
  CHECK(server_error(kV311, bytes({0x30, 0x03, 0x00, 0x05, 'a'})).kind ==
        DecodeErrorKind::kMalformedPacket);
  CHECK(server_error(kV311, bytes({0x40, 0x01, 0x00})).kind == DecodeErrorKind::kMalformedPacket);
}

TEST_CASE("packet type 0, and AUTH in 3.1.1, are malformed") {
  CHECK(client_decodes(kV311, bytes({0x00, 0x00})).error->kind ==
        DecodeErrorKind::kMalformedPacket);
  CHECK(server_error(kV311, bytes({0xF0, 0x00})).kind == DecodeErrorKind::kMalformedPacket);
  CHECK(std::holds_alternative<Auth>(server_packet(kV5, bytes({0xF0, 0x00}))));
}

TEST_CASE("a server refuses the packets only a server sends") {
  for (const Bytes& packet :
       {bytes({0x20, 0x02, 0x00, 0x00}), bytes({0xD0, 0x00}), bytes({0x90, 0x03, 0x00, 0x01, 0x00}),
        bytes({0xB0, 0x02, 0x00, 0x01})}) {
    CHECK(server_error(kV311, packet).kind == DecodeErrorKind::kProtocolError);
  }
}

TEST_CASE("a client refuses the packets only a client sends") {
  for (const Bytes& packet : {connect_bytes(kV311), bytes({0xC0, 0x00}),
                              bytes({0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00}),
                              bytes({0xA2, 0x05, 0x00, 0x01, 0x00, 0x01, 'a'})}) {
    CHECK(client_decodes(kV311, packet).error->kind == DecodeErrorKind::kProtocolError);
  }
}

TEST_CASE("CONNACK reserved flags are malformed") {
  CHECK(client_decodes(kV311, bytes({0x20, 0x02, 0x02, 0x00})).error->kind ==
        DecodeErrorKind::kMalformedPacket);
}

TEST_CASE("a CONNACK refusing the connection with session present is a protocol error") {
  CHECK(client_decodes(kV311, bytes({0x20, 0x02, 0x01, 0x05})).error->kind ==
        DecodeErrorKind::kProtocolError);
  CHECK(client_decodes(kV5, bytes({0x20, 0x03, 0x01, 0x87, 0x00})).error->kind ==
        DecodeErrorKind::kProtocolError);
}

TEST_CASE("a reason code the packet may not carry is a protocol error") {
  CHECK(client_decodes(kV311, bytes({0x20, 0x02, 0x00, 0x06})).error->kind ==
        DecodeErrorKind::kProtocolError);
  CHECK(server_error(kV5, bytes({0x40, 0x03, 0x00, 0x01, 0x01})).kind ==
        DecodeErrorKind::kProtocolError);
  CHECK(server_error(kV5, bytes({0x62, 0x03, 0x00, 0x01, 0x10})).kind ==
        DecodeErrorKind::kProtocolError);
  CHECK(server_error(kV5, bytes({0xE0, 0x01, 0x05})).kind == DecodeErrorKind::kProtocolError);
  CHECK(client_decodes(kV311, bytes({0x90, 0x03, 0x00, 0x01, 0x03})).error->kind ==
        DecodeErrorKind::kProtocolError);
  CHECK(client_decodes(kV5, bytes({0xB0, 0x04, 0x00, 0x01, 0x00, 0x12})).error->kind ==
        DecodeErrorKind::kProtocolError);
}

// A 5.0 DISCONNECT (to a server) carrying the given property bytes.
Bytes disconnect_with_properties(const Bytes& properties) {
  const Bytes body = bytes({0x00, static_cast<int>(properties.size())}) + properties;
  return bytes({0xE0, static_cast<int>(body.size())}) + body;
}

TEST_CASE("an unknown property identifier is malformed") {
  CHECK(server_error(kV5, disconnect_with_properties(bytes({0x04, 0x00}))).kind ==
        DecodeErrorKind::kMalformedPacket);
}

TEST_CASE("a property the packet may not carry is malformed") {
  // Topic alias belongs to PUBLISH, not DISCONNECT.
  CHECK(server_error(kV5, disconnect_with_properties(bytes({0x23, 0x00, 0x01}))).kind ==
        DecodeErrorKind::kMalformedPacket);
}

TEST_CASE("a property given twice is a protocol error") {
  const Bytes twice = bytes({0x1F, 0x00, 0x01, 'a', 0x1F, 0x00, 0x01, 'b'});
  CHECK(server_error(kV5, disconnect_with_properties(twice)).kind ==
        DecodeErrorKind::kProtocolError);
}

TEST_CASE("user properties may repeat and keep their order") {
  const Bytes props =
      bytes({0x26, 0x00, 0x01, 'k', 0x00, 0x01, '2', 0x26, 0x00, 0x01, 'k', 0x00, 0x01, '1'});
  const Packet packet = server_packet(kV5, disconnect_with_properties(props));
  const auto& user = std::get<Disconnect>(packet).properties.user_properties;
  REQUIRE(user.size() == 2);
  CHECK(user[0].second == "2");
  CHECK(user[1].second == "1");
}

TEST_CASE("a subscription identifier given twice in a SUBSCRIBE is a protocol error") {
  CHECK(server_error(kV5, bytes({0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01,
                                 'a', 0x00}))
            .kind == DecodeErrorKind::kProtocolError);
}

TEST_CASE("a subscription identifier of 0 is a protocol error") {
  CHECK(server_error(kV5, bytes({0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, 'a', 0x00}))
            .kind == DecodeErrorKind::kProtocolError);
}

TEST_CASE("a PUBLISH sent to a server with a subscription identifier is a protocol error") {
  const Bytes publish = bytes({0x30, 0x06, 0x00, 0x01, 't', 0x02, 0x0B, 0x01});
  CHECK(server_error(kV5, publish).kind == DecodeErrorKind::kProtocolError);
  const Decoded to_client = client_decodes(kV5, publish);
  REQUIRE_FALSE(to_client.error);
  CHECK(std::get<Publish>(to_client.packets[0]).properties.subscription_identifiers ==
        std::vector<std::uint32_t>{1});
}

TEST_CASE("property values the standard forbids are protocol errors") {
  const std::vector<std::pair<const char*, Bytes>> cases = {
      {"receive maximum 0", bytes({0x21, 0x00, 0x00})},
      {"maximum packet size 0", bytes({0x27, 0x00, 0x00, 0x00, 0x00})},
      {"request problem information 2", bytes({0x17, 0x02})},
      {"request response information 2", bytes({0x19, 0x02})},
      {"authentication data without a method", bytes({0x16, 0x00, 0x01, 'x'})},
  };
  for (const auto& [name, properties] : cases) {
    INFO(name);
    const Bytes variable = bytes({0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3C,
                                  static_cast<int>(properties.size())}) +
                           properties + mqtt_string(text("c"));
    const DecodeError error =
        connect_error(bytes({0x10, static_cast<int>(variable.size())}) + variable);
    CHECK(error.kind == DecodeErrorKind::kProtocolError);
    CHECK(error.reason_code == reason::kProtocolError);
  }
  CHECK(server_error(kV5, bytes({0x30, 0x07, 0x00, 0x01, 't', 0x03, 0x23, 0x00, 0x00})).kind ==
        DecodeErrorKind::kProtocolError);  // topic alias 0
  CHECK(server_error(kV5, bytes({0x30, 0x06, 0x00, 0x01, 't', 0x02, 0x01, 0x02})).kind ==
        DecodeErrorKind::kProtocolError);  // payload format indicator 2
  CHECK(client_decodes(kV5, bytes({0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02})).error->kind ==
        DecodeErrorKind::kProtocolError);  // maximum QoS 2
  CHECK(
      server_error(kV5, bytes({0x30, 0x0A, 0x00, 0x01, 't', 0x06, 0x08, 0x00, 0x03, 'a', '/', '#'}))
          .kind == DecodeErrorKind::kProtocolError);  // response topic with a wildcard
}

TEST_CASE("a property length running past the packet is malformed") {
  CHECK(server_error(kV5, bytes({0xE0, 0x03, 0x00, 0x05, 0x1F})).kind ==
        DecodeErrorKind::kMalformedPacket);
}

TEST_CASE("after an error the decoder stays failed") {
  Decoder decoder;
  const Bytes ping = encode(Pingreq{}, kV311);
  const Decoder::Result first = decoder.feed(ping.data(), ping.size());
  REQUIRE(first.status == Decoder::Status::kError);
  const Bytes connect = connect_bytes(kV311);
  const Decoder::Result again = decoder.feed(connect.data(), connect.size());
  CHECK(again.status == Decoder::Status::kError);
  CHECK(again.error.message == first.error.message);
}

// ---- the encoder ---------------------------------------------------------------------------

TEST_CASE("the encoder refuses what the version cannot express or the wire cannot carry") {
  Publish with_properties{false, QoS::kAtMostOnce, false, "t", 0, {}, {}};
  with_properties.properties.message_expiry_interval = 1;
  CHECK_THROWS_AS(encode(with_properties, kV311), EncodeError);
  CHECK_THROWS_AS(encode(Auth{}, kV311), EncodeError);
  CHECK_THROWS_AS(encode(Puback{1, reason::kQuotaExceeded, {}}, kV311), EncodeError);
  CHECK_THROWS_AS(
      encode(Publish{false, QoS::kAtMostOnce, false, std::string(65536, 'a'), 0, {}, {}}, kV311),
      EncodeError);
  CHECK_THROWS_AS(encode(Publish{false, QoS::kAtLeastOnce, false, "t", 0, {}, {}}, kV311),
                  EncodeError);
  Subscribe subscribe{1, {}, {{"a", {}}}};
  subscribe.properties.subscription_identifiers = {kMaxVariableByteInteger + 1};
  CHECK_THROWS_AS(encode(subscribe, kV5), EncodeError);
  Disconnect disconnect{};
  disconnect.properties.topic_alias = 1;  // a PUBLISH property
  CHECK_THROWS_AS(encode(disconnect, kV5), EncodeError);
}

TEST_CASE("encoding packet after packet into one buffer grows it geometrically") {
  Bytes out;
  int reallocations = 0;
  for (int i = 0; i < 10000; ++i) {
    const std::size_t capacity = out.capacity();
    encode(Publish{false, QoS::kAtMostOnce, false, "a/b", 0, {}, Bytes(10)}, kV311, out);
    if (out.capacity() != capacity) ++reallocations;
  }
  CHECK(out.size() == 10000 * 17);
  CHECK(reallocations < 30);
}

TEST_CASE("a failed encode leaves the output as it was") {
  Bytes out = bytes({1, 2, 3});
  CHECK_THROWS_AS(encode(Auth{}, kV311, out), EncodeError);
  CHECK(out == bytes({1, 2, 3}));
}

TEST_CASE("each decode error kind carries the 5.0 reason code to answer with") {
  const std::vector<std::pair<DecodeErrorKind, std::uint8_t>> expected = {
      {DecodeErrorKind::kMalformedPacket, 0x81},
      {DecodeErrorKind::kProtocolError, 0x82},
      {DecodeErrorKind::kPacketTooLarge, 0x95},
      {DecodeErrorKind::kUnsupportedProtocolVersion, 0x84},
      {DecodeErrorKind::kClientIdentifierNotValid, 0x85},
      {DecodeErrorKind::kTopicNameInvalid, 0x90},
  };
  // Every reason code the decoder gives must be one a CONNACK and a DISCONNECT may carry...
  for (const auto& [kind, code] : expected) {
    INFO(static_cast<int>(kind));
    CHECK(is_valid_reason_code(PacketType::kConnack, code, kV5));
  }
  // ...and the decoder's errors use them.
  CHECK(server_error(kV5, bytes({0x41, 0x02, 0x00, 0x01})).reason_code == reason::kMalformedPacket);
  CHECK(server_error(kV5, bytes({0x40, 0x02, 0x00, 0x00})).reason_code == reason::kProtocolError);
  CHECK(server_error(kV5, publish_with_topic(text("#"), kV5)).reason_code ==
        reason::kTopicNameInvalid);
}

}  // namespace
}  // namespace emsnode::plugins::mq
