#include "admin/admin_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <future>
#include <istream>
#include <limits>
#include <list>
#include <map>
#include <ostream>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "admin/address.hpp"
#include "admin/json.hpp"
#include "admin/render.hpp"
#include "admin/tls.hpp"
#include "admin/transfer.hpp"
#include "config/node_config.hpp"
#include "log/log.hpp"
#include "metrics/metrics.hpp"

namespace emsnode::admin {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kText = "text/plain; charset=utf-8";
constexpr std::string_view kJson = "application/json";
constexpr std::string_view kHtml = "text/html; charset=utf-8";
constexpr std::string_view kOctets = "application/octet-stream";
// Answered on the I/O thread, even while slow operations occupy the workers.
constexpr std::string_view kHealthzPrefix = "/healthz/";
constexpr std::string_view kStoreFilePrefix = "/store/";
// Model operations may block (a database read, a switchover that stops plugins); two workers let
// a status read proceed while a switchover runs.
constexpr std::size_t kWorkers = 2;
// A transfer moves in pieces of this size, at most this many waiting in each direction: what one
// transfer holds in memory, whatever the file's size.
constexpr std::size_t kTransferPiece = 64 * 1024;
constexpr std::size_t kTransferPieces = 4;
// Longest request path written into a log record.
constexpr std::size_t kLoggedPathMax = 200;

const log::Logger& logger() {
  static const log::Logger instance{"admin"};
  return instance;
}

std::string_view to_std(beast::string_view text) {
  return {text.data(), text.size()};
}

using Digest = std::array<unsigned char, 32>;

// Tokens are compared as SHA-256 digests, in constant time: neither the time taken nor an early
// exit on a length mismatch tells a guesser how much of a token was right, or how long it is.
Digest sha256(std::string_view text) {
  Digest digest{};
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1 ||
      size != digest.size()) {
    throw std::runtime_error("admin: OpenSSL cannot compute SHA-256");
  }
  return digest;
}

bool same_digest(const Digest& a, const Digest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

class BadRequest : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 3986 percent-decoding; in a query, '+' is a space as HTML forms send it.
std::string percent_decode(std::string_view text, bool query) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%') {
      const int high = i + 2 < text.size() ? hex_digit(text[i + 1]) : -1;
      const int low = high >= 0 ? hex_digit(text[i + 2]) : -1;
      if (low < 0) throw BadRequest("malformed percent-encoding in the request target");
      out += static_cast<char>(high * 16 + low);
      i += 2;
    } else {
      out += query && text[i] == '+' ? ' ' : text[i];
    }
  }
  return out;
}

std::map<std::string, std::string> parse_query(std::string_view query) {
  std::map<std::string, std::string> params;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const std::size_t eq = pair.find('=');
    const std::string_view value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    params[percent_decode(pair.substr(0, eq), true)] = percent_decode(value, true);
  }
  return params;
}

enum class Endpoint {
  page,
  status,
  healthz_active,
  healthz_live,
  healthz_ready,
  metrics,
  switchover,
  pause,
  resume,
  settings,
  setting,
  store_list,
  store_file,
  store_stat,
  store_migrate,
  plugin_commands,
  plugin_command
};

struct Route {
  Endpoint endpoint;
  std::string key;   // the decoded KEY of /settings/KEY, /store/KEY and /store-stat/KEY; the ID
                     // of /plugins/ID/commands[/NAME]
  std::string name;  // the NAME of /plugins/ID/commands/NAME
};

constexpr std::string_view kPluginsPrefix = "/plugins/";

// /plugins/ID/commands and /plugins/ID/commands/NAME.
std::optional<Route> match_plugin(std::string_view path) {
  if (path.substr(0, kPluginsPrefix.size()) != kPluginsPrefix) return std::nullopt;
  const std::string_view rest = path.substr(kPluginsPrefix.size());
  const std::size_t slash = rest.find('/');
  if (slash == 0 || slash == std::string_view::npos) return std::nullopt;
  const std::string_view id = rest.substr(0, slash);
  const std::string_view tail = rest.substr(slash);
  constexpr std::string_view kCommands = "/commands";
  if (tail == kCommands) return Route{Endpoint::plugin_commands, std::string(id), {}};
  if (tail.size() > kCommands.size() + 1 && tail.substr(0, kCommands.size() + 1) == "/commands/") {
    const std::string_view name = tail.substr(kCommands.size() + 1);
    if (name.find('/') != std::string_view::npos) return std::nullopt;
    return Route{Endpoint::plugin_command, std::string(id), std::string(name)};
  }
  return std::nullopt;
}

std::optional<Route> match(std::string_view path) {
  static const std::pair<std::string_view, Endpoint> kFixed[] = {
      {"/", Endpoint::page},
      {"/status", Endpoint::status},
      {"/healthz/active", Endpoint::healthz_active},
      {"/healthz/live", Endpoint::healthz_live},
      {"/healthz/ready", Endpoint::healthz_ready},
      {"/metrics", Endpoint::metrics},
      {"/switchover", Endpoint::switchover},
      {"/pause", Endpoint::pause},
      {"/resume", Endpoint::resume},
      {"/settings", Endpoint::settings},
      {"/store", Endpoint::store_list},
      {"/store-migrate", Endpoint::store_migrate},
  };
  for (const auto& [fixed, endpoint] : kFixed) {
    if (path == fixed) return Route{endpoint, {}, {}};
  }
  static const std::pair<std::string_view, Endpoint> kKeyed[] = {
      {"/settings/", Endpoint::setting},
      {kStoreFilePrefix, Endpoint::store_file},
      {"/store-stat/", Endpoint::store_stat},
  };
  for (const auto& [prefix, endpoint] : kKeyed) {
    if (path.size() > prefix.size() && path.substr(0, prefix.size()) == prefix) {
      return Route{endpoint, percent_decode(path.substr(prefix.size()), false), {}};
    }
  }
  return match_plugin(path);
}

// The methods an endpoint answers, as the Allow header lists them.
std::string_view allowed_methods(Endpoint endpoint) {
  switch (endpoint) {
    case Endpoint::switchover:
    case Endpoint::pause:
    case Endpoint::resume:
    case Endpoint::store_migrate:
    case Endpoint::plugin_command:
      return "POST";
    case Endpoint::setting:
      return "GET, HEAD, PUT";
    case Endpoint::store_file:
      return "GET, HEAD, PUT, DELETE";
    default:
      return "GET, HEAD";
  }
}

