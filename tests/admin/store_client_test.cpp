// `emsnode store ...` as the CLI runs it (store_verb with the CLI's streams) against an endpoint
// serving a real file store, and the progress line it draws on a terminal.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "admin/store_client.hpp"
#include "store_test_support.hpp"
#include "support/net.hpp"
#include "support/temp_dir.hpp"

namespace emsnode::admin {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using emsnode::testing::read_file;
using testing::StoreNode;

// One run of a verb: its exit status and what it printed.
struct Run {
  int status = -1;
  std::string out;
  std::string err;
};

Run run_store(const Target& target, const std::vector<std::string>& args,
              const std::string& input = "") {
  std::istringstream in(input);
  std::ostringstream out;
  std::ostringstream err;
  StoreStreams streams{in, out, err};
  Run run;
  run.status = store_verb(target, args, streams);
  run.out = out.str();
  run.err = err.str();
  return run;
}

// The names in `folder`, hidden ones included: a failed get must leave no temporary file.
std::vector<std::string> names_in(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("emsnode store put and get move a file through the node and verify it") {
  StoreNode node;
  emsnode::testing::TempDir local;
  const std::string content(300'000, 'q');
  const fs::path source = local.write("agent.msi", content);

  const Run put = run_store(node.target(), {"put", "installers/agent.msi", source.string()});
  CHECK(put.status == 0);
  CHECK(put.out == "stored installers/agent.msi: 300000 bytes, sha256 " +
                       testing::sha256_of(content) + ", epoch 7\n");
  CHECK(put.err.empty());

  const fs::path target = local / "copy.msi";
  const Run get = run_store(node.target(), {"get", "installers/agent.msi", target.string()});
  CHECK(get.status == 0);
  CHECK(get.out == "got installers/agent.msi: 300000 bytes into " + target.string() + ", sha256 " +
                       testing::sha256_of(content) + " verified\n");
  CHECK(read_file(target) == content);
  CHECK(names_in(local.path()) == std::vector<std::string>{"agent.msi", "copy.msi"});
}

TEST_CASE("emsnode store put - reads standard input and get - writes standard output") {
  StoreNode node;
  const Run put = run_store(node.target(), {"put", "notes.txt", "-"}, "from standard input\n");
  CHECK(put.status == 0);
  CHECK(node.store->stat("notes.txt")->size == 20);
  const Run get = run_store(node.target(), {"get", "notes.txt", "-"});
  CHECK(get.status == 0);
  CHECK(get.out == "from standard input\n");
  CHECK(get.err.empty());
}

TEST_CASE("a get that fails leaves no file: a missing key, a corrupt file") {
  StoreNode node;
  emsnode::testing::TempDir local;
  const fs::path target = local / "out.bin";

  const Run missing = run_store(node.target(), {"get", "missing", target.string()});
  CHECK(missing.status == 1);
  CHECK(missing.err == "emsnode: no such file in the store: missing\n");

  REQUIRE(run_store(node.target(), {"put", "small", "-"}, "tiny").status == 0);
  node.corrupt_objects(4);
  const Run small = run_store(node.target(), {"get", "small", target.string()});
  CHECK(small.status == 1);
  CHECK(contains(small.err, "small is corrupt"));

  const std::string large(3 << 20, 'L');
  REQUIRE(run_store(node.target(), {"put", "large", "-"}, large).status == 0);
  node.corrupt_objects(large.size());
  const Run cut = run_store(node.target(), {"get", "large", target.string()});
  CHECK(cut.status == 1);
  CHECK(contains(cut.err, "the transfer of large was cut short after "));
  CHECK(contains(cut.err, target.string() + " was not written"));
  // Nothing at FILE, and no temporary file beside it.
  CHECK(names_in(local.path()).empty());

  // To standard output the bytes went out: only the status tells.
  const Run to_stdout = run_store(node.target(), {"get", "large", "-"});
  CHECK(to_stdout.status == 1);
  CHECK(contains(to_stdout.err, "discard what was written"));
}

TEST_CASE("a put of a file that cannot be read fails before anything is sent") {
  StoreNode node;
  const Run put = run_store(node.target(), {"put", "k", "/nonexistent/file"});
  CHECK(put.status == 1);
  CHECK(put.err == "emsnode: cannot read /nonexistent/file: No such file or directory\n");
  CHECK_FALSE(node.store->stat("k"));
}

TEST_CASE("a refused put prints the node's reason and exits 1") {
  StoreNode node;
  node.active = false;
  const Run passive = run_store(node.target(), {"put", "k", "-"}, "content");
  CHECK(passive.status == 1);
  CHECK(passive.err ==
        "emsnode: this node is passive; the file store is written on the active node (node-b)\n");

  node.active = true;
  const Run no_token = run_store(node.target(std::nullopt), {"put", "k", "-"}, "content");
  CHECK(no_token.status == 1);
  CHECK(contains(no_token.err, "missing or wrong token"));
  CHECK_FALSE(node.store->stat("k"));
}

TEST_CASE("emsnode store stat, ls and rm print what the node answers") {
  StoreNode node;
  REQUIRE(run_store(node.target(), {"put", "a/one", "-"}, "12345").status == 0);
  REQUIRE(run_store(node.target(), {"put", "b/two", "-"}, "67").status == 0);

  const Run stat = run_store(node.target(), {"stat", "a/one"});
  CHECK(stat.status == 0);
  CHECK(contains(stat.out, "key       a/one\nsize      5 bytes (5 B)\nsha256    " +
                               testing::sha256_of("12345") + "\n"));
  CHECK(contains(stat.out, "writer    node-a, epoch 7\n"));
  CHECK(run_store(node.target(), {"stat", "a/none"}).status == 1);

  const Run all = run_store(node.target(), {"ls"});
  CHECK(all.status == 0);
  CHECK(contains(all.out, "a/one"));
  CHECK(contains(all.out, "b/two"));
  CHECK(contains(all.out, "2 files, 7 B\n"));
  const Run some = run_store(node.target(), {"ls", "b/"});
  CHECK_FALSE(contains(some.out, "a/one"));
  CHECK(contains(some.out, "1 file, 2 B\n"));
  CHECK(run_store(node.target(), {"ls", "c/"}).out == "no file in the store starts with c/\n");

  const Run removed = run_store(node.target(), {"rm", "a/one"});
  CHECK(removed.status == 0);
  CHECK(removed.out == "removed a/one\n");
  const Run again = run_store(node.target(), {"rm", "a/one"});
  CHECK(again.status == 1);
  CHECK(contains(again.err, "no such key: a/one"));
}

TEST_CASE("emsnode store migrate --to reports the node's counts") {
  StoreNode node;
  REQUIRE(run_store(node.target(), {"put", "k", "-"}, "v").status == 0);
  const Run migrated = run_store(node.target(), {"migrate", "blob"});
  CHECK(migrated.status == 0);
  CHECK(contains(migrated.out, "copied 1 file (1 B) from the share backend to the blob backend"));
}

TEST_CASE("emsnode store with wrong arguments prints the usage and exits 2") {
  StoreNode node;
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{},
                                             {"put", "k"},
                                             {"get"},
                                             {"ls", "a", "b"},
                                             {"migrate"},
                                             {"migrate", "floppy"},
                                             {"copy", "a", "b"}}) {
    const Run run = run_store(node.target(), args);
    CHECK(run.status == 2);
    CHECK(run.err.rfind("emsnode: usage: emsnode store put KEY FILE|- | get KEY FILE|-", 0) == 0);
  }
}

TEST_CASE("emsnode store says how to fix it when nothing listens at the admin address") {
  const Target nowhere{"127.0.0.1", emsnode::testing::free_port(), std::nullopt};
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"put", "k", "-"}, {"get", "k", "-"}, {"ls"}}) {
    const Run run = run_store(nowhere, args, "x");
    CHECK(run.status == 1);
    CHECK(contains(run.err, "cannot reach the node's admin endpoint at 127.0.0.1:"));
    CHECK(contains(run.err, "is emsnode running with this config?"));
  }
}

