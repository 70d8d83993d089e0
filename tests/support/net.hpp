// Loopback TCP helpers for integration tests.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace emsnode::testing {

// A port on 127.0.0.1 that was free a moment ago (the kernel's choice for an ephemeral bind).
inline std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Sends `payload` to 127.0.0.1:`port` and returns what came back (as many bytes as were sent),
// or nullopt when the connection was refused, reset or timed out.
inline std::optional<std::string> echo_roundtrip(std::uint16_t port, const std::string& payload,
                                                 int timeout_ms = 2000) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::optional<std::string> answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, payload.data(), payload.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(payload.size())) {
    std::string received;
    pollfd p{fd, POLLIN, 0};
    while (received.size() < payload.size() && ::poll(&p, 1, timeout_ms) == 1) {
      char buffer[4096];
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      received.append(buffer, static_cast<size_t>(n));
    }
    if (received.size() == payload.size()) answer = received;
  }
  ::close(fd);
  return answer;
}

}  // namespace emsnode::testing

namespace emsnode::testing {

struct HttpReply {
  int status = 0;  // 0 when nothing answered
  std::string body;
};

// One HTTP/1.1 request to 127.0.0.1:`port` (Connection: close), bounded by `timeout_ms`.
inline HttpReply http_request(std::uint16_t port, const std::string& method,
                              const std::string& path, const std::string& body = "",
                              const std::string& token = "", int timeout_ms = 2000) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  HttpReply reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string request = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                          "Connection: close\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\n";
    if (!token.empty()) request += "Authorization: Bearer " + token + "\r\n";
    request += "\r\n" + body;
    std::string received;
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      pollfd p{fd, POLLIN, 0};
      while (::poll(&p, 1, timeout_ms) == 1) {
        char buffer[4096];
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        received.append(buffer, static_cast<size_t>(n));
      }
    }
    const auto header_end = received.find("\r\n\r\n");
    if (received.rfind("HTTP/1.1 ", 0) == 0 && header_end != std::string::npos) {
      reply.status = std::stoi(received.substr(9, 3));
      reply.body = received.substr(header_end + 4);
    }
  }
  ::close(fd);
  return reply;
}

}  // namespace emsnode::testing