bool allows(Endpoint endpoint, http::verb method) {
  const bool read = method == http::verb::get || method == http::verb::head;
  switch (endpoint) {
    case Endpoint::switchover:
    case Endpoint::pause:
    case Endpoint::resume:
    case Endpoint::store_migrate:
    case Endpoint::plugin_command:
      return method == http::verb::post;
    case Endpoint::setting:
      return read || method == http::verb::put;
    case Endpoint::store_file:
      return read || method == http::verb::put || method == http::verb::delete_;
    default:
      return read;
  }
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Who may call a path: the one authorization rule, applied to every request before its route is
// looked up, so that every route, present or added later, inherits it.
enum class Access {
  open,           // the health probes: load balancers carry no token
  local_status,   // the page and /status: open on loopback, else the token or open_reads
  local_metrics,  // /metrics: the same
  token           // everything else, unknown paths included (they reveal nothing without it)
};

Access access_of(std::string_view path) {
  if (path.substr(0, kHealthzPrefix.size()) == kHealthzPrefix) return Access::open;
  if (path == "/" || path == "/status") return Access::local_status;
  if (path == "/metrics") return Access::local_metrics;
  return Access::token;
}

// The name part of a Host header: "Example.org:8440" -> "example.org", "[::1]:8440" -> "::1".
std::string host_name_of(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    host = host.substr(1, host.find(']') - 1);
  } else if (host.find(':') == host.rfind(':')) {
    host = host.substr(0, host.find(':'));
  }
  std::string name(host);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return name;
}

// The headers every answer carries.
template <typename Body>
void set_common_headers(http::response<Body>& response, std::string_view content_type) {
  response.set(http::field::server, "emsnode");
  response.set(http::field::content_type,
               beast::string_view(content_type.data(), content_type.size()));
  response.set(http::field::cache_control, "no-store");
  response.set("X-Content-Type-Options", "nosniff");
}

// A stored file's catalog entry, so that a client can verify what it receives. Content-Length is
// the catalog's size.
template <typename Body>
void set_file_headers(http::response<Body>& response, const StoreFile& file) {
  response.set("X-Emsnode-Sha256", file.sha256);
  response.set("X-Emsnode-Epoch", std::to_string(file.epoch));
  response.set("X-Emsnode-Modified", iso8601_utc(std::chrono::system_clock::time_point(
                                         std::chrono::milliseconds(file.modified_at_ms))));
  response.content_length(file.size);
}

// A function of the store model, or 503 on a node that serves no file store.
template <typename Function>
const Function& need(const Function& function) {
  if (!function) throw OperationError::unavailable("this node serves no file store");
  return function;
}

// Turns requests into responses by calling the Model. Stateless: called from the I/O thread
// (health checks) and from the workers (everything else) at once.
class Router {
 public:
  Router(const ServerSecurity& security, Model model)
      : model_(std::move(model)),
        open_status_(std::count(security.open_reads.begin(), security.open_reads.end(), "/status") >
                     0),
        open_metrics_(
            std::count(security.open_reads.begin(), security.open_reads.end(), "/metrics") > 0) {
    if (security.token) {
      if (security.token->size() < config::kMinAdminTokenLength) {
        throw std::invalid_argument("admin: the token is shorter than " +
                                    std::to_string(config::kMinAdminTokenLength) + " bytes");
      }
      token_ = sha256(*security.token);
    }
    for (const std::string& name : security.host_names) host_names_.push_back(host_name_of(name));
  }

  // Once the listener is bound, before any request: what loopback-only rules see.
  void listening_on(const std::string& host, bool loopback) {
    loopback_ = loopback;
    for (const char* name : {"localhost", "127.0.0.1", "::1"}) host_names_.emplace_back(name);
    host_names_.push_back(
        host_name_of(host.find(':') == std::string::npos ? host : "[" + host + "]"));
  }

  Response route(const Request& request, const std::string& remote) const {
    return answer(request, remote, [&] { return route_or_throw(request, remote); });
  }

  // What `operation` returns, or the answer to what it threw.
  template <typename Operation>
  Response answer(const Request& request, const std::string& remote, Operation&& operation) const {
    try {
      return operation();
    } catch (const BadRequest& e) {
      return reply(request, 400, std::string(e.what()) + "\n");
    } catch (const OperationError& e) {
      const unsigned status = e.status() >= 400 && e.status() <= 599 ? e.status() : 500;
      logger().warning("admin.operation_refused", {{"method", method_of(request)},
                                                   {"path", path_of(request)},
                                                   {"status", std::to_string(status)},
                                                   {"error", e.what()}});
      return reply(request, status, std::string(e.what()) + "\n");
    } catch (const TransferAborted& e) {
      // The client's side of a transfer failed: nothing was stored, and it may not hear this.
      logger().warning("admin.transfer_aborted", {{"method", method_of(request)},
                                                  {"path", path_of(request)},
                                                  {"remote", remote},
                                                  {"reason", e.what()}});
      return reply(request, 400, std::string(e.what()) + "\n");
    } catch (const std::exception& e) {
      logger().error(
          "admin.operation_failed",
          {{"method", method_of(request)}, {"path", path_of(request)}, {"error", e.what()}});
      return reply(request, 500, "internal error: " + std::string(e.what()) + "\n");
    }
  }

  // PUT /store/KEY, its header already authorized: stores `body` (read to its end) at `key`.
  Response upload(const Request& request, const std::string& key, std::istream& body,
                  const std::string& remote) const {
    return answer(request, remote, [&] {
      const StoreFile file = need(model_.store.put)(key, body);
      logger().info("admin.store_put", {{"key", key},
                                        {"size", std::to_string(file.size)},
                                        {"sha256", file.sha256},
                                        {"epoch", std::to_string(file.epoch)},
                                        {"remote", remote}});
      return reply(request, 200,
                   "stored " + printable(key) + ": " + std::to_string(file.size) +
                       " bytes, sha256 " + printable(file.sha256) + ", epoch " +
                       std::to_string(file.epoch) + "\n");
    });
  }

  // GET /store/KEY on a transfer worker: the catalog entry, else the answer to send instead.
  std::optional<StoreFile> download_stat(const Request& request, const std::string& key,
                                         const std::string& remote, Response& refusal) const {
    std::optional<StoreFile> file;
    refusal = answer(request, remote, [&] {
      file = need(model_.store.stat)(key);
      return file ? Response() : no_such_file(request, key);
    });
    return file;
  }

  // Streams `key` into `sink`, verified: nullopt when every byte matched `expected`, else the
  // answer that says why not.
  std::optional<Response> download(const Request& request, const std::string& key,
                                   const StoreFile& expected, BodySink& sink,
                                   const std::string& remote) const {
    std::ostream out(&sink);
    // So that a gone connection aborts the store's write with its reason.
    out.exceptions(std::ios::badbit);
    bool verified = false;
    Response refusal = answer(request, remote, [&] {
      const StoreFile got = need(model_.store.get)(key, out);
      if (sink.written() != expected.size || got.sha256 != expected.sha256) {
        // Replaced between the stat and the read: what was sent matches neither catalog entry.
        throw OperationError::unavailable(printable(key) +
                                          " changed while it was being sent; try again");
      }
      verified = true;
      return Response();
    });
    if (verified) return std::nullopt;
    return refusal;
  }

