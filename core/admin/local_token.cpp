#include "admin/local_token.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace emsnode::admin {
namespace {

constexpr std::size_t kRandomBytes = 32;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::runtime_error failure(const std::filesystem::path& file, const std::string& what) {
  return std::runtime_error("admin token file " + file.string() + ": " + what);
}

std::string new_token() {
  unsigned char bytes[kRandomBytes];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    throw std::runtime_error("cannot make an admin token: OpenSSL has no random bytes");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  for (const unsigned char byte : bytes) {
    token += kHex[byte >> 4];
    token += kHex[byte & 15];
  }
  return token;
}

// Reads `file` without following a link. `owner_only`: refuse a file that the group or others may
// read or write, since they could then use the token as well.
std::string read_token(const std::filesystem::path& file, bool owner_only) {
  const Fd fd(::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) throw failure(file, std::strerror(errno));
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) throw failure(file, std::strerror(errno));
  if (!S_ISREG(info.st_mode)) throw failure(file, "not a regular file");
  if (owner_only && (info.st_mode & 077) != 0) {
    throw failure(file,
                  "its group or others may access it, so they may use the token too; remove the "
                  "file (a new token is made) or chmod 600 it");
  }
  std::string token;
  char buffer[256];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw failure(file, std::strerror(errno));
    if (n == 0) break;
    token.append(buffer, static_cast<std::size_t>(n));
    if (token.size() > 4096) throw failure(file, "longer than any token");
  }
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  if (token.size() < config::kMinAdminTokenLength) {
    throw failure(file, "holds fewer than " + std::to_string(config::kMinAdminTokenLength) +
                            " characters; remove it and a new token is made");
  }
  return token;
}

}  // namespace

std::filesystem::path local_token_path(const std::filesystem::path& data_dir) {
  return data_dir / "admin.token";
}

std::string ensure_local_token(const std::filesystem::path& data_dir) {
  const std::filesystem::path file = local_token_path(data_dir);
  if (::access(file.c_str(), F_OK) == 0) return read_token(file, true);
  // Written whole under a temporary name and linked into place, so that a reader never sees half
  // a token, and of two nodes starting at once one wins and both read its token.
  std::string temporary = (data_dir / ".admin.token.XXXXXX").string();
  const Fd fd(::mkstemp(temporary.data()));  // mode 0600
  if (fd.get() < 0) throw failure(file, std::string("cannot create: ") + std::strerror(errno));
  const std::string token = new_token();
  const std::string content = token + "\n";
  const bool written =
      ::write(fd.get(), content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
      ::fsync(fd.get()) == 0;
  const int error = errno;
  const int linked = written ? ::link(temporary.c_str(), file.c_str()) : -1;
  const int link_error = errno;
  ::unlink(temporary.c_str());
  if (!written) throw failure(file, std::string("cannot write: ") + std::strerror(error));
  if (linked != 0 && link_error != EEXIST) {
    throw failure(file, std::string("cannot create: ") + std::strerror(link_error));
  }
  return linked == 0 ? token : read_token(file, true);
}

std::optional<std::string> read_local_token(const std::filesystem::path& data_dir) {
  const std::filesystem::path file = local_token_path(data_dir);
  if (::access(file.c_str(), R_OK) != 0) return std::nullopt;
  return read_token(file, false);
}

}  // namespace emsnode::admin
