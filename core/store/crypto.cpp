#include "store/crypto.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace emsnode::store {
namespace {

std::string to_hex(const unsigned char* bytes, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    hex.push_back(kDigits[bytes[i] >> 4]);
    hex.push_back(kDigits[bytes[i] & 0x0f]);
  }
  return hex;
}

}  // namespace

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  if (!context_ || EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL: cannot start a SHA-256 digest");
  }
}

void Sha256::update(const char* data, std::size_t size) {
  if (size > 0 && EVP_DigestUpdate(context_.get(), data, size) != 1) {
    throw std::runtime_error("OpenSSL: SHA-256 update failed");
  }
}

std::string Sha256::hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(context_.get(), digest, &size) != 1) {
    throw std::runtime_error("OpenSSL: SHA-256 final failed");
  }
  return to_hex(digest, size);
}

std::string random_id() {
  // The kernel's generator rather than OpenSSL's RAND_bytes: as unpredictable, and without the
  // few milliseconds RAND_bytes takes to set up its generator on first use in a process, which a
  // short-lived process (the CLI, a one-file get) would otherwise pay on every run.
  unsigned char bytes[16];
  for (std::size_t done = 0; done < sizeof bytes;) {
    const ssize_t n = ::getrandom(bytes + done, sizeof bytes - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      throw std::runtime_error(std::string("the kernel's random generator failed (getrandom): ") +
                               std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
  return to_hex(bytes, sizeof bytes);
}

}  // namespace emsnode::store
