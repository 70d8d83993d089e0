#include "admin/store_client.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <system_error>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "admin/address.hpp"
#include "admin/render.hpp"
#include "admin/tls.hpp"

namespace emsnode::admin {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace fs = std::filesystem;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// What one read of the source or the connection moves.
constexpr std::size_t kPiece = 256 * 1024;
constexpr std::chrono::milliseconds kConnectTimeout = 5s;
// A transfer with no progress for this long is given up. Generous, because after the last byte of
// a put the node syncs the file to the share before it answers.
constexpr std::chrono::milliseconds kIdleTimeout = 5min;
// A migration answers once every file is copied: no timeout but the operator's patience.
constexpr std::chrono::milliseconds kMigrationTimeout = std::chrono::hours(24 * 7);
// An answer other than a file is a line or two; a longer one is not read.
constexpr std::uint64_t kAnswerLimit = 64 * 1024;

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// What the node said, or its status when it said nothing.
std::string message_of(unsigned status, const std::string& body) {
  const std::string message = trimmed(body);
  return message.empty() ? "the node answered HTTP " + std::to_string(status) : message;
}

// An incremental SHA-256 of what arrives, to compare with the node's X-Emsnode-Sha256.
class Sha256 {
 public:
  Sha256() : context_(EVP_MD_CTX_new()) {
    if (!context_ || EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr) != 1) {
      throw ClientError("cannot compute SHA-256: OpenSSL failed to initialise");
    }
  }
  void update(const char* data, std::size_t size) { EVP_DigestUpdate(context_.get(), data, size); }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(context_.get(), digest, &size);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < size; ++i) {
      out += kHex[digest[i] >> 4];
      out += kHex[digest[i] & 15];
    }
    return out;
  }

 private:
  struct Free {
    void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> context_;
};

// A file written beside `target` under a hidden temporary name, and renamed to `target` only by
// commit(): until then, and whatever fails, nothing appears at `target`.
class TempFile {
 public:
  explicit TempFile(const std::string& target) : target_(target) {
    const fs::path path(target);
    const fs::path folder = path.has_parent_path() ? path.parent_path() : fs::path(".");
    std::string name = (folder / ("." + path.filename().string() + ".emsnode-XXXXXX")).string();
    fd_ = ::mkstemp(name.data());
    if (fd_ < 0) fail("create a temporary file beside");
    path_ = name;
    // mkstemp makes it 0600; a downloaded file gets the mode any new file would.
    const mode_t mask = ::umask(0);
    ::umask(mask);
    ::fchmod(fd_, 0666 & ~mask);
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const char* data, std::size_t size) {
    while (size > 0) {
      const ssize_t n = ::write(fd_, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail("write");
      data += n;
      size -= static_cast<std::size_t>(n);
    }
  }

  // Puts the content on disk, then in place.
  void commit() {
    if (::fsync(fd_) != 0) fail("write");
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) fail("write");
    if (::rename(path_.c_str(), target_.c_str()) != 0) fail("move the verified file into place");
    committed_ = true;
  }

 private:
  [[noreturn]] void fail(const std::string& action) const {
    throw ClientError("cannot " + action + " " + target_ + ": " + std::strerror(errno));
  }

  std::string target_;
  std::string path_;
  int fd_ = -1;
  bool committed_ = false;
};

