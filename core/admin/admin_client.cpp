#include "admin/admin_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "admin/address.hpp"
#include "admin/local_token.hpp"
#include "admin/tls.hpp"
#include "config/schema.hpp"

namespace emsnode::admin {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// /metrics of a node with many plugins is the largest answer; this is far above it.
constexpr std::uint64_t kResponseBodyLimit = 64 * 1024 * 1024;

std::string format_timeout(std::chrono::milliseconds timeout) {
  return timeout.count() % 1000 == 0 ? std::to_string(timeout.count() / 1000) + "s"
                                     : std::to_string(timeout.count()) + "ms";
}

// The server's message, or the status when it sent none.
std::string message_of(const Response& response) {
  std::string message = response.body;
  while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) {
    message.pop_back();
  }
  return message.empty() ? "the node answered HTTP " + std::to_string(response.status) : message;
}

}  // namespace

std::shared_ptr<net::ssl::context> tls_context_for(const Target& target) {
  if (!target.tls) return nullptr;
  try {
    return client_tls_context(target.ca);
  } catch (const std::runtime_error& e) {
    throw ClientError(e.what());
  }
}

namespace {

void print_body(std::ostream& out, const std::string& body) {
  out << body;
  if (!body.empty() && body.back() != '\n') out << '\n';
}

}  // namespace

int send_and_print(const Target& target, std::string_view method, const std::string& path,
                   std::ostream& out, std::ostream& err, std::string body,
                   std::chrono::milliseconds timeout) {
  try {
    const Response response = request(target, method, path, std::move(body), timeout);
    if (response.status >= 200 && response.status < 300) {
      print_body(out, response.body);
      return kExitOk;
    }
    err << "emsnode: " << message_of(response) << '\n';
  } catch (const ClientError& e) {
    err << "emsnode: " << e.what() << '\n';
  }
  return kExitFailure;
}

Target target_from(const config::NodeConfig& config) {
  const config::AdminConfig& admin = config.admin;
  HostPort address;
  try {
    address = parse_host_port(admin.listen);
  } catch (const std::invalid_argument& e) {
    throw ClientError("[admin] listen " + std::string(e.what()));
  }
  if (address.port == 0) {
    throw ClientError("[admin] listen \"" + admin.listen +
                      "\" has port 0: the node's port cannot be known from its config; set one");
  }
  if (address.host == "0.0.0.0") address.host = "127.0.0.1";
  if (address.host == "::") address.host = "::1";
  Target target{address.host, address.port, std::nullopt, !admin.tls_cert.empty(), admin.tls_ca};
  if (admin.token) {
    target.token = admin.token->reveal();
  } else {
    try {
      target.token = read_local_token(config.data_dir);
    } catch (const std::runtime_error& e) {
      throw ClientError(e.what());
    }
  }
  return target;
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const unsigned char byte = static_cast<unsigned char>(c);
    const bool unreserved = (byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') ||
                            (byte >= '0' && byte <= '9') || c == '-' || c == '.' || c == '_' ||
                            c == '~';
    if (unreserved) {
      out += c;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xF];
    }
  }
  return out;
}

