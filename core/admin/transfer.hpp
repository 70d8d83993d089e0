// The bridges between the admin endpoint's I/O thread, which owns the connections, and its
// transfer workers, which run blocking file store operations on std::streams. Each bridge holds a
// few chunks at most and stops the faster side when full, so a transfer's memory stays flat
// whatever the file's size, and the I/O thread never blocks.
//
//   upload:   socket --I/O thread--> BodySource --std::istream--> store put   (worker)
//   download: socket <--I/O thread-- BodySink  <--std::ostream--  store get   (worker)
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <streambuf>
#include <string>

namespace emsnode::admin {

// What the worker's stream throws when the other side of a bridge gave up: the connection failed,
// or the endpoint is stopping. The store operation then fails and publishes nothing.
class TransferAborted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A request body on its way from the connection to the store. The reader (a worker) reads it as
// a std::istream over this buffer; the I/O thread pushes what it receives. Nothing is read from
// the connection before the reader asks: a store that refuses before reading answers without
// taking the body.
class BodySource final : public std::streambuf {
 public:
  // `want_more` asks the I/O thread to read the next piece of the body and push() it. It is
  // called from the reader's thread, never with a lock held, and never again before the next
  // push(), finish() or fail().
  BodySource(std::size_t capacity, std::function<void()> want_more);

  // I/O thread: appends `size` received bytes. Returns true when there is room for more (read
  // the next piece at once), false when the reader must catch up first (wait for want_more).
  bool push(const char* data, std::size_t size);
  // The body is complete: the reader sees its end once it has read what was pushed.
  void finish();
  // The body will never be complete: the reader's next read throws TransferAborted(reason).
  void fail(const std::string& reason);

 protected:
  int_type underflow() override;
  std::streamsize xsgetn(char* out, std::streamsize count) override;

 private:
  // Blocks until the current chunk has bytes left, the end, or a failure. False at the end.
  bool fill();

  const std::size_t capacity_;
  const std::function<void()> want_more_;
  std::string current_;  // the chunk being read; the reader's own

  std::mutex mutex_;  // guards everything below
  std::condition_variable changed_;
  std::deque<std::string> chunks_;
  std::size_t buffered_ = 0;  // bytes in chunks_
  bool requested_ = false;    // a piece was asked for and not pushed yet
  bool finished_ = false;
  std::optional<std::string> failure_;
};

// A file on its way from the store to the connection. The writer (a worker) writes it as a
// std::ostream over this buffer; the I/O thread takes chunks with next(). Verification ends only
// with the last byte, so the last chunk is held back until the writer calls finish(): a
// connection that ends early is how a client learns that a transfer failed, and a client must
// never receive every byte of content that then proves corrupt.
class BodySink final : public std::streambuf {
 public:
  struct Piece {
    enum class Kind {
      wait,    // nothing to send yet; `ready` will be called
      chunk,   // send `bytes`
      end,     // every byte was sent and verified
      failed,  // the writer failed: `status` and `message` say why
    };
    Kind kind = Kind::wait;
    std::string bytes;
    unsigned status = 0;
    std::string message;
  };

  // Chunks of `chunk_size` bytes, at most `max_chunks` (>= 2) waiting; `ready` is called from the
  // writer's thread, without a lock, when next() has something after it answered `wait`.
  BodySink(std::size_t chunk_size, std::size_t max_chunks, std::function<void()> ready);

  // Writer: every byte was written and verified; queues the rest.
  void finish();
  // Writer: the transfer failed with HTTP `status` (e.g. 500 corrupt). Nothing more is sent.
  void fail(unsigned status, const std::string& message);
  // Writer: the number of bytes written so far.
  std::uint64_t written() const { return written_; }

  // I/O thread: what to do next.
  Piece next();
  // I/O thread: the connection is gone; the writer's next write throws TransferAborted(reason).
  void cancel(const std::string& reason);

 protected:
  std::streamsize xsputn(const char* data, std::streamsize count) override;
  int_type overflow(int_type c) override;

 private:
  // Queues current_, waiting while the queue is full. Throws TransferAborted once cancelled.
  void queue_current();
  void notify_if_waiting(std::unique_lock<std::mutex>& lock);

  const std::size_t chunk_size_;
  const std::size_t max_chunks_;
  const std::function<void()> ready_;
  std::string current_;        // the chunk being filled; the writer's own
  std::uint64_t written_ = 0;  // the writer's own

  std::mutex mutex_;  // guards everything below
  std::condition_variable room_;
  std::deque<std::string> chunks_;
  bool waiting_ = false;  // next() answered `wait` and `ready` is owed
  bool finished_ = false;
  std::optional<Piece> failure_;
  std::optional<std::string> cancelled_;
};

}  // namespace emsnode::admin
