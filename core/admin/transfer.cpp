#include "admin/transfer.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace emsnode::admin {

BodySource::BodySource(std::size_t capacity, std::function<void()> want_more)
    : capacity_(capacity), want_more_(std::move(want_more)) {}

bool BodySource::push(const char* data, std::size_t size) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (size > 0) {
    chunks_.emplace_back(data, size);
    buffered_ += size;
  }
  // Room left: the I/O thread reads on at once, so a piece stays requested.
  requested_ = buffered_ < capacity_;
  changed_.notify_all();
  return requested_;
}

void BodySource::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  finished_ = true;
  changed_.notify_all();
}

void BodySource::fail(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_ || failure_) return;  // a complete body cannot fail any more
  failure_ = reason;
  changed_.notify_all();
}

bool BodySource::fill() {
  if (gptr() != egptr()) return true;
  bool ask = false;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      if (failure_) throw TransferAborted(*failure_);
      if (!chunks_.empty()) {
        current_ = std::move(chunks_.front());
        chunks_.pop_front();
        buffered_ -= current_.size();
        if (!requested_ && !finished_ && buffered_ < capacity_) ask = requested_ = true;
        break;
      }
      if (finished_) return false;
      if (!requested_) {
        requested_ = true;
        lock.unlock();
        want_more_();
        lock.lock();
        continue;
      }
      changed_.wait(lock);
    }
  }
  if (ask) want_more_();
  setg(current_.data(), current_.data(), current_.data() + current_.size());
  return true;
}

BodySource::int_type BodySource::underflow() {
  if (!fill()) return traits_type::eof();
  return traits_type::to_int_type(*gptr());
}

std::streamsize BodySource::xsgetn(char* out, std::streamsize count) {
  std::streamsize total = 0;
  while (total < count && fill()) {
    const std::streamsize n = std::min<std::streamsize>(egptr() - gptr(), count - total);
    std::memcpy(out + total, gptr(), static_cast<std::size_t>(n));
    // A chunk is one read of the connection, far below INT_MAX.
    gbump(static_cast<int>(n));
    total += n;
  }
  return total;
}

BodySink::BodySink(std::size_t chunk_size, std::size_t max_chunks, std::function<void()> ready)
    : chunk_size_(chunk_size),
      max_chunks_(std::max<std::size_t>(max_chunks, 2)),
      ready_(std::move(ready)) {
  current_.reserve(chunk_size_);
}

std::streamsize BodySink::xsputn(const char* data, std::streamsize count) {
  std::streamsize done = 0;
  while (done < count) {
    if (current_.size() == chunk_size_) queue_current();
    const std::size_t n =
        std::min(static_cast<std::size_t>(count - done), chunk_size_ - current_.size());
    current_.append(data + done, n);
    done += static_cast<std::streamsize>(n);
  }
  written_ += static_cast<std::uint64_t>(count);
  return count;
}

BodySink::int_type BodySink::overflow(int_type c) {
  if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
  const char byte = traits_type::to_char_type(c);
  xsputn(&byte, 1);
  return c;
}

void BodySink::queue_current() {
  std::unique_lock<std::mutex> lock(mutex_);
  room_.wait(lock, [&] { return cancelled_ || chunks_.size() < max_chunks_; });
  if (cancelled_) throw TransferAborted(*cancelled_);
  chunks_.push_back(std::move(current_));
  current_ = std::string();
  current_.reserve(chunk_size_);
  if (chunks_.size() >= 2) notify_if_waiting(lock);
}

void BodySink::notify_if_waiting(std::unique_lock<std::mutex>& lock) {
  if (!waiting_) return;
  waiting_ = false;
  lock.unlock();
  ready_();
}

void BodySink::finish() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!current_.empty()) chunks_.push_back(std::move(current_));
  current_.clear();
  finished_ = true;
  notify_if_waiting(lock);
}

void BodySink::fail(unsigned status, const std::string& message) {
  std::unique_lock<std::mutex> lock(mutex_);
  Piece failure;
  failure.kind = Piece::Kind::failed;
  failure.status = status;
  failure.message = message;
  failure_ = std::move(failure);
  chunks_.clear();
  room_.notify_all();
  notify_if_waiting(lock);
}

BodySink::Piece BodySink::next() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (failure_) return *failure_;
  Piece piece;
  if (!chunks_.empty() && (chunks_.size() >= 2 || finished_)) {
    piece.kind = Piece::Kind::chunk;
    piece.bytes = std::move(chunks_.front());
    chunks_.pop_front();
    room_.notify_all();
    return piece;
  }
  if (finished_) {
    piece.kind = Piece::Kind::end;
    return piece;
  }
  waiting_ = true;
  return piece;  // wait
}

void BodySink::cancel(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!cancelled_) cancelled_ = reason;
  room_.notify_all();
}

}  // namespace emsnode::admin
