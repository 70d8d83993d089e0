// The wire format: the property tables, the checks a receiver makes, the parser and the
// streaming decoder, and the encoder. Parsing reports the first violation by throwing a
// file-local exception, caught at parse_packet(): the hot path (a valid packet) pays nothing.
#include "mqtt_codec.hpp"

#include "topic.hpp"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <type_traits>

namespace emsnode::plugins::mq {

namespace {

constexpr std::size_t kMaxStringLength = 65535;
// A body buffer grown for one large packet is given back rather than kept for the connection's
// life, so that an idle connection holds little memory.
constexpr std::size_t kKeptBufferCapacity = std::size_t{64} * 1024;

std::string hex(std::uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%02X", static_cast<unsigned>(value));
  return text;
}

// ---- errors --------------------------------------------------------------------------------

std::uint8_t reason_for(DecodeErrorKind kind) {
  switch (kind) {
    case DecodeErrorKind::kMalformedPacket:
      return reason::kMalformedPacket;
    case DecodeErrorKind::kProtocolError:
      return reason::kProtocolError;
    case DecodeErrorKind::kPacketTooLarge:
      return reason::kPacketTooLarge;
    case DecodeErrorKind::kUnsupportedProtocolVersion:
      return reason::kUnsupportedProtocolVersion;
    case DecodeErrorKind::kClientIdentifierNotValid:
      return reason::kClientIdentifierNotValid;
    case DecodeErrorKind::kTopicNameInvalid:
      return reason::kTopicNameInvalid;
  }
  return reason::kUnspecifiedError;
}

DecodeError make_error(DecodeErrorKind kind, std::string message) {
  return DecodeError{kind, reason_for(kind), std::move(message)};
}

// Parsing stops at the first error; the exception never leaves this file.
struct ParseFailure {
  DecodeError error;
};

[[noreturn]] void fail_with(DecodeErrorKind kind, std::string message) {
  throw ParseFailure{make_error(kind, std::move(message))};
}

[[noreturn]] void malformed(std::string message) {
  fail_with(DecodeErrorKind::kMalformedPacket, std::move(message));
}

[[noreturn]] void protocol_error(std::string message) {
  fail_with(DecodeErrorKind::kProtocolError, std::move(message));
}

// ---- properties: which packet may carry which ----------------------------------------------

enum Context : std::uint16_t {
  kInConnect = 1 << 0,
  kInConnack = 1 << 1,
  kInPublish = 1 << 2,
  kInWill = 1 << 3,
  kInPuback = 1 << 4,
  kInPubrec = 1 << 5,
  kInPubrel = 1 << 6,
  kInPubcomp = 1 << 7,
  kInSubscribe = 1 << 8,
  kInSuback = 1 << 9,
  kInUnsubscribe = 1 << 10,
  kInUnsuback = 1 << 11,
  kInDisconnect = 1 << 12,
  kInAuth = 1 << 13,
};

constexpr std::uint16_t kInAcks = kInPuback | kInPubrec | kInPubrel | kInPubcomp;
constexpr std::uint16_t kInMessage = kInPublish | kInWill;

std::string_view context_name(Context context) {
  switch (context) {
    case kInConnect:
      return "CONNECT";
    case kInConnack:
      return "CONNACK";
    case kInPublish:
      return "PUBLISH";
    case kInWill:
      return "will properties";
    case kInPuback:
      return "PUBACK";
    case kInPubrec:
      return "PUBREC";
    case kInPubrel:
      return "PUBREL";
    case kInPubcomp:
      return "PUBCOMP";
    case kInSubscribe:
      return "SUBSCRIBE";
    case kInSuback:
      return "SUBACK";
    case kInUnsubscribe:
      return "UNSUBSCRIBE";
    case kInUnsuback:
      return "UNSUBACK";
    case kInDisconnect:
      return "DISCONNECT";
    case kInAuth:
      return "AUTH";
  }
  return "?";
}

namespace property {
constexpr std::uint8_t kPayloadFormatIndicator = 0x01;
constexpr std::uint8_t kMessageExpiryInterval = 0x02;
constexpr std::uint8_t kContentType = 0x03;
constexpr std::uint8_t kResponseTopic = 0x08;
constexpr std::uint8_t kCorrelationData = 0x09;
constexpr std::uint8_t kSubscriptionIdentifier = 0x0B;
constexpr std::uint8_t kSessionExpiryInterval = 0x11;
constexpr std::uint8_t kAssignedClientIdentifier = 0x12;
constexpr std::uint8_t kServerKeepAlive = 0x13;
constexpr std::uint8_t kAuthenticationMethod = 0x15;
constexpr std::uint8_t kAuthenticationData = 0x16;
constexpr std::uint8_t kRequestProblemInformation = 0x17;
constexpr std::uint8_t kWillDelayInterval = 0x18;
constexpr std::uint8_t kRequestResponseInformation = 0x19;
constexpr std::uint8_t kResponseInformation = 0x1A;
constexpr std::uint8_t kServerReference = 0x1C;
constexpr std::uint8_t kReasonString = 0x1F;
constexpr std::uint8_t kReceiveMaximum = 0x21;
constexpr std::uint8_t kTopicAliasMaximum = 0x22;
constexpr std::uint8_t kTopicAlias = 0x23;
constexpr std::uint8_t kMaximumQos = 0x24;
constexpr std::uint8_t kRetainAvailable = 0x25;
constexpr std::uint8_t kUserProperty = 0x26;
constexpr std::uint8_t kMaximumPacketSize = 0x27;
constexpr std::uint8_t kWildcardSubscriptionAvailable = 0x28;
constexpr std::uint8_t kSubscriptionIdentifierAvailable = 0x29;
constexpr std::uint8_t kSharedSubscriptionAvailable = 0x2A;
}  // namespace property

// Table 2-4 of MQTT 5.0: the packets each property may appear in.
std::uint16_t allowed_contexts(std::uint32_t id) {
  using namespace property;
  switch (id) {
    case kPayloadFormatIndicator:
    case kMessageExpiryInterval:
    case kContentType:
    case kResponseTopic:
    case kCorrelationData:
      return kInMessage;
    case kSubscriptionIdentifier:
      return kInPublish | kInSubscribe;
    case kSessionExpiryInterval:
      return kInConnect | kInConnack | kInDisconnect;
    case kAssignedClientIdentifier:
    case kServerKeepAlive:
      return kInConnack;
    case kAuthenticationMethod:
    case kAuthenticationData:
      return kInConnect | kInConnack | kInAuth;
    case kRequestProblemInformation:
      return kInConnect;
    case kWillDelayInterval:
      return kInWill;
    case kRequestResponseInformation:
      return kInConnect;
    case kResponseInformation:
      return kInConnack;
    case kServerReference:
      return kInConnack | kInDisconnect;
    case kReasonString:
      return kInConnack | kInAcks | kInSuback | kInUnsuback | kInDisconnect | kInAuth;
    case kReceiveMaximum:
    case kTopicAliasMaximum:
      return kInConnect | kInConnack;
    case kTopicAlias:
      return kInPublish;
    case kMaximumQos:
    case kRetainAvailable:
      return kInConnack;
    case kUserProperty:
      return 0x3FFF;  // every packet with properties
    case kMaximumPacketSize:
      return kInConnect | kInConnack;
    case kWildcardSubscriptionAvailable:
    case kSubscriptionIdentifierAvailable:
    case kSharedSubscriptionAvailable:
      return kInConnack;
    default:
      return 0;  // not a property
  }
}

Context ack_context(PacketType type) {
  switch (type) {
    case PacketType::kPuback:
      return kInPuback;
    case PacketType::kPubrec:
      return kInPubrec;
    case PacketType::kPubrel:
      return kInPubrel;
    default:
      return kInPubcomp;
  }
}

// Variable Byte Integer values wrapped so that the visitor below can tell them from 4-byte ints.
struct Vbi {
  std::uint32_t value;
};
struct BinaryView {
  const Bytes& value;
};

// Calls f(id, value) for every property present, in identifier order; the one place that knows
// the Properties fields, shared by the size computation and the writer.
template <typename F>
void visit_properties(const Properties& p, F&& f) {
  using namespace property;
  if (p.payload_format_indicator) {
    f(kPayloadFormatIndicator, static_cast<std::uint8_t>(*p.payload_format_indicator));
  }
  if (p.message_expiry_interval) f(kMessageExpiryInterval, *p.message_expiry_interval);
  if (p.content_type) f(kContentType, std::string_view(*p.content_type));
  if (p.response_topic) f(kResponseTopic, std::string_view(*p.response_topic));
  if (p.correlation_data) f(kCorrelationData, BinaryView{*p.correlation_data});
  for (std::uint32_t id : p.subscription_identifiers) f(kSubscriptionIdentifier, Vbi{id});
  if (p.session_expiry_interval) f(kSessionExpiryInterval, *p.session_expiry_interval);
  if (p.assigned_client_identifier) {
    f(kAssignedClientIdentifier, std::string_view(*p.assigned_client_identifier));
  }
  if (p.server_keep_alive) f(kServerKeepAlive, *p.server_keep_alive);
  if (p.authentication_method) {
    f(kAuthenticationMethod, std::string_view(*p.authentication_method));
  }
  if (p.authentication_data) f(kAuthenticationData, BinaryView{*p.authentication_data});
  if (p.request_problem_information) {
    f(kRequestProblemInformation, static_cast<std::uint8_t>(*p.request_problem_information));
  }
  if (p.will_delay_interval) f(kWillDelayInterval, *p.will_delay_interval);
  if (p.request_response_information) {
    f(kRequestResponseInformation, static_cast<std::uint8_t>(*p.request_response_information));
  }
  if (p.response_information) f(kResponseInformation, std::string_view(*p.response_information));
  if (p.server_reference) f(kServerReference, std::string_view(*p.server_reference));
  if (p.reason_string) f(kReasonString, std::string_view(*p.reason_string));
  if (p.receive_maximum) f(kReceiveMaximum, *p.receive_maximum);
  if (p.topic_alias_maximum) f(kTopicAliasMaximum, *p.topic_alias_maximum);
  if (p.topic_alias) f(kTopicAlias, *p.topic_alias);
  if (p.maximum_qos) f(kMaximumQos, static_cast<std::uint8_t>(*p.maximum_qos));
  if (p.retain_available) f(kRetainAvailable, static_cast<std::uint8_t>(*p.retain_available));
  for (const auto& pair : p.user_properties) f(kUserProperty, pair);
  if (p.maximum_packet_size) f(kMaximumPacketSize, *p.maximum_packet_size);
  if (p.wildcard_subscription_available) {
    f(kWildcardSubscriptionAvailable,
      static_cast<std::uint8_t>(*p.wildcard_subscription_available));
  }
  if (p.subscription_identifier_available) {
    f(kSubscriptionIdentifierAvailable,
      static_cast<std::uint8_t>(*p.subscription_identifier_available));
  }
  if (p.shared_subscription_available) {
    f(kSharedSubscriptionAvailable, static_cast<std::uint8_t>(*p.shared_subscription_available));
  }
}

// ---- reading -------------------------------------------------------------------------------

/// Reads the data types of section 1.5 from a bounded range; never past its end.
class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t size, std::string_view what)
      : p_(data), end_(data + size), what_(what) {}

