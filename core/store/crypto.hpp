// SHA-256 of streamed content (OpenSSL's libcrypto) and random names (the kernel's generator).
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <memory>
#include <string>

namespace emsnode::store {

// An incremental SHA-256: update() with each chunk as it streams by, hex() once at the end.
class Sha256 {
 public:
  Sha256();
  void update(const char* data, std::size_t size);
  // The lowercase hex digest of everything passed to update(). Ends the computation.
  std::string hex();

 private:
  struct Free {
    void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> context_;
};

// 128 random bits as 32 lowercase hex digits: names of objects, temporary files, blobs and
// stores, unique without coordination between nodes.
std::string random_id();

}  // namespace emsnode::store