Response request(const Target& target, std::string_view method, std::string_view path,
                 std::string body, std::chrono::milliseconds timeout) {
  const std::string where = format_host_port(target.host, target.port);
  const auto unreachable = [&](const std::string& reason) {
    return ClientError("cannot reach the node's admin endpoint at " + where + " (" + reason +
                       "): is emsnode running with this config?");
  };
  const auto no_answer = [&](const std::string& reason) {
    return ClientError("the node's admin endpoint at " + where + " did not answer (" + reason +
                       ")");
  };

  http::request<http::string_body> req;
  req.method_string(beast::string_view(method.data(), method.size()));
  req.target(beast::string_view(path.data(), path.size()));
  req.version(11);
  const http::verb verb = req.method();
  req.set(http::field::host, where);
  req.set(http::field::user_agent, "emsnode-cli");
  if (target.token) req.set(http::field::authorization, "Bearer " + *target.token);
  req.keep_alive(false);
  req.body() = std::move(body);
  req.prepare_payload();

  net::io_context io;
  beast::error_code ec;
  tcp::resolver resolver(io);
  const auto endpoints = resolver.resolve(target.host, std::to_string(target.port),
                                          tcp::resolver::numeric_service, ec);
  if (ec) throw unreachable(as_reason(ec.message()));

  // Asynchronous operations run to completion here, so that the stream's deadline applies.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MaybeTlsStream<beast::tcp_stream> stream(io, tls_context_for(target));
  if (stream.tls()) expect_server_name(stream.tls()->native_handle(), target.host);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kResponseBodyLimit);
  if (verb == http::verb::head) parser.skip(true);  // a Content-Length, and no body to wait for
  bool connected = false;
  bool secured = !stream.tls();
  const auto exchange = [&] {
    http::async_write(stream, req, [&](beast::error_code write_ec, std::size_t) {
      if ((ec = write_ec)) return;
      http::async_read(stream, buffer, parser,
                       [&](beast::error_code read_ec, std::size_t) { ec = read_ec; });
    });
  };
  stream.lowest().expires_at(deadline);
  stream.lowest().async_connect(endpoints, [&](beast::error_code connect_ec, const tcp::endpoint&) {
    if ((ec = connect_ec)) return;
    connected = true;
    if (secured) return exchange();
    stream.tls()->async_handshake(net::ssl::stream_base::client, [&](beast::error_code tls_ec) {
      if ((ec = tls_ec)) return;
      secured = true;
      exchange();
    });
  });
  io.run();

  if (ec) {
    if (connected && !secured && ec != beast::error::timeout) {
      throw ClientError("no secure connection to the node's admin endpoint at " + where + " (" +
                        handshake_failure(ec, stream.tls()->native_handle()) + ")");
    }
    const std::string reason = ec != beast::error::timeout ? as_reason(ec.message())
                               : connected ? "no answer within " + format_timeout(timeout)
                                           : "timed out after " + format_timeout(timeout);
    throw connected ? no_answer(reason) : unreachable(reason);
  }
  Response response;
  response.status = parser.get().result_int();
  const auto type = parser.get()[http::field::content_type];
  response.content_type.assign(type.data(), type.size());
  response.body = std::move(parser.get().body());
  return response;
}

int status_verb(const Target& target, bool json, std::ostream& out, std::ostream& err) {
  return send_and_print(target, "GET", json ? "/status" : "/status?format=text", out, err);
}

int switchover_verb(const Target& target, std::optional<std::string> to, std::ostream& out,
                    std::ostream& err) {
  return send_and_print(target, "POST",
                        to ? "/switchover?to=" + percent_encode(*to) : "/switchover", out, err);
}

int pause_verb(const Target& target, std::ostream& out, std::ostream& err) {
  return send_and_print(target, "POST", "/pause", out, err);
}

int resume_verb(const Target& target, std::ostream& out, std::ostream& err) {
  return send_and_print(target, "POST", "/resume", out, err);
}

int settings_verb(const Target& target, const std::vector<std::string>& args, std::ostream& out,
                  std::ostream& err) {
  if (args.empty() || (args.size() == 1 && args[0] == "list")) {
    return send_and_print(target, "GET", "/settings?format=text", out, err);
  }
  if (args.size() == 2 && args[0] == "get") {
    return send_and_print(target, "GET", "/settings/" + percent_encode(args[1]), out, err);
  }
  if (args.size() == 3 && args[0] == "set") {
    return send_and_print(target, "PUT", "/settings/" + percent_encode(args[1]), out, err, args[2]);
  }
  err << "emsnode: usage: emsnode settings [list | get KEY | set KEY VALUE]\n";
  return kExitUsage;
}

}  // namespace emsnode::admin
