// The order in which plugins start: each after the plugins it `requires` and the exporters of the
// shared APIs it `uses`, otherwise in the order the node config lists them. They stop in the
// reverse order.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "host/manifest.hpp"

namespace emsnode::host {

struct DependencyNode {
  std::string id;
  std::vector<std::string> required;  // ids this plugin requires
  std::filesystem::path manifest;     // named in problems
  std::vector<ApiExport> exports;     // shared APIs it exports
  std::vector<ApiUse> uses;           // shared APIs it uses
};

struct DependencyOrder {
  std::vector<std::size_t> order;     // indices into the nodes, requirements first
  std::vector<std::string> problems;  // per node: empty, or why it cannot be ordered
  // Per node: the nodes it must follow (what it requires, the exporters of what it uses), each
  // once, ascending. Meaningful for the nodes in `order`.
  std::vector<std::vector<std::size_t>> edges;
  // Per node: for each of its `uses`, in order, the node that exports it.
  std::vector<std::vector<std::size_t>> exporters;
};

// Orders `nodes` (given in config order) depth first: config order, except that a plugin's
// requirements come just before it. A use is a requirement of the API's exporter. A node that
// requires an id not among `nodes`, uses an API that no node exports, that two nodes export or
// that its exporter exports at an older minor, lies on a dependency cycle, or requires such a node
// gets a one-line problem and is left out.
DependencyOrder order_by_dependencies(const std::vector<DependencyNode>& nodes);

}  // namespace emsnode::host
