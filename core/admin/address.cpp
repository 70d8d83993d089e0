#include "admin/address.hpp"

#include <stdexcept>

namespace emsnode::admin {

HostPort parse_host_port(std::string_view text) {
  const auto fail = [&](const char* what) {
    return std::invalid_argument("\"" + std::string(text) + "\": " + what +
                                 " (expected host:port, or [ipv6]:port)");
  };
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      throw fail("malformed bracketed IPv6 address");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) throw fail("no port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) throw fail("an IPv6 address needs brackets");
  }
  if (host.empty()) throw fail("no host");
  if (port.empty() || port.size() > 5) throw fail("the port is not a number in 0..65535");
  unsigned long number = 0;
  for (const char c : port) {
    if (c < '0' || c > '9') throw fail("the port is not a number in 0..65535");
    number = number * 10 + static_cast<unsigned long>(c - '0');
  }
  if (number > 65535) throw fail("the port is not a number in 0..65535");
  return {std::string(host), static_cast<std::uint16_t>(number)};
}

std::string format_host_port(std::string_view host, std::uint16_t port) {
  const bool ipv6 = host.find(':') != std::string_view::npos;
  return (ipv6 ? "[" + std::string(host) + "]" : std::string(host)) + ":" + std::to_string(port);
}

std::string as_reason(std::string message) {
  if (!message.empty() && message[0] >= 'A' && message[0] <= 'Z') {
    message[0] = static_cast<char>(message[0] - 'A' + 'a');
  }
  return message;
}

}  // namespace emsnode::admin
