// sdk::parse_listen_address, the "HOST:PORT" of a plugin's listener: what it accepts, what it
// refuses and how the refusal reads, and format() giving back the text it parsed.
#include <emsnode/listen_address.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>

#include <string>

namespace {

namespace sdk = emsnode::sdk;

std::string refusal(const std::string& text) {
  try {
    sdk::parse_listen_address(text);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "accepted";
}

}  // namespace

TEST_CASE("a listen address reads an IPv4 address and port") {
  const sdk::ListenAddress any = sdk::parse_listen_address("0.0.0.0:8013");
  CHECK(any.host == "0.0.0.0");
  CHECK(any.port == 8013);
  const sdk::ListenAddress top = sdk::parse_listen_address("255.255.255.255:65535");
  CHECK(top.host == "255.255.255.255");
  CHECK(top.port == 65535);
  CHECK(sdk::parse_listen_address("10.1.2.3:1").port == 1);
}

TEST_CASE("a listen address reads a bracketed IPv6 address, with or without a zone") {
  const sdk::ListenAddress loopback = sdk::parse_listen_address("[::1]:8013");
  CHECK(loopback.host == "::1");
  CHECK(loopback.port == 8013);
  CHECK(sdk::parse_listen_address("[::]:80").host == "::");
  CHECK(sdk::parse_listen_address("[2001:DB8:0:0:8:800:200C:417A]:80").host ==
        "2001:DB8:0:0:8:800:200C:417A");
  CHECK(sdk::parse_listen_address("[::ffff:192.0.2.1]:80").host == "::ffff:192.0.2.1");
  CHECK(sdk::parse_listen_address("[fe80::1%eth0]:80").host == "fe80::1%eth0");
  CHECK(sdk::parse_listen_address("[fe80::1%2]:80").host == "fe80::1%2");
}

TEST_CASE("a listen address takes port 0, which lets the system choose") {
  CHECK(sdk::parse_listen_address("127.0.0.1:0").port == 0);
  CHECK(sdk::parse_listen_address("[::1]:0").port == 0);
}

TEST_CASE("a listen address takes exactly the IPv6 literals the system's inet_pton takes") {
  const char* literal = GENERATE(
      "::", "::1", "1::", "1:2:3:4:5:6:7:8", "1::8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
      "1:2:3:4:5:6:1.2.3.4", "::1.2.3.4", "ffff::", "12345::", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9",
      ":1::", "1::2::3", ":::", "1:::2", "1:", ":1", "g::", "::1.2.3", "::1.2.3.4.5", "::256.1.1.1",
      "1.2.3.4", "::1.2.3.4:1", "1:2:3:4:5:6:7:1.2.3.4", "::01.2.3.4", "");
  in6_addr ignored{};
  const bool system = ::inet_pton(AF_INET6, literal, &ignored) == 1;
  INFO(literal);
  CHECK((refusal("[" + std::string(literal) + "]:80") == "accepted") == system);
}

TEST_CASE("a listen address takes exactly the IPv4 literals the system's inet_pton takes") {
  const char* literal =
      GENERATE("127.0.0.1", "0.0.0.0", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1.2.3.04",
               "1..2.3", "1.2.3.", ".1.2.3", "1.2.3.4 ", "1.2.3.1000", "0x7f.0.0.1", "");
  in_addr ignored{};
  const bool system = ::inet_pton(AF_INET, literal, &ignored) == 1;
  INFO(literal);
  CHECK((refusal(std::string(literal) + ":80") == "accepted") == system);
}

TEST_CASE("a listen address without a port is refused, with the expected form") {
  CHECK(refusal("127.0.0.1") ==
        "'127.0.0.1': no port (expected IPv4:PORT or [IPv6]:PORT, as 127.0.0.1:8013 or "
        "[::1]:8013)");
  CHECK_THAT(refusal("[::1]"), Catch::StartsWith("'[::1]': no port after the address"));
  CHECK_THAT(refusal("[::1]80"), Catch::StartsWith("'[::1]80': a ':' and the port must follow"));
  CHECK_THAT(refusal("127.0.0.1:"), Catch::Contains("the port must be a number from 0 to 65535"));
}

TEST_CASE("a listen address with a port outside 0..65535 or not a number is refused") {
  const char* text = GENERATE("127.0.0.1:65536", "127.0.0.1:99999", "127.0.0.1:123456",
                              "127.0.0.1:-1", "127.0.0.1:80a", "127.0.0.1: 80", "[::1]:65536");
  INFO(text);
  CHECK(refusal(text) == "'" + std::string(text) +
                             "': the port must be a number from 0 to 65535 (expected IPv4:PORT "
                             "or [IPv6]:PORT, as 127.0.0.1:8013 or [::1]:8013)");
}

TEST_CASE("a listen address refuses a host name: a listener binds an interface address") {
  CHECK(refusal("localhost:8013") ==
        "'localhost:8013': 'localhost' is not an IPv4 address; a listener binds an interface "
        "address, not a host name (expected IPv4:PORT or [IPv6]:PORT, as 127.0.0.1:8013 or "
        "[::1]:8013)");
  CHECK_THAT(refusal("mq.example.com:8013"),
             Catch::Contains("'mq.example.com' is not an IPv4 address"));
  CHECK_THAT(refusal("[localhost]:8013"), Catch::Contains("'localhost' is not an IPv6 address"));
}

TEST_CASE("a listen address refuses garbage, saying what is wrong") {
  CHECK_THAT(refusal(""), Catch::StartsWith("'': no port"));
  CHECK_THAT(refusal(":8013"), Catch::StartsWith("':8013': no address before the port"));
  CHECK_THAT(refusal("::1:8013"),
             Catch::StartsWith("'::1:8013': an IPv6 address must be in brackets"));
  CHECK_THAT(refusal("[::1:8013"), Catch::StartsWith("'[::1:8013': no ']' closes"));
  CHECK_THAT(refusal("[]:8013"), Catch::StartsWith("'[]:8013': no address before the port"));
  CHECK_THAT(refusal(" 127.0.0.1:8013"), Catch::Contains("is not an IPv4 address"));
  CHECK_THAT(refusal("[fe80::1%]:80"), Catch::Contains("is not an IPv6 address"));
  CHECK_THAT(refusal("[fe80::1%eth/0]:80"), Catch::Contains("is not an IPv6 address"));
}

TEST_CASE("a listen address formats as it is written in a config") {
  CHECK(sdk::parse_listen_address("127.0.0.1:8013").format() == "127.0.0.1:8013");
  CHECK(sdk::parse_listen_address("[::1]:8013").format() == "[::1]:8013");
  CHECK(sdk::parse_listen_address("[fe80::1%eth0]:0").format() == "[fe80::1%eth0]:0");
  CHECK(sdk::ListenAddress{"10.0.0.1", 443}.format() == "10.0.0.1:443");
}