  bool serves_store() const { return static_cast<bool>(model_.store.put); }

  static Response probe(const Request& request, const Probe& answer) {
    return reply(request, answer.ok ? 200 : 503, answer.says + "\n");
  }

  static Response reply(const Request& request, unsigned status, std::string body,
                        std::string_view content_type = kText) {
    Response response;
    response.version(request.version());
    response.result(status);
    set_common_headers(response, content_type);
    response.keep_alive(request.keep_alive());
    response.body() = std::move(body);
    response.prepare_payload();
    // HEAD: the headers GET would send, Content-Length included, and no body.
    if (request.method() == http::verb::head) response.body().clear();
    return response;
  }

  static Response no_such_file(const Request& request, const std::string& key) {
    return reply(request, 404, "no such file in the store: " + printable(key) + "\n");
  }

  static std::string path_of(const Request& request) {
    const std::string_view target = to_std(request.target());
    return printable(target.substr(0, std::min(target.find('?'), kLoggedPathMax)));
  }

  static std::string method_of(const Request& request) {
    return printable(to_std(request.method_string()));
  }

  // The refusal of a request that the access rule does not let through (judged on its header
  // alone, before any body is read); nullopt when it may proceed.
  std::optional<Response> admit(const Request& request, const std::string& remote) const {
    const std::string_view target = to_std(request.target());
    if (loopback_) {
      // A browser fooled by DNS rebinding sends the attacker's name; a client without a Host
      // header is no browser.
      const std::string_view host = to_std(request[http::field::host]);
      if (!host.empty() && std::find(host_names_.begin(), host_names_.end(), host_name_of(host)) ==
                               host_names_.end()) {
        refuse(request, remote, "foreign_host");
        return reply(request, 421,
                     "refused: Host " + printable(host) +
                         " is not a name of this endpoint (add it to [admin] host_names)\n");
      }
    }
    switch (access_of(target.substr(0, target.find('?')))) {
      case Access::open:
        return std::nullopt;
      case Access::local_status:
        if (loopback_ || open_status_) return std::nullopt;
        break;
      case Access::local_metrics:
        if (loopback_ || open_metrics_) return std::nullopt;
        break;
      case Access::token:
        break;
    }
    return authorize(request, remote);
  }

 private:
  static void refuse(const Request& request, const std::string& remote, const char* reason) {
    logger().warning("admin.refused", {{"reason", reason},
                                       {"method", method_of(request)},
                                       {"path", path_of(request)},
                                       {"remote", remote}});
  }

  // A refusal when `request` does not carry the token; nullopt when it does.
  std::optional<Response> authorize(const Request& request, const std::string& remote) const {
    if (!token_) {
      refuse(request, remote, "no_token_configured");
      return reply(request, 403,
                   "refused: this node has no token ([admin] token in its config), so it accepts "
                   "only health checks\n");
    }
    const std::string_view header = to_std(request[http::field::authorization]);
    constexpr std::string_view kScheme = "bearer ";
    std::string scheme(header.substr(0, kScheme.size()));
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string_view given;
    if (scheme == kScheme) {
      given = header.substr(kScheme.size());
      given.remove_prefix(std::min(given.find_first_not_of(' '), given.size()));
    }
    if (given.empty() || !same_digest(sha256(given), *token_)) {
      refuse(request, remote, header.empty() ? "no_token" : "wrong_token");
      Response response =
          reply(request, 401,
                "refused: missing or wrong token (send Authorization: Bearer <[admin] token>)\n");
      response.set(http::field::www_authenticate, "Bearer realm=\"emsnode\"");
      return response;
    }
    return std::nullopt;
  }

  Response route_or_throw(const Request& request, const std::string& remote) const {
    const std::string_view target = to_std(request.target());
    const std::size_t question = target.find('?');
    const std::string_view path = target.substr(0, question);
    const std::optional<Route> route = match(path);
    if (!route) return reply(request, 404, "no such endpoint: " + printable(path) + "\n");
    if (!allows(route->endpoint, request.method())) {
      Response response =
          reply(request, 405,
                method_of(request) + " is not allowed on " + printable(path) +
                    " (allowed: " + std::string(allowed_methods(route->endpoint)) + ")\n");
      const std::string_view allowed = allowed_methods(route->endpoint);
      response.set(http::field::allow, beast::string_view(allowed.data(), allowed.size()));
      return response;
    }
    const auto query = parse_query(
        question == std::string_view::npos ? std::string_view() : target.substr(question + 1));
    switch (route->endpoint) {
      case Endpoint::page: {
        Response page = reply(request, 200, status_html(model_.status()), kHtml);
        // The page runs no script: should an escape ever be missed, nothing injected runs.
        page.set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
        return page;
      }
      case Endpoint::status:
        return text_requested(query) ? reply(request, 200, status_text(model_.status()))
                                     : reply(request, 200, status_json(model_.status()), kJson);
      case Endpoint::healthz_active:
        return probe(request, model_.health().active);
      case Endpoint::healthz_live:
        return probe(request, model_.health().live);
      case Endpoint::healthz_ready:
        return probe(request, model_.health().ready);
      case Endpoint::metrics:
        return reply(request, 200, model_.metrics_text(), metrics::kPrometheusContentType);
      case Endpoint::switchover:
        return switchover(request, query, remote);
      case Endpoint::pause:
        model_.pause();
        logger().info("admin.paused", {{"remote", remote}});
        return reply(request, 200, "paused: this node will not take the lease until resumed\n");
      case Endpoint::resume:
        model_.resume();
        logger().info("admin.resumed", {{"remote", remote}});
        return reply(request, 200, "resumed: this node may take the lease again\n");
      case Endpoint::settings:
        return text_requested(query) ? reply(request, 200, settings_text(model_.settings()))
                                     : reply(request, 200, settings_json(model_.settings()), kJson);
      case Endpoint::setting:
        return setting(request, route->key, remote);
      case Endpoint::store_list: {
        const auto prefix = query.find("prefix");
        const std::string given = prefix == query.end() ? std::string() : prefix->second;
        const std::vector<StoreFile> files = need(model_.store.list)(given);
        return text_requested(query) ? reply(request, 200, store_list_text(files, given))
                                     : reply(request, 200, store_list_json(files), kJson);
      }
      case Endpoint::store_stat: {
        const std::optional<StoreFile> file = need(model_.store.stat)(route->key);
        if (!file) return no_such_file(request, route->key);
        return text_requested(query) ? reply(request, 200, store_file_text(*file))
                                     : reply(request, 200, store_file_json(*file), kJson);
      }
      case Endpoint::store_file:
        return store_file(request, route->key, remote);
      case Endpoint::store_migrate:
        return migrate(request, query, remote);
      case Endpoint::plugin_commands: {
        const std::optional<std::string> list = need_commands(model_.commands.list)(route->key);
        if (!list) return no_such_plugin(request, route->key);
        return reply(request, 200, *list, kJson);
      }
      case Endpoint::plugin_command:
        return run_command(request, *route, remote);
    }
    throw std::logic_error("admin: endpoint without a handler");  // the switch covers them all
  }

