// The bridges between the endpoint's I/O thread and its transfer workers, driven from two test
// threads: what the reader or writer sees, when each side is told to go on, and how much they
// hold.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <istream>
#include <iterator>
#include <ostream>
#include <string>
#include <thread>

#include "admin/transfer.hpp"

namespace emsnode::admin {
namespace {

using namespace std::chrono_literals;
using Kind = BodySink::Piece::Kind;

// What a reader thread took from a BodySource: the bytes, or the reason it was aborted.
struct ReadResult {
  std::string bytes;
  std::string aborted;
};

std::future<ReadResult> read_all(BodySource& source) {
  return std::async(std::launch::async, [&source] {
    ReadResult result;
    std::istream in(&source);
    in.exceptions(std::ios::badbit);
    try {
      result.bytes.assign(std::istreambuf_iterator<char>(in), {});
    } catch (const TransferAborted& e) {
      result.aborted = e.what();
    }
    return result;
  });
}

// Waits until `count` holds `value`, for at most two seconds.
bool reaches(const std::atomic<int>& count, int value) {
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (count.load() < value) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

TEST_CASE("a body source asks for the body only when the reader reads, and ends with it") {
  std::atomic<int> asked{0};
  BodySource source(1024, [&] { ++asked; });
  CHECK(asked == 0);  // a store that refuses before reading never takes the body

  auto reader = read_all(source);
  REQUIRE(reaches(asked, 1));
  CHECK(source.push("hello ", 6));
  CHECK(source.push("world", 5));
  source.finish();
  const ReadResult result = reader.get();
  CHECK(result.bytes == "hello world");
  CHECK(result.aborted.empty());
  CHECK(asked == 1);  // push() said there was room: the I/O side read on by itself
}

TEST_CASE("a full body source stops the connection until the reader has taken a piece") {
  std::atomic<int> asked{0};
  BodySource source(8, [&] { ++asked; });
  CHECK_FALSE(source.push("12345678", 8));  // full: wait to be asked

  auto reader = read_all(source);
  REQUIRE(reaches(asked, 1));  // the reader took the piece and made room
  CHECK_FALSE(source.push("abcdefgh", 8));
  REQUIRE(reaches(asked, 2));
  source.finish();
  CHECK(reader.get().bytes == "12345678abcdefgh");
}

TEST_CASE("a failed body source aborts the reader with the reason, even mid-body") {
  BodySource source(1024, [] {});
  source.push("part", 4);
  auto reader = read_all(source);
  source.fail("the client went away");
  const ReadResult result = reader.get();
  CHECK(result.aborted == "the client went away");
}

TEST_CASE("a body sink holds back its last piece until the writer has verified everything") {
  std::atomic<int> ready{0};
  BodySink sink(4, 4, [&] { ++ready; });
  std::ostream out(&sink);
  out.write("abcdefghij", 10);  // two full pieces and two bytes in the making
  CHECK(sink.written() == 10);

  BodySink::Piece piece = sink.next();
  REQUIRE(piece.kind == Kind::chunk);
  CHECK(piece.bytes == "abcd");
  CHECK(sink.next().kind == Kind::wait);  // "efgh" is held back: it could be the last
  sink.finish();
  CHECK(ready == 1);
  CHECK(sink.next().bytes == "efgh");
  CHECK(sink.next().bytes == "ij");
  CHECK(sink.next().kind == Kind::end);
}

TEST_CASE("a failed body sink sends nothing more, not even what it holds") {
  BodySink sink(4, 4, [] {});
  std::ostream out(&sink);
  out.write("abcdefgh", 8);
  sink.fail(500, "corrupt");
  const BodySink::Piece piece = sink.next();
  CHECK(piece.kind == Kind::failed);
  CHECK(piece.status == 500);
  CHECK(piece.message == "corrupt");
}

TEST_CASE("a full body sink blocks the writer until a piece is taken, and a cancel aborts it") {
  BodySink sink(2, 2, [] {});
  std::atomic<int> written{0};
  auto writer = std::async(std::launch::async, [&] {
    std::ostream out(&sink);
    out.exceptions(std::ios::badbit);
    try {
      for (int i = 0; i < 10; ++i) {
        out.write("xy", 2);
        ++written;
      }
    } catch (const TransferAborted& e) {
      return std::string(e.what());
    }
    return std::string();
  });
  // Two pieces queued and a third filled: the fourth write waits for room.
  REQUIRE(reaches(written, 3));
  std::this_thread::sleep_for(50ms);
  CHECK(written == 3);
  CHECK(sink.next().bytes == "xy");
  REQUIRE(reaches(written, 4));
  sink.cancel("the client went away");
  CHECK(writer.get() == "the client went away");
}

}  // namespace emsnode::admin