  std::size_t remaining() const { return static_cast<std::size_t>(end_ - p_); }
  bool at_end() const { return p_ == end_; }
  std::string_view what() const { return what_; }

  std::uint8_t u8() {
    need(1);
    return *p_++;
  }
  std::uint16_t u16() {
    need(2);
    const auto value = static_cast<std::uint16_t>((p_[0] << 8) | p_[1]);
    p_ += 2;
    return value;
  }
  std::uint32_t u32() {
    need(4);
    const std::uint32_t value = (std::uint32_t{p_[0]} << 24) | (std::uint32_t{p_[1]} << 16) |
                                (std::uint32_t{p_[2]} << 8) | std::uint32_t{p_[3]};
    p_ += 4;
    return value;
  }
  std::uint32_t vbi() {
    std::uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      const std::uint8_t byte = u8();
      value |= std::uint32_t{byte & 0x7Fu} << (7 * i);
      if ((byte & 0x80) == 0) return value;
    }
    malformed(std::string(what_) + ": variable byte integer longer than 4 bytes");
  }
  std::string utf8(std::string_view field) {
    const std::uint16_t length = u16();
    need(length, field);
    std::string text(reinterpret_cast<const char*>(p_), length);
    p_ += length;
    if (!is_valid_mqtt_utf8(text)) {
      malformed(std::string(what_) + ": " + std::string(field) + " is not valid UTF-8");
    }
    return text;
  }
  Bytes binary(std::string_view field) {
    const std::uint16_t length = u16();
    need(length, field);
    Bytes data(p_, p_ + length);
    p_ += length;
    return data;
  }
  Bytes rest() {
    Bytes data(p_, end_);
    p_ = end_;
    return data;
  }
  /// A reader of the next `size` bytes, which this one skips.
  Reader sub(std::size_t size, std::string_view field) {
    need(size, field);
    Reader inner(p_, size, what_);
    p_ += size;
    return inner;
  }
  void expect_end() {
    if (!at_end()) {
      malformed(std::string(what_) + ": " + std::to_string(remaining()) +
                " bytes after the end of the packet");
    }
  }

 private:
  void need(std::size_t size, std::string_view field = "field") {
    if (remaining() < size) {
      malformed(std::string(what_) + ": " + std::string(field) + " runs past the packet's end");
    }
  }

  const std::uint8_t* p_;
  const std::uint8_t* end_;
  std::string_view what_;
};

