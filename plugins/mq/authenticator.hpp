// Password checks off the broker's I/O thread. A PBKDF2 check costs some 10 ms of a core, and a
// user of the mq_users table a database query: done on the one thread that serves every client,
// a burst of CONNECTs would stall all the others. The Authenticator runs them on a thread of its
// own, behind a bounded queue, and hands each outcome to a callback; the server posts it back
// onto its I/O thread, where the broker takes the CONNECT with its checked identity.
#pragma once

#include "access.hpp"
#include "mqtt_codec.hpp"

#include <emsnode/plugin.hpp>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace emsnode::plugins::mq {

/// The users of the mq_users table (database_users = true), read from `db` at each call, so that
/// a row added or removed counts from the next CONNECT on whichever node is active. A malformed
/// stored hash is logged (`mq.user_hash_malformed`, with the user name, never the hash) and
/// found without a hash. Throws sdk::DbError when the database cannot be read.
UserLookup database_users(sdk::Database db, sdk::Logger log);

class Authenticator {
 public:
  /// Receives the outcome of one check, on the authenticator's thread. Must not throw.
  using Done = std::function<void(AccessControl::Outcome)>;

  /// Starts the thread. `access` is read from it, and must outlive the authenticator unchanged;
  /// `users` finds the database users (empty: none). At most `max_pending` checks wait or run at
  /// once.
  Authenticator(const AccessControl& access, UserLookup users, std::size_t max_pending,
                sdk::Logger log);
  /// Stops, as stop() does.
  ~Authenticator();
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  /// Queues the check of `credentials` (a CONNECT's user name and password) and of the client
  /// certificate's common name. False, queueing nothing, when `max_pending` checks are pending
  /// already or the authenticator is stopped: `done` is never called then.
  bool submit(Connect credentials, std::optional<std::string> certificate_name, Done done);

  /// Drops the checks that have not started (their `done` is never called), waits for the one
  /// running to finish and deliver (at most one check's time: a hash cannot be interrupted), and
  /// joins the thread. Later submits are refused. Idempotent.
  void stop();

  /// Checks queued or running, for tests and metrics.
  std::size_t pending() const;

 private:
  struct Check {
    Connect credentials;
    std::optional<std::string> certificate_name;
    Done done;
  };

  void run();
  AccessControl::Outcome decide(const Check& check) const;

  const AccessControl& access_;
  const UserLookup users_;
  const std::size_t max_pending_;
  sdk::Logger log_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Check> queue_;
  bool running_ = false;  // a check is out of the queue and not delivered yet
  bool stopping_ = false;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace emsnode::plugins::mq
