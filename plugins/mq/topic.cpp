#include "topic.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace emsnode::plugins::mq {

namespace {

constexpr std::string_view kSharePrefix = "$share/";
constexpr std::size_t kMaxTopicLength = 65535;

/// Calls `f(level)` for every '/'-separated level, empty levels included.
template <typename F>
void for_each_level(std::string_view text, F&& f) {
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = text.find('/', start);
    if (slash == std::string_view::npos) {
      f(text.substr(start));
      return;
    }
    f(text.substr(start, slash - start));
    start = slash + 1;
  }
}

std::vector<std::string_view> split_levels(std::string_view text) {
  std::vector<std::string_view> levels;
  for_each_level(text, [&](std::string_view level) { levels.push_back(level); });
  return levels;
}

}  // namespace

bool is_valid_topic_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxTopicLength &&
         name.find_first_of("+#") == std::string_view::npos;
}

bool is_valid_topic_filter(std::string_view filter) {
  if (filter.empty() || filter.size() > kMaxTopicLength) return false;
  bool valid = true;
  bool after_hash = false;
  for_each_level(filter, [&](std::string_view level) {
    if (after_hash) valid = false;  // '#' must be the last level
    if (level == "#") {
      after_hash = true;
    } else if (level != "+" && level.find_first_of("+#") != std::string_view::npos) {
      valid = false;  // a wildcard sharing its level with other characters
    }
  });
  return valid;
}

bool is_shared_subscription(std::string_view filter) {
  return filter.substr(0, kSharePrefix.size()) == kSharePrefix;
}

std::optional<SharedFilter> parse_shared_subscription(std::string_view filter) {
  if (!is_shared_subscription(filter)) return std::nullopt;
  const std::string_view rest = filter.substr(kSharePrefix.size());
  const std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  SharedFilter shared{rest.substr(0, slash), rest.substr(slash + 1)};
  if (shared.group.find_first_of("+#") != std::string_view::npos) return std::nullopt;
  if (!is_valid_topic_filter(shared.filter)) return std::nullopt;
  return shared;
}

bool is_valid_subscription_filter(std::string_view filter) {
  if (is_shared_subscription(filter)) return parse_shared_subscription(filter).has_value();
  return is_valid_topic_filter(filter);
}

bool topic_matches(std::string_view filter, std::string_view name) {
  if (!is_valid_topic_filter(filter) || !is_valid_topic_name(name)) return false;
  // A wildcard in the first level never matches a name reserved to the server.
  if (name.front() == '$' && (filter.front() == '+' || filter.front() == '#')) return false;
  const std::vector<std::string_view> f = split_levels(filter);
  const std::vector<std::string_view> n = split_levels(name);
  std::size_t i = 0;
  for (; i < f.size(); ++i) {
    if (f[i] == "#") return true;  // also matches the parent level: "a/#" matches "a"
    if (i >= n.size()) return false;
    if (f[i] != "+" && f[i] != n[i]) return false;
  }
  return i == n.size();
}

std::vector<std::uint32_t> ClientMatch::subscription_identifiers() const {
  std::vector<std::uint32_t> ids;
  for (const MatchedSubscription& s : subscriptions) {
    if (s.entry.subscription_identifier != 0) ids.push_back(s.entry.subscription_identifier);
  }
  return ids;
}

// One topic level of the trie. The node's filter is kept whole so that a match can name it
// without rebuilding it from the path.
struct SubscriptionIndex::Node {
  Node* parent = nullptr;
  std::string level;   // this node's key in its parent
  std::string filter;  // the levels from the root to here, joined with '/'
  std::map<std::string, std::unique_ptr<Node>, std::less<>> children;  // "+" and "#" included
  Subscribers subscribers;
  std::map<std::string, Subscribers, std::less<>> groups;  // shared subscriptions by group

  const Node* child(std::string_view key) const {
    const auto it = children.find(key);
    return it == children.end() ? nullptr : it->second.get();
  }
  bool empty() const { return children.empty() && subscribers.empty() && groups.empty(); }
};

SubscriptionIndex::SubscriptionIndex() : root_(std::make_unique<Node>()) {}
SubscriptionIndex::~SubscriptionIndex() = default;

SubscriptionIndex::Subscribers* SubscriptionIndex::subscribers_for(std::string_view filter,
                                                                   bool create, Node** node_out) {
  std::string_view group;
  std::string_view topic_filter = filter;
  if (const std::optional<SharedFilter> shared = parse_shared_subscription(filter)) {
    group = shared->group;
    topic_filter = shared->filter;
  } else if (is_shared_subscription(filter) || !is_valid_topic_filter(filter)) {
    if (create) throw std::invalid_argument("invalid topic filter: " + std::string(filter));
    return nullptr;
  }
  Node* node = root_.get();
  bool first = true;
  bool missing = false;
  for_each_level(topic_filter, [&](std::string_view level) {
    if (missing) return;
    auto it = node->children.find(level);
    if (it == node->children.end()) {
      if (!create) {
        missing = true;
        return;
      }
      auto child = std::make_unique<Node>();
      child->parent = node;
      child->level = std::string(level);
      child->filter = first ? std::string(level) : node->filter + "/" + std::string(level);
      it = node->children.emplace(std::string(level), std::move(child)).first;
    }
    node = it->second.get();
    first = false;
  });
  if (missing) return nullptr;
  *node_out = node;
  if (group.empty()) return &node->subscribers;
  auto it = node->groups.find(group);
  if (it == node->groups.end()) {
    if (!create) return nullptr;
    it = node->groups.emplace(std::string(group), Subscribers{}).first;
  }
  return &it->second;
}

