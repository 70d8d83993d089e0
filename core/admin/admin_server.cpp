#include "admin/admin_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <future>
#include <list>
#include <map>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "admin/address.hpp"
#include "admin/render.hpp"
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
constexpr std::string_view kHealthzPath = "/healthz/active";
// Model operations may block (a database read, a switchover that stops plugins); two workers let
// a status read proceed while a switchover runs.
constexpr std::size_t kWorkers = 2;
// Longest request path written into a log record.
constexpr std::size_t kLoggedPathMax = 200;

const log::Logger& logger() {
  static const log::Logger instance{"admin"};
  return instance;
}

std::string_view to_std(beast::string_view text) {
  return {text.data(), text.size()};
}

// Compares every byte whatever the contents, so the time taken does not reveal how much of a
// guessed token was right.
bool same_secret(std::string_view given, std::string_view expected) {
  unsigned char difference = given.size() == expected.size() ? 0 : 1;
  const std::size_t n = std::max(given.size(), expected.size());
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char a = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    const unsigned char b = i < expected.size() ? static_cast<unsigned char>(expected[i]) : 0;
    difference |= static_cast<unsigned char>(a ^ b);
  }
  return difference == 0;
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
  healthz,
  metrics,
  switchover,
  pause,
  resume,
  settings,
  setting
};

struct Route {
  Endpoint endpoint;
  std::string key;  // Endpoint::setting: the decoded KEY of /settings/KEY
};

std::optional<Route> match(std::string_view path) {
  static const std::pair<std::string_view, Endpoint> kFixed[] = {
      {"/", Endpoint::page},
      {"/status", Endpoint::status},
      {kHealthzPath, Endpoint::healthz},
      {"/metrics", Endpoint::metrics},
      {"/switchover", Endpoint::switchover},
      {"/pause", Endpoint::pause},
      {"/resume", Endpoint::resume},
      {"/settings", Endpoint::settings},
  };
  for (const auto& [fixed, endpoint] : kFixed) {
    if (path == fixed) return Route{endpoint, {}};
  }
  constexpr std::string_view kSettingPrefix = "/settings/";
  if (path.size() > kSettingPrefix.size() &&
      path.substr(0, kSettingPrefix.size()) == kSettingPrefix) {
    return Route{Endpoint::setting, percent_decode(path.substr(kSettingPrefix.size()), false)};
  }
  return std::nullopt;
}

// The methods an endpoint answers, as the Allow header lists them.
std::string_view allowed_methods(Endpoint endpoint) {
  switch (endpoint) {
    case Endpoint::switchover:
    case Endpoint::pause:
    case Endpoint::resume:
      return "POST";
    case Endpoint::setting:
      return "GET, HEAD, PUT";
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
      return method == http::verb::post;
    case Endpoint::setting:
      return read || method == http::verb::put;
    default:
      return read;
  }
}

bool changes_state(http::verb method) {
  return method == http::verb::post || method == http::verb::put;
}

// Turns requests into responses by calling the Model. Stateless: called from the I/O thread
// (health checks) and from the workers (everything else) at once.
class Router {
 public:
  Router(std::optional<std::string> token, Model model)
      : token_(std::move(token)), model_(std::move(model)) {}

  Response route(const Request& request, const std::string& remote) const {
    try {
      return route_or_throw(request, remote);
    } catch (const BadRequest& e) {
      return reply(request, 400, std::string(e.what()) + "\n");
    } catch (const OperationError& e) {
      const unsigned status = e.status() >= 400 && e.status() <= 599 ? e.status() : 500;
      logger().warning("admin.operation_refused", {{"method", method_of(request)},
                                                   {"path", path_of(request)},
                                                   {"status", std::to_string(status)},
                                                   {"error", e.what()}});
      return reply(request, status, std::string(e.what()) + "\n");
    } catch (const std::exception& e) {
      logger().error(
          "admin.operation_failed",
          {{"method", method_of(request)}, {"path", path_of(request)}, {"error", e.what()}});
      return reply(request, 500, "internal error: " + std::string(e.what()) + "\n");
    }
  }