bool read_flag(Reader& r, std::string_view name) {
  const std::uint8_t value = r.u8();
  if (value > 1) protocol_error(std::string(name) + " is " + std::to_string(value) + ", not 0/1");
  return value == 1;
}

Properties read_properties(Reader& outer, Context context) {
  const std::uint32_t length = outer.vbi();
  Reader r = outer.sub(length, "property length");
  Properties p;
  std::uint64_t seen = 0;  // one bit per identifier; all are below 64
  while (!r.at_end()) {
    const std::uint32_t id = r.vbi();
    const std::uint16_t allowed = allowed_contexts(id);
    if (allowed == 0) malformed(std::string(r.what()) + ": unknown property " + hex(id));
    if ((allowed & context) == 0) {
      malformed(std::string(r.what()) + ": property " + hex(id) + " is not allowed in " +
                std::string(context_name(context)));
    }
    using namespace property;
    if (id != kUserProperty && id != kSubscriptionIdentifier) {
      if (seen & (std::uint64_t{1} << id)) {
        protocol_error(std::string(r.what()) + ": property " + hex(id) + " appears twice");
      }
      seen |= std::uint64_t{1} << id;
    }
    switch (id) {
      case kPayloadFormatIndicator:
        p.payload_format_indicator = read_flag(r, "payload format indicator");
        break;
      case kMessageExpiryInterval:
        p.message_expiry_interval = r.u32();
        break;
      case kContentType:
        p.content_type = r.utf8("content type");
        break;
      case kResponseTopic:
        p.response_topic = r.utf8("response topic");
        break;
      case kCorrelationData:
        p.correlation_data = r.binary("correlation data");
        break;
      case kSubscriptionIdentifier:
        p.subscription_identifiers.push_back(r.vbi());
        break;
      case kSessionExpiryInterval:
        p.session_expiry_interval = r.u32();
        break;
      case kAssignedClientIdentifier:
        p.assigned_client_identifier = r.utf8("assigned client identifier");
        break;
      case kServerKeepAlive:
        p.server_keep_alive = r.u16();
        break;
      case kAuthenticationMethod:
        p.authentication_method = r.utf8("authentication method");
        break;
      case kAuthenticationData:
        p.authentication_data = r.binary("authentication data");
        break;
      case kRequestProblemInformation:
        p.request_problem_information = read_flag(r, "request problem information");
        break;
      case kWillDelayInterval:
        p.will_delay_interval = r.u32();
        break;
      case kRequestResponseInformation:
        p.request_response_information = read_flag(r, "request response information");
        break;
      case kResponseInformation:
        p.response_information = r.utf8("response information");
        break;
      case kServerReference:
        p.server_reference = r.utf8("server reference");
        break;
      case kReasonString:
        p.reason_string = r.utf8("reason string");
        break;
      case kReceiveMaximum:
        p.receive_maximum = r.u16();
        break;
      case kTopicAliasMaximum:
        p.topic_alias_maximum = r.u16();
        break;
      case kTopicAlias:
        p.topic_alias = r.u16();
        break;
      case kMaximumQos: {
        const std::uint8_t qos = r.u8();
        if (qos > 1) protocol_error("maximum QoS is " + std::to_string(qos) + ", not 0/1");
        p.maximum_qos = static_cast<QoS>(qos);
        break;
      }
      case kRetainAvailable:
        p.retain_available = read_flag(r, "retain available");
        break;
      case kUserProperty: {
        std::string key = r.utf8("user property name");
        std::string value = r.utf8("user property value");
        p.user_properties.emplace_back(std::move(key), std::move(value));
        break;
      }
      case kMaximumPacketSize:
        p.maximum_packet_size = r.u32();
        break;
      case kWildcardSubscriptionAvailable:
        p.wildcard_subscription_available = read_flag(r, "wildcard subscription available");
        break;
      case kSubscriptionIdentifierAvailable:
        p.subscription_identifier_available = read_flag(r, "subscription identifier available");
        break;
      case kSharedSubscriptionAvailable:
        p.shared_subscription_available = read_flag(r, "shared subscription available");
        break;
    }
  }
  return p;
}

// ---- semantic checks, shared by the decoder (after parsing) and the encoder ----------------

using Check = std::optional<DecodeError>;

Check error(DecodeErrorKind kind, std::string message) {
  return make_error(kind, std::move(message));
}

Check check_properties(const Properties& p, std::string_view what) {
  const auto protocol = [&](const std::string& message) {
    return error(DecodeErrorKind::kProtocolError, std::string(what) + ": " + message);
  };
  if (p.receive_maximum && *p.receive_maximum == 0) return protocol("receive maximum 0");
  if (p.maximum_packet_size && *p.maximum_packet_size == 0) {
    return protocol("maximum packet size 0");
  }
  if (p.topic_alias && *p.topic_alias == 0) return protocol("topic alias 0");
  if (p.maximum_qos && *p.maximum_qos > QoS::kAtLeastOnce) return protocol("maximum QoS 2");
  for (std::uint32_t id : p.subscription_identifiers) {
    if (id == 0 || id > kMaxVariableByteInteger) {
      return protocol("subscription identifier " + std::to_string(id));
    }
  }
  if (p.authentication_data && !p.authentication_method) {
    return protocol("authentication data without an authentication method");
  }
  if (p.response_topic && !is_valid_topic_name(*p.response_topic)) {
    return protocol("response topic is not a valid topic name");
  }
  return std::nullopt;
}

Check check_no_properties(const Properties& p, std::string_view what) {
  if (!p.empty())
    return error(DecodeErrorKind::kMalformedPacket,
                 std::string(what) + ": properties in a 3.1.1 packet");
  return std::nullopt;
}

