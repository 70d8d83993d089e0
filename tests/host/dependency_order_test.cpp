#include <catch2/catch.hpp>

#include "host/dependency_order.hpp"

namespace emsnode::host {
namespace {

DependencyNode node(std::string id, std::vector<std::string> required = {}) {
  DependencyNode n;
  n.id = id;
  n.required = std::move(required);
  n.manifest = "/plugins/" + id + "/plugin.toml";
  return n;
}

// A node that exports and uses shared APIs.
DependencyNode api_node(std::string id, std::vector<ApiExport> exports, std::vector<ApiUse> uses) {
  DependencyNode n = node(std::move(id));
  n.exports = std::move(exports);
  n.uses = std::move(uses);
  return n;
}

std::vector<std::string> ids(const std::vector<DependencyNode>& nodes,
                             const DependencyOrder& order) {
  std::vector<std::string> result;
  for (const std::size_t i : order.order) result.push_back(nodes[i].id);
  return result;
}

}  // namespace

TEST_CASE("plugins without requirements start in config order") {
  const std::vector<DependencyNode> nodes{node("c"), node("a"), node("b")};
  const DependencyOrder order = order_by_dependencies(nodes);
  CHECK(ids(nodes, order) == std::vector<std::string>{"c", "a", "b"});
  CHECK(order.problems == std::vector<std::string>(3));
}

TEST_CASE("a plugin's requirements start just before it, the rest keep config order") {
  // b requires a: a moves up to just before b; c keeps its place after b.
  const std::vector<DependencyNode> nodes{node("b", {"a"}), node("c"), node("a")};
  CHECK(ids(nodes, order_by_dependencies(nodes)) == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("requirements of one plugin are ordered among themselves by config order") {
  const std::vector<DependencyNode> nodes{node("x", {"z", "y"}), node("y"), node("z", {"w"}),
                                          node("w")};
  CHECK(ids(nodes, order_by_dependencies(nodes)) == std::vector<std::string>{"y", "w", "z", "x"});
}

TEST_CASE("a requirement that is not enabled refuses the plugin that names it") {
  const std::vector<DependencyNode> nodes{node("mq", {"license"}), node("backup")};
  const DependencyOrder order = order_by_dependencies(nodes);
  CHECK(ids(nodes, order) == std::vector<std::string>{"backup"});
  CHECK(order.problems[0] ==
        "/plugins/mq/plugin.toml: requires \"license\", which is not enabled in the node config "
        "(enable it with a [plugins.license] section)");
  CHECK(order.problems[1].empty());
}

TEST_CASE("every plugin on a dependency cycle is refused with the cycle spelled out") {
  const std::vector<DependencyNode> nodes{node("a", {"b"}), node("b", {"c"}), node("c", {"a"}),
                                          node("d")};
  const DependencyOrder order = order_by_dependencies(nodes);
  CHECK(ids(nodes, order) == std::vector<std::string>{"d"});
  CHECK(order.problems[0] == "/plugins/a/plugin.toml: dependency cycle: a -> b -> c -> a");
  CHECK(order.problems[1] == "/plugins/b/plugin.toml: dependency cycle: b -> c -> a -> b");
  CHECK(order.problems[2] == "/plugins/c/plugin.toml: dependency cycle: c -> a -> b -> c");
}

TEST_CASE("a plugin requiring a refused plugin is refused with the root cause") {
  const std::vector<DependencyNode> nodes{node("top", {"mid"}), node("mid", {"gone"})};
  const DependencyOrder order = order_by_dependencies(nodes);
  CHECK(order.order.empty());
  CHECK(order.problems[0] ==
        "/plugins/top/plugin.toml: requires \"mid\", which is refused: " + order.problems[1]);
  CHECK(order.problems[1].find("requires \"gone\", which is not enabled") != std::string::npos);
}

TEST_CASE("a user of a shared API is ordered after its exporter, which is its edge") {
  const std::vector<DependencyNode> nodes{
      api_node("telemetry", {}, {ApiUse{"license", 1, 2, true}}), node("mq"),
      api_node("license", {ApiExport{"license", 1, 3}}, {})};
  const DependencyOrder order = order_by_dependencies(nodes);
  CHECK(ids(nodes, order) == std::vector<std::string>{"license", "telemetry", "mq"});
  CHECK(order.problems == std::vector<std::string>(3));
  CHECK(order.edges[0] == std::vector<std::size_t>{2});
  CHECK(order.exporters[0] == std::vector<std::size_t>{2});
}

TEST_CASE("a use is refused when no node exports it, at an older minor, or twice") {
  const ApiUse use{"license", 1, 2, true};
  const std::vector<DependencyNode> missing{api_node("telemetry", {}, {use}),
                                            api_node("license", {ApiExport{"license", 2, 5}}, {})};
  CHECK(order_by_dependencies(missing).problems[0] ==
        "/plugins/telemetry/plugin.toml: plugin telemetry uses license.v1.2, which no enabled "
        "plugin exports");
  const std::vector<DependencyNode> older{api_node("telemetry", {}, {use}),
                                          api_node("license", {ApiExport{"license", 1, 1}}, {})};
  const DependencyOrder refused = order_by_dependencies(older);
  CHECK(refused.problems[0] ==
        "/plugins/telemetry/plugin.toml: plugin telemetry uses license.v1.2, but plugin license "
        "exports license.v1.1");
  CHECK(refused.problems[1].empty());
  CHECK(ids(older, refused) == std::vector<std::string>{"license"});
  const std::vector<DependencyNode> twice{api_node("a", {ApiExport{"license", 1, 2}}, {}),
                                          api_node("telemetry", {}, {use}),
                                          api_node("b", {ApiExport{"license", 1, 2}}, {})};
  CHECK(order_by_dependencies(twice).problems[1] ==
        "/plugins/telemetry/plugin.toml: plugin telemetry uses license.v1.2, which both plugin a "
        "and plugin b export (enable only one)");
}

TEST_CASE("a user of a refused exporter is refused, naming the use") {
  const std::vector<DependencyNode> nodes{
      api_node("telemetry", {}, {ApiUse{"license", 1, 0, false}}),
      api_node("license", {ApiExport{"license", 1, 0}}, {})};
  std::vector<DependencyNode> with_missing = nodes;
  with_missing[1].required = {"vault"};
  CHECK(order_by_dependencies(with_missing).problems[0] ==
        "/plugins/telemetry/plugin.toml: uses an API of \"license\", which is refused: "
        "/plugins/license/plugin.toml: requires \"vault\", which is not enabled in the node "
        "config (enable it with a [plugins.vault] section)");
}

TEST_CASE("a cycle through a use is refused as a cycle through requires is") {
  std::vector<DependencyNode> nodes{api_node("telemetry", {}, {ApiUse{"license", 1, 0, false}}),
                                    api_node("license", {ApiExport{"license", 1, 0}}, {})};
  nodes[1].required = {"telemetry"};
  const DependencyOrder order = order_by_dependencies(nodes);
  CHECK(order.order.empty());
  CHECK(order.problems[0] ==
        "/plugins/telemetry/plugin.toml: dependency cycle: telemetry -> license -> telemetry");
  CHECK(order.problems[1] ==
        "/plugins/license/plugin.toml: dependency cycle: license -> telemetry -> license");
}

}  // namespace emsnode::host
