// Byte-exact encodings, written out by hand from the figures and examples of the MQTT 3.1.1
// and 5.0 standards, checked in both directions: the encoder produces them and the decoder
// reads them back to the same packet.
#include "codec_test_support.hpp"

namespace emsnode::plugins::mq {
namespace {

using namespace test;
constexpr ProtocolVersion kV311 = ProtocolVersion::kV311;
constexpr ProtocolVersion kV5 = ProtocolVersion::kV5;

// Encodes `packet`, compares with `wire`, and decodes `wire` back to `packet`.
void check_vector(const Packet& packet, ProtocolVersion version, Role receiver, const Bytes& wire) {
  INFO(describe(packet));
  CHECK(encode(packet, version) == wire);
  Decoded decoded;
  if (receiver == Role::kClient) {
    decoded = client_decodes(version, wire);
  } else if (packet_type(packet) == PacketType::kConnect) {
    Decoder decoder;
    decoded = decode_all(decoder, wire);
  } else {
    decoded = server_decodes(version, wire);
  }
  if (decoded.error) FAIL("refused: " << decoded.error->message);
  REQUIRE(decoded.packets.size() == 1);
  CHECK(decoded.packets[0] == packet);
}

Connect example_connect(ProtocolVersion version) {
  Connect c;
  c.version = version;
  c.clean_start = true;
  c.keep_alive = 10;
  c.client_id = "c1";
  c.will = Will{"w", text("m"), QoS::kAtLeastOnce, false, {}};
  c.username = "u";
  c.password = text("p");
  return c;
}

TEST_CASE("a 3.1.1 CONNECT encodes as the standard's example variable header shows") {
  // Figure 3.6: protocol name, level 4, flags 0xCE (user name, password, will QoS 1, will,
  // clean session), keep alive 10.
  check_vector(example_connect(kV311), kV311, Role::kServer,
               bytes({0x10, 0x1A, 0x00, 0x04, 'M',  'Q',  'T', 'T',  0x04, 0xCE, 0x00, 0x0A,  //
                      0x00, 0x02, 'c',  '1',  0x00, 0x01, 'w', 0x00, 0x01, 'm',               //
                      0x00, 0x01, 'u',  0x00, 0x01, 'p'}));
}

TEST_CASE("a 5.0 CONNECT encodes as the standard's example variable header shows") {
  // Figure 3-7: as 3.1.1 with level 5, then properties: length 5, session expiry interval 10.
  Connect c = example_connect(kV5);
  c.properties.session_expiry_interval = 10;
  check_vector(c, kV5, Role::kServer,
               bytes({0x10, 0x21, 0x00, 0x04, 'M',  'Q',  'T',  'T', 0x05, 0xCE, 0x00, 0x0A,  //
                      0x05, 0x11, 0x00, 0x00, 0x00, 0x0A,                                     //
                      0x00, 0x02, 'c',  '1',  0x00, 0x00, 0x01, 'w', 0x00, 0x01, 'm',         //
                      0x00, 0x01, 'u',  0x00, 0x01, 'p'}));
}

TEST_CASE("CONNACK encodes as two bytes in 3.1.1 and adds properties in 5.0") {
  check_vector(Connack{true, connack_v311::kAccepted, {}}, kV311, Role::kClient,
               bytes({0x20, 0x02, 0x01, 0x00}));
  check_vector(Connack{false, connack_v311::kIdentifierRejected, {}}, kV311, Role::kClient,
               bytes({0x20, 0x02, 0x00, 0x02}));
  check_vector(Connack{false, reason::kSuccess, {}}, kV5, Role::kClient,
               bytes({0x20, 0x03, 0x00, 0x00, 0x00}));
  Connack assigned{false, reason::kSuccess, {}};
  assigned.properties.assigned_client_identifier = "id";
  assigned.properties.receive_maximum = 10;
  check_vector(assigned, kV5, Role::kClient,
               bytes({0x20, 0x0B, 0x00, 0x00, 0x08, 0x12, 0x00, 0x02, 'i', 'd', 0x21, 0x00, 0x0A}));
}

TEST_CASE("a PUBLISH encodes as the standard's example: topic a/b, packet id 10") {
  check_vector(Publish{false, QoS::kAtLeastOnce, false, "a/b", 10, {}, text("hi")}, kV311,
               Role::kServer, bytes({0x32, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i'}));
  check_vector(Publish{true, QoS::kExactlyOnce, true, "a/b", 10, {}, {}}, kV311, Role::kServer,
               bytes({0x3D, 0x07, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A}));
  Publish v5{false, QoS::kAtMostOnce, true, "a/b", 0, {}, text("hi")};
  v5.properties.message_expiry_interval = 60;
  v5.properties.topic_alias = 1;
  check_vector(v5, kV5, Role::kServer,
               bytes({0x31, 0x10, 0x00, 0x03, 'a', '/', 'b', 0x08, 0x02, 0x00, 0x00, 0x00, 0x3C,
                      0x23, 0x00, 0x01, 'h', 'i'}));
}

TEST_CASE("a string encodes as the standard's UTF-8 example: A and U+2A6D4") {
  const std::string topic = "A\xF0\xAA\x9B\x94";
  check_vector(Publish{false, QoS::kAtMostOnce, false, topic, 0, {}, {}}, kV311, Role::kServer,
               bytes({0x30, 0x07, 0x00, 0x05, 0x41, 0xF0, 0xAA, 0x9B, 0x94}));
}

TEST_CASE("the publish acknowledgements encode as four bytes in 3.1.1") {
  check_vector(Puback{10, 0, {}}, kV311, Role::kServer, bytes({0x40, 0x02, 0x00, 0x0A}));
  check_vector(Pubrec{10, 0, {}}, kV311, Role::kServer, bytes({0x50, 0x02, 0x00, 0x0A}));
  check_vector(Pubrel{10, 0, {}}, kV311, Role::kServer, bytes({0x62, 0x02, 0x00, 0x0A}));
  check_vector(Pubcomp{10, 0, {}}, kV311, Role::kServer, bytes({0x70, 0x02, 0x00, 0x0A}));
}

TEST_CASE("5.0 acknowledgements leave out a success code and empty properties") {
  check_vector(Puback{10, reason::kSuccess, {}}, kV5, Role::kServer,
               bytes({0x40, 0x02, 0x00, 0x0A}));
  check_vector(Puback{10, reason::kNoMatchingSubscribers, {}}, kV5, Role::kClient,
               bytes({0x40, 0x03, 0x00, 0x0A, 0x10}));
  Pubrec with_reason{10, reason::kQuotaExceeded, {}};
  with_reason.properties.reason_string = "q";
  check_vector(with_reason, kV5, Role::kClient,
               bytes({0x50, 0x08, 0x00, 0x0A, 0x97, 0x04, 0x1F, 0x00, 0x01, 'q'}));
  check_vector(Pubrel{10, reason::kPacketIdentifierNotFound, {}}, kV5, Role::kServer,
               bytes({0x62, 0x03, 0x00, 0x0A, 0x92}));
}

TEST_CASE("the long forms of a 5.0 success acknowledgement decode to the short one") {
  CHECK(server_packet(kV5, bytes({0x40, 0x03, 0x00, 0x0A, 0x00})) ==
        Packet{Puback{10, reason::kSuccess, {}}});
  CHECK(server_packet(kV5, bytes({0x40, 0x04, 0x00, 0x0A, 0x00, 0x00})) ==
        Packet{Puback{10, reason::kSuccess, {}}});
  CHECK(server_packet(kV5, bytes({0xE0, 0x02, 0x00, 0x00})) == Packet{Disconnect{}});
}

TEST_CASE("SUBSCRIBE, SUBACK and UNSUBSCRIBE encode as the standard's examples") {
  // a/b at QoS 1 and c/d at QoS 2, packet id 10; granted 0, 1, 2 and a failure.
  check_vector(Subscribe{10, {}, {{"a/b", {QoS::kAtLeastOnce}}, {"c/d", {QoS::kExactlyOnce}}}},
               kV311, Role::kServer,
               bytes({0x82, 0x0E, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x01, 0x00, 0x03, 'c', '/',
                      'd', 0x02}));
  check_vector(Suback{10, {}, {0x00, 0x01, 0x02, 0x80}}, kV311, Role::kClient,
               bytes({0x90, 0x06, 0x00, 0x0A, 0x00, 0x01, 0x02, 0x80}));
  check_vector(
      Unsubscribe{10, {}, {"a/b", "c/d"}}, kV311, Role::kServer,
      bytes({0xA2, 0x0C, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x03, 'c', '/', 'd'}));
  check_vector(Unsuback{10, {}, {}}, kV311, Role::kClient, bytes({0xB0, 0x02, 0x00, 0x0A}));
}

TEST_CASE("5.0 subscription options pack into one byte as the standard lays them out") {
  // QoS in bits 0-1, no local bit 2, retain as published bit 3, retain handling bits 4-5.
  check_vector(
      Subscribe{
          1, {}, {{"a", {QoS::kExactlyOnce, true, true, RetainHandling::kSendOnNewSubscribe}}}},
      kV5, Role::kServer, bytes({0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x1E}));
  check_vector(Suback{1, {}, {reason::kTopicFilterInvalid}}, kV5, Role::kClient,
               bytes({0x90, 0x04, 0x00, 0x01, 0x00, 0x8F}));
  check_vector(Unsuback{1, {}, {reason::kNoSubscriptionExisted}}, kV5, Role::kClient,
               bytes({0xB0, 0x04, 0x00, 0x01, 0x00, 0x11}));
}

TEST_CASE("a subscription identifier uses up to four bytes, to 268435455") {
  Subscribe s{1, {}, {{"a", {}}}};
  s.properties.subscription_identifiers = {kMaxVariableByteInteger};
  check_vector(
      s, kV5, Role::kServer,
      bytes({0x82, 0x0C, 0x00, 0x01, 0x05, 0x0B, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x01, 'a', 0x00}));
}

TEST_CASE("the packets without a body encode as two bytes") {
  check_vector(Pingreq{}, kV311, Role::kServer, bytes({0xC0, 0x00}));
  check_vector(Pingresp{}, kV311, Role::kClient, bytes({0xD0, 0x00}));
  check_vector(Disconnect{}, kV311, Role::kServer, bytes({0xE0, 0x00}));
  check_vector(Disconnect{}, kV5, Role::kServer, bytes({0xE0, 0x00}));
  check_vector(Auth{}, kV5, Role::kServer, bytes({0xF0, 0x00}));
}

TEST_CASE("5.0 DISCONNECT and AUTH carry a reason code, then properties") {
  check_vector(Disconnect{reason::kDisconnectWithWill, {}}, kV5, Role::kServer,
               bytes({0xE0, 0x01, 0x04}));
  Auth auth{reason::kContinueAuthentication, {}};
  auth.properties.authentication_method = "m";
  check_vector(auth, kV5, Role::kServer, bytes({0xF0, 0x06, 0x18, 0x04, 0x15, 0x00, 0x01, 'm'}));
}

TEST_CASE("remaining lengths use one to four bytes at the boundaries of the standard's table") {
  // A QoS 0 PUBLISH to "t" has a remaining length of 3 + its payload.
  const std::vector<std::pair<std::size_t, Bytes>> table = {
      {127, bytes({0x7F})},
      {128, bytes({0x80, 0x01})},
      {16383, bytes({0xFF, 0x7F})},
      {16384, bytes({0x80, 0x80, 0x01})},
      {2097151, bytes({0xFF, 0xFF, 0x7F})},
      {2097152, bytes({0x80, 0x80, 0x80, 0x01})},
  };
  DecoderOptions options;
  options.maximum_packet_size = 4 * 1024 * 1024;
  for (const auto& [length, encoded_length] : table) {
    INFO("remaining length " << length);
    const Publish publish{false, QoS::kAtMostOnce, false, "t", 0, {}, Bytes(length - 3, 0x5A)};
    const Bytes wire = encode(publish, kV311);
    CHECK(Bytes(wire.begin() + 1, wire.begin() + 1 + encoded_length.size()) == encoded_length);
    CHECK(wire.size() == 1 + encoded_length.size() + length);
    Decoder decoder(kV311, options);
    const Decoded decoded = decode_all(decoder, wire, 4096);
    REQUIRE(decoded.packets.size() == 1);
    CHECK(decoded.packets[0] == Packet{publish});
  }
}

}  // namespace
}  // namespace emsnode::plugins::mq