Check check_packet_id(std::uint16_t id, std::string_view what) {
  if (id == 0) return error(DecodeErrorKind::kProtocolError, std::string(what) + ": packet id 0");
  return std::nullopt;
}

Check check_reason(PacketType type, std::uint8_t code, ProtocolVersion version) {
  if (is_valid_reason_code(type, code, version)) return std::nullopt;
  return error(DecodeErrorKind::kProtocolError,
               std::string(to_string(type)) + ": reason code " + hex(code) + " not allowed");
}

/// Every rule of the standard that a packet value can break, for the receiver `receiver` (or
/// either end when not given: the encoder's check).
Check check_packet(const Packet& packet, ProtocolVersion version, std::optional<Role> receiver) {
  const bool v5 = version == ProtocolVersion::kV5;
  const PacketType type = packet_type(packet);
  const std::string_view what = to_string(type);
  const auto props = [&](const Properties& p) -> Check {
    return v5 ? check_properties(p, what) : check_no_properties(p, what);
  };
  if (!v5 && type == PacketType::kAuth) {
    return error(DecodeErrorKind::kMalformedPacket, "AUTH does not exist in 3.1.1");
  }
  return std::visit(
      [&](const auto& p) -> Check {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Connect>) {
          if (p.version != version) {
            return error(DecodeErrorKind::kMalformedPacket, "CONNECT: version mismatch");
          }
          if (Check c = props(p.properties)) return c;
          if (!v5 && p.password && !p.username) {
            return error(DecodeErrorKind::kMalformedPacket,
                         "CONNECT: password flag without user name flag");
          }
          if (!v5 && p.client_id.empty() && !p.clean_start) {
            return error(DecodeErrorKind::kClientIdentifierNotValid,
                         "CONNECT: empty client id without a clean session");
          }
          if (p.will) {
            if (Check c = props(p.will->properties)) return c;
            if (!is_valid_topic_name(p.will->topic)) {
              return error(DecodeErrorKind::kTopicNameInvalid,
                           "CONNECT: will topic is not a valid topic name");
            }
          }
          return std::nullopt;
        } else if constexpr (std::is_same_v<T, Connack>) {
          if (Check c = props(p.properties)) return c;
          if (Check c = check_reason(type, p.reason_code, version)) return c;
          if (p.session_present && p.reason_code >= (v5 ? 0x80 : 0x01)) {
            return error(DecodeErrorKind::kProtocolError,
                         "CONNACK: session present with a refusal");
          }
          return std::nullopt;
        } else if constexpr (std::is_same_v<T, Publish>) {
          if (p.dup && p.qos == QoS::kAtMostOnce) {
            return error(DecodeErrorKind::kMalformedPacket, "PUBLISH: DUP set with QoS 0");
          }
          if (p.qos != QoS::kAtMostOnce) {
            if (Check c = check_packet_id(p.packet_id, what)) return c;
          } else if (p.packet_id != 0) {
            return error(DecodeErrorKind::kMalformedPacket, "PUBLISH: packet id with QoS 0");
          }
          if (Check c = props(p.properties)) return c;
          if (p.topic.empty()) {
            if (!v5) return error(DecodeErrorKind::kTopicNameInvalid, "PUBLISH: empty topic");
            if (!p.properties.topic_alias) {
              return error(DecodeErrorKind::kProtocolError,
                           "PUBLISH: empty topic without a topic alias");
            }
          } else if (!is_valid_topic_name(p.topic)) {
            return error(DecodeErrorKind::kTopicNameInvalid, "PUBLISH: wildcard in topic name");
          }
          if (receiver == Role::kServer && !p.properties.subscription_identifiers.empty()) {
            return error(DecodeErrorKind::kProtocolError,
                         "PUBLISH: subscription identifier sent to a server");
          }
          return std::nullopt;
        } else if constexpr (std::is_same_v<T, Puback> || std::is_same_v<T, Pubrec> ||
                             std::is_same_v<T, Pubrel> || std::is_same_v<T, Pubcomp>) {
          if (Check c = check_packet_id(p.packet_id, what)) return c;
          if (Check c = props(p.properties)) return c;
          if (!v5) {
            if (p.reason_code != reason::kSuccess) {
              return error(DecodeErrorKind::kMalformedPacket,
                           std::string(what) + ": reason code in 3.1.1");
            }
            return std::nullopt;
          }
          return check_reason(type, p.reason_code, version);
        } else if constexpr (std::is_same_v<T, Subscribe>) {
          if (Check c = check_packet_id(p.packet_id, what)) return c;
          if (Check c = props(p.properties)) return c;
          if (p.subscriptions.empty()) {
            return error(DecodeErrorKind::kProtocolError, "SUBSCRIBE: no topic filter");
          }
          if (p.properties.subscription_identifiers.size() > 1) {
            return error(DecodeErrorKind::kProtocolError,
                         "SUBSCRIBE: more than one subscription identifier");
          }
          for (const TopicSubscription& s : p.subscriptions) {
            if (!v5 && s.options != SubscriptionOptions{s.options.max_qos}) {
              return error(DecodeErrorKind::kMalformedPacket,
                           "SUBSCRIBE: 5.0 subscription options in 3.1.1");
            }
            if (s.options.max_qos > QoS::kExactlyOnce) {
              return error(DecodeErrorKind::kMalformedPacket, "SUBSCRIBE: QoS 3");
            }
            if (s.options.retain_handling > RetainHandling::kDoNotSend) {
              return error(DecodeErrorKind::kProtocolError, "SUBSCRIBE: retain handling 3");
            }
            if (v5 && s.options.no_local && is_shared_subscription(s.filter)) {
              return error(DecodeErrorKind::kProtocolError,
                           "SUBSCRIBE: no local on a shared subscription");
            }
          }
          return std::nullopt;
        } else if constexpr (std::is_same_v<T, Suback> || std::is_same_v<T, Unsuback>) {
          if (Check c = check_packet_id(p.packet_id, what)) return c;
          if (Check c = props(p.properties)) return c;
          if (!v5 && type == PacketType::kUnsuback) {
            if (p.reason_codes.empty()) return std::nullopt;
            return error(DecodeErrorKind::kMalformedPacket, "UNSUBACK: reason codes in 3.1.1");
          }
          if (p.reason_codes.empty()) {
            return error(DecodeErrorKind::kProtocolError, std::string(what) + ": no reason code");
          }
          for (std::uint8_t code : p.reason_codes) {
            if (Check c = check_reason(type, code, version)) return c;
          }
          return std::nullopt;
        } else if constexpr (std::is_same_v<T, Unsubscribe>) {
          if (Check c = check_packet_id(p.packet_id, what)) return c;
          if (Check c = props(p.properties)) return c;
          if (p.filters.empty()) {
            return error(DecodeErrorKind::kProtocolError, "UNSUBSCRIBE: no topic filter");
          }
          return std::nullopt;
        } else if constexpr (std::is_same_v<T, Disconnect> || std::is_same_v<T, Auth>) {
          if (Check c = props(p.properties)) return c;
          if (!v5) {
            if (p.reason_code == reason::kSuccess) return std::nullopt;
            return error(DecodeErrorKind::kMalformedPacket, "DISCONNECT: reason code in 3.1.1");
          }
          return check_reason(type, p.reason_code, version);
        } else {
          return std::nullopt;  // PINGREQ, PINGRESP
        }
      },
      packet);
}

