// A fake node behind the admin endpoint, and a raw TCP client for what a well-behaved HTTP
// client would not send (malformed requests, trickled bytes, idle connections).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "admin/model.hpp"

namespace emsnode::admin::testing {

// A status with one of everything, fixed so that renderings can be compared whole.
inline StatusView sample_status() {
  StatusView status;
  status.node_id = "node-a";
  status.version = "0.1.0";
  status.role = "active";
  status.epoch = 7;
  status.paused = false;
  status.lease_holder = "node-a";
  status.lease_epoch = 7;
  status.lease_expires_in_ms = 1800;
  status.last_transition =
      TransitionView{"passive", "active", "acquired", 7, "2026-11-21T10:00:00.123Z"};
  status.transitions = 2;
  status.nodes = {
      {"node-a", "10.0.0.1:8013", "127.0.0.1:8440", "0.1.0", "/var/backup/a", "active", "", false,
       120},
      {"node-b", "10.0.0.2:8013", "127.0.0.1:8441", "0.1.0", "/var/backup/b", "passive",
       "lease_held", true, 2500},
  };
  status.plugins = {
      {"echo", "1.0.0", "running", "ok", "", "", 0, true, {}},
      {"mq", "2.1.0", "failed", "degraded", "broker down", "bind: address in use", 3, false, {}},
  };
  return status;
}

// The node as the tests drive it; thread-safe, since the endpoint calls the Model from its
// worker threads.
class FakeNode {
 public:
  StatusView status = sample_status();
  bool active = true;
  std::optional<Health> health;  // when set, answered instead of what `active` implies
  std::string metrics = "# HELP emsnode_up 1\n# TYPE emsnode_up gauge\nemsnode_up 1\n";
  // When set, the operations (switchover, pause, resume, set_setting) call it first: it may
  // throw, or block.
  std::function<void()> before_operation;

  Model model() {
    Model model;
    model.status = [this] {
      std::lock_guard lock(mutex_);
      return status;
    };
    model.health = [this] {
      std::lock_guard lock(mutex_);
      if (health) return *health;
      if (active) return Health{{true, "live"}, {true, "ready: serving"}, {true, "active"}};
      return Health{{true, "live"}, {true, "ready"}, {false, "passive"}};
    };
    model.metrics_text = [this] {
      std::lock_guard lock(mutex_);
      return metrics;
    };
    model.switchover = [this](std::optional<std::string> to) {
      operation();
      std::lock_guard lock(mutex_);
      switchovers_.push_back(to);
    };
    model.pause = [this] {
      operation();
      std::lock_guard lock(mutex_);
      calls_.push_back("pause");
    };
    model.resume = [this] {
      operation();
      std::lock_guard lock(mutex_);
      calls_.push_back("resume");
    };
    model.settings = [this] {
      std::lock_guard lock(mutex_);
      return settings_;
    };
    model.set_setting = [this](const std::string& key, const std::string& value) {
      operation();
      std::lock_guard lock(mutex_);
      for (Setting& setting : settings_) {
        if (setting.key == key) {
          setting.value = value;
          return;
        }
      }
      settings_.push_back({key, value, 1'700'000'000'000, "node-a", 7});
    };
    return model;
  }

  void add_setting(Setting setting) {
    std::lock_guard lock(mutex_);
    settings_.push_back(std::move(setting));
  }
  std::vector<Setting> settings() {
    std::lock_guard lock(mutex_);
    return settings_;
  }
  std::vector<std::optional<std::string>> switchovers() {
    std::lock_guard lock(mutex_);
    return switchovers_;
  }
  std::vector<std::string> calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  void operation() {
    if (before_operation) before_operation();
  }

  std::mutex mutex_;
  std::vector<Setting> settings_;
  std::vector<std::optional<std::string>> switchovers_;
  std::vector<std::string> calls_;
};

// A plain TCP connection to 127.0.0.1.
class RawConnection {
 public:
  explicit RawConnection(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      if (fd_ >= 0) ::close(fd_);
      throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
    }
  }
  ~RawConnection() { ::close(fd_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // False when the peer has closed or reset the connection.
  bool send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }

  // Everything received until the peer closes the connection or `timeout` passes;
  // `closed` tells which.
  std::string read_until_closed(std::chrono::milliseconds timeout, bool* closed = nullptr) {
    std::string received;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool eof = false;
    while (!eof) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) break;
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) {
        eof = true;
      } else {
        received.append(buffer, static_cast<std::size_t>(n));
      }
    }
    if (closed) *closed = eof;
    return received;
  }

  // Reads until `received` holds `count` complete responses (each with a Content-Length).
  std::string read_responses(std::size_t count, std::chrono::milliseconds timeout) {
    std::string received;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (complete_responses(received) < count) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) break;
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      received.append(buffer, static_cast<std::size_t>(n));
    }
    return received;
  }

 private:
  static std::size_t complete_responses(const std::string& text) {
    std::size_t count = 0;
    std::size_t at = 0;
    for (;;) {
      const std::size_t end = text.find("\r\n\r\n", at);
      if (end == std::string::npos) return count;
      const std::size_t length_at = text.find("Content-Length: ", at);
      std::size_t length = 0;
      if (length_at != std::string::npos && length_at < end) {
        length = std::stoul(text.substr(length_at + 16));
      }
      if (text.size() < end + 4 + length) return count;
      at = end + 4 + length;
      ++count;
    }
  }

  int fd_;
};

}  // namespace emsnode::admin::testing
