#include "role/peers.hpp"

#include <cctype>

namespace emsnode::role {
namespace {

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// Reads the number at the front of `text`, consuming it and one '.' after it.
std::optional<unsigned long> take_number(std::string_view& text) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0) return std::nullopt;
  unsigned long value = 0;
  for (std::size_t i = 0; i < digits; ++i) value = value * 10 + (text[i] - '0');
  text.remove_prefix(digits);
  if (!text.empty() && text.front() == '.') text.remove_prefix(1);
  return value;
}

}  // namespace

bool could_take_over(std::string_view reason) {
  return !(reason == reason::kPaused || reason == reason::kDbUnreachable ||
           reason == reason::kSchemaNewer || reason == reason::kSchemaMissing ||
           starts_with(reason, "schema_") || starts_with(reason, reason::kPluginFailed) ||
           reason == reason::kPluginFaulted || reason == reason::kHookVeto ||
           reason == reason::kShutdown);
}

int compare_versions(std::string_view a, std::string_view b) {
  for (;;) {
    // A missing number counts as 0: "1.2" is "1.2.0".
    const auto x = take_number(a);
    const auto y = take_number(b);
    if (!x && !y) break;
    if (x.value_or(0) != y.value_or(0)) return x.value_or(0) < y.value_or(0) ? -1 : 1;
  }
  return a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
}

std::optional<std::string> ready_peer(const std::vector<db::RegisteredNode>& nodes,
                                      std::string_view self_id, std::string_view self_version,
                                      std::chrono::milliseconds max_age, bool or_held_off) {
  for (const db::RegisteredNode& node : nodes) {
    const db::NodeRecord& r = node.record;
    if (r.id == self_id || r.role != role_name(Role::passive) || r.paused) continue;
    const bool held_off = starts_with(r.reason, reason::kPluginFailed);
    if (!could_take_over(r.reason) && !(or_held_off && held_off)) continue;
    if (node.seen_ms_ago > max_age.count()) continue;
    if (compare_versions(r.version, self_version) < 0) continue;
    return r.id;
  }
  return std::nullopt;
}

std::string shown_role(const db::RegisteredNode& node, const std::optional<LeaseView>& lease,
                       std::chrono::milliseconds max_age) {
  const db::NodeRecord& r = node.record;
  if (r.role == db::kStoppedRole) return r.role;
  if (node.seen_ms_ago > max_age.count()) return "down";
  if (lease && lease->holder == r.id && lease->expires_in_ms > 0) {
    return std::string(role_name(Role::active));
  }
  if (r.role == role_name(Role::active)) return std::string(role_name(Role::passive));
  return r.role;
}

}  // namespace emsnode::role