// ---- parsing the packets -------------------------------------------------------------------

QoS read_qos(std::uint8_t bits, std::string_view what) {
  if (bits > 2) malformed(std::string(what) + ": QoS 3");
  return static_cast<QoS>(bits);
}

Connect parse_connect(Reader& r) {
  Connect c;
  const std::uint16_t name_length = r.u16();
  Reader name_reader = r.sub(name_length, "protocol name");
  const Bytes name_bytes = name_reader.rest();
  const std::string_view name(reinterpret_cast<const char*>(name_bytes.data()), name_bytes.size());
  const std::uint8_t level = r.u8();
  if (name != "MQTT" || (level != 4 && level != 5)) {
    // "MQIsdp" level 3 is MQTT 3.1, which this server does not speak.
    fail_with(DecodeErrorKind::kUnsupportedProtocolVersion,
              std::string("CONNECT: ") + (name == "MQTT" ? "protocol" : "unknown protocol") +
                  " level " + std::to_string(level));
  }
  c.version = static_cast<ProtocolVersion>(level);
  const bool v5 = c.version == ProtocolVersion::kV5;
  const std::uint8_t flags = r.u8();
  if (flags & 0x01) malformed("CONNECT: reserved flag set");
  c.clean_start = (flags & 0x02) != 0;
  const bool will = (flags & 0x04) != 0;
  const QoS will_qos = read_qos((flags >> 3) & 0x03, "CONNECT will");
  const bool will_retain = (flags & 0x20) != 0;
  const bool password = (flags & 0x40) != 0;
  const bool username = (flags & 0x80) != 0;
  if (!will && (will_qos != QoS::kAtMostOnce || will_retain)) {
    malformed("CONNECT: will QoS or retain without the will flag");
  }
  c.keep_alive = r.u16();
  if (v5) c.properties = read_properties(r, kInConnect);
  c.client_id = r.utf8("client id");
  if (will) {
    Will w;
    w.qos = will_qos;
    w.retain = will_retain;
    if (v5) w.properties = read_properties(r, kInWill);
    w.topic = r.utf8("will topic");
    w.payload = r.binary("will payload");
    c.will = std::move(w);
  }
  if (username) c.username = r.utf8("user name");
  if (password) c.password = r.binary("password");
  r.expect_end();
  return c;
}

Connack parse_connack(Reader& r, bool v5) {
  Connack c;
  const std::uint8_t flags = r.u8();
  if (flags & 0xFE) malformed("CONNACK: reserved flags set");
  c.session_present = (flags & 0x01) != 0;
  c.reason_code = r.u8();
  if (v5) c.properties = read_properties(r, kInConnack);
  r.expect_end();
  return c;
}

Publish parse_publish(Reader& r, std::uint8_t flags, bool v5) {
  Publish p;
  p.dup = (flags & 0x08) != 0;
  p.qos = read_qos((flags >> 1) & 0x03, "PUBLISH");
  p.retain = (flags & 0x01) != 0;
  p.topic = r.utf8("topic name");
  if (p.qos != QoS::kAtMostOnce) p.packet_id = r.u16();
  if (v5) p.properties = read_properties(r, kInPublish);
  p.payload = r.rest();
  return p;
}

template <typename T>
T parse_ack(Reader& r, bool v5) {
  T a;
  a.packet_id = r.u16();
  if (v5) {
    // Reason code and properties may be left out: absent means success, no properties.
    if (!r.at_end()) a.reason_code = r.u8();
    if (!r.at_end()) a.properties = read_properties(r, ack_context(T::kType));
  }
  r.expect_end();
  return a;
}

Subscribe parse_subscribe(Reader& r, bool v5) {
  Subscribe s;
  s.packet_id = r.u16();
  if (v5) s.properties = read_properties(r, kInSubscribe);
  while (!r.at_end()) {
    TopicSubscription sub;
    sub.filter = r.utf8("topic filter");
    const std::uint8_t options = r.u8();
    if (options & (v5 ? 0xC0 : 0xFC)) malformed("SUBSCRIBE: reserved option bits set");
    sub.options.max_qos = read_qos(options & 0x03, "SUBSCRIBE");
    sub.options.no_local = (options & 0x04) != 0;
    sub.options.retain_as_published = (options & 0x08) != 0;
    const std::uint8_t retain_handling = (options >> 4) & 0x03;
    if (retain_handling == 3) protocol_error("SUBSCRIBE: retain handling 3");
    sub.options.retain_handling = static_cast<RetainHandling>(retain_handling);
    s.subscriptions.push_back(std::move(sub));
  }
  return s;
}

template <typename T>
T parse_reason_list(Reader& r, bool v5, Context context) {
  T a;
  a.packet_id = r.u16();
  if (v5) a.properties = read_properties(r, context);
  while (!r.at_end()) a.reason_codes.push_back(r.u8());
  return a;
}

Unsubscribe parse_unsubscribe(Reader& r, bool v5) {
  Unsubscribe u;
  u.packet_id = r.u16();
  if (v5) u.properties = read_properties(r, kInUnsubscribe);
  while (!r.at_end()) u.filters.push_back(r.utf8("topic filter"));
  return u;
}

template <typename T>
T parse_reason_and_properties(Reader& r, bool v5, Context context) {
  T d;
  if (v5) {
    if (!r.at_end()) d.reason_code = r.u8();
    if (!r.at_end()) d.properties = read_properties(r, context);
  }
  r.expect_end();
  return d;
}