  static bool text_requested(const std::map<std::string, std::string>& query) {
    const auto format = query.find("format");
    if (format == query.end() || format->second == "json") return false;
    if (format->second == "text") return true;
    throw BadRequest("format must be json or text, not \"" + printable(format->second) + "\"");
  }

  Response switchover(const Request& request, const std::map<std::string, std::string>& query,
                      const std::string& remote) const {
    std::optional<std::string> to;
    if (const auto it = query.find("to"); it != query.end()) {
      if (it->second.empty()) throw BadRequest("to: give the id of the node to hand over to");
      to = it->second;
    }
    model_.switchover(to);
    logger().info("admin.switchover_requested", {{"to", to.value_or("")}, {"remote", remote}});
    return reply(request, 200,
                 to ? "switchover to " + printable(*to) + " requested\n"
                    : std::string("switchover requested\n"));
  }

  Response setting(const Request& request, const std::string& key,
                   const std::string& remote) const {
    if (request.method() == http::verb::put) {
      model_.set_setting(key, request.body());
      // Not the value: a setting may be a credential.
      logger().info("admin.setting_changed", {{"key", key}, {"remote", remote}});
      return reply(request, 200, "set " + printable(key) + "\n");
    }
    for (Setting& found : model_.settings()) {
      if (found.key == key) return reply(request, 200, std::move(found.value));
    }
    return reply(request, 404, "setting " + printable(key) + " is not set\n");
  }

  // HEAD and DELETE of /store/KEY; the session streams GET and PUT itself.
  Response store_file(const Request& request, const std::string& key,
                      const std::string& remote) const {
    if (request.method() == http::verb::delete_) {
      need(model_.store.remove)(key);
      logger().info("admin.store_removed", {{"key", key}, {"remote", remote}});
      return reply(request, 200, "removed " + printable(key) + "\n");
    }
    if (request.method() != http::verb::head) {
      throw std::logic_error("admin: GET and PUT of /store/KEY are streamed by the session");
    }
    const std::optional<StoreFile> file = need(model_.store.stat)(key);
    if (!file) return no_such_file(request, key);
    Response response = reply(request, 200, std::string(), kOctets);
    set_file_headers(response, *file);
    return response;
  }

  template <typename Function>
  static const Function& need_commands(const Function& function) {
    if (!function) throw OperationError::unavailable("this node serves no plugin commands");
    return function;
  }

  static Response no_such_plugin(const Request& request, const std::string& id) {
    return reply(request, 404,
                 json_error("no plugin " + printable(id) + " is enabled on this node"), kJson);
  }

  static std::string json_error(const std::string& message) {
    JsonWriter json;
    json.begin_object().key("error").string(message).end_object();
    return json.take();
  }

  Response run_command(const Request& request, const Route& route,
                       const std::string& remote) const {
    const std::optional<CommandInfo> info =
        need_commands(model_.commands.find)(route.key, route.name);
    if (!info) {
      if (!model_.commands.list(route.key)) return no_such_plugin(request, route.key);
      return reply(
          request, 404,
          json_error("plugin " + printable(route.key) + " has no command " + printable(route.name)),
          kJson);
    }
    // Refused here, before a handler thread is taken: the one shape of arguments the host
    // accepts, whatever the model behind the endpoint checks again. Blank is no arguments.
    const std::string& body = request.body();
    if (body.find_first_not_of(" \t\r\n") != std::string::npos &&
        !nlohmann::json::parse(body, nullptr, false).is_object()) {
      return reply(request, 400,
                   json_error("the arguments must be a JSON object of argument names and values, "
                              "as {\"file\": \"/tmp/x\"}"),
                   kJson);
    }
    // The token was checked before the route was looked up, as for every route but the probes:
    // a command that only reads may still read what an operator alone should see.
    // Not the arguments: they may hold secrets. The host logs the outcome (plugin.command).
    logger().info("admin.command",
                  {{"plugin", route.key}, {"command", route.name}, {"remote", remote}});
    const CommandReply answer = model_.commands.run(route.key, route.name, body);
    if (!answer.not_active) return reply(request, answer.status, answer.body, kJson);
    return reply(request, answer.status, not_active_body(answer.body), kJson);
  }

  // The refusal of an active_only command on a node that is not active, with the node that is
  // and its admin address from the cluster view, so that the CLI can forward the call there.
  std::string not_active_body(const std::string& host_body) const {
    std::string message = "this node is not the active one";
    const StatusView status = model_.status();
    const NodeView* active = nullptr;
    if (!status.lease_holder.empty() && status.lease_expires_in_ms > 0 &&
        status.lease_holder != status.node_id) {
      for (const NodeView& node : status.nodes) {
        if (node.id == status.lease_holder) active = &node;
      }
    }
    const nlohmann::json host = nlohmann::json::parse(host_body, nullptr, false);
    if (host.is_object() && host.contains("error") && host["error"].is_string()) {
      message = host["error"].get<std::string>();
    }
    JsonWriter json;
    json.begin_object().key("error").string(message).key("not_active").boolean(true);
    json.key("node").string(status.node_id).key("active");
    if (active == nullptr) {
      json.null();
    } else {
      json.begin_object()
          .key("id")
          .string(active->id)
          .key("admin_address")
          .string(active->admin_address)
          .end_object();
    }
    return json.end_object().take();
  }

  Response migrate(const Request& request, const std::map<std::string, std::string>& query,
                   const std::string& remote) const {
    const auto to = query.find("to");
    if (to == query.end() || (to->second != "share" && to->second != "blob")) {
      throw BadRequest("to: give the backend to migrate to, share or blob");
    }
    logger().info("admin.store_migrating", {{"to", to->second}, {"remote", remote}});
    const StoreMigration done = need(model_.store.migrate)(to->second);
    logger().info("admin.store_migrated", {{"from", done.from},
                                           {"to", done.to},
                                           {"copied", std::to_string(done.copied)},
                                           {"skipped", std::to_string(done.skipped)},
                                           {"bytes", std::to_string(done.bytes)}});
    return reply(
        request, 200,
        "copied " + std::to_string(done.copied) + (done.copied == 1 ? " file" : " files") + " (" +
            format_bytes(done.bytes) + ") from the " + done.from + " backend to the " + done.to +
            " backend, each verified; " + std::to_string(done.skipped) +
            " already there with the same SHA-256\n"
            "The catalog now points to the copies: set [store] backend = \"" +
            done.to +
            "\" in the config of every node and restart them; until then the nodes see none of "
            "these files. A file stored meanwhile stays in the " +
            done.from +
            " backend: run the migration again right before the restart (it moves only what "
            "is left).\n");
  }

