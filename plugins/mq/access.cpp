#include "access.hpp"

#include "topic.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <fstream>
#include <sstream>

namespace emsnode::plugins::mq {
namespace {

constexpr std::string_view kScheme = "pbkdf2-sha512";
constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kHashBytes = 64;
// Below this a hash is too cheap to guess against; above it one CONNECT holds the authenticator
// (and every CONNECT queued behind it) for seconds.
constexpr std::uint32_t kMinIterations = 1000;
constexpr std::uint32_t kMaxIterations = 10000000;

std::string to_hex(const std::vector<std::uint8_t>& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (std::uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

std::optional<std::vector<std::uint8_t>> from_hex(std::string_view text) {
  const auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (text.empty() || text.size() % 2 != 0) return std::nullopt;
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i < text.size(); i += 2) {
    const int high = digit(text[i]);
    const int low = digit(text[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<std::uint8_t>(high * 16 + low));
  }
  return out;
}

std::vector<std::uint8_t> pbkdf2(std::string_view password, const std::vector<std::uint8_t>& salt,
                                 std::uint32_t iterations, std::size_t length) {
  std::vector<std::uint8_t> out(length);
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                        static_cast<int>(salt.size()), static_cast<int>(iterations), EVP_sha512(),
                        static_cast<int>(out.size()), out.data()) != 1) {
    throw std::runtime_error("PBKDF2 failed");
  }
  return out;
}

// Spends the time a check against a hash of `iterations` costs, for a user who has none: the
// answer's timing must not say which user names exist.
void hash_in_vain(std::string_view password, std::uint32_t iterations) {
  static const std::vector<std::uint8_t> kSalt(kSaltBytes, 0);
  (void)pbkdf2(password, kSalt, iterations, kHashBytes);
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw AccessFileError(path.string() + ": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

// Calls `line(number, text)` for each line that is neither blank nor a comment.
template <typename Fn>
void for_each_line(std::string_view text, Fn&& line) {
  std::size_t number = 0;
  for (std::string_view raw : split(text, '\n')) {
    ++number;
    const std::string_view content = trim(raw);
    if (content.empty() || content.front() == '#') continue;
    line(number, content);
  }
}

// "%c" and "%u" replaced; nullopt when a value is missing or could widen the rule (a client id
// "+" must not turn "devices/%c/#" into "devices/+/#").
std::optional<std::string> substitute(std::string_view filter, std::string_view client_id,
                                      const std::optional<std::string>& username) {
  const auto safe = [](std::string_view value) {
    return !value.empty() && value.find_first_of("+#/") == std::string_view::npos;
  };
  std::string out;
  for (std::size_t i = 0; i < filter.size(); ++i) {
    if (filter[i] == '%' && i + 1 < filter.size() &&
        (filter[i + 1] == 'c' || filter[i + 1] == 'u')) {
      const bool client = filter[i + 1] == 'c';
      if (client ? !safe(client_id) : !username || !safe(*username)) return std::nullopt;
      out += client ? std::string(client_id) : *username;
      ++i;
    } else {
      out.push_back(filter[i]);
    }
  }
  return out;
}

}  // namespace

std::string hash_password(std::string_view password, std::uint32_t iterations) {
  std::vector<std::uint8_t> salt(kSaltBytes);
  if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1) {
    throw std::runtime_error("no random bytes for a salt");
  }
  return "$" + std::string(kScheme) + "$" + std::to_string(iterations) + "$" + to_hex(salt) + "$" +
         to_hex(pbkdf2(password, salt, iterations, kHashBytes));
}

PasswordHash PasswordHash::parse(std::string_view text) {
  const auto fail = [](const std::string& what) {
    throw AccessFileError(what + " (expected $pbkdf2-sha512$ITERATIONS$SALT_HEX$HASH_HEX)");
  };
  const std::vector<std::string_view> parts = split(text, '$');
  if (parts.size() != 5 || !parts[0].empty() || parts[1] != kScheme) {
    fail("the hash is not in the pbkdf2-sha512 format");
  }
  PasswordHash hash;
  const std::string iterations(parts[2]);
  if (iterations.empty() || iterations.size() > 8 ||
      iterations.find_first_not_of("0123456789") != std::string::npos) {
    fail("the iteration count is not a number");
  }
  hash.iterations_ = static_cast<std::uint32_t>(std::stoul(iterations));
  if (hash.iterations_ < kMinIterations || hash.iterations_ > kMaxIterations) {
    fail("the iteration count is outside " + std::to_string(kMinIterations) + ".." +
         std::to_string(kMaxIterations));
  }
  auto salt = from_hex(parts[3]);
  auto digest = from_hex(parts[4]);
  if (!salt || !digest || digest->size() < 16) fail("the salt or hash is not hex");
  hash.salt_ = std::move(*salt);
  hash.hash_ = std::move(*digest);
  return hash;
}

bool PasswordHash::verify(std::string_view password) const {
  const std::vector<std::uint8_t> computed = pbkdf2(password, salt_, iterations_, hash_.size());
  return CRYPTO_memcmp(computed.data(), hash_.data(), computed.size()) == 0;
}

PasswordFile PasswordFile::load(const std::filesystem::path& path) {
  return parse(read_text(path), path.string());
}

PasswordFile PasswordFile::parse(std::string_view text, const std::string& origin) {
  PasswordFile file;
  for_each_line(text, [&](std::size_t number, std::string_view line) {
    const auto fail = [&](const std::string& what) {
      throw AccessFileError(origin + ":" + std::to_string(number) + ": " + what);
    };
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      fail("no user name before ':' (expected name:$pbkdf2-sha512$ITERATIONS$SALT_HEX$HASH_HEX)");
    }
    const std::string name(line.substr(0, colon));
    std::optional<PasswordHash> hash;
    try {
      hash = PasswordHash::parse(line.substr(colon + 1));
    } catch (const AccessFileError& e) {
      fail("user '" + name + "': " + e.what());
    }
    if (!file.users_.emplace(name, std::move(*hash)).second) fail("'" + name + "' appears twice");
  });
  return file;
}

bool PasswordFile::verify(std::string_view name, std::string_view password) const {
  auto found = users_.find(name);
  if (found == users_.end()) {
    hash_in_vain(password, users_.empty() ? kMinIterations : users_.begin()->second.iterations());
    return false;
  }
  return found->second.verify(password);
}

bool filter_covers(std::string_view rule, std::string_view filter) {
  const std::vector<std::string_view> rules = split(rule, '/');
  const std::vector<std::string_view> levels = split(filter, '/');
  for (std::size_t i = 0; i < rules.size(); ++i) {
    if (rules[i] == "#") return true;  // the rest, whatever the filter asks
    if (i >= levels.size()) return false;
    if (levels[i] == "#") return false;  // the filter asks for more than one level can give
    if (rules[i] == "+") continue;
    if (levels[i] == "+" || levels[i] != rules[i]) return false;
  }
  return rules.size() == levels.size();
}

AclRules AclRules::load(const std::filesystem::path& path) {
  return parse(read_text(path), path.string());
}

AclRules AclRules::parse(std::string_view text, const std::string& origin) {
  AclRules acl;
  std::vector<Rule>* current = &acl.anonymous_;
  for_each_line(text, [&](std::size_t number, std::string_view line) {
    const auto fail = [&](const std::string& what) {
      throw AccessFileError(origin + ":" + std::to_string(number) + ": " + what);
    };
    const std::size_t space = line.find_first_of(" \t");
    const std::string_view keyword = line.substr(0, space);
    std::string_view rest = space == std::string_view::npos ? "" : trim(line.substr(space));
    if (keyword == "user") {
      if (rest.empty()) fail("'user' without a name (expected user NAME)");
      current = &acl.users_[std::string(rest)];
      return;
    }
    if (keyword != "topic" && keyword != "pattern") {
      fail("'" + std::string(keyword) + "' is not topic, pattern or user");
    }
    Rule rule;
    rule.access = Access::kReadWrite;
    const std::size_t gap = rest.find_first_of(" \t");
    const std::string_view word = rest.substr(0, gap);
    if (gap != std::string_view::npos &&
        (word == "read" || word == "write" || word == "readwrite")) {
      rule.access = word == "read"    ? Access::kRead
                    : word == "write" ? Access::kWrite
                                      : Access::kReadWrite;
      rest = trim(rest.substr(gap));
    }
    rule.filter = std::string(rest);
    // %c and %u are checked once substituted; here only the shape of the filter.
    if (!is_valid_topic_filter(rule.filter)) {
      fail("'" + rule.filter + "' is not a topic filter (expected " + std::string(keyword) +
           " [read|write|readwrite] FILTER)");
    }
    (keyword == "pattern" ? acl.patterns_ : *current).push_back(std::move(rule));
  });
  return acl;
}

bool AclRules::allowed(std::string_view client_id, const std::optional<std::string>& username,
                       std::string_view subject, Access wanted, bool subject_is_filter) const {
  const auto grants = [&](const Rule& rule, std::string_view filter) {
    if ((static_cast<std::uint8_t>(rule.access) & static_cast<std::uint8_t>(wanted)) == 0) {
      return false;
    }
    return subject_is_filter ? filter_covers(filter, subject) : topic_matches(filter, subject);
  };
  const std::vector<Rule>* own = &anonymous_;
  if (username) {
    auto found = users_.find(*username);
    own = found == users_.end() ? nullptr : &found->second;
  }
  if (own != nullptr) {
    for (const Rule& rule : *own) {
      if (grants(rule, rule.filter)) return true;
    }
  }
  for (const Rule& rule : patterns_) {
    const auto filter = substitute(rule.filter, client_id, username);
    if (filter && grants(rule, *filter)) return true;
  }
  return false;
}

bool AclRules::may_write(std::string_view client_id, const std::optional<std::string>& username,
                         std::string_view topic) const {
  return allowed(client_id, username, topic, Access::kWrite, false);
}

bool AclRules::may_read(std::string_view client_id, const std::optional<std::string>& username,
                        std::string_view filter) const {
  return allowed(client_id, username, filter, Access::kRead, true);
}

AccessControl::Outcome AccessControl::authenticate(
    const Connect& connect, const std::optional<std::string>& certificate_name,
    const UserLookup& users) const {
  Outcome outcome;
  const auto refuse = [&](std::uint8_t code, const char* reason) {
    outcome.connack_code = code;
    outcome.reason = reason;
    return outcome;
  };
  if (use_identity_as_username) {
    // The TLS layer verified the certificate (require_client_cert): its name is the identity.
    if (!certificate_name) return refuse(connack_v311::kNotAuthorized, "no client certificate");
    outcome.username = certificate_name;
    return outcome;
  }
  const bool in_file = connect.username && passwords && passwords->has_user(*connect.username);
  // Looked up at most once, and only for a name the password file does not have.
  std::optional<StoredUser> in_database;
  if (connect.username && !in_file && database_users && users) {
    in_database = users(*connect.username);
  }
  if (connect.password) {
    if (!passwords && !(database_users && users)) {
      return refuse(connack_v311::kBadUserNameOrPassword, "no password file to check it");
    }
    const std::string password(connect.password->begin(), connect.password->end());
    bool verified = false;
    if (in_database) {
      if (!in_database->hash) {
        return refuse(connack_v311::kBadUserNameOrPassword, "the user's stored hash is malformed");
      }
      verified = in_database->hash->verify(password);
    } else if (passwords) {
      // An unknown user costs a hash all the same.
      verified = connect.username && passwords->verify(*connect.username, password);
    } else {
      hash_in_vain(password, kDefaultIterations);
    }
    if (!verified) {
      return refuse(connack_v311::kBadUserNameOrPassword, "wrong user name or password");
    }
    outcome.username = connect.username;
    return outcome;
  }
  if (in_file || in_database) {
    // A known user who gives no password must not pass for that user, nor for anonymous.
    return refuse(connack_v311::kBadUserNameOrPassword, "no password");
  }
  if (!allow_anonymous) {
    return refuse(connack_v311::kNotAuthorized, "anonymous clients are not allowed");
  }
  // An anonymous client: a user name without a password is only a label, not an identity the
  // ACLs would trust.
  return outcome;
}

bool AccessControl::costly(const Connect& connect) const {
  if (use_identity_as_username) return false;
  if (connect.password) return passwords.has_value() || database_users;
  return connect.username.has_value() && database_users;
}

}  // namespace emsnode::plugins::mq
