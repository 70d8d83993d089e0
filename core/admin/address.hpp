// What the endpoint (which binds [admin] listen) and the CLI (which connects to it) share: the
// "host:port" spelling, and how an OS error reads in their messages.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace emsnode::admin {

struct HostPort {
  std::string host;  // without brackets: "127.0.0.1", "::1", "localhost"
  std::uint16_t port = 0;
};

// Parses "host:port" or "[ipv6]:port" (port 0..65535). Throws std::invalid_argument saying what
// is wrong.
HostPort parse_host_port(std::string_view text);

// "127.0.0.1:8440", "[::1]:8440".
std::string format_host_port(std::string_view host, std::uint16_t port);

// An OS error message as it reads inside a sentence: "Connection refused" -> "connection refused".
std::string as_reason(std::string message);

}  // namespace emsnode::admin