  const Model model_;
  std::optional<Digest> token_;
  const bool open_status_;
  const bool open_metrics_;
  std::vector<std::string> host_names_;  // lower case, without port or brackets
  bool loopback_ = false;
};

// Counts a transfer in progress while it lives; ServerLimits::max_transfers bounds them.
class TransferSlot {
 public:
  explicit TransferSlot(std::atomic<std::size_t>& count) : count_(&count) {}
  TransferSlot(TransferSlot&& other) noexcept : count_(std::exchange(other.count_, nullptr)) {}
  TransferSlot& operator=(TransferSlot&&) = delete;
  TransferSlot(const TransferSlot&) = delete;
  TransferSlot& operator=(const TransferSlot&) = delete;
  ~TransferSlot() {
    if (count_ != nullptr) count_->fetch_sub(1);
  }

 private:
  std::atomic<std::size_t>* count_;
};

}  // namespace

class AdminServer::Impl {
 public:
  Impl(std::string listen, const ServerSecurity& security, Model model, ServerLimits limits)
      : listen_(std::move(listen)),
        limits_(limits),
        tls_cert_(security.tls_cert),
        tls_key_(security.tls_key),
        router_(security, std::move(model)),
        transfers_(std::max<std::size_t>(limits.max_transfers, 1)) {}

  void start();
  void stop();
  std::uint16_t port() const { return port_; }

 private:
  class Session;

  void accept();
  void on_accept(beast::error_code ec, tcp::socket socket);
  void refuse_busy(tcp::socket socket);
  std::size_t live_sessions();
  void run();
  // A place for one more transfer, or nullopt when max_transfers are running.
  std::optional<TransferSlot> take_transfer();

  const std::string listen_;
  const ServerLimits limits_;
  const std::filesystem::path tls_cert_;
  const std::filesystem::path tls_key_;
  std::shared_ptr<net::ssl::context> tls_;  // set by start() when serving HTTPS
  Router router_;                           // its methods are const: workers call them at once
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> transfer_count_{0};

  net::io_context io_;
  net::executor_work_guard<net::io_context::executor_type> work_{io_.get_executor()};
  tcp::acceptor acceptor_{io_};
  net::steady_timer accept_retry_{io_};
  std::list<std::weak_ptr<Session>> sessions_;  // touched on the I/O thread only
  net::thread_pool workers_{kWorkers};
  net::thread_pool transfers_;  // store transfers: long, and bounded by max_transfers
  std::thread thread_;
};

// One connection: reads requests one at a time (keep-alive), answers each, and closes on error,
// on a timeout, or when either side asks. Every member is touched on the I/O thread only, except
// request_ and remote_, which workers read while the I/O thread leaves them alone.
//
// A request's header is read first. PUT /store/KEY then streams its body through a BodySource
// into the store on a transfer worker; GET /store/KEY streams the file out of a BodySink that a
// transfer worker fills. Every other request is read whole (within body_limit) and answered by a
// worker.
class AdminServer::Impl::Session : public std::enable_shared_from_this<Session> {
  using Executor = beast::tcp_stream::executor_type;

 public:
  Session(tcp::socket socket, Impl& server)
      : stream_(std::move(socket), server.tls_), server_(server) {
    beast::error_code ec;
    const tcp::endpoint peer = stream_.lowest().socket().remote_endpoint(ec);
    remote_ = ec ? "unknown" : format_host_port(peer.address().to_string(), peer.port());
  }

  void start() {
    if (!stream_.tls()) return read();
    stream_.lowest().expires_after(server_.limits_.read_timeout);
    stream_.tls()->async_handshake(
        net::ssl::stream_base::server, [self = shared_from_this()](beast::error_code ec) {
          if (!ec) return self->read();
          // A plain-HTTP client, a scanner, or one that does not trust the certificate.
          logger().debug("admin.tls_handshake_failed",
                         {{"remote", self->remote_}, {"error", ec.message()}});
        });
  }

  // From stop(): ends whatever is pending; the handlers then see operation_aborted, and a worker
  // blocked on a transfer of this connection gives up.
  void close() {
    closed_ = true;
    abandon_transfer("the node is stopping");
    beast::error_code ignored;  // the socket may already be closed by a timeout; nothing to do
    stream_.lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.lowest().close();
  }

 private:
  // ---- every request ----

