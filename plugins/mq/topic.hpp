// Topic names, topic filters and the subscription index of the message queue.
//
// The rules are MQTT's (3.1.1 section 4.7, 5.0 sections 4.7 and 4.8.2): levels separated by
// '/', '+' matching one whole level, '#' matching the rest (its parent level included) and only
// as the last level, names never holding wildcards, and names starting with '$' never matched
// by a filter starting with a wildcard. A filter "$share/<group>/<filter>" is a shared
// subscription: each message matching <filter> goes to one member of the group.
#pragma once

#include "mqtt_codec.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace emsnode::plugins::mq {

/// A name a PUBLISH may carry: at least one character, no '+' or '#', at most 65535 bytes.
/// (UTF-8 well-formedness is the decoder's check.)
bool is_valid_topic_name(std::string_view name);

/// A filter a SUBSCRIBE may carry, shared subscriptions excluded: at least one character,
/// '+' alone in its level, '#' alone in the last level.
bool is_valid_topic_filter(std::string_view filter);

/// The two parts of "$share/<group>/<filter>".
struct SharedFilter {
  std::string_view group;
  std::string_view filter;
};

/// Whether `filter` starts with "$share/" and so is meant as a shared subscription.
bool is_shared_subscription(std::string_view filter);

/// Splits a shared subscription. nullopt unless the group is non-empty and free of '/', '+'
/// and '#', and the filter after it is a valid topic filter.
std::optional<SharedFilter> parse_shared_subscription(std::string_view filter);

/// What a SUBSCRIBE may ask for: a valid topic filter or a valid shared subscription.
bool is_valid_subscription_filter(std::string_view filter);

/// Whether the topic filter (not shared) matches the topic name, `$` rule included.
bool topic_matches(std::string_view filter, std::string_view name);

/// One stored subscription, as the SUBSCRIBE asked for it.
struct SubscriptionEntry {
  SubscriptionOptions options;
  std::uint32_t subscription_identifier = 0;  // 0: none (5.0 identifiers start at 1)

  bool operator==(const SubscriptionEntry& other) const {
    return options == other.options && subscription_identifier == other.subscription_identifier;
  }
};

/// A client's subscription that matched a topic.
struct MatchedSubscription {
  std::string_view filter;
  SubscriptionEntry entry;
};

/// Everything one client subscribed to that matched, with the highest QoS among them: a 3.1.1
/// server delivers once at `max_qos`; a 5.0 server may deliver once with all the
/// subscription identifiers or once per subscription.
struct ClientMatch {
  std::string_view client_id;
  QoS max_qos = QoS::kAtMostOnce;
  std::vector<MatchedSubscription> subscriptions;

  /// The non-zero identifiers of `subscriptions`, for a single 5.0 delivery.
  std::vector<std::uint32_t> subscription_identifiers() const;
};

struct SharedMember {
  std::string_view client_id;
  SubscriptionEntry entry;
};

/// A shared subscription that matched: the caller delivers to one of `members`.
struct SharedMatch {
  std::string_view group;
  std::string_view filter;  // without the "$share/<group>/" prefix
  std::vector<SharedMember> members;
};

/// The subscribers of one topic. Views point into the index and stay valid until it changes.
struct MatchResult {
  std::vector<ClientMatch> clients;  // one per client, in no particular order
  std::vector<SharedMatch> shared;

  void clear() {
    clients.clear();
    shared.clear();
  }
};

/// Every subscription of every client, as a trie of topic levels, so that finding the
/// subscribers of a topic costs in proportion to its levels and the filters that match, not
/// to the number of subscriptions. A client holds at most one subscription per filter (a new
/// SUBSCRIBE to the same filter replaces it, as the standard says). Not thread-safe.
class SubscriptionIndex {
 public:
  SubscriptionIndex();
  ~SubscriptionIndex();
  SubscriptionIndex(const SubscriptionIndex&) = delete;
  SubscriptionIndex& operator=(const SubscriptionIndex&) = delete;

  /// Subscribes `client_id` to `filter` (a topic filter or "$share/<group>/<filter>"). Returns
  /// true when it replaced the client's existing subscription to that filter (what retain
  /// handling 1 needs to know). Throws std::invalid_argument for an invalid filter.
  bool add(std::string_view client_id, std::string_view filter, const SubscriptionEntry& entry);

  /// Removes one subscription; false when the client had none to that filter.
  bool remove(std::string_view client_id, std::string_view filter);

  /// Removes every subscription of the client (its session ended); returns how many.
  std::size_t remove_client(std::string_view client_id);

  /// The client's subscription to `filter`, if any.
  std::optional<SubscriptionEntry> find(std::string_view client_id, std::string_view filter) const;

  /// The subscribers of `topic`; none when it is not a valid topic name. Subscriptions with
  /// no-local set are left out for `publisher`, the client id of the message's sender (empty:
  /// none).
  void match(std::string_view topic, std::string_view publisher, MatchResult& out) const;
  MatchResult match(std::string_view topic, std::string_view publisher = {}) const;

  /// How many subscriptions are stored.
  std::size_t size() const { return size_; }
  /// The filters of one client, sorted.
  std::vector<std::string> filters_of(std::string_view client_id) const;

 private:
  struct Node;
  using Subscribers = std::map<std::string, SubscriptionEntry, std::less<>>;

  /// The subscriber map `filter` names for a change, creating the path when `create`.
  Subscribers* subscribers_for(std::string_view filter, bool create, Node** node_out);
  const Subscribers* subscribers_for(std::string_view filter) const;
  void prune(Node* node);
  void collect(const Node& node, std::string_view publisher, MatchResult& out,
               std::unordered_map<std::string_view, std::size_t>& client_slots) const;

  std::unique_ptr<Node> root_;
  std::size_t size_ = 0;
  std::map<std::string, std::set<std::string, std::less<>>, std::less<>> filters_by_client_;
};

}  // namespace emsnode::plugins::mq