// The flags bits 0-3 of the first byte that each packet type must carry (section 2.1.3);
// PUBLISH's are its own.
std::uint8_t required_flags(PacketType type) {
  switch (type) {
    case PacketType::kPubrel:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
      return 0x02;
    default:
      return 0x00;
  }
}

Packet parse_body(PacketType type, std::uint8_t flags, Reader& r, bool v5) {
  switch (type) {
    case PacketType::kConnect:
      return parse_connect(r);
    case PacketType::kConnack:
      return parse_connack(r, v5);
    case PacketType::kPublish:
      return parse_publish(r, flags, v5);
    case PacketType::kPuback:
      return parse_ack<Puback>(r, v5);
    case PacketType::kPubrec:
      return parse_ack<Pubrec>(r, v5);
    case PacketType::kPubrel:
      return parse_ack<Pubrel>(r, v5);
    case PacketType::kPubcomp:
      return parse_ack<Pubcomp>(r, v5);
    case PacketType::kSubscribe:
      return parse_subscribe(r, v5);
    case PacketType::kSuback:
      return parse_reason_list<Suback>(r, v5, kInSuback);
    case PacketType::kUnsubscribe:
      return parse_unsubscribe(r, v5);
    case PacketType::kUnsuback: {
      if (!v5) {  // 3.1.1: the packet id and nothing else
        Unsuback u;
        u.packet_id = r.u16();
        r.expect_end();
        return u;
      }
      return parse_reason_list<Unsuback>(r, v5, kInUnsuback);
    }
    case PacketType::kPingreq:
      r.expect_end();
      return Pingreq{};
    case PacketType::kPingresp:
      r.expect_end();
      return Pingresp{};
    case PacketType::kDisconnect:
      return parse_reason_and_properties<Disconnect>(r, v5, kInDisconnect);
    case PacketType::kAuth:
      return parse_reason_and_properties<Auth>(r, v5, kInAuth);
  }
  malformed("unknown packet type");
}

// ---- writing -------------------------------------------------------------------------------

[[noreturn]] void encode_error(const std::string& message) {
  throw EncodeError(message);
}

std::size_t vbi_size(std::uint32_t value) {
  return value < 128 ? 1 : value < 16384 ? 2 : value < 2097152 ? 3 : 4;
}

/// Appends to a byte vector, or (with a null vector) only counts: one writer serves the size
/// computation the fixed header needs and the writing itself.
class Writer {
 public:
  explicit Writer(Bytes* out) : out_(out) {}
  std::size_t size() const { return size_; }

  void u8(std::uint8_t v) {
    ++size_;
    if (out_) out_->push_back(v);
  }
  void u16(std::uint16_t v) {
    u8(static_cast<std::uint8_t>(v >> 8));
    u8(static_cast<std::uint8_t>(v));
  }
  void u32(std::uint32_t v) {
    u16(static_cast<std::uint16_t>(v >> 16));
    u16(static_cast<std::uint16_t>(v));
  }
  void vbi(std::uint32_t v) {
    if (v > kMaxVariableByteInteger) encode_error("variable byte integer over 268435455");
    do {
      std::uint8_t byte = v & 0x7F;
      v >>= 7;
      if (v != 0) byte |= 0x80;
      u8(byte);
    } while (v != 0);
  }
  void raw(const std::uint8_t* data, std::size_t size) {
    size_ += size;
    if (out_) out_->insert(out_->end(), data, data + size);
  }
  void utf8(std::string_view text, std::string_view field) {
    if (!is_valid_mqtt_utf8(text)) encode_error(std::string(field) + " is not valid UTF-8");
    binary(reinterpret_cast<const std::uint8_t*>(text.data()), text.size(), field);
  }
  void binary(const std::uint8_t* data, std::size_t size, std::string_view field) {
    if (size > kMaxStringLength) encode_error(std::string(field) + " over 65535 bytes");
    u16(static_cast<std::uint16_t>(size));
    raw(data, size);
  }
  void binary(const Bytes& data, std::string_view field) {
    binary(data.data(), data.size(), field);
  }

 private:
  Bytes* out_;
  std::size_t size_ = 0;
};

void write_property_values(Writer& w, const Properties& p, Context context) {
  visit_properties(p, [&](std::uint8_t id, const auto& value) {
    if ((allowed_contexts(id) & context) == 0) {
      encode_error("property " + hex(id) + " is not allowed in " +
                   std::string(context_name(context)));
    }
    w.vbi(id);
    using V = std::decay_t<decltype(value)>;
    if constexpr (std::is_same_v<V, std::uint8_t>) {
      w.u8(value);
    } else if constexpr (std::is_same_v<V, std::uint16_t>) {
      w.u16(value);
    } else if constexpr (std::is_same_v<V, std::uint32_t>) {
      w.u32(value);
    } else if constexpr (std::is_same_v<V, Vbi>) {
      w.vbi(value.value);
    } else if constexpr (std::is_same_v<V, std::string_view>) {
      w.utf8(value, "property " + hex(id));
    } else if constexpr (std::is_same_v<V, BinaryView>) {
      w.binary(value.value, "property " + hex(id));
    } else {
      w.utf8(value.first, "user property name");
      w.utf8(value.second, "user property value");
    }
  });
}

std::size_t properties_size(const Properties& p, Context context) {
  Writer counter(nullptr);
  write_property_values(counter, p, context);
  return counter.size();
}

void write_properties(Writer& w, const Properties& p, Context context) {
  const std::size_t size = properties_size(p, context);
  if (size > kMaxVariableByteInteger) encode_error("properties over 268435455 bytes");
  w.vbi(static_cast<std::uint32_t>(size));
  write_property_values(w, p, context);
}

