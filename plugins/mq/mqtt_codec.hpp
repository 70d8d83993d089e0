// The MQTT wire format, versions 3.1.1 (OASIS standard, protocol level 4) and 5.0 (level 5):
// the packets as values, a streaming decoder that checks everything a receiver must check, and
// an encoder. No I/O and no session state: the decoder is fed bytes as a socket delivers them
// and yields one packet, or the one error that ends the connection, at a time.
//
// Errors carry what the standard tells the receiver to do: the MQTT 5.0 reason code for the
// CONNACK or DISCONNECT it may send before closing, and for 3.1.1 the CONNACK return code when
// the standard asks for one (only an unacceptable protocol version or a rejected client id);
// every other 3.1.1 violation closes the connection without a word.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace emsnode::plugins::mq {

using Bytes = std::vector<std::uint8_t>;

/// The protocol level byte of CONNECT.
enum class ProtocolVersion : std::uint8_t { kV311 = 4, kV5 = 5 };

enum class QoS : std::uint8_t { kAtMostOnce = 0, kAtLeastOnce = 1, kExactlyOnce = 2 };

enum class PacketType : std::uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,  // 5.0 only; reserved in 3.1.1
};

/// "CONNECT", "PUBLISH", ...
std::string_view to_string(PacketType type);

/// MQTT 5.0 reason codes (section 2.4). A value below 0x80 means success. 3.1.1 return codes
/// (CONNACK 0..5, SUBACK 0..2 and 0x80) are carried in the same byte-sized fields.
namespace reason {
inline constexpr std::uint8_t kSuccess = 0x00;  // also Normal disconnection, Granted QoS 0
inline constexpr std::uint8_t kGrantedQos1 = 0x01;
inline constexpr std::uint8_t kGrantedQos2 = 0x02;
inline constexpr std::uint8_t kDisconnectWithWill = 0x04;
inline constexpr std::uint8_t kNoMatchingSubscribers = 0x10;
inline constexpr std::uint8_t kNoSubscriptionExisted = 0x11;
inline constexpr std::uint8_t kContinueAuthentication = 0x18;
inline constexpr std::uint8_t kReauthenticate = 0x19;
inline constexpr std::uint8_t kUnspecifiedError = 0x80;
inline constexpr std::uint8_t kMalformedPacket = 0x81;
inline constexpr std::uint8_t kProtocolError = 0x82;
inline constexpr std::uint8_t kImplementationSpecificError = 0x83;
inline constexpr std::uint8_t kUnsupportedProtocolVersion = 0x84;
inline constexpr std::uint8_t kClientIdentifierNotValid = 0x85;
inline constexpr std::uint8_t kBadUserNameOrPassword = 0x86;
inline constexpr std::uint8_t kNotAuthorized = 0x87;
inline constexpr std::uint8_t kServerUnavailable = 0x88;
inline constexpr std::uint8_t kServerBusy = 0x89;
inline constexpr std::uint8_t kBanned = 0x8A;
inline constexpr std::uint8_t kServerShuttingDown = 0x8B;
inline constexpr std::uint8_t kBadAuthenticationMethod = 0x8C;
inline constexpr std::uint8_t kKeepAliveTimeout = 0x8D;
inline constexpr std::uint8_t kSessionTakenOver = 0x8E;
inline constexpr std::uint8_t kTopicFilterInvalid = 0x8F;
inline constexpr std::uint8_t kTopicNameInvalid = 0x90;
inline constexpr std::uint8_t kPacketIdentifierInUse = 0x91;
inline constexpr std::uint8_t kPacketIdentifierNotFound = 0x92;
inline constexpr std::uint8_t kReceiveMaximumExceeded = 0x93;
inline constexpr std::uint8_t kTopicAliasInvalid = 0x94;
inline constexpr std::uint8_t kPacketTooLarge = 0x95;
inline constexpr std::uint8_t kMessageRateTooHigh = 0x96;
inline constexpr std::uint8_t kQuotaExceeded = 0x97;
inline constexpr std::uint8_t kAdministrativeAction = 0x98;
inline constexpr std::uint8_t kPayloadFormatInvalid = 0x99;
inline constexpr std::uint8_t kRetainNotSupported = 0x9A;
inline constexpr std::uint8_t kQosNotSupported = 0x9B;
inline constexpr std::uint8_t kUseAnotherServer = 0x9C;
inline constexpr std::uint8_t kServerMoved = 0x9D;
inline constexpr std::uint8_t kSharedSubscriptionsNotSupported = 0x9E;
inline constexpr std::uint8_t kConnectionRateExceeded = 0x9F;
inline constexpr std::uint8_t kMaximumConnectTime = 0xA0;
inline constexpr std::uint8_t kSubscriptionIdentifiersNotSupported = 0xA1;
inline constexpr std::uint8_t kWildcardSubscriptionsNotSupported = 0xA2;
}  // namespace reason