// One connection to the node's admin endpoint (TLS when the target says so), driven from this
// thread: run_until() runs the completion handlers of what was started on stream() until a
// condition holds. Several operations
// may be in flight at once (a put reads the answer while it sends the body).
class Connection {
 public:
  explicit Connection(const Target& target)
      : where_(format_host_port(target.host, target.port)), stream_(io_, tls_context_for(target)) {
    if (stream_.tls()) expect_server_name(stream_.tls()->native_handle(), target.host);
    beast::error_code ec;
    tcp::resolver resolver(io_);
    const auto endpoints = resolver.resolve(target.host, std::to_string(target.port),
                                            tcp::resolver::numeric_service, ec);
    if (ec) throw unreachable(as_reason(ec.message()));
    bool connected = false;
    net::async_connect(stream_.lowest(), endpoints,
                       [&](beast::error_code connect_ec, const tcp::endpoint&) {
                         ec = connect_ec;
                         connected = true;
                       });
    const std::string timed_out =
        "timed out after " + std::to_string(kConnectTimeout.count() / 1000) + "s";
    if (!run_until([&] { return connected; }, kConnectTimeout)) throw unreachable(timed_out);
    if (ec) throw unreachable(as_reason(ec.message()));
    if (stream_.tls()) {
      bool secured = false;
      stream_.tls()->async_handshake(net::ssl::stream_base::client, [&](beast::error_code tls_ec) {
        ec = tls_ec;
        secured = true;
      });
      if (!run_until([&] { return secured; }, kConnectTimeout)) throw unreachable(timed_out);
      if (ec) {
        throw ClientError("no secure connection to the node's admin endpoint at " + where_ + " (" +
                          handshake_failure(ec, stream_.tls()->native_handle()) + ")");
      }
    }
    // Beast sizes each read by the buffer's free capacity: room for a piece makes big reads.
    buffer_.reserve(kPiece);
  }

  MaybeTlsStream<tcp::socket>& stream() { return stream_; }
  void close() {
    beast::error_code ignored;  // closing is how the pending operations end
    stream_.lowest().close(ignored);
  }
  beast::flat_buffer& buffer() { return buffer_; }
  const std::string& where() const { return where_; }

  // False when nothing completed for `idle`; the socket is closed then.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds idle = kIdleTimeout) {
    while (!done()) {
      if (io_.stopped()) io_.restart();
      if (io_.run_one_for(idle) == 0 && !done()) {
        close();
        return false;
      }
    }
    return true;
  }

  // Waits for the operation whose handler sets `done` and `ec`; throws ClientError when it fails
  // or never completes.
  void await(const bool& done, const beast::error_code& ec, const std::string& what) {
    if (!run_until([&] { return done; })) {
      throw no_answer("nothing happened for " + std::to_string(kIdleTimeout.count() / 1000) +
                      "s while " + what);
    }
    if (ec) throw no_answer(as_reason(ec.message()) + " while " + what);
  }

  ClientError no_answer(const std::string& reason) const {
    return ClientError("the node's admin endpoint at " + where_ + " did not answer (" + reason +
                       ")");
  }

 private:
  ClientError unreachable(const std::string& reason) const {
    return ClientError("cannot reach the node's admin endpoint at " + where_ + " (" + reason +
                       "): is emsnode running with this config?");
  }

  std::string where_;
  net::io_context io_;
  MaybeTlsStream<tcp::socket> stream_;
  beast::flat_buffer buffer_;
};

template <typename Body>
void set_request_headers(http::request<Body>& request, const Target& target,
                         const std::string& where) {
  request.set(http::field::host, where);
  request.set(http::field::user_agent, "emsnode-cli");
  if (target.token) request.set(http::field::authorization, "Bearer " + *target.token);
  request.keep_alive(false);
}

// Prints a final answer: its body on `out` when it is a success, its message on `err` otherwise.
int report(const http::response<http::string_body>& answer, StoreStreams& streams) {
  const unsigned status = answer.result_int();
  if (status >= 200 && status < 300) {
    streams.out << trimmed(answer.body()) << '\n';
    return kExitOk;
  }
  streams.err << "emsnode: " << message_of(status, answer.body()) << '\n';
  return kExitFailure;
}

