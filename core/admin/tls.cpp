#include "admin/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <stdexcept>

#include <boost/asio/ip/address.hpp>

namespace emsnode::admin {
namespace {

namespace ssl = boost::asio::ssl;

// OpenSSL's reason for the last failure on this thread; the queue is emptied.
std::string openssl_error() {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

}  // namespace

std::shared_ptr<ssl::context> server_tls_context(const std::filesystem::path& cert,
                                                 const std::filesystem::path& key) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* ctx = context->native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
    throw std::runtime_error("[admin] tls_cert " + cert.string() + ": " + openssl_error());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw std::runtime_error("[admin] tls_key " + key.string() + ": " + openssl_error());
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    throw std::runtime_error("[admin] tls_key " + key.string() +
                             " does not match the certificate in " + cert.string() + ": " +
                             openssl_error());
  }
  return context;
}

std::shared_ptr<ssl::context> client_tls_context(const std::filesystem::path& ca) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
  SSL_CTX* ctx = context->native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  ERR_clear_error();
  const int loaded = ca.empty() ? SSL_CTX_set_default_verify_paths(ctx)
                                : SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr);
  if (loaded != 1) {
    throw std::runtime_error("cannot use the CA certificates in " +
                             (ca.empty() ? std::string("the system's trust store") : ca.string()) +
                             ": " + openssl_error());
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  return context;
}

void expect_server_name(SSL* ssl, const std::string& host) {
  boost::system::error_code not_an_address;
  boost::asio::ip::make_address(host, not_an_address);
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  const bool set = not_an_address
                       ? SSL_set_tlsext_host_name(ssl, host.c_str()) == 1 &&
                             X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size()) == 1
                       : X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) == 1;
  if (!set) throw std::runtime_error("cannot verify a certificate for " + host);
}

std::string handshake_failure(const boost::system::error_code& error, SSL* ssl) {
  const long verified = SSL_get_verify_result(ssl);
  if (verified != X509_V_OK) {
    return std::string("its certificate was refused: ") + X509_verify_cert_error_string(verified) +
           "; set [admin] tls_ca to the CA certificate that issued it, and make sure it names the "
           "address the CLI connects to";
  }
  std::string reason = error.message();
  if (!reason.empty() && reason[0] >= 'A' && reason[0] <= 'Z') reason[0] += 'a' - 'A';
  return "TLS handshake failed: " + reason;
}

}  // namespace emsnode::admin
