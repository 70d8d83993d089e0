// Who may connect and what they may do: the password file (PBKDF2-HMAC-SHA512 hashes), the
// identity a client certificate gives, the users of the mq_users table, and the topic ACLs with
// %c (client id) and %u (user name) patterns. Loaded once from the config when the plugin is
// created, then read-only: the broker asks it on its I/O thread, the Authenticator
// (authenticator.hpp) on its own thread for what costs a hash or a database query.
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
#include <functional>
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

/// The iterations of a new hash: about 10 ms of one core per check.
inline constexpr std::uint32_t kDefaultIterations = 10000;

/// "$pbkdf2-sha512$ITERATIONS$SALT_HEX$HASH_HEX" for `password`, with a random 16-byte salt.
std::string hash_password(std::string_view password, std::uint32_t iterations = kDefaultIterations);

/// One stored password, "$pbkdf2-sha512$ITERATIONS$SALT_HEX$HASH_HEX", as the password file and
/// the mq_users table hold it.
class PasswordHash {
 public:
  /// Throws AccessFileError saying what is wrong, without quoting `text`.
  static PasswordHash parse(std::string_view text);

  /// Whether `password` is the one hashed; costs the hash's iterations.
  bool verify(std::string_view password) const;
  std::uint32_t iterations() const { return iterations_; }

 private:
  PasswordHash() = default;  // only parse makes one: an empty hash would match any password

  std::uint32_t iterations_ = 0;
  std::vector<std::uint8_t> salt_;
  std::vector<std::uint8_t> hash_;
};

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
  std::map<std::string, PasswordHash, std::less<>> users_;
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

/// A user found beyond the password file.
struct StoredUser {
  /// Empty when the stored hash is malformed: no password admits the user.
  std::optional<PasswordHash> hash;
};

/// Finds a user beyond the password file by name (the mq_users table); nullopt for an unknown
/// user. May block and throw (a database error): only the Authenticator's thread calls it.
using UserLookup = std::function<std::optional<StoredUser>(const std::string& name)>;

/// The authentication and authorisation settings of the broker.
struct AccessControl {
  bool allow_anonymous = true;
  /// The client certificate's common name is the user name (and no password is asked).
  bool use_identity_as_username = false;
  std::optional<PasswordFile> passwords;
  /// A user not in the password file is looked up with the UserLookup given to authenticate.
  bool database_users = false;
  std::optional<AclRules> acl;

  struct Outcome {
    std::uint8_t connack_code = connack_v311::kAccepted;
    std::optional<std::string> username;  // who the client is, for ACLs and logs
    std::string reason;                   // why it was refused, for the log
  };
  /// Decides a CONNECT. `certificate_name` is the verified client certificate's common name;
  /// `users` finds the database users (without it, none is known).
  Outcome authenticate(const Connect& connect, const std::optional<std::string>& certificate_name,
                       const UserLookup& users = {}) const;
  /// Whether authenticate hashes a password or looks a user up for `connect`: work that must
  /// not stall the broker's I/O thread.
  bool costly(const Connect& connect) const;
};

}  // namespace emsnode::plugins::mq
