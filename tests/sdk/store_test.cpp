// emsnode::sdk::FileStore over the fake host's store hooks: content streamed both ways, catalog
// entries, the exceptions each failure becomes, the node's refusals the fake mirrors, and a host
// of ABI 1.1.
#include <emsnode/plugin.hpp>
#include <emsnode/testing/fake_host.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <fstream>
#include <istream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace sdk = emsnode::sdk;
using emsnode::sdk::testing::FakeHost;

// A started fake host whose store is a map, as a plugin's unit test would set it up; the epoch
// of each put is the fake's, and `lost_lease` plays a node that lost the lease.
struct FakeStore {
  FakeStore() {
    fake.set_started(true);
    fake.set_store_put([this](std::string_view key, std::istream& content) {
      if (lost_lease) throw sdk::FencedError("fenced: holder node-b at epoch 8");
      std::string bytes(std::istreambuf_iterator<char>(content), {});
      ++reads;
      files[std::string(key)] = std::move(bytes);
    });
    fake.set_store_get([this](std::string_view key, std::ostream& out) {
      const auto found = files.find(std::string(key));
      if (found == files.end()) throw sdk::FileNotFoundError("no such file: " + std::string(key));
      out.write(found->second.data(), static_cast<std::streamsize>(found->second.size()));
      if (corrupt) throw std::runtime_error(std::string(key) + " is corrupt");
    });
    fake.set_store_stat([this](std::string_view key) -> std::optional<sdk::FileInfo> {
      const auto found = files.find(std::string(key));
      if (found == files.end()) return std::nullopt;
      return info(found->first, found->second);
    });
    fake.set_store_list([this](std::string_view prefix) {
      std::vector<sdk::FileInfo> listed;
      for (const auto& [key, bytes] : files) {
        if (key.compare(0, prefix.size(), prefix) == 0) listed.push_back(info(key, bytes));
      }
      return listed;
    });
    fake.set_store_remove([this](std::string_view key) {
      if (lost_lease) throw sdk::FencedError("fenced: holder node-b at epoch 8");
      if (files.erase(std::string(key)) == 0) {
        throw sdk::FileNotFoundError("no such file: " + std::string(key));
      }
    });
  }

  static sdk::FileInfo info(const std::string& key, const std::string& bytes) {
    return {key, bytes.size(), std::string(64, 'a'), 1'700'000'000'000, 7};
  }

  FakeHost fake;
  sdk::Host host{fake.api(), fake.ctx()};
  std::map<std::string, std::string> files;
  int reads = 0;
  bool lost_lease = false;
  bool corrupt = false;
};

// A stream that fails as soon as it is read.
class FailingBuffer : public std::streambuf {
 protected:
  int_type underflow() override { throw std::runtime_error("the disk went away"); }
};

}  // namespace

TEST_CASE("a file put through the wrapper reaches the store whole and comes back the same") {
  FakeStore store;
  const std::string content(200'000, 'c');  // many read callbacks' worth
  std::istringstream in(content);
  store.host.store().put("reports/nov.csv", in);
  CHECK(store.files.at("reports/nov.csv") == content);

  std::ostringstream out;
  store.host.store().get("reports/nov.csv", out);
  CHECK(out.str() == content);
}

TEST_CASE("stat and list return the catalog entries the host passes") {
  FakeStore store;
  store.files["a/one"] = "12345";
  store.files["a/two"] = "67";
  store.files["b/three"] = "8";

  const std::optional<sdk::FileInfo> one = store.host.store().stat("a/one");
  REQUIRE(one);
  CHECK(one->key == "a/one");
  CHECK(one->size == 5);
  CHECK(one->sha256 == std::string(64, 'a'));
  CHECK(one->modified_at_ms == 1'700'000'000'000);
  CHECK(one->epoch == 7);
  CHECK_FALSE(store.host.store().stat("a/none"));

  const std::vector<sdk::FileInfo> listed = store.host.store().list("a/");
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].key == "a/one");
  CHECK(listed[1].key == "a/two");
  CHECK(listed[1].size == 2);
  CHECK(store.host.store().list().size() == 3);
}

TEST_CASE("each store failure becomes its exception with the host's reason") {
  FakeStore store;
  store.files["k"] = "v";
  std::ostringstream out;
  CHECK_THROWS_AS(store.host.store().get("missing", out), sdk::FileNotFoundError);
  CHECK_THROWS_WITH(store.host.store().remove("missing"), "no such file: missing");
  store.corrupt = true;
  CHECK_THROWS_AS(store.host.store().get("k", out), sdk::StoreError);
  CHECK_THROWS_WITH(store.host.store().get("k", out), "k is corrupt");

  store.lost_lease = true;
  std::istringstream in("new");
  CHECK_THROWS_AS(store.host.store().put("k", in), sdk::FencedError);
  CHECK_THROWS_WITH(store.host.store().remove("k"), "fenced: holder node-b at epoch 8");
  CHECK(store.files.at("k") == "v");
}

