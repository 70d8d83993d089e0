// HTTPS for the admin endpoint and its clients: the OpenSSL contexts, and a stream that speaks
// TLS or plain TCP over the same next layer, so that one piece of HTTP code serves both.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

namespace emsnode::admin {

// The endpoint's context: TLS 1.2 at least, the certificate chain and key from PEM files.
// Throws std::runtime_error naming the file and OpenSSL's reason when one cannot be used.
std::shared_ptr<boost::asio::ssl::context> server_tls_context(const std::filesystem::path& cert,
                                                              const std::filesystem::path& key);

// A client's context: verifies the server's certificate against the CA certificates in `ca`
// (PEM), or against the system's trust store when `ca` is empty. Throws std::runtime_error
// naming the file when it cannot be read.
std::shared_ptr<boost::asio::ssl::context> client_tls_context(const std::filesystem::path& ca);

// A client stream about to hand-shake with `host`: sends it as SNI (unless it is an IP address)
// and accepts only a certificate issued for it (DNS name or IP address).
void expect_server_name(SSL* ssl, const std::string& host);

// Why a client's handshake failed, for the operator: the certificate's verification error with
// what to change, or the error itself.
std::string handshake_failure(const boost::system::error_code& error, SSL* ssl);

// TLS over `NextLayer` when a context is given, else `NextLayer` itself. An AsyncStream for
// Beast's HTTP operations either way; lowest() reaches the socket (timeouts, shutdown, close).
// Neither copied nor moved: the TLS layer holds a reference to the next one.
template <typename NextLayer>
class MaybeTlsStream {
 public:
  using executor_type = typename NextLayer::executor_type;

  template <typename Arg>
  MaybeTlsStream(Arg&& next, std::shared_ptr<boost::asio::ssl::context> context)
      : next_(std::forward<Arg>(next)), context_(std::move(context)) {
    if (context_) tls_.emplace(next_, *context_);
  }
  MaybeTlsStream(const MaybeTlsStream&) = delete;
  MaybeTlsStream& operator=(const MaybeTlsStream&) = delete;

  NextLayer& lowest() { return next_; }
  // The TLS layer, for the handshake; nullptr on a plain connection.
  boost::asio::ssl::stream<NextLayer&>* tls() { return tls_ ? &*tls_ : nullptr; }

  executor_type get_executor() { return next_.get_executor(); }

  template <typename Buffers, typename Handler>
  void async_read_some(const Buffers& buffers, Handler&& handler) {
    if (tls_) return tls_->async_read_some(buffers, std::forward<Handler>(handler));
    next_.async_read_some(buffers, std::forward<Handler>(handler));
  }

  template <typename Buffers, typename Handler>
  void async_write_some(const Buffers& buffers, Handler&& handler) {
    if (tls_) return tls_->async_write_some(buffers, std::forward<Handler>(handler));
    next_.async_write_some(buffers, std::forward<Handler>(handler));
  }

 private:
  NextLayer next_;
  std::shared_ptr<boost::asio::ssl::context> context_;  // outlives the TLS layer that uses it
  std::optional<boost::asio::ssl::stream<NextLayer&>> tls_;
};

}  // namespace emsnode::admin