int put_content(const Target& target, const std::string& key, std::istream& in,
                std::optional<std::uint64_t> size, StoreStreams& streams) {
  Connection connection(target);
  http::request<http::buffer_body> request{http::verb::put, "/store/" + percent_encode(key), 11};
  set_request_headers(request, target, connection.where());
  request.set(http::field::content_type, "application/octet-stream");
  // The node answers "100 Continue" once its store reads, or refuses at once: no body is sent
  // to a node that would discard it.
  request.set(http::field::expect, "100-continue");
  if (size) {
    request.content_length(*size);
  } else {
    request.chunked(true);
  }
  request.body().data = nullptr;
  request.body().more = true;
  http::request_serializer<http::buffer_body> serializer(request);

  bool done = false;
  beast::error_code ec;
  http::async_write_header(connection.stream(), serializer, [&](beast::error_code e, std::size_t) {
    ec = e;
    done = true;
  });
  connection.await(done, ec, "sending the request");

  http::response_parser<http::string_body> first;
  first.body_limit(kAnswerLimit);
  done = false;
  http::async_read(connection.stream(), connection.buffer(), first,
                   [&](beast::error_code e, std::size_t) {
                     ec = e;
                     done = true;
                   });
  connection.await(done, ec, "waiting for the node to accept the file");
  if (first.get().result() != http::status::continue_) return report(first.get(), streams);

  // The body goes out while the node's answer is awaited: a node that fails in the middle (its
  // store full) answers before the end, and is heard.
  http::response_parser<http::string_body> answer;
  answer.body_limit(kAnswerLimit);
  bool answered = false;
  beast::error_code answer_ec;
  http::async_read(connection.stream(), connection.buffer(), answer,
                   [&](beast::error_code e, std::size_t) {
                     answer_ec = e;
                     answered = true;
                   });
  Progress progress(streams.progress, "put " + key, size);
  std::vector<char> piece(kPiece);
  bool input_failed = false;
  beast::error_code body_ec;
  std::function<void()> send_next = [&] {
    in.read(piece.data(), static_cast<std::streamsize>(piece.size()));
    if (in.bad()) {
      // A cut body: the node's store fails the put and publishes nothing.
      input_failed = true;
      connection.close();
      return;
    }
    const auto n = static_cast<std::size_t>(in.gcount());
    request.body().data = n > 0 ? piece.data() : nullptr;
    request.body().size = n;
    request.body().more = n > 0;
    http::async_write(connection.stream(), serializer, [&, n](beast::error_code e, std::size_t) {
      if (e == http::error::need_buffer) e = {};  // the piece went out
      if (e) {
        body_ec = e;
        return;
      }
      progress.advance(n);
      if (n > 0 && !answered) send_next();
    });
  };
  send_next();
  const bool finished = connection.run_until([&] { return answered; });
  progress.finish();
  if (input_failed) {
    streams.err << "emsnode: reading " << (size ? "the file" : "standard input")
                << " failed; nothing was stored\n";
    return kExitFailure;
  }
  if (!finished) {
    throw connection.no_answer("nothing happened for " +
                               std::to_string(kIdleTimeout.count() / 1000) +
                               "s while the file was being stored");
  }
  if (answer_ec) {
    const std::string reason = as_reason((body_ec ? body_ec : answer_ec).message());
    throw connection.no_answer(reason + " while the file was being sent; nothing was stored");
  }
  return report(answer.get(), streams);
}

// The rest of an answer that is not the file: the node's message.
std::string read_message(Connection& connection, http::response_parser<http::buffer_body>& parser) {
  std::string message;
  std::array<char, 4096> piece;
  while (!parser.is_done() && message.size() < kAnswerLimit) {
    parser.get().body().data = piece.data();
    parser.get().body().size = piece.size();
    bool done = false;
    beast::error_code ec;
    http::async_read_some(connection.stream(), connection.buffer(), parser,
                          [&](beast::error_code e, std::size_t) {
                            ec = e;
                            done = true;
                          });
    if (!connection.run_until([&] { return done; })) break;
    message.append(piece.data(), piece.size() - parser.get().body().size);
    if (ec && ec != http::error::need_buffer) break;
  }
  return message;
}

