// The CLI side of the admin endpoint: `emsnode status|switchover|pause|resume|settings` send
// one request to the node named by the config's [admin] section and print the answer
// (`emsnode store` is in store_client.hpp).
//
//   const Target target = target_from(config.admin);
//   return status_verb(target, /*json=*/false);
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "config/node_config.hpp"

namespace emsnode::admin {

// Where the node's admin endpoint answers, how, and the token sent with every request.
struct Target {
  std::string host;
  std::uint16_t port = 0;
  std::optional<std::string> token;
  bool tls = false;            // HTTPS, the certificate verified for `host`
  std::filesystem::path ca{};  // the CA certificates to verify it against; empty: the system's
};

// Cannot build a Target, or no answer from the endpoint. The message is one line for the
// operator, naming the address and what to check.
class ClientError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// From the config's [admin] section: listen, TLS, and the token, or when none is set the one the
// node made in its data_dir (when this user may read it). A wildcard listen address becomes the
// matching loopback one (0.0.0.0 -> 127.0.0.1, :: -> ::1). Throws ClientError for a malformed
// address or port 0 (an ephemeral port cannot be found from the config).
Target target_from(const config::NodeConfig& config);

struct Response {
  unsigned status = 0;
  std::string content_type;
  std::string body;
};

// Sends one request and returns the answer, whatever its status. The token goes with every
// request. `timeout` bounds the whole exchange. Throws ClientError when the endpoint cannot be
// reached, its certificate cannot be verified, or it does not answer in time.
Response request(const Target& target, std::string_view method, std::string_view path,
                 std::string body = "",
                 std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The TLS context for a client of `target`, or nullptr for plain HTTP. Throws ClientError when
// the CA file cannot be used.
std::shared_ptr<boost::asio::ssl::context> tls_context_for(const Target& target);

// "a b/c" -> "a%20b%2Fc": a setting key or node id made safe for a path segment or a query.
std::string percent_encode(std::string_view text);

// Sends one request and prints the answer's body to `out` (returns 0), or prints the node's
// message, or why it could not be reached, to `err` (returns 1).
int send_and_print(const Target& target, std::string_view method, const std::string& path,
                   std::ostream& out, std::ostream& err, std::string body = "",
                   std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The verbs. Each prints the answer to `out` and returns 0, or prints the server's message (or
// why it could not be reached) to `err` and returns 1; 2 for a usage error.
int status_verb(const Target& target, bool json, std::ostream& out = std::cout,
                std::ostream& err = std::cerr);
int switchover_verb(const Target& target, std::optional<std::string> to,
                    std::ostream& out = std::cout, std::ostream& err = std::cerr);
int pause_verb(const Target& target, std::ostream& out = std::cout, std::ostream& err = std::cerr);
int resume_verb(const Target& target, std::ostream& out = std::cout, std::ostream& err = std::cerr);
// `args`: {} or {"list"} (every setting), {"get", KEY} (its value), {"set", KEY, VALUE}.
int settings_verb(const Target& target, const std::vector<std::string>& args,
                  std::ostream& out = std::cout, std::ostream& err = std::cerr);

}  // namespace emsnode::admin
