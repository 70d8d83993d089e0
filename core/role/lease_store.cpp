// The lease SQL, and why it keeps two nodes from serving at once.
//
// The row: lease(id = 1, holder, epoch, expires_at_ms, os_lock, handover_to, handover_until_ms,
// acquired_at_ms), created by the core migrations with holder NULL and epoch 0.
//
// Safety argument (what must hold: a node serves only under a tenure (holder, epoch) that no other
// node can take while the first may still be serving):
//
// 1. Each operation is one write transaction, and the decision is the WHERE clause of a single
//    UPDATE. On SQLite, BEGIN IMMEDIATE holds the write lock from the first statement to COMMIT,
//    so "now", the condition and the write are atomic with respect to every other node. On
//    PostgreSQL (READ COMMITTED), a concurrent UPDATE of the same row waits and then re-evaluates
//    the WHERE clause on the committed row, so two acquirers can never both match: the second sees
//    the first's holder, epoch and future expiry and is refused.
// 2. The epoch only changes in try_acquire, to epoch + 1, in the statement that sets the holder;
//    nothing lowers it and the row is never deleted. So an epoch names one tenure forever, and
//    renew, release and reserve_handover all match (holder, epoch): a stale node can neither
//    extend nor end nor reserve a later tenure, not even one of its own node id.
// 3. A live holder's lease is taken only
//    a) after it expired on the database's clock. The holder wrote expires_at = now + ttl with
//       "now" read inside the renewal's transaction, i.e. after the renewal STARTED at S on the
//       holder's monotonic clock. The holder stops trusting the lease at S + renew_deadline and
//       stops serving within ttl - renew_deadline - 100 ms after that: by S + ttl - 100 ms, before
//       the expiry. The 100 ms absorb the rate difference between the two clocks over one ttl.
//    b) by the same-host fast path: `have_os_lock AND os_lock = 1`. The holder wrote os_lock = 1
//       while holding the exclusive OS lock beside the database file, which it keeps until its
//       plugins are stopped. If we now hold that lock, the holder released it after it stopped
//       serving, or died and the kernel released it. Only SQLite nodes, which all run on one host,
//       ever claim have_os_lock.
//    c) when it is free: holder NULL (never held).
// 4. A renewal succeeds where holder and epoch are ours even if the expiry has just passed: an
//    acquisition by anyone would have changed the epoch, so nobody served in between.
// 5. A switchover reservation (handover_to until handover_until_ms) is part of the same WHERE
//    clause, for the fast path too; the acquisition that honours it clears it.
// 6. "Now" is the database's clock (SQLite: the host's wall clock, which all nodes on the host
//    share). A wall-clock step forward shortens every lease, so a peer may take over while the old
//    active still trusts its own monotonic deadline; the old active's writes still fail, since
//    Database::fenced() checks the expiry on the same clock. A step backward only delays takeover.
//    PostgreSQL: the server's clock (clock_timestamp(), which moves within a transaction), one
//    clock for nodes on every host.
// 7. A release's notification (PostgreSQL NOTIFY) only makes passives look sooner; they decide on
//    the row, as after any poll. A lost notification costs one poll_interval, never safety.
#include "role/lease_store.hpp"

#include <string>

