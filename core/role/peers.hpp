// Which other node could take over now: the question a sick active asks before it hands over,
// and a held-off node asks before it stays out of the competition.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "db/node_registry.hpp"
#include "role/role_manager.hpp"

namespace emsnode::role {

// Whether a node that is not active for `reason` could still take the lease at once. False for
// reasons that keep it out: paused, the database unreachable, a schema it may not serve, a held
// off or faulted plugin, a vetoing hook, shutting down.
bool could_take_over(std::string_view reason);

// <0, 0, >0 as `a` is older than, the same as, or newer than `b`: dot-separated numbers compared
// as numbers ("0.10.0" > "0.9.1", "1.2" == "1.2.0"), anything after them ("-rc1") as text.
int compare_versions(std::string_view a, std::string_view b);

// The first node of `nodes` other than `self_id` that is passive, seen within `max_age`, not
// paused, could take over for its reason (or, with `or_held_off`, is held off after a handover:
// plugin_failed:<id>), and runs `self_version` or newer; nullopt if none.
std::optional<std::string> ready_peer(const std::vector<db::RegisteredNode>& nodes,
                                      std::string_view self_id, std::string_view self_version,
                                      std::chrono::milliseconds max_age, bool or_held_off = false);

// The role the cluster view shows for `node`, one truth on every node: "active" only for the
// holder of the live lease as `lease` last read it (whatever each node last wrote about itself),
// "down" for a node not seen within `max_age`, else what the node registered ("passive",
// "starting", "stopped"; a registered "active" that does not hold the lease is "passive").
std::string shown_role(const db::RegisteredNode& node, const std::optional<LeaseView>& lease,
                       std::chrono::milliseconds max_age);

}  // namespace emsnode::role