/// Writes the body (everything after the fixed header) and returns the flags of the first byte.
std::uint8_t write_body(Writer& w, const Packet& packet, ProtocolVersion version) {
  const bool v5 = version == ProtocolVersion::kV5;
  return std::visit(
      [&](const auto& p) -> std::uint8_t {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Connect>) {
          w.utf8("MQTT", "protocol name");
          w.u8(static_cast<std::uint8_t>(p.version));
          std::uint8_t flags = p.clean_start ? 0x02 : 0x00;
          if (p.will) {
            flags |= 0x04 | static_cast<std::uint8_t>(static_cast<int>(p.will->qos) << 3);
            if (p.will->retain) flags |= 0x20;
          }
          if (p.password) flags |= 0x40;
          if (p.username) flags |= 0x80;
          w.u8(flags);
          w.u16(p.keep_alive);
          if (v5) write_properties(w, p.properties, kInConnect);
          w.utf8(p.client_id, "client id");
          if (p.will) {
            if (v5) write_properties(w, p.will->properties, kInWill);
            w.utf8(p.will->topic, "will topic");
            w.binary(p.will->payload, "will payload");
          }
          if (p.username) w.utf8(*p.username, "user name");
          if (p.password) w.binary(*p.password, "password");
          return 0;
        } else if constexpr (std::is_same_v<T, Connack>) {
          w.u8(p.session_present ? 0x01 : 0x00);
          w.u8(p.reason_code);
          if (v5) write_properties(w, p.properties, kInConnack);
          return 0;
        } else if constexpr (std::is_same_v<T, Publish>) {
          w.utf8(p.topic, "topic name");
          if (p.qos != QoS::kAtMostOnce) w.u16(p.packet_id);
          if (v5) write_properties(w, p.properties, kInPublish);
          w.raw(p.payload.data(), p.payload.size());
          return static_cast<std::uint8_t>((p.dup ? 0x08 : 0) | (static_cast<int>(p.qos) << 1) |
                                           (p.retain ? 0x01 : 0));
        } else if constexpr (std::is_same_v<T, Puback> || std::is_same_v<T, Pubrec> ||
                             std::is_same_v<T, Pubrel> || std::is_same_v<T, Pubcomp>) {
          w.u16(p.packet_id);
          // The short forms the standard allows: nothing for success without properties.
          if (v5 && (p.reason_code != reason::kSuccess || !p.properties.empty())) {
            w.u8(p.reason_code);
            if (!p.properties.empty()) write_properties(w, p.properties, ack_context(T::kType));
          }
          return required_flags(T::kType);
        } else if constexpr (std::is_same_v<T, Subscribe>) {
          w.u16(p.packet_id);
          if (v5) write_properties(w, p.properties, kInSubscribe);
          for (const TopicSubscription& s : p.subscriptions) {
            w.utf8(s.filter, "topic filter");
            w.u8(static_cast<std::uint8_t>(static_cast<int>(s.options.max_qos) |
                                           (s.options.no_local ? 0x04 : 0) |
                                           (s.options.retain_as_published ? 0x08 : 0) |
                                           (static_cast<int>(s.options.retain_handling) << 4)));
          }
          return required_flags(PacketType::kSubscribe);
        } else if constexpr (std::is_same_v<T, Suback> || std::is_same_v<T, Unsuback>) {
          w.u16(p.packet_id);
          if (v5) {
            write_properties(w, p.properties, std::is_same_v<T, Suback> ? kInSuback : kInUnsuback);
          }
          for (std::uint8_t code : p.reason_codes) w.u8(code);
          return 0;
        } else if constexpr (std::is_same_v<T, Unsubscribe>) {
          w.u16(p.packet_id);
          if (v5) write_properties(w, p.properties, kInUnsubscribe);
          for (const std::string& filter : p.filters) w.utf8(filter, "topic filter");
          return required_flags(PacketType::kUnsubscribe);
        } else if constexpr (std::is_same_v<T, Disconnect> || std::is_same_v<T, Auth>) {
          if (v5 && (p.reason_code != reason::kSuccess || !p.properties.empty())) {
            w.u8(p.reason_code);
            if (!p.properties.empty()) {
              write_properties(w, p.properties,
                               std::is_same_v<T, Disconnect> ? kInDisconnect : kInAuth);
            }
          }
          return 0;
        } else {
          return 0;  // PINGREQ, PINGRESP: no body
        }
      },
      packet);
}

/// Checks `packet` and returns its body size; throws EncodeError.
std::size_t checked_body_size(const Packet& packet, ProtocolVersion version) {
  if (Check c = check_packet(packet, version, std::nullopt)) encode_error(c->message);
  Writer counter(nullptr);
  write_body(counter, packet, version);
  if (counter.size() > kMaxVariableByteInteger) encode_error("packet over 268435455 bytes");
  return counter.size();
}

}  // namespace

// ---- decoding ------------------------------------------------------------------------------

std::optional<std::uint8_t> DecodeError::connack_v311() const {
  switch (kind) {
    case DecodeErrorKind::kUnsupportedProtocolVersion:
      return connack_v311::kUnacceptableProtocolVersion;
    case DecodeErrorKind::kClientIdentifierNotValid:
      return connack_v311::kIdentifierRejected;
    default:
      return std::nullopt;
  }
}

std::variant<Packet, DecodeError> parse_packet(std::uint8_t first_byte, const std::uint8_t* body,
                                               std::size_t size, ProtocolVersion version,
                                               Role role) {
  const std::uint8_t type_bits = first_byte >> 4;
  const std::uint8_t flags = first_byte & 0x0F;
  try {
    if (type_bits == 0) malformed("reserved packet type 0");
    const auto type = static_cast<PacketType>(type_bits);
    const bool is_connect = type == PacketType::kConnect;
    if (!is_connect && type == PacketType::kAuth && version == ProtocolVersion::kV311) {
      malformed("reserved packet type 15 in 3.1.1");
    }
    if (type != PacketType::kPublish && flags != required_flags(type)) {
      malformed(std::string(to_string(type)) + ": reserved flags " + hex(flags));
    }
    if (type == PacketType::kPublish && (flags & 0x06) == 0x06) malformed("PUBLISH: QoS 3");
    if (type == PacketType::kPublish && (flags & 0x0E) == 0x08) {
      malformed("PUBLISH: DUP set with QoS 0");
    }
    const bool to_server = role == Role::kServer;
    const bool server_only = type == PacketType::kConnect || type == PacketType::kSubscribe ||
                             type == PacketType::kUnsubscribe || type == PacketType::kPingreq;
    const bool client_only = type == PacketType::kConnack || type == PacketType::kSuback ||
                             type == PacketType::kUnsuback || type == PacketType::kPingresp;
    if ((to_server && client_only) || (!to_server && server_only)) {
      protocol_error(std::string(to_string(type)) +
                     (to_server ? " sent to a server" : " sent to a client"));
    }
    Reader reader(body, size, to_string(type));
    Packet packet = parse_body(type, flags, reader, version == ProtocolVersion::kV5);
    const ProtocolVersion effective = is_connect ? std::get<Connect>(packet).version : version;
    if (Check c = check_packet(packet, effective, role)) return std::move(*c);
    return packet;
  } catch (const ParseFailure& failure) {
    return failure.error;
  }
}