namespace emsnode::role {
namespace {

constexpr const char* kSelectLease =
    "SELECT holder, epoch, expires_at_ms, os_lock, handover_to, handover_until_ms "
    "FROM lease WHERE id = 1";

// The whole acquisition rule; see the safety argument above. Parameters: holder, new expiry,
// os_lock, acquired_at, then the condition's now, have_os_lock, node id, now.
constexpr const char* kAcquire =
    "UPDATE lease SET holder = ?, epoch = epoch + 1, expires_at_ms = ?, os_lock = ?, "
    "acquired_at_ms = ?, handover_to = NULL, handover_until_ms = NULL "
    "WHERE id = 1 "
    "AND (holder IS NULL OR expires_at_ms <= ? OR (? = 1 AND os_lock = 1)) "
    "AND (handover_to IS NULL OR handover_to = ? OR handover_until_ms IS NULL "
    "OR handover_until_ms <= ?)";

constexpr const char* kRenew =
    "UPDATE lease SET expires_at_ms = ?, os_lock = ? WHERE id = 1 AND holder = ? AND epoch = ?";

constexpr const char* kRelease =
    "UPDATE lease SET expires_at_ms = ?, os_lock = 0 WHERE id = 1 AND holder = ? AND epoch = ?";

constexpr const char* kReserve =
    "UPDATE lease SET handover_to = ?, handover_until_ms = ? "
    "WHERE id = 1 AND holder = ? AND epoch = ?";

// The lease row as stored, with `now` on the database's clock.
struct Stored {
  std::string holder;
  std::int64_t epoch = 0;
  std::int64_t expires_at_ms = 0;
  bool os_lock = false;
  std::string handover_to;
  std::int64_t handover_until_ms = 0;
};

Stored read_row(db::Transaction& tx) {
  const db::Rows rows = tx.query(kSelectLease);
  if (rows.empty()) {
    throw db::DbError("the lease row is missing: the core schema has not been created");
  }
  const db::Row& row = rows.front();
  Stored stored;
  if (!row.is_null(0)) stored.holder = row.text(0);
  stored.epoch = row.integer(1);
  stored.expires_at_ms = row.integer(2);
  stored.os_lock = row.integer(3) != 0;
  if (!row.is_null(4)) stored.handover_to = row.text(4);
  if (!row.is_null(5)) stored.handover_until_ms = row.integer(5);
  return stored;
}

LeaseView view_of(const Stored& stored, std::int64_t now) {
  LeaseView view;
  view.holder = stored.holder;
  view.epoch = static_cast<std::uint64_t>(stored.epoch);
  view.expires_in_ms = stored.expires_at_ms - now;
  view.os_lock = stored.os_lock;
  // A lapsed reservation binds nobody, so it is not shown.
  if (!stored.handover_to.empty() && stored.handover_until_ms > now) {
    view.handover_to = stored.handover_to;
  }
  return view;
}

std::int64_t flag(bool value) {
  return value ? 1 : 0;
}

}  // namespace

LeaseView SqlLeaseStore::read() {
  LeaseView view;
  // A write transaction, although it only reads: it gives one consistent instant for the row
  // and the clock on every backend.
  database_.transaction([&](db::Transaction& tx) {
    const std::int64_t now = database_.now_ms();
    view = view_of(read_row(tx), now);
  });
  return view;
}

AcquireResult SqlLeaseStore::try_acquire(std::string_view node_id, std::chrono::milliseconds ttl,
                                         bool have_os_lock) {
  AcquireResult result;
  const std::string me(node_id);
  database_.transaction([&](db::Transaction& tx) {
    const std::int64_t now = database_.now_ms();
    // Only to tell a fast-path takeover from an ordinary one; the UPDATE below decides.
    const Stored before = read_row(tx);
    const std::int64_t changed = tx.exec(kAcquire, {me, now + ttl.count(), flag(have_os_lock), now,
                                                    now, flag(have_os_lock), me, now});
    const Stored after = read_row(tx);
    result.acquired = changed == 1;
    if (result.acquired) {
      result.epoch = static_cast<std::uint64_t>(after.epoch);
      result.fast_path = !before.holder.empty() && before.expires_at_ms > now;
    }
    result.lease = view_of(after, now);
  });
  return result;
}

bool SqlLeaseStore::renew(std::string_view node_id, std::uint64_t epoch,
                          std::chrono::milliseconds ttl, bool have_os_lock) {
  std::int64_t changed = 0;
  database_.transaction([&](db::Transaction& tx) {
    const std::int64_t now = database_.now_ms();
    changed = tx.exec(kRenew, {now + ttl.count(), flag(have_os_lock), std::string(node_id),
                               static_cast<std::int64_t>(epoch)});
  });
  return changed == 1;
}

bool SqlLeaseStore::release(std::string_view node_id, std::uint64_t epoch) {
  std::int64_t changed = 0;
  database_.transaction([&](db::Transaction& tx) {
    const std::int64_t now = database_.now_ms();
    changed = tx.exec(kRelease, {now, std::string(node_id), static_cast<std::int64_t>(epoch)});
    // Delivered on commit, after the row says the lease is free (and, after a switchover, whom
    // it is reserved for: the reservation was committed before).
    if (changed == 1) tx.notify(kLeaseChannel);
  });
  return changed == 1;
}

bool SqlLeaseStore::reserve_handover(std::string_view node_id, std::uint64_t epoch,
                                     std::string_view to, std::chrono::milliseconds duration) {
  std::int64_t changed = 0;
  database_.transaction([&](db::Transaction& tx) {
    const std::int64_t now = database_.now_ms();
    changed = tx.exec(kReserve, {std::string(to), now + duration.count(), std::string(node_id),
                                 static_cast<std::int64_t>(epoch)});
  });
  return changed == 1;
}

}  // namespace emsnode::role
