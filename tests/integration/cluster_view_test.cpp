// The cluster view tells one truth: read from a surviving node across a SIGKILL of the active,
// `status` never shows two actives, and the dead node is shown down once it is not seen.
#include <catch2/catch.hpp>

#include "support/cluster.hpp"
#include "support/test_postgres.hpp"

using namespace std::chrono_literals;
using emsnode::testing::Cluster;
using emsnode::testing::NodeDatabase;
using emsnode::testing::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

// How many rows of the node table in `emsnode status` text say `role`.
std::size_t rows_with_role(const std::string& text, const std::string& role) {
  std::size_t count = 0;
  std::istringstream in(text.substr(text.find("NODE ")));
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line) && !line.empty()) {
    std::istringstream fields(line);
    std::string id, shown;
    fields >> id >> shown;
    if (shown == role) ++count;
  }
  return count;
}

}  // namespace

TEST_CASE("read from the survivor across a SIGKILL, the view never shows two actives") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2);
  cluster.start_all();
  const auto active = cluster.await_single_active();
  REQUIRE(active);
  const std::size_t survivor = 1 - *active;
  REQUIRE(cluster.await_passive(survivor));
  cluster.kill(*active);

  std::size_t reads = 0;
  std::size_t most_actives = 0;
  bool shown_down = false;
  const auto until = Clock::now() + 8s;
  while (Clock::now() < until && !shown_down) {
    const auto reply = cluster.admin(survivor, "GET", "/status?format=text");
    REQUIRE(reply.status == 200);
    ++reads;
    most_actives = std::max(most_actives, rows_with_role(reply.body, "active"));
    shown_down = rows_with_role(reply.body, "down") == 1 &&
                 reply.body.find("down since ") != std::string::npos;
    std::this_thread::sleep_for(20ms);
  }
  INFO(reads << " reads");
  CHECK(reads > 20);
  CHECK(most_actives == 1);
  CHECK(shown_down);
  // The page says the same.
  const auto page = cluster.admin(survivor, "GET", "/").body;
  CHECK(page.find("down since ") != std::string::npos);
}