// ---- Decoder -------------------------------------------------------------------------------

Decoder::Decoder(DecoderOptions options) : options_(options), role_(Role::kServer) {}

Decoder::Decoder(ProtocolVersion version, DecoderOptions options)
    : options_(options), role_(Role::kClient), version_(version), connected_(true) {}

Decoder::Result Decoder::fail(DecodeError error) {
  failed_ = error;
  header_.clear();
  in_body_ = false;
  Bytes().swap(body_);
  Result result;
  result.status = Status::kError;
  result.error = std::move(error);
  return result;
}

Decoder::Result Decoder::feed(const std::uint8_t* data, std::size_t size) {
  if (failed_) {
    Result result;
    result.status = Status::kError;
    result.error = *failed_;
    return result;
  }
  std::size_t used = 0;
  if (!in_body_) {
    // The fixed header, a byte at a time: the type byte, then 1 to 4 remaining-length bytes.
    while (true) {
      if (used == size) return Result{Status::kNeedMore, used, std::nullopt, {}};
      const std::uint8_t byte = data[used++];
      if (header_.empty()) {
        // Checked before the rest arrives: no reason to wait for the body of a packet that
        // cannot be accepted.
        const auto type = static_cast<PacketType>(byte >> 4);
        if (role_ == Role::kServer && !connected_ && type != PacketType::kConnect) {
          return fail(make_error(DecodeErrorKind::kProtocolError,
                                 std::string(to_string(type)) + " before CONNECT"));
        }
        if (role_ == Role::kServer && connected_ && type == PacketType::kConnect) {
          return fail(make_error(DecodeErrorKind::kProtocolError, "second CONNECT"));
        }
      } else if (header_.size() == 4 && (byte & 0x80) != 0) {
        return fail(
            make_error(DecodeErrorKind::kMalformedPacket, "remaining length longer than 4 bytes"));
      }
      header_.push_back(byte);
      if (header_.size() >= 2 && (byte & 0x80) == 0) break;
    }
    std::size_t length = 0;
    for (std::size_t i = 1; i < header_.size(); ++i) {
      length |= std::size_t{header_[i] & 0x7Fu} << (7 * (i - 1));
    }
    if (header_.size() + length > options_.maximum_packet_size) {
      return fail(make_error(DecodeErrorKind::kPacketTooLarge,
                             std::string(to_string(static_cast<PacketType>(header_[0] >> 4))) +
                                 " of " + std::to_string(header_.size() + length) +
                                 " bytes, over the maximum of " +
                                 std::to_string(options_.maximum_packet_size)));
    }
    body_length_ = length;
    // The whole body is in this input: parsed in place, without a copy.
    if (size - used >= length) return finish_packet(data + used, length, used + length);
    // Grown as the bytes arrive rather than reserved at the announced length: a peer that
    // announces a large packet and sends nothing more costs no more than what it sent.
    body_.reserve(std::min(length, kKeptBufferCapacity));
    in_body_ = true;
  }
  const std::size_t take = std::min(size - used, body_length_ - body_.size());
  body_.insert(body_.end(), data + used, data + used + take);
  used += take;
  if (body_.size() < body_length_) return Result{Status::kNeedMore, used, std::nullopt, {}};
  return finish_packet(body_.data(), body_.size(), used);
}

Decoder::Result Decoder::finish_packet(const std::uint8_t* body, std::size_t size,
                                       std::size_t consumed) {
  const std::uint8_t first_byte = header_[0];
  const bool is_connect = static_cast<PacketType>(first_byte >> 4) == PacketType::kConnect;
  if (is_connect && role_ == Role::kServer && size >= 7) {
    // Learn the version before the rest is checked, so that a refused CONNECT is answered
    // with a CONNACK of the client's version.
    static constexpr std::uint8_t kName[] = {0x00, 0x04, 'M', 'Q', 'T', 'T'};
    if (std::equal(kName, kName + 6, body) && (body[6] == 4 || body[6] == 5)) {
      version_ = static_cast<ProtocolVersion>(body[6]);
    }
  }
  std::variant<Packet, DecodeError> parsed =
      parse_packet(first_byte, body, size, version_.value_or(ProtocolVersion::kV5), role_);
  if (auto* error = std::get_if<DecodeError>(&parsed)) return fail(std::move(*error));
  header_.clear();
  body_length_ = 0;
  in_body_ = false;
  if (body_.capacity() > kKeptBufferCapacity) {
    Bytes().swap(body_);
  } else {
    body_.clear();
  }
  Result result;
  result.status = Status::kPacket;
  result.consumed = consumed;
  result.packet = std::move(std::get<Packet>(parsed));
  if (is_connect) connected_ = true;
  return result;
}

std::size_t encoded_size(const Packet& packet, ProtocolVersion version) {
  const std::size_t body = checked_body_size(packet, version);
  return 1 + vbi_size(static_cast<std::uint32_t>(body)) + body;
}

void encode(const Packet& packet, ProtocolVersion version, Bytes& out) {
  const std::size_t body = checked_body_size(packet, version);
  const std::size_t start = out.size();
  // Grown geometrically, not to the exact size: callers append packet after packet to one
  // buffer, and an exact reserve each time would copy the whole buffer on every packet.
  const std::size_t needed = start + 1 + vbi_size(static_cast<std::uint32_t>(body)) + body;
  if (out.capacity() < needed) out.reserve(std::max(needed, 2 * out.capacity()));
  Writer w(&out);
  w.u8(0);  // the first byte, once the body has given the flags
  w.vbi(static_cast<std::uint32_t>(body));
  const std::uint8_t flags = write_body(w, packet, version);
  out[start] = static_cast<std::uint8_t>((static_cast<int>(packet_type(packet)) << 4) | flags);
  assert(out.size() - start == 1 + vbi_size(static_cast<std::uint32_t>(body)) + body);
}

Bytes encode(const Packet& packet, ProtocolVersion version) {
  Bytes out;
  encode(packet, version, out);
  return out;
}

Bytes encode_publish_properties(const Properties& properties) {
  Bytes out;
  Writer w(&out);
  write_properties(w, properties, kInPublish);
  return out;
}

std::optional<Properties> decode_publish_properties(const Bytes& data) {
  try {
    Reader r(data.data(), data.size(), "stored properties");
    Properties properties = read_properties(r, kInPublish);
    r.expect_end();
    return properties;
  } catch (const ParseFailure&) {
    return std::nullopt;
  }
}

}  // namespace emsnode::plugins::mq