/// MQTT 3.1.1 CONNACK return codes (section 3.2.2.3).
namespace connack_v311 {
inline constexpr std::uint8_t kAccepted = 0x00;
inline constexpr std::uint8_t kUnacceptableProtocolVersion = 0x01;
inline constexpr std::uint8_t kIdentifierRejected = 0x02;
inline constexpr std::uint8_t kServerUnavailable = 0x03;
inline constexpr std::uint8_t kBadUserNameOrPassword = 0x04;
inline constexpr std::uint8_t kNotAuthorized = 0x05;
}  // namespace connack_v311

/// Whether `code` is one the standard lets `type` carry in `version` (SUBACK and UNSUBACK
/// per topic filter). Always false for packets without a reason code in that version.
bool is_valid_reason_code(PacketType type, std::uint8_t code, ProtocolVersion version);

/// MQTT 5.0 properties (section 2.2.2.2), typed. Empty in 3.1.1 packets. Which of them a
/// packet may carry is checked by the decoder and the encoder; every one appears at most once
/// except user properties (order kept, as the standard requires) and subscription identifiers
/// (several only in a PUBLISH from server to client).
struct Properties {
  std::optional<bool> payload_format_indicator;                      // 0x01: true = UTF-8 payload
  std::optional<std::uint32_t> message_expiry_interval;              // 0x02, seconds
  std::optional<std::string> content_type;                           // 0x03
  std::optional<std::string> response_topic;                         // 0x08
  std::optional<Bytes> correlation_data;                             // 0x09
  std::vector<std::uint32_t> subscription_identifiers;               // 0x0B, 1..268435455
  std::optional<std::uint32_t> session_expiry_interval;              // 0x11, seconds
  std::optional<std::string> assigned_client_identifier;             // 0x12
  std::optional<std::uint16_t> server_keep_alive;                    // 0x13, seconds
  std::optional<std::string> authentication_method;                  // 0x15
  std::optional<Bytes> authentication_data;                          // 0x16
  std::optional<bool> request_problem_information;                   // 0x17
  std::optional<std::uint32_t> will_delay_interval;                  // 0x18, seconds
  std::optional<bool> request_response_information;                  // 0x19
  std::optional<std::string> response_information;                   // 0x1A
  std::optional<std::string> server_reference;                       // 0x1C
  std::optional<std::string> reason_string;                          // 0x1F
  std::optional<std::uint16_t> receive_maximum;                      // 0x21, never 0
  std::optional<std::uint16_t> topic_alias_maximum;                  // 0x22
  std::optional<std::uint16_t> topic_alias;                          // 0x23, never 0
  std::optional<QoS> maximum_qos;                                    // 0x24, 0 or 1
  std::optional<bool> retain_available;                              // 0x25
  std::vector<std::pair<std::string, std::string>> user_properties;  // 0x26
  std::optional<std::uint32_t> maximum_packet_size;                  // 0x27, never 0
  std::optional<bool> wildcard_subscription_available;               // 0x28
  std::optional<bool> subscription_identifier_available;             // 0x29
  std::optional<bool> shared_subscription_available;                 // 0x2A

  bool empty() const;
  bool operator==(const Properties& other) const;
  bool operator!=(const Properties& other) const { return !(*this == other); }
};

/// The will message of a CONNECT.
struct Will {
  std::string topic;
  Bytes payload;
  QoS qos = QoS::kAtMostOnce;
  bool retain = false;
  Properties properties;  // 5.0 will properties

  bool operator==(const Will& other) const;
};

struct Connect {
  ProtocolVersion version = ProtocolVersion::kV5;
  bool clean_start = true;  // "clean session" in 3.1.1
  std::uint16_t keep_alive = 0;
  std::string client_id;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<Bytes> password;
  Properties properties;

  bool operator==(const Connect& other) const;
};

struct Connack {
  bool session_present = false;
  std::uint8_t reason_code = reason::kSuccess;  // a 3.1.1 return code in 3.1.1
  Properties properties;

  bool operator==(const Connack& other) const;
};

