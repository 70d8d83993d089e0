// The packets as values: names, equality, reason-code tables, the UTF-8 rule, summaries for
// logs. The wire format itself is mqtt_codec.cpp.
#include "mqtt_codec.hpp"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <tuple>
#include <type_traits>

namespace emsnode::plugins::mq {

namespace {

std::string hex(std::uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%02X", static_cast<unsigned>(value));
  return text;
}

}  // namespace

std::string_view to_string(PacketType type) {
  switch (type) {
    case PacketType::kConnect:
      return "CONNECT";
    case PacketType::kConnack:
      return "CONNACK";
    case PacketType::kPublish:
      return "PUBLISH";
    case PacketType::kPuback:
      return "PUBACK";
    case PacketType::kPubrec:
      return "PUBREC";
    case PacketType::kPubrel:
      return "PUBREL";
    case PacketType::kPubcomp:
      return "PUBCOMP";
    case PacketType::kSubscribe:
      return "SUBSCRIBE";
    case PacketType::kSuback:
      return "SUBACK";
    case PacketType::kUnsubscribe:
      return "UNSUBSCRIBE";
    case PacketType::kUnsuback:
      return "UNSUBACK";
    case PacketType::kPingreq:
      return "PINGREQ";
    case PacketType::kPingresp:
      return "PINGRESP";
    case PacketType::kDisconnect:
      return "DISCONNECT";
    case PacketType::kAuth:
      return "AUTH";
  }
  return "UNKNOWN";
}

bool is_valid_reason_code(PacketType type, std::uint8_t code, ProtocolVersion version) {
  // Section 2.4 of MQTT 5.0, table 2-6: which packets may carry which code.
  static constexpr std::uint8_t kConnack[] = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                              0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                              0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
  static constexpr std::uint8_t kPubackPubrec[] = {0x00, 0x10, 0x80, 0x83, 0x87,
                                                   0x90, 0x91, 0x97, 0x99};
  static constexpr std::uint8_t kPubrelPubcomp[] = {0x00, 0x92};
  static constexpr std::uint8_t kSuback[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                             0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
  static constexpr std::uint8_t kUnsuback[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
  static constexpr std::uint8_t kDisconnect[] = {
      0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
      0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
  static constexpr std::uint8_t kAuth[] = {0x00, 0x18, 0x19};
  const auto in = [code](const auto& codes) {
    return std::find(std::begin(codes), std::end(codes), code) != std::end(codes);
  };
  if (version == ProtocolVersion::kV311) {
    switch (type) {
      case PacketType::kConnack:
        return code <= connack_v311::kNotAuthorized;
      case PacketType::kSuback:
        return code <= 0x02 || code == 0x80;
      default:
        return false;
    }
  }
  switch (type) {
    case PacketType::kConnack:
      return in(kConnack);
    case PacketType::kPuback:
    case PacketType::kPubrec:
      return in(kPubackPubrec);
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
      return in(kPubrelPubcomp);
    case PacketType::kSuback:
      return in(kSuback);
    case PacketType::kUnsuback:
      return in(kUnsuback);
    case PacketType::kDisconnect:
      return in(kDisconnect);
    case PacketType::kAuth:
      return in(kAuth);
    default:
      return false;
  }
}

bool Properties::empty() const {
  static const Properties kNone;  // asked for each packet: not built each time
  return *this == kNone;
}

bool Properties::operator==(const Properties& o) const {
  const auto tie = [](const Properties& p) {
    return std::tie(p.payload_format_indicator, p.message_expiry_interval, p.content_type,
                    p.response_topic, p.correlation_data, p.subscription_identifiers,
                    p.session_expiry_interval, p.assigned_client_identifier, p.server_keep_alive,
                    p.authentication_method, p.authentication_data, p.request_problem_information,
                    p.will_delay_interval, p.request_response_information, p.response_information,
                    p.server_reference, p.reason_string, p.receive_maximum, p.topic_alias_maximum,
                    p.topic_alias, p.maximum_qos, p.retain_available, p.user_properties,
                    p.maximum_packet_size, p.wildcard_subscription_available,
                    p.subscription_identifier_available, p.shared_subscription_available);
  };
  return tie(*this) == tie(o);
}

bool Will::operator==(const Will& o) const {
  return std::tie(topic, payload, qos, retain, properties) ==
         std::tie(o.topic, o.payload, o.qos, o.retain, o.properties);
}

bool Connect::operator==(const Connect& o) const {
  return std::tie(version, clean_start, keep_alive, client_id, will, username, password,
                  properties) == std::tie(o.version, o.clean_start, o.keep_alive, o.client_id,
                                          o.will, o.username, o.password, o.properties);
}

bool Connack::operator==(const Connack& o) const {
  return std::tie(session_present, reason_code, properties) ==
         std::tie(o.session_present, o.reason_code, o.properties);
}

bool Publish::operator==(const Publish& o) const {
  return std::tie(dup, qos, retain, topic, packet_id, properties, payload) ==
         std::tie(o.dup, o.qos, o.retain, o.topic, o.packet_id, o.properties, o.payload);
}

bool SubscriptionOptions::operator==(const SubscriptionOptions& o) const {
  return std::tie(max_qos, no_local, retain_as_published, retain_handling) ==
         std::tie(o.max_qos, o.no_local, o.retain_as_published, o.retain_handling);
}

bool TopicSubscription::operator==(const TopicSubscription& o) const {
  return filter == o.filter && options == o.options;
}

bool Subscribe::operator==(const Subscribe& o) const {
  return std::tie(packet_id, properties, subscriptions) ==
         std::tie(o.packet_id, o.properties, o.subscriptions);
}

bool Suback::operator==(const Suback& o) const {
  return std::tie(packet_id, properties, reason_codes) ==
         std::tie(o.packet_id, o.properties, o.reason_codes);
}

bool Unsubscribe::operator==(const Unsubscribe& o) const {
  return std::tie(packet_id, properties, filters) == std::tie(o.packet_id, o.properties, o.filters);
}

bool Unsuback::operator==(const Unsuback& o) const {
  return std::tie(packet_id, properties, reason_codes) ==
         std::tie(o.packet_id, o.properties, o.reason_codes);
}

bool Disconnect::operator==(const Disconnect& o) const {
  return reason_code == o.reason_code && properties == o.properties;
}

bool Auth::operator==(const Auth& o) const {
  return reason_code == o.reason_code && properties == o.properties;
}

PacketType packet_type(const Packet& packet) {
  // The variant's alternatives are in packet type order, starting at CONNECT = 1.
  return static_cast<PacketType>(packet.index() + 1);
}

std::string describe(const Packet& packet) {
  std::string text(to_string(packet_type(packet)));
  std::visit(
      [&](const auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Connect>) {
          text += " v" + std::string(p.version == ProtocolVersion::kV5 ? "5" : "3.1.1") +
                  " client_id=\"" + p.client_id + "\" clean=" + (p.clean_start ? "1" : "0") +
                  " keep_alive=" + std::to_string(p.keep_alive) + (p.will ? " will" : "");
        } else if constexpr (std::is_same_v<T, Connack>) {
          text +=
              " code=" + hex(p.reason_code) + " session_present=" + (p.session_present ? "1" : "0");
        } else if constexpr (std::is_same_v<T, Publish>) {
          text += " topic=\"" + p.topic + "\" qos=" + std::to_string(static_cast<int>(p.qos)) +
                  " id=" + std::to_string(p.packet_id) +
                  " bytes=" + std::to_string(p.payload.size()) + (p.dup ? " dup" : "") +
                  (p.retain ? " retain" : "");
        } else if constexpr (std::is_same_v<T, Subscribe>) {
          text += " id=" + std::to_string(p.packet_id) +
                  " filters=" + std::to_string(p.subscriptions.size());
        } else if constexpr (std::is_same_v<T, Unsubscribe>) {
          text +=
              " id=" + std::to_string(p.packet_id) + " filters=" + std::to_string(p.filters.size());
        } else if constexpr (std::is_same_v<T, Suback> || std::is_same_v<T, Unsuback>) {
          text += " id=" + std::to_string(p.packet_id) +
                  " codes=" + std::to_string(p.reason_codes.size());
        } else if constexpr (std::is_same_v<T, Disconnect> || std::is_same_v<T, Auth>) {
          text += " code=" + hex(p.reason_code);
        } else if constexpr (std::is_same_v<T, Pingreq> || std::is_same_v<T, Pingresp>) {
        } else {
          text += " id=" + std::to_string(p.packet_id) + " code=" + hex(p.reason_code);
        }
      },
      packet);
  return text;
}

bool is_valid_mqtt_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      if (c == 0) return false;  // U+0000 is forbidden in MQTT strings
      ++p;
      continue;
    }
    std::size_t length;
    std::uint32_t code;
    std::uint32_t min;
    if ((c & 0xE0) == 0xC0) {
      length = 2, code = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3, code = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4, code = c & 0x07, min = 0x10000;
    } else {
      return false;  // a continuation byte without a lead, or 0xF8..0xFF
    }
    if (static_cast<std::size_t>(end - p) < length) return false;
    for (std::size_t i = 1; i < length; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      code = (code << 6) | (p[i] & 0x3F);
    }
    if (code < min) return false;                        // overlong
    if (code >= 0xD800 && code <= 0xDFFF) return false;  // surrogate halves
    if (code > 0x10FFFF) return false;
    p += length;
  }
  return true;
}

}  // namespace emsnode::plugins::mq
