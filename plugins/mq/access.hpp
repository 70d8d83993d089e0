// Who may connect and what they may do: the password file (PBKDF2-HMAC-SHA512 hashes), the
// identity a client certificate gives, and the topic ACLs with %c (client id) and %u (user
// name) patterns. Loaded once from the config when the plugin is created, then read-only: the
// broker asks it on its I/O thread.
//
// File formats, close to mosquitto's so that an operator recognises them:
//   password file:  name:$pbkdf2-sha512$ITERATIONS$SALT_HEX$HASH_HEX    (one user per line)
//   ACL file:       topic read|write|readwrite FILTER    (before any `user` line: anonymous
//                   clients; after `user NAME`: that user)
//                   user NAME
//                   pattern read|write|readwrite FILTER  (every client; %c and %u replaced)
// Blank lines and lines starting with '#' are ignored in both.
#pragma once

#include "mqtt_codec.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace emsnode::plugins::mq {

/// A file that cannot be used, with its path, line and what is wrong in what().
class AccessFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// "$pbkdf2-sha512$ITERATIONS$SALT_HEX$HASH_HEX" for `password`, with a random 16-byte salt.
std::string hash_password(std::string_view password, std::uint32_t iterations = 10000);

/// The users of a password file.
class PasswordFile {
 public:
  PasswordFile() = default;
  /// Throws AccessFileError naming the file and line of the first bad entry.
  static PasswordFile load(const std::filesystem::path& path);
  /// Parses the file's text; `origin` names it in errors.
  static PasswordFile parse(std::string_view text, const std::string& origin);

  bool has_user(std::string_view name) const { return users_.count(std::string(name)) != 0; }
  /// Whether `password` is the user's. An unknown user costs the same hashing as a known one,
  /// so that the answer's timing does not say which user names exist.
  bool verify(std::string_view name, std::string_view password) const;

 private:
  struct Hash {
    std::uint32_t iterations = 0;
    std::vector<std::uint8_t> salt;
    std::vector<std::uint8_t> hash;
  };
  std::map<std::string, Hash, std::less<>> users_;
};

enum class Access : std::uint8_t { kRead = 1, kWrite = 2, kReadWrite = 3 };

/// The rules of an ACL file. Without one, every client may publish and subscribe anywhere.
class AclRules {
 public:
  AclRules() = default;
  static AclRules load(const std::filesystem::path& path);
  static AclRules parse(std::string_view text, const std::string& origin);

  /// Whether the client may publish to `topic`.
  bool may_write(std::string_view client_id, const std::optional<std::string>& username,
                 std::string_view topic) const;
  /// Whether the client may subscribe to `filter`, or receive a message on a topic name (a
  /// filter without wildcards): some readable filter of its rules must match every topic
  /// `filter` matches.
  bool may_read(std::string_view client_id, const std::optional<std::string>& username,
                std::string_view filter) const;

 private:
  struct Rule {
    Access access = Access::kRead;
    std::string filter;
  };
  bool allowed(std::string_view client_id, const std::optional<std::string>& username,
               std::string_view subject, Access wanted, bool subject_is_filter) const;

  std::vector<Rule> anonymous_;
  std::map<std::string, std::vector<Rule>, std::less<>> users_;
  std::vector<Rule> patterns_;
};

/// Whether every topic that `filter` matches is matched by `rule` (both valid filters).
bool filter_covers(std::string_view rule, std::string_view filter);

/// The authentication and authorisation settings of the broker.
struct AccessControl {
  bool allow_anonymous = true;
  /// The client certificate's common name is the user name (and no password is asked).
  bool use_identity_as_username = false;
  std::optional<PasswordFile> passwords;
  std::optional<AclRules> acl;

  struct Outcome {
    std::uint8_t connack_code = connack_v311::kAccepted;
    std::optional<std::string> username;  // who the client is, for ACLs and logs
    std::string reason;                   // why it was refused, for the log
  };
  /// Decides a CONNECT. `certificate_name` is the verified client certificate's common name.
  Outcome authenticate(const Connect& connect,
                       const std::optional<std::string>& certificate_name) const;
};

}  // namespace emsnode::plugins::mq