struct Publish {
  bool dup = false;
  QoS qos = QoS::kAtMostOnce;
  bool retain = false;
  std::string topic;            // may be empty in 5.0 when a topic alias stands for it
  std::uint16_t packet_id = 0;  // non-zero exactly when qos > 0
  Properties properties;
  Bytes payload;

  bool operator==(const Publish& other) const;
};

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one layout; `Type` tells them apart.
template <PacketType Type>
struct Ack {
  static constexpr PacketType kType = Type;
  std::uint16_t packet_id = 0;
  std::uint8_t reason_code = reason::kSuccess;  // 5.0 only
  Properties properties;

  bool operator==(const Ack& other) const {
    return packet_id == other.packet_id && reason_code == other.reason_code &&
           properties == other.properties;
  }
};
using Puback = Ack<PacketType::kPuback>;
using Pubrec = Ack<PacketType::kPubrec>;
using Pubrel = Ack<PacketType::kPubrel>;
using Pubcomp = Ack<PacketType::kPubcomp>;

enum class RetainHandling : std::uint8_t {
  kSendOnSubscribe = 0,
  kSendOnNewSubscribe = 1,  // only if the subscription did not exist yet
  kDoNotSend = 2,
};

/// The subscription options byte. In 3.1.1 only `max_qos` exists; the other fields keep their
/// defaults, which are 3.1.1's behaviour.
struct SubscriptionOptions {
  QoS max_qos = QoS::kAtMostOnce;
  bool no_local = false;
  bool retain_as_published = false;
  RetainHandling retain_handling = RetainHandling::kSendOnSubscribe;

  bool operator==(const SubscriptionOptions& other) const;
  bool operator!=(const SubscriptionOptions& other) const { return !(*this == other); }
};

struct TopicSubscription {
  std::string filter;
  SubscriptionOptions options;

  bool operator==(const TopicSubscription& other) const;
};

struct Subscribe {
  std::uint16_t packet_id = 0;
  Properties properties;
  std::vector<TopicSubscription> subscriptions;  // never empty

  bool operator==(const Subscribe& other) const;
};

struct Suback {
  std::uint16_t packet_id = 0;
  Properties properties;
  std::vector<std::uint8_t> reason_codes;  // one per topic filter, in order

  bool operator==(const Suback& other) const;
};

struct Unsubscribe {
  std::uint16_t packet_id = 0;
  Properties properties;
  std::vector<std::string> filters;  // never empty

  bool operator==(const Unsubscribe& other) const;
};

struct Unsuback {
  std::uint16_t packet_id = 0;
  Properties properties;
  std::vector<std::uint8_t> reason_codes;  // 5.0 only: one per topic filter

  bool operator==(const Unsuback& other) const;
};

struct Pingreq {
  bool operator==(const Pingreq&) const { return true; }
};

struct Pingresp {
  bool operator==(const Pingresp&) const { return true; }
};

struct Disconnect {
  std::uint8_t reason_code = reason::kSuccess;  // 5.0 only
  Properties properties;

  bool operator==(const Disconnect& other) const;
};

/// 5.0 only.
struct Auth {
  std::uint8_t reason_code = reason::kSuccess;
  Properties properties;

  bool operator==(const Auth& other) const;
};

using Packet = std::variant<Connect, Connack, Publish, Puback, Pubrec, Pubrel, Pubcomp, Subscribe,
                            Suback, Unsubscribe, Unsuback, Pingreq, Pingresp, Disconnect, Auth>;

PacketType packet_type(const Packet& packet);

/// A one-line summary for logs and test failures: type, ids, topic, sizes; never payloads.
std::string describe(const Packet& packet);

/// Which end of the connection is decoding: the rules differ (a server refuses CONNACK, a
/// client refuses CONNECT; only a server may send subscription identifiers in PUBLISH).
enum class Role { kServer, kClient };

/// Why the bytes cannot be accepted. Every kind ends the connection.
enum class DecodeErrorKind {
  kMalformedPacket,             // cannot be parsed as the standard says
  kProtocolError,               // parses, but breaks a rule of the standard
  kPacketTooLarge,              // over the configured maximum packet size
  kUnsupportedProtocolVersion,  // CONNECT with another protocol name or level
  kClientIdentifierNotValid,    // 3.1.1: empty client id without a clean session
  kTopicNameInvalid,            // wildcards in a PUBLISH or will topic
};

struct DecodeError {
  DecodeErrorKind kind = DecodeErrorKind::kMalformedPacket;
  /// The 5.0 reason code for the CONNACK (while connecting) or DISCONNECT sent before closing.
  std::uint8_t reason_code = reason::kMalformedPacket;
  /// For logs: what was wrong, e.g. "PUBLISH: QoS 3".
  std::string message;