const SubscriptionIndex::Subscribers* SubscriptionIndex::subscribers_for(
    std::string_view filter) const {
  Node* node = nullptr;
  return const_cast<SubscriptionIndex*>(this)->subscribers_for(filter, false, &node);
}

bool SubscriptionIndex::add(std::string_view client_id, std::string_view filter,
                            const SubscriptionEntry& entry) {
  Node* node = nullptr;
  Subscribers* subscribers = subscribers_for(filter, true, &node);
  auto it = subscribers->find(client_id);
  if (it != subscribers->end()) {
    it->second = entry;
    return true;
  }
  subscribers->emplace(std::string(client_id), entry);
  auto client = filters_by_client_.find(client_id);
  if (client == filters_by_client_.end()) {
    client =
        filters_by_client_.emplace(std::string(client_id), std::set<std::string, std::less<>>{})
            .first;
  }
  client->second.emplace(filter);
  ++size_;
  return false;
}

bool SubscriptionIndex::remove(std::string_view client_id, std::string_view filter) {
  Node* node = nullptr;
  Subscribers* subscribers = subscribers_for(filter, false, &node);
  if (subscribers == nullptr) return false;
  const auto it = subscribers->find(client_id);
  if (it == subscribers->end()) return false;
  subscribers->erase(it);
  if (subscribers->empty() && subscribers != &node->subscribers) {
    node->groups.erase(node->groups.find(parse_shared_subscription(filter)->group));
  }
  prune(node);
  const auto client = filters_by_client_.find(client_id);
  client->second.erase(client->second.find(filter));
  if (client->second.empty()) filters_by_client_.erase(client);
  --size_;
  return true;
}

std::size_t SubscriptionIndex::remove_client(std::string_view client_id) {
  const auto client = filters_by_client_.find(client_id);
  if (client == filters_by_client_.end()) return 0;
  // Copied: remove() erases the set when it empties.
  const std::set<std::string, std::less<>> filters = client->second;
  for (const std::string& filter : filters) remove(client_id, filter);
  return filters.size();
}

std::optional<SubscriptionEntry> SubscriptionIndex::find(std::string_view client_id,
                                                         std::string_view filter) const {
  const Subscribers* subscribers = subscribers_for(filter);
  if (subscribers == nullptr) return std::nullopt;
  const auto it = subscribers->find(client_id);
  if (it == subscribers->end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> SubscriptionIndex::filters_of(std::string_view client_id) const {
  const auto client = filters_by_client_.find(client_id);
  if (client == filters_by_client_.end()) return {};
  return {client->second.begin(), client->second.end()};
}

void SubscriptionIndex::prune(Node* node) {
  while (node != root_.get() && node->empty()) {
    Node* parent = node->parent;
    parent->children.erase(parent->children.find(node->level));  // destroys node
    node = parent;
  }
}

void SubscriptionIndex::collect(
    const Node& node, std::string_view publisher, MatchResult& out,
    std::unordered_map<std::string_view, std::size_t>& client_slots) const {
  for (const auto& [client_id, entry] : node.subscribers) {
    if (entry.options.no_local && client_id == publisher) continue;
    auto [slot, inserted] = client_slots.emplace(client_id, out.clients.size());
    if (inserted) out.clients.push_back(ClientMatch{client_id, QoS::kAtMostOnce, {}});
    ClientMatch& match = out.clients[slot->second];
    match.max_qos = std::max(match.max_qos, entry.options.max_qos);
    match.subscriptions.push_back(MatchedSubscription{node.filter, entry});
  }
  for (const auto& [group, members] : node.groups) {
    SharedMatch& shared = out.shared.emplace_back(SharedMatch{group, node.filter, {}});
    shared.members.reserve(members.size());
    for (const auto& [client_id, entry] : members) {
      shared.members.push_back(SharedMember{client_id, entry});
    }
  }
}

void SubscriptionIndex::match(std::string_view topic, std::string_view publisher,
                              MatchResult& out) const {
  out.clear();
  if (!is_valid_topic_name(topic)) return;  // a wildcard would otherwise walk "+" as a level
  std::unordered_map<std::string_view, std::size_t> client_slots;
  const bool reserved = topic.front() == '$';
  // Depth-first over the levels; each trie node is reached by one path at most, so every
  // matching filter is collected once.
  struct Frame {
    const Node* node;
    std::size_t next;  // offset in `topic` of the level still to match; npos when none left
  };
  std::vector<Frame> stack{{root_.get(), 0}};
  while (!stack.empty()) {
    const Frame frame = stack.back();
    stack.pop_back();
    const bool at_root = frame.node == root_.get();
    const bool wildcards_allowed = !(at_root && reserved);
    if (const Node* hash = frame.node->child("#"); hash != nullptr && wildcards_allowed) {
      // "#" covers the rest, and with nothing left also the parent level ("a/#" matches "a").
      collect(*hash, publisher, out, client_slots);
    }
    if (frame.next == std::string_view::npos) {
      collect(*frame.node, publisher, out, client_slots);
      continue;
    }
    const std::size_t slash = topic.find('/', frame.next);
    const std::string_view level =
        topic.substr(frame.next, slash == std::string_view::npos ? slash : slash - frame.next);
    const std::size_t after = slash == std::string_view::npos ? slash : slash + 1;
    if (const Node* exact = frame.node->child(level)) stack.push_back({exact, after});
    if (const Node* plus = frame.node->child("+"); plus != nullptr && wildcards_allowed) {
      stack.push_back({plus, after});
    }
  }
}

MatchResult SubscriptionIndex::match(std::string_view topic, std::string_view publisher) const {
  MatchResult result;
  match(topic, publisher, result);
  return result;
}

}  // namespace emsnode::plugins::mq