  static Response reply(const Request& request, unsigned status, std::string body,
                        std::string_view content_type = kText) {
    Response response;
    response.version(request.version());
    response.result(status);
    response.set(http::field::server, "emsnode");
    response.set(http::field::content_type,
                 beast::string_view(content_type.data(), content_type.size()));
    response.set(http::field::cache_control, "no-store");
    response.set("X-Content-Type-Options", "nosniff");
    response.keep_alive(request.keep_alive());
    response.body() = std::move(body);
    response.prepare_payload();
    // HEAD: the headers GET would send, Content-Length included, and no body.
    if (request.method() == http::verb::head) response.body().clear();
    return response;
  }

  static std::string path_of(const Request& request) {
    const std::string_view target = to_std(request.target());
    return printable(target.substr(0, std::min(target.find('?'), kLoggedPathMax)));
  }

  static std::string method_of(const Request& request) {
    return printable(to_std(request.method_string()));
  }

 private:
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
    if (changes_state(request.method())) {
      if (std::optional<Response> refusal = authorize(request, remote)) return *refusal;
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
      case Endpoint::healthz:
        return model_.is_active() ? reply(request, 200, "active\n")
                                  : reply(request, 503, "passive\n");
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
    }
    throw std::logic_error("admin: endpoint without a handler");  // the switch covers them all
  }

  // A refusal when `request` does not carry the configured token; nullopt when it does.
  std::optional<Response> authorize(const Request& request, const std::string& remote) const {
    const auto refuse = [&](const char* reason) {
      logger().warning("admin.refused", {{"reason", reason},
                                         {"method", method_of(request)},
                                         {"path", path_of(request)},
                                         {"remote", remote}});
    };
    if (!token_) {
      refuse("no_token_configured");
      return reply(request, 403,
                   "refused: this node accepts no state-changing request until a token is set "
                   "([admin] token in its config)\n");
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
    if (given.empty() || !same_secret(given, *token_)) {
      refuse(header.empty() ? "no_token" : "wrong_token");
      Response response =
          reply(request, 401,
                "refused: missing or wrong token (send Authorization: Bearer <[admin] token>)\n");
      response.set(http::field::www_authenticate, "Bearer realm=\"emsnode\"");
      return response;
    }
    return std::nullopt;
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

  const std::optional<std::string> token_;
  const Model model_;
};

}  // namespace

class AdminServer::Impl {
 public:
  Impl(std::string listen, std::optional<std::string> token, Model model, ServerLimits limits)
      : listen_(std::move(listen)), limits_(limits), router_(std::move(token), std::move(model)) {}

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

  const std::string listen_;
  const ServerLimits limits_;
  const Router router_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};

  net::io_context io_;
  net::executor_work_guard<net::io_context::executor_type> work_{io_.get_executor()};
  tcp::acceptor acceptor_{io_};
  net::steady_timer accept_retry_{io_};
  std::list<std::weak_ptr<Session>> sessions_;  // touched on the I/O thread only
  net::thread_pool workers_{kWorkers};
  std::thread thread_;
};

