// Where the lease SQL lives: the one row of the `lease` table that says which node may serve.
//
// The role manager calls a LeaseStore from its database worker thread only (one call at a
// time). SqlLeaseStore runs each operation as one write transaction on the shared database and
// judges every expiry on the database's clock (`now_ms()` read inside that transaction), never
// on the caller's. The safety argument is at the top of lease_store.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "db/database.hpp"
#include "role/role_manager.hpp"

namespace emsnode::role {

// The channel a release is announced on (Database::listen): passives waiting on it try to take
// the lease at once instead of at their next poll.
constexpr std::string_view kLeaseChannel = "emsnode_lease";

struct AcquireResult {
  bool acquired = false;
  std::uint64_t epoch = 0;  // ours, when acquired
  // Acquired from a holder whose lease had not expired, because the holder's same-host OS lock
  // fell to us (it died or stopped serving). Informational: for the promotion's reason.
  bool fast_path = false;
  LeaseView lease;  // the lease after the attempt: ours when acquired, else the one that refused us
};

class LeaseStore {
 public:
  virtual ~LeaseStore() = default;

  // The lease as it stands.
  virtual LeaseView read() = 0;

  // Takes the lease when it is free, expired, or provably abandoned (`have_os_lock` and the row
  // says its holder had the OS lock), unless it is reserved for another node by a switchover.
  // On success the epoch is incremented (never reused) and the lease runs for `ttl`.
  virtual AcquireResult try_acquire(std::string_view node_id, std::chrono::milliseconds ttl,
                                    bool have_os_lock) = 0;

  // Extends our lease to now + `ttl` and records whether we hold the OS lock. False when the
  // lease is no longer ours (another holder or epoch): the caller must stop serving.
  virtual bool renew(std::string_view node_id, std::uint64_t epoch, std::chrono::milliseconds ttl,
                     bool have_os_lock) = 0;

  // Ends our lease now (expiry = now, os_lock = 0), so a peer may take it at once, and wakes the
  // passives listening on kLeaseChannel. False (and nothing changed) when it was no longer ours.
  virtual bool release(std::string_view node_id, std::uint64_t epoch) = 0;

  // Switchover --to: until now + `duration`, only `to` may acquire the lease (after we release
  // it). False (and nothing changed) when the lease is no longer ours.
  virtual bool reserve_handover(std::string_view node_id, std::uint64_t epoch, std::string_view to,
                                std::chrono::milliseconds duration) = 0;
};

class SqlLeaseStore final : public LeaseStore {
 public:
  explicit SqlLeaseStore(db::Database& database) : database_(database) {}

  LeaseView read() override;
  AcquireResult try_acquire(std::string_view node_id, std::chrono::milliseconds ttl,
                            bool have_os_lock) override;
  bool renew(std::string_view node_id, std::uint64_t epoch, std::chrono::milliseconds ttl,
             bool have_os_lock) override;
  bool release(std::string_view node_id, std::uint64_t epoch) override;
  bool reserve_handover(std::string_view node_id, std::uint64_t epoch, std::string_view to,
                        std::chrono::milliseconds duration) override;

 private:
  db::Database& database_;
};

}  // namespace emsnode::role