int get_content(const Target& target, const std::string& key, const std::string& file,
                StoreStreams& streams) {
  Connection connection(target);
  http::request<http::empty_body> request{http::verb::get, "/store/" + percent_encode(key), 11};
  set_request_headers(request, target, connection.where());
  bool done = false;
  beast::error_code ec;
  http::async_write(connection.stream(), request, [&](beast::error_code e, std::size_t) {
    ec = e;
    done = true;
  });
  connection.await(done, ec, "sending the request");

  http::response_parser<http::buffer_body> parser;
  // The file's size is the node's business. Not boost::none: Beast 1.74 compares a
  // Content-Length with the optional, and any length exceeds none.
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  done = false;
  http::async_read_header(connection.stream(), connection.buffer(), parser,
                          [&](beast::error_code e, std::size_t) {
                            ec = e;
                            done = true;
                          });
  connection.await(done, ec, "waiting for the file");
  const unsigned status = parser.get().result_int();
  if (status != 200) {
    streams.err << "emsnode: " << message_of(status, read_message(connection, parser)) << '\n';
    return kExitFailure;
  }
  const std::string expected(parser.get()["X-Emsnode-Sha256"]);
  if (expected.size() != 64) {
    streams.err << "emsnode: the node sent " << printable(key)
                << " without its SHA-256 (X-Emsnode-Sha256): it cannot be verified\n";
    return kExitFailure;
  }
  std::optional<std::uint64_t> length;
  if (const auto declared = parser.content_length()) length = *declared;

  const bool to_stdout = file == "-";
  std::optional<TempFile> temp;
  if (!to_stdout) temp.emplace(file);
  const std::string where = to_stdout ? "standard output" : file;
  Sha256 sha;
  Progress progress(streams.progress, "get " + key, length);
  std::vector<char> piece(kPiece);
  std::uint64_t received = 0;
  while (!parser.is_done()) {
    parser.get().body().data = piece.data();
    parser.get().body().size = piece.size();
    done = false;
    http::async_read_some(connection.stream(), connection.buffer(), parser,
                          [&](beast::error_code e, std::size_t) {
                            ec = e;
                            done = true;
                          });
    const bool moved = connection.run_until([&] { return done; });
    if (ec == http::error::need_buffer) ec = {};  // the piece is full
    const std::size_t n = piece.size() - parser.get().body().size;
    if (n > 0) {
      sha.update(piece.data(), n);
      if (temp) {
        temp->write(piece.data(), n);
      } else if (!streams.out.write(piece.data(), static_cast<std::streamsize>(n))) {
        streams.err << "emsnode: cannot write to standard output\n";
        return kExitFailure;
      }
      received += n;
      progress.advance(n);
    }
    if (!moved || ec) {
      progress.finish();
      const std::string reason = moved ? as_reason(ec.message()) : "the node went silent";
      streams.err << "emsnode: the transfer of " << printable(key) << " was cut short after "
                  << received << " of " << (length ? std::to_string(*length) : "?") << " bytes ("
                  << reason
                  << "): the node found it corrupt or the connection failed; see the node's log"
                  << (to_stdout ? "; discard what was written" : "; " + file + " was not written")
                  << '\n';
      return kExitFailure;
    }
  }
  progress.finish();
  const std::string actual = sha.hex();
  if (actual != expected) {
    streams.err << "emsnode: " << printable(key) << " arrived with SHA-256 " << actual
                << ", the store's catalog says " << printable(expected)
                << (to_stdout ? "; discard what was written" : "; " + file + " was not written")
                << '\n';
    return kExitFailure;
  }
  if (to_stdout) {
    if (!streams.out.flush()) {
      streams.err << "emsnode: cannot write to standard output\n";
      return kExitFailure;
    }
    return kExitOk;
  }
  temp->commit();
  streams.out << "got " << printable(key) << ": " << received << " bytes into " << where
              << ", sha256 " << actual << " verified\n";
  return kExitOk;
}

constexpr const char* kUsage =
    "emsnode: usage: emsnode store put KEY FILE|- | get KEY FILE|- | stat KEY | ls [PREFIX] | "
    "rm KEY | migrate --to blob|share\n";

}  // namespace

