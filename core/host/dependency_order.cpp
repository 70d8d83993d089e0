#include "host/dependency_order.hpp"

#include <algorithm>
#include <map>

namespace emsnode::host {
namespace {

enum class Mark { unvisited, visiting, ordered, refused };

class Sorter {
 public:
  explicit Sorter(const std::vector<DependencyNode>& nodes)
      : nodes_(nodes), marks_(nodes.size(), Mark::unvisited), required_(nodes.size()) {
    result_.problems.resize(nodes.size());
    result_.exporters.resize(nodes.size());
    std::map<std::string, std::size_t, std::less<>> index;
    for (std::size_t i = 0; i < nodes.size(); ++i) index.emplace(nodes[i].id, i);
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      for (const std::string& id : nodes[i].required) {
        const auto found = index.find(id);
        if (found == index.end()) {
          std::string reason = "requires \"" + id;
          reason += "\", which is not enabled in the node config (enable it with a [plugins.";
          reason += id + "] section)";
          refuse(i, reason);
          break;
        }
        required_[i].push_back(found->second);
      }
      if (result_.problems[i].empty()) resolve_uses(i);
      // Ties between requirements go by config order too.
      std::sort(required_[i].begin(), required_[i].end());
      required_[i].erase(std::unique(required_[i].begin(), required_[i].end()), required_[i].end());
    }
    result_.edges = required_;
  }

  DependencyOrder run() && {
    for (std::size_t i = 0; i < nodes_.size(); ++i) visit(i);
    return std::move(result_);
  }

 private:
  // Each use becomes a requirement of its one exporter, at a minor at least the one asked for.
  void resolve_uses(std::size_t user) {
    const DependencyNode& node = nodes_[user];
    for (const ApiUse& use : node.uses) {
      std::vector<std::pair<std::size_t, const ApiExport*>> found;
      for (std::size_t j = 0; j < nodes_.size(); ++j) {
        for (const ApiExport& api : nodes_[j].exports) {
          if (api.api() == use.api()) found.emplace_back(j, &api);
        }
      }
      const std::string uses = "plugin " + node.id + " uses " + use.text();
      if (found.empty()) {
        refuse(user, uses + ", which no enabled plugin exports");
        return;
      }
      if (found.size() > 1) {
        refuse(user, uses + ", which both plugin " + nodes_[found[0].first].id + " and plugin " +
                         nodes_[found[1].first].id + " export (enable only one)");
        return;
      }
      const auto [exporter, api] = found.front();
      if (api->minor < use.minor) {
        refuse(user, uses + ", but plugin " + nodes_[exporter].id + " exports " + api->text());
        return;
      }
      required_[user].push_back(exporter);
      result_.exporters[user].push_back(exporter);
    }
  }

  bool visit(std::size_t node) {
    switch (marks_[node]) {
      case Mark::ordered:
        return true;
      case Mark::refused:
        return false;
      case Mark::visiting:
        refuse_cycle(node);
        return false;
      case Mark::unvisited:
        break;
    }
    if (!result_.problems[node].empty()) {
      marks_[node] = Mark::refused;
      return false;
    }
    marks_[node] = Mark::visiting;
    path_.push_back(node);
    for (const std::size_t required : required_[node]) {
      if (!visit(required)) {
        if (result_.problems[node].empty()) {
          const std::vector<std::string>& ids = nodes_[node].required;
          const bool by_requires =
              std::find(ids.begin(), ids.end(), nodes_[required].id) != ids.end();
          refuse(node, std::string(by_requires ? "requires" : "uses an API of") + " \"" +
                           nodes_[required].id +
                           "\", which is refused: " + result_.problems[required]);
        }
        path_.pop_back();
        marks_[node] = Mark::refused;
        return false;
      }
    }
    path_.pop_back();
    marks_[node] = Mark::ordered;
    result_.order.push_back(node);
    return true;
  }

  // `node` is on the current path: everything from it to the end of the path is a cycle.
  void refuse_cycle(std::size_t node) {
    const auto start = std::find(path_.begin(), path_.end(), node);
    const std::vector<std::size_t> cycle(start, path_.end());
    for (std::size_t k = 0; k < cycle.size(); ++k) {
      std::string text;
      for (std::size_t step = 0; step <= cycle.size(); ++step) {
        text += (step == 0 ? "" : " -> ") + nodes_[cycle[(k + step) % cycle.size()]].id;
      }
      if (result_.problems[cycle[k]].empty()) refuse(cycle[k], "dependency cycle: " + text);
    }
  }

  void refuse(std::size_t node, const std::string& reason) {
    result_.problems[node] = nodes_[node].manifest.string() + ": " + reason;
  }

  const std::vector<DependencyNode>& nodes_;
  std::vector<Mark> marks_;
  std::vector<std::vector<std::size_t>> required_;
  std::vector<std::size_t> path_;
  DependencyOrder result_;
};

}  // namespace

DependencyOrder order_by_dependencies(const std::vector<DependencyNode>& nodes) {
  return Sorter(nodes).run();
}

}  // namespace emsnode::host
