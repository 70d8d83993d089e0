// emsnode plugin SDK: the address a plugin's listener binds, spelled "HOST:PORT" in its config.
//
//   const auto listen = emsnode::sdk::parse_listen_address(host.config().string("listen"));
//   tcp::endpoint endpoint(boost::asio::ip::make_address(listen.host), listen.port);  // Asio
//   host.log().info("echo.listening", {{"address", listen.format()}});
//
// The host is an IP address literal, an IPv4 dotted quad ("127.0.0.1:8013") or an IPv6 address
// in brackets ("[::1]:8013", a zone as "[fe80::1%eth0]:8013"), never a host name: a listener
// binds one of this machine's interfaces, and a name could resolve to another address, or to
// several, from one start to the next. The result is text, so that this header needs nothing but
// the C++17 standard library and each plugin converts it for its own network library.
//
// The node's config schema (type "address") is looser: it lets host names through. Call
// parse_listen_address() in the plugin's constructor, so that `emsnode check` refuses them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace emsnode::sdk {

/// Where a listener binds: an interface address and a port, as parse_listen_address() read them.
struct ListenAddress {
  /// An IPv4 or IPv6 address literal, without brackets: "127.0.0.1", "::1", "fe80::1%eth0".
  std::string host;
  /// 1..65535, or 0 for a port the system chooses at bind time (tests use it).
  std::uint16_t port = 0;

  /// "127.0.0.1:8013" or "[::1]:8013": the form parse_listen_address() reads, for logs and
  /// messages.
  std::string format() const {
    const bool ipv6 = host.find(':') != std::string::npos;
    return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
  }
};

namespace detail {

constexpr std::string_view kListenAddressForm =
    "expected IPv4:PORT or [IPv6]:PORT, as 127.0.0.1:8013 or [::1]:8013";

inline bool is_decimal_digit(char c) {
  return c >= '0' && c <= '9';
}

inline bool is_hex_digit(char c) {
  return is_decimal_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Four decimal numbers 0..255 joined by dots; a leading zero ("010") is refused, as inet_pton
// does, since other parsers read it as octal.
inline bool is_ipv4_literal(std::string_view text) {
  for (int part = 0; part < 4; ++part) {
    std::size_t digits = 0;
    unsigned value = 0;
    while (digits < text.size() && digits < 4 && is_decimal_digit(text[digits])) {
      value = value * 10 + static_cast<unsigned>(text[digits] - '0');
      ++digits;
    }
    if (digits == 0 || digits > 3 || value > 255 || (digits > 1 && text[0] == '0')) return false;
    text.remove_prefix(digits);
    if (part < 3) {
      if (text.empty() || text.front() != '.') return false;
      text.remove_prefix(1);
    }
  }
  return text.empty();
}

// RFC 4291 section 2.2: eight groups of 1..4 hex digits, at most one "::" standing for one or
// more zero groups, the last two groups optionally written as an IPv4 address; then an optional
// RFC 4007 zone ("%eth0", "%2").
inline bool is_ipv6_literal(std::string_view text) {
  if (const auto percent = text.find('%'); percent != std::string_view::npos) {
    const std::string_view zone = text.substr(percent + 1);
    if (zone.empty()) return false;
    for (const char c : zone) {
      const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      if (!letter && !is_decimal_digit(c) && c != '.' && c != '_' && c != '-') return false;
    }
    text = text.substr(0, percent);
  }
  int groups = 0;
  bool compressed = false;
  if (text.substr(0, 2) == "::") {
    compressed = true;
    text.remove_prefix(2);
    if (text.empty()) return true;
  }
  for (;;) {
    const auto colon = text.find(':');
    const std::string_view field = text.substr(0, colon);
    if (colon == std::string_view::npos && field.find('.') != std::string_view::npos) {
      if (!is_ipv4_literal(field)) return false;
      groups += 2;
      break;
    }
    if (field.empty() || field.size() > 4) return false;
    for (const char c : field) {
      if (!is_hex_digit(c)) return false;
    }
    ++groups;
    if (colon == std::string_view::npos) break;
    text.remove_prefix(colon + 1);
    if (text.empty()) return false;  // "1:"
    if (text.front() == ':') {
      if (compressed) return false;  // a second "::"
      compressed = true;
      text.remove_prefix(1);
      if (text.empty()) break;  // "1::"
    }
  }
  return compressed ? groups <= 7 : groups == 8;
}

}  // namespace detail

/// Parses a listen address: "127.0.0.1:8013", "0.0.0.0:8013", "[::1]:8013", "[::]:8013".
/// Throws std::invalid_argument whose what() quotes `text`, says what is wrong and the expected
/// form (`'localhost:8013': 'localhost' is not an IPv4 address ...`); wrapped in a ConfigError
/// it reads as one line an operator can act on.
inline ListenAddress parse_listen_address(std::string_view text) {
  const std::string quoted = "'" + std::string(text) + "'";
  const auto refuse = [&](const std::string& problem) {
    return std::invalid_argument(quoted + ": " + problem + " (" +
                                 std::string(detail::kListenAddressForm) + ")");
  };
  std::string_view host;
  std::string_view port;
  bool bracketed = false;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) throw refuse("no ']' closes the IPv6 address");
    if (close + 1 == text.size()) throw refuse("no port after the address");
    if (text[close + 1] != ':') throw refuse("a ':' and the port must follow the ']'");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    bracketed = true;
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) throw refuse("no port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      throw refuse("an IPv6 address must be in brackets, as [::1]:8013");
    }
  }
  if (host.empty()) throw refuse("no address before the port (every interface: 0.0.0.0 or [::])");
  unsigned long number = 0;
  bool port_ok = !port.empty() && port.size() <= 5;
  for (const char c : port) {
    port_ok = port_ok && detail::is_decimal_digit(c);
    number = number * 10 + static_cast<unsigned long>(c - '0');
  }
  if (!port_ok || number > 65535) throw refuse("the port must be a number from 0 to 65535");
  if (bracketed ? !detail::is_ipv6_literal(host) : !detail::is_ipv4_literal(host)) {
    throw refuse("'" + std::string(host) + "' is not an " + (bracketed ? "IPv6" : "IPv4") +
                 " address; a listener binds an interface address, not a host name");
  }
  return {std::string(host), static_cast<std::uint16_t>(number)};
}

}  // namespace emsnode::sdk
