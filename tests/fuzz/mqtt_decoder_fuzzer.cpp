// libFuzzer target for the MQTT packet decoder of plugins/mq. Built and run by run.sh.
//
// The first input byte picks the setting: a server decoder learning the version from the
// CONNECT (the input must start with one), a server decoder already past a CONNECT of 3.1.1 or
// 5.0 (so that the fuzzer reaches every other packet without first finding a valid CONNECT), or
// a client decoder of either version. The second byte seeds the sizes of the pieces the rest
// is fed in. Besides surviving under the sanitizers, the decoder must:
//   - give the same packets and the same error whether fed whole or in pieces;
//   - never hold more than the maximum packet size;
//   - encode every packet it accepted, to exactly encoded_size() bytes, and decode that
//     encoding back to an equal packet.
// The filters of the SUBSCRIBE and UNSUBSCRIBE packets decoded then go into a subscription
// index, and the topic of each PUBLISH must match there exactly what topic_matches() says.
#include "mqtt_codec.hpp"
#include "topic.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace mq = emsnode::plugins::mq;

namespace {

constexpr std::size_t kMaximumPacketSize = 16 * 1024;

struct Outcome {
  std::vector<mq::Packet> packets;
  bool failed = false;
  mq::DecodeErrorKind error_kind = mq::DecodeErrorKind::kMalformedPacket;
  std::uint8_t error_reason = 0;
};

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

mq::Decoder make_decoder(std::uint8_t mode) {
  const mq::DecoderOptions options{kMaximumPacketSize};
  switch (mode % 5) {
    case 1:
      return mq::Decoder(mq::ProtocolVersion::kV311, options);
    case 2:
      return mq::Decoder(mq::ProtocolVersion::kV5, options);
    default:
      return mq::Decoder(options);
  }
}

mq::Role role_of(std::uint8_t mode) {
  return mode % 5 == 1 || mode % 5 == 2 ? mq::Role::kClient : mq::Role::kServer;
}

// Puts a server decoder past its CONNECT for modes 3 (3.1.1) and 4 (5.0).
void connect_first(mq::Decoder& decoder, std::uint8_t mode) {
  if (mode % 5 < 3) return;
  mq::Connect connect;
  connect.version = mode % 5 == 3 ? mq::ProtocolVersion::kV311 : mq::ProtocolVersion::kV5;
  connect.client_id = "fuzz";
  const mq::Bytes bytes = mq::encode(connect, connect.version);
  const mq::Decoder::Result result = decoder.feed(bytes.data(), bytes.size());
  if (result.status != mq::Decoder::Status::kPacket) violated("the setup CONNECT is refused");
}

// Feeds `data` in pieces whose sizes come from `seed` (0: all at once).
Outcome decode(std::uint8_t mode, std::uint8_t seed, const std::uint8_t* data, std::size_t size) {
  mq::Decoder decoder = make_decoder(mode);
  connect_first(decoder, mode);
  Outcome outcome;
  std::uint32_t state = seed;
  std::size_t offset = 0;
  while (offset < size && !outcome.failed) {
    std::size_t piece = size - offset;
    if (seed != 0) {
      state = state * 1103515245u + 12345u;
      piece = std::min<std::size_t>(piece, 1 + (state >> 16) % 8);
    }
    const std::uint8_t* input = data + offset;
    std::size_t left = piece;
    while (left > 0) {
      const mq::Decoder::Result result = decoder.feed(input, left);
      if (decoder.buffered() > kMaximumPacketSize) violated("buffered over the maximum");
      if (result.status == mq::Decoder::Status::kError) {
        outcome.failed = true;
        outcome.error_kind = result.error.kind;
        outcome.error_reason = result.error.reason_code;
        break;
      }
      if (result.consumed > left) violated("consumed more than given");
      if (result.status == mq::Decoder::Status::kPacket) {
        outcome.packets.push_back(*result.packet);
      } else if (result.consumed != left) {
        violated("needs more without taking everything");
      }
      input += result.consumed;
      left -= result.consumed;
    }
    offset += piece;
  }
  return outcome;
}

mq::ProtocolVersion version_of(const mq::Packet& packet, std::uint8_t mode,
                               mq::ProtocolVersion current) {
  if (const auto* connect = std::get_if<mq::Connect>(&packet)) return connect->version;
  switch (mode % 5) {
    case 1:
    case 3:
      return mq::ProtocolVersion::kV311;
    case 2:
    case 4:
      return mq::ProtocolVersion::kV5;
    default:
      return current;
  }
}

void check_round_trip(const Outcome& outcome, std::uint8_t mode) {
  mq::ProtocolVersion version = mq::ProtocolVersion::kV5;
  for (const mq::Packet& packet : outcome.packets) {
    version = version_of(packet, mode, version);
    mq::Bytes bytes;
    try {
      bytes = mq::encode(packet, version);
      if (bytes.size() != mq::encoded_size(packet, version)) violated("encoded_size is wrong");
    } catch (const mq::EncodeError& error) {
      std::fprintf(stderr, "%s: %s\n", mq::describe(packet).c_str(), error.what());
      violated("a decoded packet does not encode");
    }
    std::size_t header = 2;
    while (bytes[header - 1] & 0x80) ++header;
    const auto parsed = mq::parse_packet(bytes[0], bytes.data() + header, bytes.size() - header,
                                         version, role_of(mode));
    const auto* again = std::get_if<mq::Packet>(&parsed);
    if (again == nullptr) {
      std::fprintf(stderr, "%s: %s\n", mq::describe(packet).c_str(),
                   std::get<mq::DecodeError>(parsed).message.c_str());
      violated("an encoded packet does not decode");
    }
    if (!(*again == packet)) violated("decode(encode(p)) != p");
  }
}

using Subscription = std::pair<std::string, std::string>;  // client id, filter

// Plays the decoded packets on a subscription index, each SUBSCRIBE from one of three clients
// chosen by its packet id, and checks every PUBLISH topic against a plain scan.
void check_subscription_index(const Outcome& outcome) {
  mq::SubscriptionIndex index;
  std::set<Subscription> plain;
  std::set<Subscription> shared;  // group, filter (any member)
  for (const mq::Packet& packet : outcome.packets) {
    if (const auto* subscribe = std::get_if<mq::Subscribe>(&packet)) {
      const std::string client = "c" + std::to_string(subscribe->packet_id % 3);
      for (const mq::TopicSubscription& s : subscribe->subscriptions) {
        if (!mq::is_valid_subscription_filter(s.filter)) continue;
        index.add(client, s.filter, mq::SubscriptionEntry{s.options, 0});
        if (const auto group = mq::parse_shared_subscription(s.filter)) {
          shared.emplace(group->group, group->filter);
        } else {
          plain.emplace(client, s.filter);
        }
      }
    } else if (const auto* unsubscribe = std::get_if<mq::Unsubscribe>(&packet)) {
      const std::string client = "c" + std::to_string(unsubscribe->packet_id % 3);
      for (const std::string& filter : unsubscribe->filters) {
        const bool existed = plain.count({client, filter}) != 0;
        if (!mq::is_shared_subscription(filter) && index.remove(client, filter) != existed) {
          violated("remove disagrees with the subscriptions made");
        }
        plain.erase({client, filter});
      }
    } else if (const auto* publish = std::get_if<mq::Publish>(&packet)) {
      if (publish->topic.empty()) continue;
      std::set<Subscription> expected;
      for (const Subscription& s : plain) {
        if (mq::topic_matches(s.second, publish->topic)) expected.insert(s);
      }
      std::set<Subscription> expected_shared;
      for (const Subscription& s : shared) {
        if (mq::topic_matches(s.second, publish->topic)) expected_shared.insert(s);
      }
      const mq::MatchResult result = index.match(publish->topic);
      std::set<Subscription> found;
      for (const mq::ClientMatch& client : result.clients) {
        for (const mq::MatchedSubscription& s : client.subscriptions) {
          found.emplace(client.client_id, s.filter);
        }
      }
      std::set<Subscription> found_shared;
      for (const mq::SharedMatch& group : result.shared) {
        found_shared.emplace(group.group, group.filter);
      }
      if (found != expected || found_shared != expected_shared) {
        violated("the index disagrees with topic_matches");
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t mode = data[0];
  const std::uint8_t seed = data[1];
  const Outcome whole = decode(mode, 0, data + 2, size - 2);
  const Outcome pieces = decode(mode, seed | 1, data + 2, size - 2);
  if (!(whole.packets == pieces.packets)) violated("pieces give other packets");
  if (whole.failed != pieces.failed || whole.error_kind != pieces.error_kind ||
      whole.error_reason != pieces.error_reason) {
    violated("pieces give another error");
  }
  check_round_trip(whole, mode);
  check_subscription_index(whole);
  return 0;
}
