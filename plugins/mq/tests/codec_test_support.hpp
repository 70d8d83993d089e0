// Helpers shared by the codec tests: byte literals, decoding a whole input, readable failures.
#pragma once

#include "mqtt_codec.hpp"

#include <catch2/catch.hpp>

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string_view>
#include <vector>

namespace Catch {
template <>
struct StringMaker<emsnode::plugins::mq::Packet> {
  static std::string convert(const emsnode::plugins::mq::Packet& packet) {
    return emsnode::plugins::mq::describe(packet);
  }
};
}  // namespace Catch

namespace emsnode::plugins::mq::test {

inline Bytes bytes(std::initializer_list<int> values) {
  Bytes out;
  for (int v : values) out.push_back(static_cast<std::uint8_t>(v));
  return out;
}

inline Bytes text(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

inline Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/// A length-prefixed MQTT string of raw bytes, valid UTF-8 or not.
inline Bytes mqtt_string(const Bytes& raw) {
  return bytes({static_cast<int>(raw.size() >> 8), static_cast<int>(raw.size() & 0xFF)}) + raw;
}

struct Decoded {
  std::vector<Packet> packets;
  std::optional<DecodeError> error;
};

/// Feeds `input` in pieces of `piece` bytes (all at once by default) until it is used up or
/// the decoder fails.
inline Decoded decode_all(Decoder& decoder, const Bytes& input, std::size_t piece = SIZE_MAX) {
  Decoded out;
  std::size_t offset = 0;
  while (offset < input.size()) {
    const std::size_t size = std::min(piece, input.size() - offset);
    const std::uint8_t* data = input.data() + offset;
    std::size_t left = size;
    while (left > 0) {
      Decoder::Result result = decoder.feed(data, left);
      if (result.status == Decoder::Status::kError) {
        out.error = result.error;
        return out;
      }
      if (result.status == Decoder::Status::kPacket) out.packets.push_back(*result.packet);
      data += result.consumed;
      left -= result.consumed;
    }
    offset += size;
  }
  return out;
}

/// The smallest CONNECT of `version`, client id "c".
inline Bytes connect_bytes(ProtocolVersion version) {
  Connect connect;
  connect.version = version;
  connect.client_id = "c";
  return encode(connect, version);
}

/// What a server makes of `packet` sent after a CONNECT of `version`.
inline Decoded server_decodes(ProtocolVersion version, const Bytes& packet) {
  Decoder decoder;
  Decoded connected = decode_all(decoder, connect_bytes(version));
  REQUIRE(connected.packets.size() == 1);
  return decode_all(decoder, packet);
}

/// What a client of `version` makes of `packet`.
inline Decoded client_decodes(ProtocolVersion version, const Bytes& packet) {
  Decoder decoder(version);
  return decode_all(decoder, packet);
}

/// The error a server gives for `packet` after a CONNECT of `version`; fails the test if none.
inline DecodeError server_error(ProtocolVersion version, const Bytes& packet) {
  const Decoded decoded = server_decodes(version, packet);
  INFO("packets decoded: " << decoded.packets.size());
  REQUIRE(decoded.error.has_value());
  return *decoded.error;
}

/// The one packet a server decodes from `packet`; fails the test on an error.
inline Packet server_packet(ProtocolVersion version, const Bytes& packet) {
  const Decoded decoded = server_decodes(version, packet);
  if (decoded.error) FAIL("refused: " << decoded.error->message);
  REQUIRE(decoded.packets.size() == 1);
  return decoded.packets.front();
}

}  // namespace emsnode::plugins::mq::test
