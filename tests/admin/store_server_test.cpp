// The admin endpoint's file store routes over a real store: the share backend in a temporary
// folder, its catalog in a real SQLite database whose lease the test sets (node-a, epoch 7).
#include <catch2/catch.hpp>

#include <chrono>
#include <sstream>
#include <string>
#include <thread>

#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>

#include "admin/admin_client.hpp"
#include "admin/store_client.hpp"
#include "store_test_support.hpp"
#include "support/sanitizers.hpp"
#include "support/skip.hpp"

namespace emsnode::admin {
namespace {

using namespace std::chrono_literals;
using testing::GeneratedContent;
using testing::HashingSink;
using testing::MemorySampler;
using testing::RawConnection;
using testing::sha256_of;
using testing::StoreNode;

boost::property_tree::ptree parse_json(const std::string& text) {
  std::istringstream in(text);
  boost::property_tree::ptree tree;
  boost::property_tree::read_json(in, tree);
  return tree;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The request line and headers of a PUT of `length` bytes at `path`, with the test's token.
std::string put_header(const std::string& path, std::uint64_t length, bool expect_continue) {
  return "PUT " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
         std::string(testing::kStoreToken) + "\r\nContent-Length: " + std::to_string(length) +
         (expect_continue ? "\r\nExpect: 100-continue" : "") + "\r\n\r\n";
}

// Whether the share holds a put in progress (a temporary file in tmp/).
bool put_in_progress(const StoreNode& node) {
  for (const auto& entry : std::filesystem::directory_iterator(node.share() / "tmp")) {
    if (entry.path().extension() == ".part") return true;
  }
  return false;
}

// Polls `holds` every 5 ms for up to two seconds.
template <typename Condition>
bool eventually(Condition holds) {
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (!holds()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

}  // namespace

TEST_CASE("a file put through the endpoint is read back, listed, stat'ed and removed") {
  StoreNode node;
  const std::string content = "hello, store\n";
  const Response put = request(node.target(), "PUT", "/store/reports/a%20b.txt", content);
  CHECK(put.status == 200);
  CHECK(put.body ==
        "stored reports/a b.txt: 13 bytes, sha256 " + sha256_of(content) + ", epoch 7\n");

  const Response got = request(node.target(), "GET", "/store/reports%2Fa%20b.txt");
  CHECK(got.status == 200);
  CHECK(got.content_type == "application/octet-stream");
  CHECK(got.body == content);

  const auto list = parse_json(request(node.target(), "GET", "/store?prefix=reports/").body);
  REQUIRE(list.size() == 1);
  const auto& file = list.front().second;
  CHECK(file.get<std::string>("key") == "reports/a b.txt");
  CHECK(file.get<std::uint64_t>("size") == 13);
  CHECK(file.get<std::string>("sha256") == sha256_of(content));
  CHECK(file.get<std::string>("writer_node") == "node-a");
  CHECK(file.get<std::uint64_t>("epoch") == 7);
  CHECK(parse_json(request(node.target(), "GET", "/store?prefix=other/").body).empty());
  CHECK(
      contains(request(node.target(), "GET", "/store?format=text").body, "reports/a b.txt  13 B"));

  const auto stat = parse_json(request(node.target(), "GET", "/store-stat/reports/a%20b.txt").body);
  CHECK(stat.get<std::string>("sha256") == sha256_of(content));
  CHECK(contains(request(node.target(), "GET", "/store-stat/reports/a%20b.txt?format=text").body,
                 "sha256    " + sha256_of(content)));

  const Response removed = request(node.target(), "DELETE", "/store/reports/a%20b.txt");
  CHECK(removed.status == 200);
  CHECK(removed.body == "removed reports/a b.txt\n");
  CHECK_FALSE(node.store->stat("reports/a b.txt"));
  const Response gone = request(node.target(), "GET", "/store/reports/a%20b.txt");
  CHECK(gone.status == 404);
  CHECK(gone.body == "no such file in the store: reports/a b.txt\n");
}

TEST_CASE("HEAD /store/KEY answers the file's size, SHA-256 and epoch without the file") {
  StoreNode node;
  REQUIRE(request(node.target(), "PUT", "/store/k", "12345").status == 200);
  RawConnection connection(node.server->port());
  connection.send("HEAD /store/k HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                  std::string(testing::kStoreToken) + "\r\nConnection: close\r\n\r\n");
  const std::string response = connection.read_until_closed(2s);
  CHECK(response.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(contains(response, "\r\nContent-Length: 5\r\n"));
  CHECK(contains(response, "\r\nX-Emsnode-Sha256: " + sha256_of("12345") + "\r\n"));
  CHECK(contains(response, "\r\nX-Emsnode-Epoch: 7\r\n"));
  CHECK(response.substr(response.size() - 4) == "\r\n\r\n");
}

TEST_CASE("store reads and writes need the token") {
  StoreNode node;
  REQUIRE(request(node.target(), "PUT", "/store/k", "v1").status == 200);
  CHECK(request(node.target("wrong-but-long-enough"), "PUT", "/store/k", "v2").status == 401);
  CHECK(request(node.target(std::nullopt), "DELETE", "/store/k").status == 401);
  CHECK(request(node.target(std::nullopt), "POST", "/store-migrate?to=blob").status == 401);
  for (const char* path : {"/store/k", "/store", "/store-stat/k"}) {
    const Response got = request(node.target(std::nullopt), "GET", path);
    CHECK(got.status == 401);
    CHECK(got.body.find("v1") == std::string::npos);
  }
  CHECK(request(node.target(std::nullopt), "HEAD", "/store/k").status == 401);
  const Response got = request(node.target(), "GET", "/store/k");
  CHECK(got.status == 200);
  CHECK(got.body == "v1");

  StoreNode tokenless(ServerLimits{}, std::nullopt);
  CHECK(request(tokenless.target("any"), "PUT", "/store/k", "v").status == 403);
  CHECK_FALSE(tokenless.store->stat("k"));
}

TEST_CASE("a passive node refuses store writes before reading the body and names the active") {
  StoreNode node;
  REQUIRE(request(node.target(), "PUT", "/store/k", "v1").status == 200);
  node.active = false;

  RawConnection connection(node.server->port());
  // A client that waits for "100 Continue" before it sends a large body never has to send it.
  connection.send(put_header("/store/k", 1'000'000, true));
  bool closed = false;
  const std::string response = connection.read_until_closed(2s, &closed);
  CHECK(closed);
  CHECK(response.rfind("HTTP/1.1 409 Conflict\r\n", 0) == 0);
  CHECK_FALSE(contains(response, "100 Continue"));
  CHECK(contains(response, "the file store is written on the active node (node-b)"));

  CHECK(request(node.target(), "DELETE", "/store/k").status == 409);
  CHECK(request(node.target(), "GET", "/store/k").body == "v1");  // reads work on a passive
}

TEST_CASE("a write under an epoch that lost the lease is fenced and publishes nothing") {
  StoreNode node;
  db::testing::set_lease(*node.database, "node-b", 8, 60'000);
  const Response put = request(node.target(), "PUT", "/store/k", "stale");
  CHECK(put.status == 409);
  CHECK(contains(put.body, "node-b"));
  CHECK_FALSE(node.store->stat("k"));
}

TEST_CASE("a 64 MiB file streams in and out while the process's memory stays flat") {
  if (emsnode::testing::kSanitizer) {
    emsnode::testing::skip_test(
        "built with a sanitizer, whose own memory the process's memory would include");
    return;
  }
  StoreNode node;
  constexpr std::uint64_t kSize = 64ull << 20;
  std::ostringstream out;
  std::ostringstream err;

  GeneratedContent content(kSize);
  std::istream in(&content);
  StoreStreams put_streams{in, out, err};
  MemorySampler put_memory;
  REQUIRE(store_put(node.target(), "big/blob.bin", "-", put_streams) == 0);
  const std::uint64_t put_growth = put_memory.peak_growth();
  const std::optional<store::FileInfo> stored = node.store->stat("big/blob.bin");
  REQUIRE(stored);
  CHECK(stored->size == kSize);
  CHECK(stored->sha256 == content.sha256());

  HashingSink sink;
  std::ostream received(&sink);
  std::istringstream nothing;
  StoreStreams get_streams{nothing, received, err};
  MemorySampler get_memory;
  REQUIRE(store_get(node.target(), "big/blob.bin", "-", get_streams) == 0);
  const std::uint64_t get_growth = get_memory.peak_growth();
  CHECK(sink.size() == kSize);
  CHECK(sink.sha256() == stored->sha256);
  CHECK(err.str().empty());

  // A buffered body would add 64 MiB; the pipes, pieces and store chunks take a few.
  CAPTURE(put_growth, get_growth);
  CHECK(put_growth < (24ull << 20));
  CHECK(get_growth < (24ull << 20));
}

TEST_CASE(
    "an upload over store_body_limit is refused at once; the 64 KiB body limit does not apply") {
  ServerLimits limits;
  limits.store_body_limit = 1 << 20;
  StoreNode node(limits);
  const std::string large(200 * 1024, 'x');  // over ServerLimits::body_limit
  CHECK(request(node.target(), "PUT", "/store/fits", large).status == 200);
  CHECK(node.store->stat("fits")->size == large.size());

  RawConnection connection(node.server->port());
  connection.send(put_header("/store/too-big", 2 << 20, false));
  const std::string response = connection.read_until_closed(2s);
  CHECK(response.rfind("HTTP/1.1 413 Payload Too Large\r\n", 0) == 0);
  CHECK(contains(response, "file over 1048576 bytes"));

  // A body of unknown length (chunked) is stopped when it passes the limit.
  std::istringstream in(std::string(2 << 20, 'y'));
  std::ostringstream out;
  std::ostringstream err;
  StoreStreams streams{in, out, err};
  CHECK(store_put(node.target(), "too-big", "-", streams) == 1);
  CHECK_FALSE(node.store->stat("too-big"));
}

TEST_CASE("a corrupt file is answered 500 before its first byte, or cut short: never whole") {
  StoreNode node;
  REQUIRE(request(node.target(), "PUT", "/store/small", "small content").status == 200);
  node.corrupt_objects(13);
  const Response small = request(node.target(), "GET", "/store/small");
  CHECK(small.status == 500);
  CHECK(contains(small.body, "small is corrupt"));

  // Larger than what the endpoint holds back: the first pieces are out before the end shows the
  // damage, and only a connection closed short of Content-Length can tell.
  const std::string large(2 << 20, 'z');
  REQUIRE(request(node.target(), "PUT", "/store/large", large).status == 200);
  node.corrupt_objects(large.size());
  RawConnection connection(node.server->port());
  connection.send("GET /store/large HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                  std::string(testing::kStoreToken) + "\r\n\r\n");
  bool closed = false;
  const std::string response = connection.read_until_closed(5s, &closed);
  CHECK(closed);
  CHECK(response.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(contains(response, "\r\nContent-Length: 2097152\r\n"));
  const std::size_t body = response.size() - (response.find("\r\n\r\n") + 4);
  CHECK(body > 0);
  CHECK(body < large.size());
}

TEST_CASE("a bad key is refused with 400 and a missing file answered 404") {
  StoreNode node;
  const Response bad = request(node.target(), "PUT", "/store/a%2F..%2Fb", "x");
  CHECK(bad.status == 400);
  CHECK(contains(bad.body, "invalid store key"));
  CHECK(request(node.target(), "GET", "/store/missing").status == 404);
  CHECK(request(node.target(), "HEAD", "/store/missing").status == 404);
  CHECK(request(node.target(), "GET", "/store-stat/missing").status == 404);
  CHECK(request(node.target(), "DELETE", "/store/missing").status == 404);
  CHECK(request(node.target(), "POST", "/store/k").status == 405);
}

TEST_CASE(
    "a client that goes away in the middle of an upload leaves nothing, and the endpoint "
    "serves on") {
  StoreNode node;
  {
    RawConnection connection(node.server->port());
    connection.send(put_header("/store/cut", 1 << 20, false) + std::string(100'000, 'c'));
    REQUIRE(eventually([&] { return put_in_progress(node); }));
  }
  CHECK(eventually([&] { return !put_in_progress(node); }));
  CHECK_FALSE(node.store->stat("cut"));
  CHECK(request(node.target(), "PUT", "/store/after", "ok").status == 200);
}

TEST_CASE("more transfers than max_transfers are answered 503 until one ends") {
  ServerLimits limits;
  limits.max_transfers = 1;
  StoreNode node(limits);
  RawConnection upload(node.server->port());
  upload.send(put_header("/store/slow", 10, true));
  // The store reads: the one transfer is running.
  REQUIRE(upload.read_responses(1, 2s) == "HTTP/1.1 100 Continue\r\n\r\n");

  const Response busy = request(node.target(), "GET", "/store/slow");
  CHECK(busy.status == 503);
  CHECK(contains(busy.body, "too many store transfers in progress (1)"));
  CHECK(request(node.target(), "GET", "/store").status == 200);  // no transfer: served

  upload.send("0123456789");
  CHECK(contains(upload.read_responses(1, 2s), "stored slow: 10 bytes"));
  CHECK(eventually([&] { return request(node.target(), "GET", "/store/slow").status == 200; }));
}

TEST_CASE("stop returns at once while an upload waits for its client, and nothing is stored") {
  StoreNode node;
  RawConnection upload(node.server->port());
  upload.send(put_header("/store/waiting", 10, true));
  REQUIRE(upload.read_responses(1, 2s) == "HTTP/1.1 100 Continue\r\n\r\n");
  upload.send("01234");
  REQUIRE(eventually([&] { return put_in_progress(node); }));

  const auto began = std::chrono::steady_clock::now();
  node.server->stop();
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - began < 2s);
  CHECK_FALSE(node.store->stat("waiting"));
}

TEST_CASE("migrate moves every file into the blob backend, verified, and says what to change") {
  StoreNode node;
  REQUIRE(request(node.target(), "PUT", "/store/one", "first").status == 200);
  REQUIRE(request(node.target(), "PUT", "/store/dir/two", std::string(100'000, 't')).status == 200);

  const Response migrated = request(node.target(), "POST", "/store-migrate?to=blob");
  CHECK(migrated.status == 200);
  CHECK(contains(migrated.body, "copied 2 files"));
  CHECK(contains(migrated.body, "from the share backend to the blob backend"));
  CHECK(contains(migrated.body, "set [store] backend = \"blob\" in the config of every node"));
  const auto blob = store::open_blob_store(*node.database);
  std::ostringstream first;
  blob->get("one", first);
  CHECK(first.str() == "first");
  CHECK(blob->stat("dir/two")->size == 100'000);
  // The catalog points to the copies: the share backend this node runs on sees none of them.
  CHECK(request(node.target(), "GET", "/store/one").status == 404);

  // A file stored meanwhile is moved by the next run, alone.
  REQUIRE(request(node.target(), "PUT", "/store/three", "late").status == 200);
  CHECK(contains(request(node.target(), "POST", "/store-migrate?to=blob").body,
                 "copied 1 file (4 B) from the share backend to the blob backend, each verified; "
                 "0 already there"));
  CHECK(blob->stat("three"));
  CHECK(request(node.target(), "POST", "/store-migrate?to=share").status == 400);
  CHECK(request(node.target(), "POST", "/store-migrate?to=floppy").status == 400);
}

}  // namespace emsnode::admin