  void read() {
    request_ = {};
    header_known_ = false;
    header_parser_.emplace();
    header_parser_->header_limit(static_cast<std::uint32_t>(server_.limits_.header_limit));
    // Checked once the route is known: a store upload has a limit of its own. Not boost::none:
    // Beast 1.74 compares a Content-Length with the optional, and any length exceeds none.
    header_parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    stream_.lowest().expires_after(server_.limits_.read_timeout);
    http::async_read_header(stream_, buffer_, *header_parser_,
                            beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec, *header_parser_);
    request_ = Request(header_parser_->get().base());
    header_known_ = true;
    if (auto refusal = server_.router_.admit(request_, remote_)) {
      received_ = Clock::now();
      // Without a body the connection can carry the next request; else the body stays unread.
      if (header_parser_->is_done()) return write(std::move(*refusal));
      return answer_unread(std::move(*refusal));
    }
    const std::string_view target = to_std(request_.target());
    const std::string_view path = target.substr(0, target.find('?'));
    if (request_.method() == http::verb::put && starts_with(path, kStoreFilePrefix)) {
      return begin_upload(path.substr(kStoreFilePrefix.size()));
    }
    const auto length = header_parser_->content_length();
    if (length && *length > server_.limits_.body_limit) return reject_body_limit();
    parser_.emplace(std::move(*header_parser_));
    header_parser_.reset();
    parser_->body_limit(server_.limits_.body_limit);
    // Within the read timeout that read() set: the whole request must arrive in it.
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec, *parser_);
    request_ = parser_->release();
    parser_.reset();
    received_ = Clock::now();
    const std::string_view target = to_std(request_.target());
    const std::string_view path = target.substr(0, target.find('?'));
    if (path.rfind(kHealthzPrefix, 0) == 0) {
      // Cheap by contract (Model::health), and must answer even while a slow operation
      // occupies the workers.
      return write(server_.router_.route(request_, remote_));
    }
    std::optional<Route> route;
    try {
      route = match(path);
    } catch (const BadRequest&) {
      // Answered by the router, which reports it.
    }
    const bool download =
        route && route->endpoint == Endpoint::store_file && request_.method() == http::verb::get;
    const bool migration = route && route->endpoint == Endpoint::store_migrate &&
                           request_.method() == http::verb::post;
    // A command may take up to the node's command timeout: not on the workers that status reads
    // need.
    const bool command = route && route->endpoint == Endpoint::plugin_command &&
                         request_.method() == http::verb::post;
    if (download || migration || command) {
      std::optional<TransferSlot> slot = server_.take_transfer();
      if (!slot) return write(busy());
      if (download) return begin_download(route->key, std::move(*slot));
      return answer_on(server_.transfers_, std::move(slot));
    }
    answer_on(server_.workers_, std::nullopt);
  }

  // Answers the request that was read whole on a worker of `pool`.
  void answer_on(net::thread_pool& pool, std::optional<TransferSlot> slot) {
    net::post(pool, [self = shared_from_this(), slot = std::move(slot),
                     io = stream_.get_executor()]() mutable {
      Response response = self->server_.stopping_
                              ? Router::reply(self->request_, 503, "the node is stopping\n")
                              : self->server_.router_.route(self->request_, self->remote_);
      slot.reset();
      // Back to the I/O thread, handing it the last reference: a Session ends where it lives.
      net::post(io, [self = std::move(self), response = std::move(response)]() mutable {
        self->write(std::move(response));
      });
    });
  }

  template <typename Parser>
  void on_read_error(beast::error_code ec, const Parser& parser) {
    if (ec == http::error::end_of_stream) return close_gracefully();  // between requests
    if (ec == beast::error::timeout) {
      // An idle keep-alive connection is closed quietly; a trickled request is worth a warning.
      if (parser.got_some()) refused("read_timeout");
      return;  // the stream closed the socket
    }
    if (ec == http::error::body_limit) return reject_body_limit();
    if (ec == http::error::header_limit) {
      return reject(
          431, "request header over " + std::to_string(server_.limits_.header_limit) + " bytes\n",
          "header_too_large");
    }
    if (ec.category() == http::make_error_code(http::error::bad_method).category()) {
      return reject(400, "malformed HTTP request: " + ec.message() + "\n", "malformed");
    }
    if (ec != net::error::operation_aborted) {
      logger().debug("admin.connection_error", {{"remote", remote_}, {"error", ec.message()}});
    }
  }

  void reject_body_limit() {
    reject(413, "request body over " + std::to_string(server_.limits_.body_limit) + " bytes\n",
           "body_too_large");
  }

  void refused(const char* reason) {
    logger().warning("admin.refused", {{"reason", reason}, {"remote", remote_}});
  }

  // Answers a request that cannot be read to its end, then closes.
  void reject(unsigned status, std::string message, const char* reason) {
    refused(reason);
    answer_unread(Router::reply(request_, status, std::move(message)));
  }

  // Answers a request whose body is left unread: the connection cannot carry another request.
  void answer_unread(Response response) {
    received_ = Clock::now();
    if (!header_known_) {
      request_.method_string("-");
      request_.target("-");
    }
    response.keep_alive(false);
    write(std::move(response));
  }

  Response busy() const {
    Response response =
        Router::reply(request_, 503,
                      "too many store transfers in progress (" +
                          std::to_string(server_.limits_.max_transfers) + "); retry later\n");
    response.set(http::field::retry_after, "1");
    return response;
  }

  void write(Response response) {
    response_ = std::move(response);
    log_request(response_.result_int());
    stream_.lowest().expires_after(server_.limits_.read_timeout);
    http::async_write(stream_, response_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        if (ec) return;  // the client went away; nothing left to answer
                        self->next_request(self->response_.need_eof());
                      });
  }

  void next_request(bool close) {
    if (close || closed_) return close_gracefully();
    read();
  }

  void log_request(unsigned status) const {
    if (!logger().enabled(log::Level::debug)) return;
    const auto elapsed =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - received_);
    logger().debug("admin.request", {{"method", Router::method_of(request_)},
                                     {"path", Router::path_of(request_)},
                                     {"status", std::to_string(status)},
                                     {"elapsed_ms", std::to_string(elapsed.count())}});
  }

  // Closes our side and reads until the client closes too (or read_timeout), so that the unread
  // rest of a rejected request does not make the kernel reset the connection and discard the
  // response before the client read it.
  void close_gracefully() {
    beast::error_code ec;
    stream_.lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return;  // already gone
    stream_.lowest().expires_after(server_.limits_.read_timeout);
    drain();
  }

  void drain() {
    stream_.lowest().async_read_some(
        net::buffer(drain_buffer_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (!ec) self->drain();
        });
  }

  // Tells a worker blocked on this connection's transfer that it will not complete.
  void abandon_transfer(const std::string& reason) {
    if (source_) source_->fail(reason);
    if (sink_) sink_->cancel(reason);
  }

  // A callback for a worker's bridge: runs `step` on the I/O thread if the session still lives.
  std::function<void()> on_io(void (Session::*step)()) {
    return [weak = weak_from_this(), io = stream_.get_executor(), step] {
      net::post(io, [weak, step] {
        if (const auto self = weak.lock()) (self.get()->*step)();
      });
    };
  }

  // ---- PUT /store/KEY: the body streams into the store ----

  void begin_upload(std::string_view encoded_key) {
    received_ = Clock::now();
    std::string key;
    try {
      key = percent_decode(encoded_key, false);
    } catch (const BadRequest& e) {
      return answer_unread(Router::reply(request_, 400, std::string(e.what()) + "\n"));
    }
    const auto length = header_parser_->content_length();
    if (length && *length > server_.limits_.store_body_limit) {
      refused("body_too_large");
      return answer_unread(Router::reply(
          request_, 413,
          "file over " + std::to_string(server_.limits_.store_body_limit) + " bytes\n"));
    }
    if (!server_.router_.serves_store()) {
      return answer_unread(Router::reply(request_, 503, "this node serves no file store\n"));
    }
    std::optional<TransferSlot> slot = server_.take_transfer();
    if (!slot) return answer_unread(busy());

    upload_parser_.emplace(std::move(*header_parser_));
    header_parser_.reset();
    upload_parser_->body_limit(server_.limits_.store_body_limit);
    expect_continue_ = iequals(to_std(request_[http::field::expect]), "100-continue");
    piece_.resize(kTransferPiece);
    // Beast sizes each read by the buffer's free capacity, which the header left at a few KiB.
    buffer_.reserve(kTransferPiece);
    source_ = std::make_shared<BodySource>(kTransferPiece * kTransferPieces,
                                           on_io(&Session::read_body_piece));
    net::post(server_.transfers_,
              [self = shared_from_this(), key = std::move(key), slot = std::move(*slot),
               source = source_, io = stream_.get_executor()]() mutable {
                Response response;
                if (self->server_.stopping_) {
                  response = Router::reply(self->request_, 503, "the node is stopping\n");
                } else {
                  std::istream body(source.get());
                  // So that a failed connection aborts the store's read with its reason.
                  body.exceptions(std::ios::badbit);
                  response = self->server_.router_.upload(self->request_, key, body, self->remote_);
                }
                net::post(io, [self = std::move(self), response = std::move(response)]() mutable {
                  self->upload_answered(std::move(response));
                });
              });
  }

  // The store wants more of the body (BodySource's want_more).
  void read_body_piece() {
    if (closed_ || !upload_parser_ || upload_answer_) return;
    if (upload_parser_->is_done()) return source_->finish();
    body_op_pending_ = true;
    if (expect_continue_) {
      // The store reads: now the client may send the body.
      expect_continue_ = false;
      interim_.emplace(http::status::continue_, request_.version());
      http::async_write(stream_, *interim_,
                        [self = shared_from_this()](beast::error_code ec, std::size_t) {
                          self->body_op_pending_ = false;
                          if (self->upload_answer_) return self->send_upload_answer();
                          if (ec) return self->body_failed(ec);
                          self->read_body_piece();
                        });
      return;
    }
    upload_parser_->get().body().data = piece_.data();
    upload_parser_->get().body().size = piece_.size();
    stream_.lowest().expires_after(server_.limits_.read_timeout);
    http::async_read_some(stream_, buffer_, *upload_parser_,
                          beast::bind_front_handler(&Session::on_body_piece, shared_from_this()));
  }

  void on_body_piece(beast::error_code ec, std::size_t) {
    body_op_pending_ = false;
    if (ec == http::error::need_buffer) ec = {};  // the piece is full
    if (upload_answer_) return send_upload_answer();
    if (ec) return body_failed(ec);
    const std::size_t got = piece_.size() - upload_parser_->get().body().size;
    const bool room = source_->push(piece_.data(), got);
    if (upload_parser_->is_done()) return source_->finish();
    if (room) read_body_piece();
  }

  void body_failed(beast::error_code ec) {
    std::string reason = "the upload's body ended early: " + ec.message();
    if (ec == beast::error::timeout) {
      reason = "the client sent nothing for " +
               std::to_string(server_.limits_.read_timeout.count()) + "ms of the upload's body";
    } else if (ec == http::error::body_limit) {
      reason = "the upload's body is over " + std::to_string(server_.limits_.store_body_limit) +
               " bytes";
    }
    source_->fail(reason);
  }

  // The worker's answer; sent once no operation on the body is in flight (whichever completes
  // sends it).
  void upload_answered(Response response) {
    upload_answer_ = std::move(response);
    source_.reset();
    // A store that answered before the end of the body (a refusal, a failure) leaves the rest
    // unread: the connection cannot carry another request.
    if (!upload_parser_->is_done()) upload_answer_->keep_alive(false);
    if (!body_op_pending_) send_upload_answer();
  }

  void send_upload_answer() {
    Response response = std::move(*upload_answer_);
    upload_answer_.reset();
    upload_parser_.reset();
    interim_.reset();
    piece_ = std::vector<char>();
    write(std::move(response));
  }

  // ---- GET /store/KEY: the file streams out of the store ----

  void begin_download(const std::string& key, TransferSlot slot) {
    sink_ =
        std::make_shared<BodySink>(kTransferPiece, kTransferPieces, on_io(&Session::send_download));
    net::post(server_.transfers_, [self = shared_from_this(), key, slot = std::move(slot),
                                   sink = sink_, io = stream_.get_executor()]() mutable {
      {
        const TransferSlot held = std::move(slot);  // free once the worker's part is done
        self->fill_download(key, *sink, io);
      }
      // The sink holds the end (or the failure) now. Back to the I/O thread to send it, handing
      // it this reference: the connection may have no operation in flight to keep it alive.
      net::post(io, [self = std::move(self)] { self->send_download(); });
    });
  }

  // On a transfer worker: the catalog entry, then the content into `sink`, verified.
  void fill_download(const std::string& key, BodySink& sink, const Executor& io) {
    const Router& router = server_.router_;
    Response refusal = Router::reply(request_, 503, "the node is stopping\n");
    const std::optional<StoreFile> file =
        server_.stopping_ ? std::nullopt : router.download_stat(request_, key, remote_, refusal);
    if (!file) {
      return net::post(io, [self = shared_from_this(), refusal = std::move(refusal)]() mutable {
        self->end_download();
        self->write(std::move(refusal));
      });
    }
    net::post(io, [self = shared_from_this(), file = *file] {
      self->download_file_ = file;
      self->send_download();
    });
    const std::optional<Response> failure = router.download(request_, key, *file, sink, remote_);
    if (failure) return sink.fail(failure->result_int(), failure->body());
    sink.finish();
  }

  // Sends what the sink has: the header with the first piece, then piece after piece.
  void send_download() {
    if (!sink_ || !download_file_ || download_writing_) return;
    BodySink::Piece piece = sink_->next();
    switch (piece.kind) {
      case BodySink::Piece::Kind::wait:
        return;  // the sink calls back
      case BodySink::Piece::Kind::failed:
        if (!download_response_) {
          end_download();
          return write(Router::reply(request_, piece.status, std::move(piece.message)));
        }
        return abort_download(piece.message);
      case BodySink::Piece::Kind::chunk:
        download_chunk_ = std::move(piece.bytes);
        start_download_response();
        download_response_->body().data = download_chunk_.data();
        download_response_->body().size = download_chunk_.size();
        download_response_->body().more = true;
        break;
      case BodySink::Piece::Kind::end:
        start_download_response();
        download_response_->body().data = nullptr;
        download_response_->body().more = false;
        break;
    }
    download_writing_ = true;
    stream_.lowest().expires_after(server_.limits_.read_timeout);
    http::async_write(stream_, *serializer_,
                      beast::bind_front_handler(&Session::on_download_written, shared_from_this()));
  }

  void start_download_response() {
    if (download_response_) return;
    download_response_.emplace(http::status::ok, request_.version());
    set_common_headers(*download_response_, kOctets);
    set_file_headers(*download_response_, *download_file_);
    download_response_->keep_alive(request_.keep_alive());
    serializer_.emplace(*download_response_);
  }

  void on_download_written(beast::error_code ec, std::size_t) {
    download_writing_ = false;
    if (ec == http::error::need_buffer) ec = {};  // the piece went out; the body goes on
    if (ec) {
      sink_->cancel("the client's connection failed: " + ec.message());
      logger().debug("admin.connection_error", {{"remote", remote_}, {"error", ec.message()}});
      return end_download();
    }
    download_sent_ += download_chunk_.size();
    download_chunk_.clear();
    if (!serializer_->is_done()) return send_download();
    log_request(200);
    const bool close = download_response_->need_eof();
    end_download();
    next_request(close);
  }

  // The file failed verification after part of it went out: only a connection closed short of
  // Content-Length can tell the client.
  void abort_download(const std::string& reason) {
    logger().warning("admin.store_get_aborted", {{"path", Router::path_of(request_)},
                                                 {"remote", remote_},
                                                 {"sent", std::to_string(download_sent_)},
                                                 {"reason", trimmed(reason)}});
    end_download();
    beast::error_code ignored;  // closing is the message; a failure to close changes nothing
    stream_.lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.lowest().close();
  }

  void end_download() {
    sink_.reset();
    serializer_.reset();
    download_response_.reset();
    download_file_.reset();
    download_chunk_ = std::string();
    download_sent_ = 0;
  }

  MaybeTlsStream<beast::tcp_stream> stream_;
  Impl& server_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> header_parser_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Request request_;  // the whole request, or only its header for a streamed one
  bool header_known_ = false;
  Response response_;  // lives until async_write completes
  Clock::time_point received_;
  std::array<char, 4096> drain_buffer_;
  bool closed_ = false;

  // An upload in progress.
  std::optional<http::request_parser<http::buffer_body>> upload_parser_;
  std::shared_ptr<BodySource> source_;
  std::vector<char> piece_;  // what one read of the body fills
  bool expect_continue_ = false;
  std::optional<http::response<http::empty_body>> interim_;  // "100 Continue"
  bool body_op_pending_ = false;
  std::optional<Response> upload_answer_;

  // A download in progress.
  std::shared_ptr<BodySink> sink_;
  std::optional<StoreFile> download_file_;
  std::optional<http::response<http::buffer_body>> download_response_;
  std::optional<http::response_serializer<http::buffer_body>> serializer_;
  std::string download_chunk_;  // the piece being written
  std::uint64_t download_sent_ = 0;
  bool download_writing_ = false;
};

