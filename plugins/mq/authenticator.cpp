#include "authenticator.hpp"

#include <exception>
#include <utility>

namespace emsnode::plugins::mq {

UserLookup database_users(sdk::Database db, sdk::Logger log) {
  return [db, log](const std::string& name) -> std::optional<StoredUser> {
    std::optional<std::string> text;
    db.query("SELECT password_hash FROM mq_users WHERE username = ?", {name},
             [&](const sdk::Row& row) {
               text = row.text(0);
               return false;
             });
    if (!text) return std::nullopt;
    try {
      return StoredUser{PasswordHash::parse(*text)};
    } catch (const AccessFileError& e) {
      // An operator's mistake in the table, not the client's: said once per CONNECT it refuses.
      log.warning("mq.user_hash_malformed", {{"username", name}, {"problem", e.what()}});
      return StoredUser{};
    }
  };
}

Authenticator::Authenticator(const AccessControl& access, UserLookup users, std::size_t max_pending,
                             sdk::Logger log)
    : access_(access),
      users_(std::move(users)),
      max_pending_(max_pending),
      log_(log),
      thread_([this] { run(); }) {}

Authenticator::~Authenticator() {
  stop();
}

bool Authenticator::submit(Connect credentials, std::optional<std::string> certificate_name,
                           Done done) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ || queue_.size() + (running_ ? 1 : 0) >= max_pending_) return false;
    queue_.push_back(Check{std::move(credentials), std::move(certificate_name), std::move(done)});
  }
  wake_.notify_one();
  return true;
}

void Authenticator::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    queue_.clear();
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

std::size_t Authenticator::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size() + (running_ ? 1 : 0);
}

void Authenticator::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    Check check = std::move(queue_.front());
    queue_.pop_front();
    running_ = true;
    lock.unlock();
    check.done(decide(check));
    lock.lock();
    running_ = false;
  }
}

AccessControl::Outcome Authenticator::decide(const Check& check) const {
  try {
    return access_.authenticate(check.credentials, check.certificate_name, users_);
  } catch (const std::exception& e) {
    // The database is unreachable, most likely: the client may try again later.
    log_.warning("mq.authentication_failed",
                 {{"username", check.credentials.username.value_or("")}, {"error", e.what()}});
    AccessControl::Outcome outcome;
    outcome.connack_code = connack_v311::kServerUnavailable;
    outcome.reason = "the credentials could not be checked";
    return outcome;
  }
}

}  // namespace emsnode::plugins::mq