  /// The 3.1.1 CONNACK return code to send before closing, when the standard asks for one.
  std::optional<std::uint8_t> connack_v311() const;
};

struct DecoderOptions {
  /// The largest whole packet (fixed header included) accepted; the standard's absolute
  /// limit is 268435460 bytes. A larger packet is refused from its fixed header, before any
  /// of its body is buffered, so a decoder never holds more than this.
  std::size_t maximum_packet_size = 1024 * 1024;
};

/// Decodes a stream of packets from one connection. Bytes are fed as they arrive, in pieces of
/// any size; the decoder copies only what it needs to complete a packet split across feeds.
///
/// Role kServer: the first packet must be CONNECT; its protocol level then governs the rest of
/// the connection, and a second CONNECT is a protocol error. Role kClient: the version is the
/// one the client sent in its CONNECT, given at construction.
///
/// After an error the decoder stays failed: every later feed returns the same error.
class Decoder {
 public:
  enum class Status { kNeedMore, kPacket, kError };

  struct Result {
    Status status = Status::kNeedMore;
    /// How many input bytes were used. Always the whole input for kNeedMore; up to the end of
    /// the packet for kPacket (feed the rest again); unspecified for kError.
    std::size_t consumed = 0;
    std::optional<Packet> packet;  // set for kPacket
    DecodeError error;             // set for kError
  };

  /// A server-side decoder; the version comes from the CONNECT.
  explicit Decoder(DecoderOptions options = {});
  /// A client-side decoder of packets from a server speaking `version`.
  Decoder(ProtocolVersion version, DecoderOptions options = {});

  /// Decodes at most one packet from `data`. Never reads past `size`.
  Result feed(const std::uint8_t* data, std::size_t size);

  /// The connection's version: known from construction (client) or the CONNECT (server).
  std::optional<ProtocolVersion> version() const { return version_; }
  /// Bytes held for a packet not yet complete.
  std::size_t buffered() const { return header_.size() + body_.size(); }

 private:
  Result fail(DecodeError error);
  Result finish_packet(const std::uint8_t* body, std::size_t size, std::size_t consumed);

  DecoderOptions options_;
  Role role_;
  std::optional<ProtocolVersion> version_;
  bool connected_ = false;
  std::optional<DecodeError> failed_;
  // The fixed header of the packet in progress (type byte and up to 4 length bytes), then its
  // body as it arrives, when it did not arrive in one piece.
  std::vector<std::uint8_t> header_;
  bool in_body_ = false;
  std::size_t body_length_ = 0;
  Bytes body_;
};

/// Parses one packet body given its fixed header's first byte. `version` is the connection's
/// (for a CONNECT, the version the packet itself announces is used and any value may be given).
/// Returns the packet or the error; the building block of Decoder, also used by the tests.
std::variant<Packet, DecodeError> parse_packet(std::uint8_t first_byte, const std::uint8_t* body,
                                               std::size_t size, ProtocolVersion version,
                                               Role role);

/// Thrown by the encoder for a packet the version cannot express or the wire cannot carry
/// (a string over 65535 bytes, properties in 3.1.1, a property the packet may not carry...).
/// It means a bug in the caller: what the decoder accepted always encodes.
class EncodeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// The size of `packet` on the wire, fixed header included. Throws EncodeError.
std::size_t encoded_size(const Packet& packet, ProtocolVersion version);
/// Appends the encoding of `packet` to `out`. Throws EncodeError (leaving `out` unchanged).
void encode(const Packet& packet, ProtocolVersion version, Bytes& out);
Bytes encode(const Packet& packet, ProtocolVersion version);

/// The properties of a 5.0 PUBLISH in their wire form (length first), for keeping a message's
/// properties in the database. Throws EncodeError as encode() does.
Bytes encode_publish_properties(const Properties& properties);
/// The reverse; nullopt when `data` is not what encode_publish_properties wrote.
std::optional<Properties> decode_publish_properties(const Bytes& data);

/// Well-formed UTF-8 as MQTT requires of every string: RFC 3629 (no overlong forms, no
/// surrogates, nothing above U+10FFFF) and no U+0000.
bool is_valid_mqtt_utf8(std::string_view text);

/// The largest value a Variable Byte Integer (four bytes) can hold.
inline constexpr std::uint32_t kMaxVariableByteInteger = 268'435'455;

}  // namespace emsnode::plugins::mq