std::optional<TransferSlot> AdminServer::Impl::take_transfer() {
  if (transfer_count_.fetch_add(1) >= limits_.max_transfers) {
    transfer_count_.fetch_sub(1);
    return std::nullopt;
  }
  return TransferSlot(transfer_count_);
}

void AdminServer::Impl::start() {
  if (thread_.joinable() || stopping_)
    throw std::logic_error("AdminServer::start: already started or stopped");
  const auto fail = [&](const std::string& reason) {
    return std::runtime_error("admin endpoint: cannot listen on " + listen_ + " (" + reason + ")");
  };
  HostPort address;
  try {
    address = parse_host_port(listen_);
  } catch (const std::invalid_argument& e) {
    throw fail(e.what());
  }
  beast::error_code ec;
  tcp::resolver resolver(io_);
  const auto endpoints =
      resolver.resolve(address.host, std::to_string(address.port),
                       tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec) throw fail(as_reason(ec.message()));
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  if (!tls_cert_.empty()) tls_ = server_tls_context(tls_cert_, tls_key_);
  router_.listening_on(address.host, endpoint.address().is_loopback());
  acceptor_.open(endpoint.protocol(), ec);
  // So that a restarted node can bind while connections of the previous one linger in TIME_WAIT.
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;  // nothing more to report than the failure above
    acceptor_.close(ignored);
    throw fail(as_reason(ec.message()));
  }
  port_ = acceptor_.local_endpoint().port();
  logger().info("admin.listening",
                {{"address", format_host_port(endpoint.address().to_string(), port_)},
                 {"scheme", tls_ ? "https" : "http"}});
  accept();
  thread_ = std::thread([this] { run(); });
}

