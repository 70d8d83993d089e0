// What a chaos campaign records, and the checker that judges it afterwards, in the manner of
// Jepsen: the client's view of every exchange (who served it, under which epoch, when), every
// fault with the lease epoch before and after it, and the rows the database holds at the end.
// Times are microseconds on the campaign's monotonic clock.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace emsnode::chaos {

// One request of the client to the probe service.
struct Exchange {
  enum class Kind { read, write };
  Kind kind = Kind::read;
  std::string write_id;  // writes: the row id asked for
  std::int64_t sent_us = 0;
  std::int64_t received_us = 0;
  bool ok = false;  // answered as served (a read) or acknowledged as committed (a write)
  std::string node;
  std::uint64_t epoch = 0;
  std::int64_t seq = 0;  // acknowledged writes: their place in commit order
  std::string refusal;   // not ok: the first word of the answer ("FENCED", "ERR"), or "no answer"
};

struct Fault {
  // kill, stop, partition_active, partition_passive, db_restart, clock_step, plugin_fail,
  // plugin_fault
  std::string kind;
  std::string target;  // the node (or "db") it hit
  std::int64_t at_us = 0;
  std::int64_t healed_us = 0;  // when the fault was undone (the node restarted, the link healed)
  std::uint64_t epoch_before = 0;
  std::uint64_t epoch_after = 0;  // once the cluster settled
  bool settled = true;            // one active again, every node up, within the settle limit
  // plugin_fail, plugin_fault: the second blow, the kill of the node that took over from the
  // target, at `second_at_us` while the lease was at `epoch_second` (0: no second blow). Its
  // outage counts under "<kind>/kill".
  std::int64_t second_at_us = 0;
  std::uint64_t epoch_second = 0;
  // The target must not serve under a newer epoch before this: a node that handed over for a
  // failed plugin is held off, one with a faulted plugin stays out until restarted (0: no such
  // rule).
  std::int64_t held_off_until_us = 0;
};

// A row of the probe's table at the end of the campaign.
struct WriteRow {
  std::string id;
  std::int64_t seq = 0;
  std::uint64_t epoch = 0;
  std::string node;
};

struct Bounds {
  std::int64_t service_gap_us = 0;  // after a fault, service must resume within this
  // The kinds (and second blows, "plugin_fail/kill") with a bound of their own.
  std::map<std::string, std::int64_t> service_gap_by_kind_us = {};

  std::int64_t service_gap(const std::string& kind) const;
};

// How many role changes each kind of fault may cause: at least `least` (the active was hit: a
// takeover is due), at most `most`.
struct RoleChanges {
  int least = 0;
  int most = 1;
};
RoleChanges role_changes_allowed(const std::string& fault_kind);

struct Report {
  std::vector<std::string> violations;
  // Per fault kind (and "<kind>/kill" for second blows): how long service was out after each
  // fault (microseconds).
  std::map<std::string, std::vector<std::int64_t>> outage_us;
  std::map<std::string, int> faults;
  std::size_t exchanges = 0;
  std::size_t acknowledged_writes = 0;
  std::map<std::string, std::size_t> refusals;  // exchanges not ok, by refusal
};

// Judges a campaign. The exchanges need not be sorted.
Report check(std::vector<Exchange> exchanges, const std::vector<Fault>& faults,
             std::vector<WriteRow> rows, const Bounds& bounds);

// The value at quantile q (0..1) of `values` (nearest rank), 0 when empty.
std::int64_t quantile(std::vector<std::int64_t> values, double q);

}  // namespace emsnode::chaos