// One connection: reads requests one at a time (keep-alive), answers each, and closes on error,
// on a timeout, or when either side asks.
class AdminServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Impl& server) : stream_(std::move(socket)), server_(server) {
    beast::error_code ec;
    const tcp::endpoint peer = stream_.socket().remote_endpoint(ec);
    remote_ = ec ? "unknown" : format_host_port(peer.address().to_string(), peer.port());
  }

  void start() { read(); }

  // From stop(): ends whatever is pending; the handlers then see operation_aborted.
  void close() {
    beast::error_code ignored;  // the socket may already be closed by a timeout; nothing to do
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.limits_.header_limit));
    parser_->body_limit(server_.limits_.body_limit);
    stream_.expires_after(server_.limits_.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream) return close_gracefully();  // between requests
    if (ec == beast::error::timeout) {
      // An idle keep-alive connection is closed quietly; a trickled request is worth a warning.
      if (parser_->got_some()) refused("read_timeout");
      return;  // the stream closed the socket
    }
    if (ec == http::error::body_limit) {
      return reject(413,
                    "request body over " + std::to_string(server_.limits_.body_limit) + " bytes\n",
                    "body_too_large");
    }
    if (ec == http::error::header_limit) {
      return reject(
          431, "request header over " + std::to_string(server_.limits_.header_limit) + " bytes\n",
          "header_too_large");
    }
    if (ec.category() == http::make_error_code(http::error::bad_method).category()) {
      return reject(400, "malformed HTTP request: " + ec.message() + "\n", "malformed");
    }
    if (ec) {
      if (ec != net::error::operation_aborted) {
        logger().debug("admin.connection_error", {{"remote", remote_}, {"error", ec.message()}});
      }
      return;
    }
    request_ = parser_->release();
    received_ = Clock::now();
    const std::string_view target = to_std(request_.target());
    if (target.substr(0, target.find('?')) == kHealthzPath) {
      // Cheap by contract (Model::is_active), and must answer even while a slow operation
      // occupies the workers.
      return write(server_.router_.route(request_, remote_));
    }
    net::post(server_.workers_, [self = shared_from_this(), io = stream_.get_executor()]() mutable {
      Response response = self->server_.stopping_
                              ? Router::reply(self->request_, 503, "the node is stopping\n")
                              : self->server_.router_.route(self->request_, self->remote_);
      // Back to the I/O thread, handing it the last reference: a Session ends where it lives.
      net::post(io, [self = std::move(self), response = std::move(response)]() mutable {
        self->write(std::move(response));
      });
    });
  }

  void refused(const char* reason) {
    logger().warning("admin.refused", {{"reason", reason}, {"remote", remote_}});
  }

  // Answers a request that cannot be read to its end, then closes.
  void reject(unsigned status, std::string message, const char* reason) {
    refused(reason);
    received_ = Clock::now();
    request_ = {};
    request_.method_string(parser_->is_header_done() ? parser_->get().method_string() : "-");
    request_.target(parser_->is_header_done() ? parser_->get().target() : "-");
    request_.keep_alive(false);
    write(Router::reply(request_, status, std::move(message)));
  }

  void write(Response response) {
    response_ = std::move(response);
    if (logger().enabled(log::Level::debug)) {
      const auto elapsed =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - received_);
      logger().debug("admin.request", {{"method", Router::method_of(request_)},
                                       {"path", Router::path_of(request_)},
                                       {"status", std::to_string(response_.result_int())},
                                       {"elapsed_ms", std::to_string(elapsed.count())}});
    }
    stream_.expires_after(server_.limits_.read_timeout);
    http::async_write(stream_, response_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        if (ec) return;  // the client went away; nothing left to answer
                        if (self->response_.need_eof()) return self->close_gracefully();
                        self->read();
                      });
  }

  // Closes our side and reads until the client closes too (or read_timeout), so that the unread
  // rest of a rejected request does not make the kernel reset the connection and discard the
  // response before the client read it.
  void close_gracefully() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return;  // already gone
    stream_.expires_after(server_.limits_.read_timeout);
    drain();
  }

  void drain() {
    stream_.async_read_some(net::buffer(drain_buffer_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (!ec) self->drain();
                            });
  }

  beast::tcp_stream stream_;
  Impl& server_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Request request_;
  Response response_;  // lives until async_write completes
  Clock::time_point received_;
  std::array<char, 4096> drain_buffer_;
};

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
                {{"address", format_host_port(endpoint.address().to_string(), port_)}});
  accept();
  thread_ = std::thread([this] { run(); });
}

void AdminServer::Impl::run() {
  for (;;) {
    try {
      io_.run();
      return;
    } catch (const std::exception& e) {
      // A handler threw (out of memory, a bug): the connection it served is lost, the endpoint
      // goes on serving the others.
      logger().error("admin.handler_failed", {{"error", e.what()}});
    }
  }
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
  // stopping_ and do not call the Model.
  closed.get_future().wait();
  workers_.join();
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
  // that is gone must not cost us a wait. Either way the connection is closed.
  socket.non_blocking(true, ec);
  if (!ec) socket.write_some(net::buffer(kBusy.data(), kBusy.size()), ec);
  if (ec) logger().debug("admin.busy_reply_failed", {{"error", ec.message()}});
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

AdminServer::AdminServer(std::string listen, std::optional<std::string> token, Model model,
                         ServerLimits limits)
    : impl_(std::make_unique<Impl>(std::move(listen), std::move(token), std::move(model), limits)) {
}

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
