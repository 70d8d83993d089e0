// The order in which plugins start: each after the plugins it `requires`, otherwise in the order
// the node config lists them. They stop in the reverse order.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace emsnode::host {

struct DependencyNode {
  std::string id;
  std::vector<std::string> required;  // ids this plugin requires
  std::filesystem::path manifest;     // named in problems
};

struct DependencyOrder {
  std::vector<std::size_t> order;     // indices into the nodes, requirements first
  std::vector<std::string> problems;  // per node: empty, or why it cannot be ordered
};

// Orders `nodes` (given in config order) depth first: config order, except that a plugin's
// requirements come just before it. A node that requires an id not among `nodes`, lies on a
// dependency cycle, or requires such a node gets a one-line problem and is left out.
DependencyOrder order_by_dependencies(const std::vector<DependencyNode>& nodes);

}  // namespace emsnode::host
