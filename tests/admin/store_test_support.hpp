// A node's admin endpoint serving a real file store (the share backend in a temporary folder, its
// catalog in a real SQLite database whose lease the test sets), and what the store tests measure
// with: generated content of any size, hashing sinks, memory samples, corruption on the share.
#pragma once

#include <openssl/evp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <streambuf>
#include <string>
#include <thread>
#include <vector>

#include "admin/admin_server.hpp"
#include "admin/store_model.hpp"
#include "admin_test_support.hpp"
#include "db/db_test_support.hpp"
#include "store/file_store.hpp"

namespace emsnode::admin::testing {

namespace fs = std::filesystem;

constexpr const char* kStoreToken = "store-token-0123456789";

// node-a, active at epoch 7, with its endpoint on an ephemeral port in front of a share store.
class StoreNode {
 public:
  explicit StoreNode(ServerLimits limits = {}, std::optional<std::string> token = kStoreToken)
      : StoreNode(ServerSecurity{std::move(token)}, limits) {}

  explicit StoreNode(const ServerSecurity& security, ServerLimits limits = {}) {
    db::testing::set_lease(*database, "node-a", 7, 60'000);
    fs::create_directories(share());
    store = store::open_share_store(*database, share().string());
    Model model = node.model();
    model.store = store_model(
        *store,
        [this] {
          if (!active) {
            throw OperationError::conflict(
                "this node is passive; the file store is written on the active node (node-b)");
          }
          return store::Writer{"node-a", epoch};
        },
        [this](const std::string& backend) -> std::unique_ptr<store::FileStore> {
          if (backend == "blob") return store::open_blob_store(*database);
          return store::open_share_store(*database, share().string());
        });
    server = std::make_unique<AdminServer>("127.0.0.1:0", security, std::move(model), limits);
    server->start();
  }

  fs::path share() const { return dir.path() / "share"; }
  fs::path path(const std::string& name) const { return dir.path() / name; }
  Target target(std::optional<std::string> token = std::string(kStoreToken)) const {
    return {"127.0.0.1", server->port(), std::move(token)};
  }

  // Flips a byte in the middle of every object on the share of `size` bytes: the content no
  // longer matches its catalog entry.
  void corrupt_objects(std::uint64_t size) const {
    for (const auto& entry : fs::recursive_directory_iterator(share() / "objects")) {
      if (!entry.is_regular_file() || entry.file_size() != size) continue;
      std::fstream file(entry.path(), std::ios::in | std::ios::out | std::ios::binary);
      file.seekg(static_cast<std::streamoff>(size / 2));
      const char byte = static_cast<char>(file.get() ^ 0x5a);
      file.seekp(static_cast<std::streamoff>(size / 2));
      file.put(byte);
    }
  }

  db::testing::DbDir dir;
  std::unique_ptr<db::Database> database = dir.open_migrated();
  std::unique_ptr<store::FileStore> store;
  FakeNode node;
  std::atomic<bool> active{true};
  std::atomic<std::uint64_t> epoch{7};
  std::unique_ptr<AdminServer> server;  // last: stopped before the store goes away
};

// An incremental SHA-256, for content too large to hold.
class Digest {
 public:
  Digest() : context_(EVP_MD_CTX_new()) {
    EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr);
  }
  void update(const char* data, std::size_t size) { EVP_DigestUpdate(context_.get(), data, size); }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(context_.get(), digest, &size);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < size; ++i) {
      out += kHex[digest[i] >> 4];
      out += kHex[digest[i] & 15];
    }
    return out;
  }

 private:
  struct Free {
    void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> context_;
};

// Lowercase hex SHA-256 of `bytes`.
inline std::string sha256_of(const std::string& bytes) {
  Digest digest;
  digest.update(bytes.data(), bytes.size());
  return digest.hex();
}

// `size` pseudo-random bytes made as they are read, hashed on the way: content of any size that
// is never held whole.
class GeneratedContent final : public std::streambuf {
 public:
  explicit GeneratedContent(std::uint64_t size) : left_(size) {}
  std::string sha256() { return digest_.hex(); }

 protected:
  int_type underflow() override {
    if (left_ == 0) return traits_type::eof();
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left_, buffer_.size()));
    for (std::size_t i = 0; i < n; ++i) {
      state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL;
      buffer_[i] = static_cast<char>(state_ >> 56);
    }
    left_ -= n;
    digest_.update(buffer_.data(), n);
    setg(buffer_.data(), buffer_.data(), buffer_.data() + n);
    return traits_type::to_int_type(buffer_[0]);
  }

 private:
  std::uint64_t left_;
  std::uint64_t state_ = 42;
  std::vector<char> buffer_ = std::vector<char>(64 * 1024);
  Digest digest_;
};

// Hashes and counts what is written to it, keeping nothing.
class HashingSink final : public std::streambuf {
 public:
  std::string sha256() { return digest_.hex(); }
  std::uint64_t size() const { return size_; }

 protected:
  std::streamsize xsputn(const char* data, std::streamsize count) override {
    digest_.update(data, static_cast<std::size_t>(count));
    size_ += static_cast<std::uint64_t>(count);
    return count;
  }
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    const char byte = traits_type::to_char_type(c);
    xsputn(&byte, 1);
    return c;
  }

 private:
  Digest digest_;
  std::uint64_t size_ = 0;
};

// This process's resident memory, sampled every few milliseconds while it lives: the highest
// sample above the first tells how much a transfer held.
class MemorySampler {
 public:
  MemorySampler() : baseline_(resident_bytes()), thread_([this] { sample(); }) {}
  ~MemorySampler() { stop(); }

  // The growth of resident memory over the first sample, at its highest.
  std::uint64_t peak_growth() {
    stop();
    return peak_ > baseline_ ? peak_ - baseline_ : 0;
  }

 private:
  static std::uint64_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::uint64_t pages = 0;
    std::uint64_t resident = 0;
    statm >> pages >> resident;
    return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  }

  void sample() {
    while (!stopping_) {
      peak_ = std::max(peak_.load(), resident_bytes());
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  void stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
  }

  const std::uint64_t baseline_;
  std::atomic<std::uint64_t> peak_{0};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace emsnode::admin::testing
