// TCP helpers for integration tests: reserved loopback ports, and bounded client exchanges with
// a node (loopback, or an address inside a test's network namespace).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace emsnode::testing {

// A loopback TCP port kept for this process until destroyed. Chosen below the kernel's
// ephemeral range, where every outgoing connection takes its port (so no client
// socket of a poll can sit on it), and reserved against the other test processes of this host,
// which run side by side (ctest -j), by a lock file the kernel unlocks when the process dies.
class PortReservation {
 public:
  PortReservation() {
    const auto dir = std::filesystem::temp_directory_path() / "emsnode-test-ports";
    std::filesystem::create_directories(dir);
    std::random_device random;
    std::uniform_int_distribution<int> pick(kFirst, kLast);
    for (int attempt = 0; attempt < 1000; ++attempt) {
      const auto port = static_cast<std::uint16_t>(pick(random));
      const auto lock = dir / (std::to_string(port) + ".lock");
      const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      if (fd < 0) continue;
      if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && still_named(fd, lock) && bindable(port)) {
        fd_ = fd;
        port_ = port;
        lock_ = lock;
        return;
      }
      ::close(fd);
    }
    throw std::runtime_error("no free port in " + std::to_string(kFirst) + ".." +
                             std::to_string(kLast) + " on 127.0.0.1");
  }
  // Unlinked while still locked: a process that opened it meanwhile finds it renamed away.
  ~PortReservation() {
    std::error_code ignored;
    std::filesystem::remove(lock_, ignored);
    ::close(fd_);
  }
  PortReservation(const PortReservation&) = delete;
  PortReservation& operator=(const PortReservation&) = delete;

  std::uint16_t port() const { return port_; }

 private:
  static constexpr int kFirst = 20000;
  static constexpr int kLast = 32000;  // below /proc/sys/net/ipv4/ip_local_port_range's default

  // The locked file is still the one the path names (its holder may have unlinked it before we
  // locked it).
  static bool still_named(int fd, const std::filesystem::path& lock) {
    struct stat opened {};
    struct stat named {};
    return ::fstat(fd, &opened) == 0 && ::stat(lock.c_str(), &named) == 0 &&
           opened.st_ino == named.st_ino && opened.st_dev == named.st_dev;
  }

  static bool bindable(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);  // as the node's listeners
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return bound;
  }

  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::filesystem::path lock_;
};

// A port on 127.0.0.1 for this test process alone: reserved (see PortReservation) until the
// process ends, so that tests running side by side never pick the same one.
inline std::uint16_t free_port() {
  static std::vector<std::unique_ptr<PortReservation>> held;
  held.push_back(std::make_unique<PortReservation>());
  return held.back()->port();
}

// A TCP connection to `address`:`port` (an IPv4 address), or -1 when it was refused or did not
// complete within `timeout_ms`: a partitioned peer must not hold a test for the kernel's minutes
// of SYN retries.
inline int connect_tcp(const std::string& address, std::uint16_t port, int timeout_ms) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) {
    ::close(fd);
    throw std::invalid_argument("not an IPv4 address: " + address);
  }
  bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  if (!connected && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    int error = 0;
    socklen_t length = sizeof error;
    connected = ::poll(&p, 1, timeout_ms) == 1 &&
                ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0;
  }
  if (!connected) {
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

// Sends `request` on a new connection and reads until `complete(received)` says so, the peer
// closes, or `timeout_ms` passes without data. Nullopt when it could not connect or send.
template <typename Complete>
std::optional<std::string> tcp_exchange(const std::string& address, std::uint16_t port,
                                        const std::string& request, int timeout_ms,
                                        Complete complete) {
  const int fd = connect_tcp(address, port, timeout_ms);
  if (fd < 0) return std::nullopt;
  std::optional<std::string> received;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
      static_cast<ssize_t>(request.size())) {
    received.emplace();
    pollfd p{fd, POLLIN, 0};
    while (!complete(*received) && ::poll(&p, 1, timeout_ms) == 1) {
      char buffer[4096];
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      received->append(buffer, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return received;
}

// Sends `payload` to `address`:`port` and returns what came back (as many bytes as were sent),
// or nullopt when the connection was refused, reset or timed out.
inline std::optional<std::string> echo_roundtrip(const std::string& address, std::uint16_t port,
                                                 const std::string& payload,
                                                 int timeout_ms = 2000) {
  auto received = tcp_exchange(address, port, payload, timeout_ms,
                               [&](const std::string& r) { return r.size() >= payload.size(); });
  if (!received || received->size() != payload.size()) return std::nullopt;
  return received;
}

inline std::optional<std::string> echo_roundtrip(std::uint16_t port, const std::string& payload,
                                                 int timeout_ms = 2000) {
  return echo_roundtrip("127.0.0.1", port, payload, timeout_ms);
}

}  // namespace emsnode::testing

namespace emsnode::testing {

struct HttpReply {
  int status = 0;  // 0 when nothing answered
  std::string body;
};

// One HTTP/1.1 request to `address`:`port` (Connection: close), bounded by `timeout_ms`.
inline HttpReply http_request(const std::string& address, std::uint16_t port,
                              const std::string& method, const std::string& path,
                              const std::string& body = "", const std::string& token = "",
                              int timeout_ms = 2000) {
  std::string request = method + " " + path + " HTTP/1.1\r\nHost: " + address +
                        "\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) +
                        "\r\n";
  if (!token.empty()) request += "Authorization: Bearer " + token + "\r\n";
  request += "\r\n" + body;
  const auto received =
      tcp_exchange(address, port, request, timeout_ms, [](const std::string&) { return false; });
  HttpReply reply;
  if (!received) return reply;
  const auto header_end = received->find("\r\n\r\n");
  if (received->rfind("HTTP/1.1 ", 0) == 0 && header_end != std::string::npos) {
    reply.status = std::stoi(received->substr(9, 3));
    reply.body = received->substr(header_end + 4);
  }
  return reply;
}

inline HttpReply http_request(std::uint16_t port, const std::string& method,
                              const std::string& path, const std::string& body = "",
                              const std::string& token = "", int timeout_ms = 2000) {
  return http_request("127.0.0.1", port, method, path, body, token, timeout_ms);
}

}  // namespace emsnode::testing
