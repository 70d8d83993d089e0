#include <catch2/catch.hpp>

#include "host/dependency_order.hpp"

namespace emsnode::host {
namespace {

DependencyNode node(std::string id, std::vector<std::string> required = {}) {
  return DependencyNode{id, std::move(required), "/plugins/" + id + "/plugin.toml"};
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

}  // namespace emsnode::host
