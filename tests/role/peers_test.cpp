// Which other node could take over: the question behind a handover for a failed plugin.
#include <catch2/catch.hpp>

#include "role/peers.hpp"

namespace emsnode::role {
namespace {

using namespace std::chrono_literals;

db::RegisteredNode node(std::string id, std::string role, std::string reason,
                        std::int64_t seen_ms_ago = 100, std::string version = "0.1.0",
                        bool paused = false) {
  db::RegisteredNode n;
  n.record.id = std::move(id);
  n.record.role = std::move(role);
  n.record.reason = std::move(reason);
  n.record.version = std::move(version);
  n.record.paused = paused;
  n.seen_ms_ago = seen_ms_ago;
  return n;
}

TEST_CASE("versions compare number by number, then by what follows") {
  CHECK(compare_versions("0.1.0", "0.1.0") == 0);
  CHECK(compare_versions("0.10.0", "0.9.1") > 0);
  CHECK(compare_versions("0.9.1", "0.10.0") < 0);
  CHECK(compare_versions("1.2", "1.2.0") == 0);
  CHECK(compare_versions("1.2.1", "1.2") > 0);
  CHECK(compare_versions("1.2.0-rc1", "1.2.0-rc2") < 0);
}

TEST_CASE("a passive peer that is fresh, unpaused, not held off and as new is ready") {
  const std::vector<db::RegisteredNode> nodes = {node("a", "active", ""),
                                                 node("b", "passive", "lease_held")};
  CHECK(ready_peer(nodes, "a", "0.1.0", 3s) == std::optional<std::string>("b"));
  // Never the node itself.
  CHECK_FALSE(ready_peer(nodes, "b", "0.1.0", 3s));
}

TEST_CASE("a peer that is stale, paused, older, held off or blocked is not ready") {
  const std::vector<std::pair<const char*, db::RegisteredNode>> cases = {
      {"not seen lately", node("b", "passive", "lease_held", 5000)},
      {"paused", node("b", "passive", "paused", 100, "0.1.0", true)},
      {"older", node("b", "passive", "lease_held", 100, "0.0.9")},
      {"held off", node("b", "passive", "plugin_failed:mq")},
      {"faulted", node("b", "passive", "plugin_faulted")},
      {"schema", node("b", "passive", "schema_newer")},
      {"database", node("b", "passive", "db_unreachable")},
      {"stopped", node("b", "stopped", "shutdown")},
      {"starting", node("b", "starting", "")},
  };
  for (const auto& [why, peer] : cases) {
    INFO(why);
    CHECK_FALSE(ready_peer({node("a", "active", ""), peer}, "a", "0.1.0", 3s));
  }
  // A node held off after a handover is ready only for a node whose plugin faulted.
  const std::vector<db::RegisteredNode> held_off = {node("b", "passive", "plugin_failed:mq")};
  CHECK_FALSE(ready_peer(held_off, "a", "0.1.0", 3s));
  CHECK(ready_peer(held_off, "a", "0.1.0", 3s, /*or_held_off=*/true) ==
        std::optional<std::string>("b"));
  CHECK_FALSE(ready_peer({node("b", "passive", "plugin_faulted")}, "a", "0.1.0", 3s, true));
  // Newer is fine: the upgrade path moves the role to upgraded nodes.
  CHECK(ready_peer({node("b", "passive", "lease_held", 100, "0.2.0")}, "a", "0.1.0", 3s));
}

TEST_CASE("the cluster view shows active only the holder of the live lease, and down the unseen") {
  LeaseView lease;
  lease.holder = "b";
  lease.epoch = 4;
  lease.expires_in_ms = 1500;
  // A killed active still says "active" in its row; the lease says who is.
  CHECK(shown_role(node("a", "active", "", 900), lease, 3s) == "passive");
  CHECK(shown_role(node("b", "passive", "promoting", 100), lease, 3s) == "active");
  CHECK(shown_role(node("a", "active", "", 3500), lease, 3s) == "down");
  CHECK(shown_role(node("c", "stopped", "shutdown", 60000), lease, 3s) == "stopped");
  CHECK(shown_role(node("c", "passive", "lease_held", 100), lease, 3s) == "passive");
  // An expired lease makes nobody active.
  lease.expires_in_ms = 0;
  CHECK(shown_role(node("b", "active", "", 100), lease, 3s) == "passive");
  CHECK(shown_role(node("b", "active", "", 100), std::nullopt, 3s) == "passive");
}

}  // namespace
}  // namespace emsnode::role