TEST_CASE("a put from a stream that fails publishes nothing and says why") {
  FakeStore store;
  std::ifstream unopened("/nonexistent/file");
  CHECK_THROWS_WITH(store.host.store().put("k", unopened),
                    "store put 'k': reading the input stream failed; nothing was published");

  // An exception the plugin's own stream throws comes back unchanged.
  FailingBuffer failing;
  std::istream in(&failing);
  in.exceptions(std::ios::badbit);
  CHECK_THROWS_WITH(store.host.store().put("k", in), "the disk went away");
  CHECK(store.files.empty());
  CHECK(store.reads == 0);
}

TEST_CASE("a get into a stream that fails stops the transfer and says why") {
  FakeStore store;
  store.files["k"] = std::string(100'000, 'g');
  std::ostringstream closed;
  closed.setstate(std::ios::badbit);
  CHECK_THROWS_WITH(store.host.store().get("k", closed),
                    "store get 'k': writing the output stream failed");
}

TEST_CASE("the fake host refuses keys that leave the plugin's folder, as the node does") {
  FakeStore store;
  std::istringstream in("x");
  for (const char* key : {"", "/etc/passwd", "../other/x", "a/../b", "a//b", "a/./b", "a\\b"}) {
    CHECK_THROWS_AS(store.host.store().put(key, in), sdk::StoreError);
  }
  CHECK_THROWS_WITH(store.host.store().stat("../x"),
                    Catch::Contains("keys are relative to the plugin's folder"));
  CHECK_THROWS_WITH(store.host.store().list("../"), Catch::Contains("prefix \"../\" refused"));
  CHECK(store.files.empty());
  CHECK(store.host.store().list("").empty());
}

TEST_CASE("puts and removes are refused while the plugin is not started; reads are not") {
  FakeStore store;
  store.files["k"] = "v";
  store.fake.set_started(false);
  std::istringstream in("x");
  CHECK_THROWS_WITH(store.host.store().put("k", in), Catch::Contains("the plugin is not started"));
  CHECK_THROWS_WITH(store.host.store().remove("k"), Catch::Contains("the plugin is not started"));
  std::ostringstream out;
  store.host.store().get("k", out);
  CHECK(out.str() == "v");
}

TEST_CASE("inside a write body the store may not be used") {
  FakeStore store;
  store.fake.set_db_write([](const auto& run_body) { run_body(); });
  store.host.db().write([&](sdk::Transaction&) {
    std::ostringstream out;
    CHECK_THROWS_WITH(store.host.store().get("k", out),
                      Catch::Contains("refused inside a db_write body"));
  });
}

TEST_CASE("without store hooks every call fails and says how to set one") {
  FakeHost fake;
  fake.set_started(true);
  const sdk::Host host(fake.api(), fake.ctx());
  std::istringstream in("x");
  CHECK_THROWS_WITH(host.store().put("k", in),
                    "the fake host has no file store; set one with FakeHost::set_store_put");
  CHECK_THROWS_WITH(host.store().list(), Catch::Contains("FakeHost::set_store_list"));
}

TEST_CASE("on a host of ABI 1.1 the file store is unsupported, and says so") {
  FakeStore store;
  emsnode_host_api old = *store.fake.api();
  old.struct_size = offsetof(emsnode_host_api, store_put);  // the 1.1 table ends here
  const sdk::Host host(&old, store.fake.ctx());
  CHECK(host.supports(&emsnode_host_api::db_migrate));
  CHECK_FALSE(host.supports(&emsnode_host_api::store_put));
  std::istringstream in("x");
  CHECK_THROWS_AS(host.store().put("k", in), sdk::UnsupportedError);
  CHECK_THROWS_WITH(host.store().stat("k"), Catch::Contains("'store_stat'"));
  CHECK_THROWS_WITH(host.store().list(), Catch::Contains("'store_list'"));
  CHECK(store.files.empty());
}

TEST_CASE("a catalog entry is read only as far as its writer declared it") {
  emsnode_store_info info{};
  info.struct_size = offsetof(emsnode_store_info, epoch);  // a writer without epoch or sha256
  info.size = 5;
  info.epoch = 9;
  info.sha256[0] = 'f';
  const sdk::FileInfo file = sdk::detail::from_store_info("k", info);
  CHECK(file.size == 5);
  CHECK(file.epoch == 0);
  CHECK(file.sha256.empty());
}