TEST_CASE(
    "the progress line is drawn on a terminal only, for large transfers, ten times a second") {
  Progress::Clock::time_point now{};
  const auto clock = [&] { return now; };
  constexpr std::uint64_t kMiB = 1 << 20;

  std::ostringstream quiet;
  Progress not_a_terminal(nullptr, "put k", 100 * kMiB, clock);
  not_a_terminal.advance(100 * kMiB);
  not_a_terminal.finish();
  Progress small(&quiet, "put k", 4 * kMiB, clock);
  small.advance(4 * kMiB);
  small.finish();
  CHECK(quiet.str().empty());

  std::ostringstream terminal;
  Progress large(&terminal, "get big.iso", 100 * kMiB, clock);
  now += 1s;
  large.advance(10 * kMiB);
  CHECK(terminal.str() == "\rget big.iso  10.0 MiB / 100.0 MiB  10%  10.0 MiB/s");
  now += 50ms;
  large.advance(10 * kMiB);  // within a tenth of a second of the last draw: not drawn
  CHECK(terminal.str() == "\rget big.iso  10.0 MiB / 100.0 MiB  10%  10.0 MiB/s");
  now += 950ms;
  large.advance(80 * kMiB);
  large.finish();
  CHECK(terminal.str() ==
        "\rget big.iso  10.0 MiB / 100.0 MiB  10%  10.0 MiB/s"
        "\rget big.iso  100.0 MiB / 100.0 MiB  100%  50.0 MiB/s"
        "\rget big.iso  100.0 MiB / 100.0 MiB  100%  50.0 MiB/s\n");

  // Standard input: no total, so no percent, and drawn once past the threshold.
  std::ostringstream piped;
  Progress unknown(&piped, "put k", std::nullopt, clock);
  unknown.advance(kMiB);
  CHECK(piped.str().empty());
  unknown.advance(8 * kMiB);
  CHECK(piped.str() == "\rput k  9.0 MiB");
  CHECK(piped.str().find('%') == std::string::npos);
}

}  // namespace emsnode::admin