void AdminServer::Impl::run() {
  // A handler that throws (out of memory, a bug) loses the connection it served; the endpoint
  // goes on serving the others.
  log::keep_running(logger(), "admin.handler_failed", [this] { io_.run(); });
}

void AdminServer::Impl::stop() {
  if (stopping_.exchange(true) || !thread_.joinable()) return;
  std::promise<void> closed;
  net::post(io_, [this, &closed] {
    beast::error_code ignored;  // closing a listener we are abandoning: nothing to report
    acceptor_.close(ignored);
    accept_retry_.cancel();
    for (const auto& weak : sessions_) {
      if (const auto session = weak.lock()) session->close();
    }
    closed.set_value();
  });
  // Once every connection is closed no request reaches the workers any more. Operations already
  // running finish and post their answers back (to closed connections); queued ones see
  // stopping_ and do not call the Model. A transfer blocked on its connection was told by
  // Session::close() that it will not complete.
  closed.get_future().wait();
  workers_.join();
  transfers_.join();
  work_.reset();
  thread_.join();
  logger().info("admin.stopped", {});
}

void AdminServer::Impl::accept() {
  acceptor_.async_accept(
      io_, [this](beast::error_code ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
}

void AdminServer::Impl::on_accept(beast::error_code ec, tcp::socket socket) {
  if (!acceptor_.is_open()) return;
  if (ec) {
    // Typically out of file descriptors: the pending connection stays queued, so accepting again
    // at once would spin.
    logger().warning("admin.accept_failed", {{"error", ec.message()}});
    accept_retry_.expires_after(std::chrono::milliseconds(100));
    accept_retry_.async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec) accept();
    });
    return;
  }
  if (live_sessions() >= limits_.max_connections) {
    refuse_busy(std::move(socket));
  } else {
    auto session = std::make_shared<Session>(std::move(socket), *this);
    sessions_.push_back(session);
    session->start();
  }
  accept();
}

std::size_t AdminServer::Impl::live_sessions() {
  sessions_.remove_if([](const std::weak_ptr<Session>& weak) { return weak.expired(); });
  return sessions_.size();
}

void AdminServer::Impl::refuse_busy(tcp::socket socket) {
  static const std::string kBusy = [] {
    const std::string body = "too many connections to the admin endpoint; retry later\n";
    return "HTTP/1.1 503 Service Unavailable\r\nServer: emsnode\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\n"
           "Connection: close\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }();
  beast::error_code ec;
  const tcp::endpoint peer = socket.remote_endpoint(ec);
  logger().warning(
      "admin.refused",
      {{"reason", "too_many_connections"},
       {"limit", std::to_string(limits_.max_connections)},
       {"remote", ec ? "unknown" : format_host_port(peer.address().to_string(), peer.port())}});
  // One non-blocking attempt: a fresh socket's send buffer takes these few bytes, and a client
  // that is gone must not cost us a wait. Either way the connection is closed. A TLS client is
  // not worth a handshake here: it only sees the connection closed.
  socket.non_blocking(true, ec);
  if (!ec && !tls_) socket.write_some(net::buffer(kBusy.data(), kBusy.size()), ec);
  if (ec) logger().debug("admin.busy_reply_failed", {{"error", ec.message()}});
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

AdminServer::AdminServer(std::string listen, const ServerSecurity& security, Model model,
                         ServerLimits limits)
    : impl_(std::make_unique<Impl>(std::move(listen), security, std::move(model), limits)) {}

AdminServer::~AdminServer() {
  stop();
}

void AdminServer::start() {
  impl_->start();
}
void AdminServer::stop() {
  impl_->stop();
}
std::uint16_t AdminServer::port() const {
  return impl_->port();
}

}  // namespace emsnode::admin