int store_put(const Target& target, const std::string& key, const std::string& file,
              StoreStreams& streams) {
  std::ifstream opened;
  std::istream* in = &streams.in;
  std::optional<std::uint64_t> size;
  if (file != "-") {
    opened.open(file, std::ios::binary);
    if (!opened) {
      streams.err << "emsnode: cannot read " << file << ": " << std::strerror(errno) << '\n';
      return kExitFailure;
    }
    // A regular file's size goes in Content-Length; a pipe's is unknown and goes chunked.
    std::error_code ec;
    if (fs::is_regular_file(file, ec)) size = fs::file_size(file, ec);
    if (ec) size.reset();
    in = &opened;
  }
  try {
    return put_content(target, key, *in, size, streams);
  } catch (const ClientError& e) {
    streams.err << "emsnode: " << e.what() << '\n';
    return kExitFailure;
  }
}

int store_get(const Target& target, const std::string& key, const std::string& file,
              StoreStreams& streams) {
  try {
    return get_content(target, key, file, streams);
  } catch (const ClientError& e) {
    streams.err << "emsnode: " << e.what() << '\n';
    return kExitFailure;
  }
}

int store_verb(const Target& target, const std::vector<std::string>& args, StoreStreams& streams) {
  const std::string verb = args.empty() ? std::string() : args[0];
  const std::size_t operands = args.size() - (args.empty() ? 0 : 1);
  if (verb == "put" && operands == 2) return store_put(target, args[1], args[2], streams);
  if (verb == "get" && operands == 2) return store_get(target, args[1], args[2], streams);
  if (verb == "stat" && operands == 1) {
    return send_and_print(target, "GET", "/store-stat/" + percent_encode(args[1]) + "?format=text",
                          streams.out, streams.err);
  }
  if (verb == "ls" && operands <= 1) {
    const std::string prefix = operands == 1 ? args[1] : std::string();
    return send_and_print(target, "GET", "/store?format=text&prefix=" + percent_encode(prefix),
                          streams.out, streams.err);
  }
  if (verb == "rm" && operands == 1) {
    return send_and_print(target, "DELETE", "/store/" + percent_encode(args[1]), streams.out,
                          streams.err);
  }
  if (verb == "migrate" && operands == 1 && (args[1] == "blob" || args[1] == "share")) {
    return send_and_print(target, "POST", "/store-migrate?to=" + args[1], streams.out, streams.err,
                          "", kMigrationTimeout);
  }
  streams.err << kUsage;
  return kExitUsage;
}

Progress::Progress(std::ostream* terminal, std::string label, std::optional<std::uint64_t> total,
                   std::function<Clock::time_point()> now)
    : terminal_(terminal),
      label_(printable(label.size() > 40 ? label.substr(0, 37) + "..." : label)),
      total_(total),
      now_(std::move(now)),
      started_(now_()) {}

bool Progress::worth_drawing() const {
  return terminal_ != nullptr && (total_ ? *total_ : done_) > kMinBytes;
}

void Progress::advance(std::uint64_t bytes) {
  done_ += bytes;
  if (!worth_drawing()) return;
  const Clock::time_point now = now_();
  if (drawn_width_ > 0 && now - drawn_at_ < 100ms) return;
  drawn_at_ = now;
  draw();
}

void Progress::finish() {
  if (!worth_drawing()) return;
  draw();
  *terminal_ << '\n' << std::flush;
}

void Progress::draw() {
  std::string line = label_ + "  " + format_bytes(done_);
  if (total_) {
    const unsigned percent =
        *total_ == 0
            ? 100
            : static_cast<unsigned>(std::min<std::uint64_t>(done_, *total_) * 100 / *total_);
    line += " / " + format_bytes(*total_) + "  " + std::to_string(percent) + "%";
  }
  const double seconds = std::chrono::duration<double>(now_() - started_).count();
  if (seconds > 0) {
    line += "  " + format_bytes(static_cast<std::uint64_t>(static_cast<double>(done_) / seconds)) +
            "/s";
  }
  // Spaces wipe what a longer previous line left.
  const std::size_t width = line.size();
  if (width < drawn_width_) line.append(drawn_width_ - width, ' ');
  drawn_width_ = std::max(width, std::size_t{1});
  *terminal_ << '\r' << line << std::flush;
}

}  // namespace emsnode::admin
