#include "history.hpp"

#include <algorithm>
#include <cmath>

namespace emsnode::chaos {
namespace {

std::string ms(std::int64_t us) {
  return std::to_string(us / 1000) + " ms";
}

// Every epoch belongs to one node: an epoch served (or written) by two nodes was reused.
void check_epoch_owners(const std::vector<Exchange>& exchanges, const std::vector<WriteRow>& rows,
                        Report& report) {
  std::map<std::uint64_t, std::string> owner;
  const auto claim = [&](std::uint64_t epoch, const std::string& node, const std::string& what) {
    const auto [it, fresh] = owner.emplace(epoch, node);
    if (!fresh && it->second != node) {
      report.violations.push_back("epoch " + std::to_string(epoch) + " used by " + it->second +
                                  " and by " + node + " (" + what + ")");
    }
  };
  for (const Exchange& e : exchanges) {
    if (e.ok) claim(e.epoch, e.node, "a served exchange");
  }
  for (const WriteRow& row : rows) claim(row.epoch, row.node, "row " + row.id);
}

// A stale node served after a newer epoch had served: an exchange under epoch e that was sent
// after an exchange under a newer epoch had been answered. (Exchanges whose times overlap prove
// nothing either way and are not judged.)
void check_no_stale_service(const std::vector<Exchange>& by_sent, Report& report) {
  std::uint64_t newest = 0;
  std::int64_t newest_answered_us = 0;
  // by_sent is ordered by sending; track the newest epoch answered before each send.
  std::vector<const Exchange*> by_received;
  for (const Exchange& e : by_sent) {
    if (e.ok) by_received.push_back(&e);
  }
  std::sort(by_received.begin(), by_received.end(),
            [](const Exchange* a, const Exchange* b) { return a->received_us < b->received_us; });
  std::size_t next = 0;
  for (const Exchange& e : by_sent) {
    while (next < by_received.size() && by_received[next]->received_us < e.sent_us) {
      if (by_received[next]->epoch > newest) {
        newest = by_received[next]->epoch;
        newest_answered_us = by_received[next]->received_us;
      }
      ++next;
    }
    if (e.ok && e.epoch < newest) {
      report.violations.push_back("stale service: " + e.node + " answered under epoch " +
                                  std::to_string(e.epoch) + " at " + ms(e.received_us) +
                                  ", after epoch " + std::to_string(newest) + " had answered at " +
                                  ms(newest_answered_us));
    }
  }
}

// Rows in commit order never go back to an older epoch, and every acknowledged write is there as
// acknowledged.
void check_writes(const std::vector<Exchange>& exchanges, std::vector<WriteRow> rows,
                  Report& report) {
  std::sort(rows.begin(), rows.end(),
            [](const WriteRow& a, const WriteRow& b) { return a.seq < b.seq; });
  for (std::size_t i = 1; i < rows.size(); ++i) {
    if (rows[i].epoch < rows[i - 1].epoch) {
      report.violations.push_back(
          "stale write accepted: row " + rows[i].id + " (seq " + std::to_string(rows[i].seq) +
          ") under epoch " + std::to_string(rows[i].epoch) + " committed after row " +
          rows[i - 1].id + " under epoch " + std::to_string(rows[i - 1].epoch));
    }
  }
  std::map<std::string, const WriteRow*> by_id;
  for (const WriteRow& row : rows) by_id[row.id] = &row;
  for (const Exchange& e : exchanges) {
    if (e.kind != Exchange::Kind::write || !e.ok) continue;
    ++report.acknowledged_writes;
    const auto it = by_id.find(e.write_id);
    if (it == by_id.end()) {
      report.violations.push_back("acknowledged write lost: " + e.write_id + " (acknowledged by " +
                                  e.node + " under epoch " + std::to_string(e.epoch) + ")");
    } else if (it->second->epoch != e.epoch || it->second->node != e.node ||
               it->second->seq != e.seq) {
      report.violations.push_back("acknowledged write " + e.write_id +
                                  " differs from its row: acknowledged by " + e.node + " epoch " +
                                  std::to_string(e.epoch) + ", stored by " + it->second->node +
                                  " epoch " + std::to_string(it->second->epoch));
    }
  }
}

// The time from `from_us` to the first answer, to a request sent from then on, under an epoch
// newer than `epoch`; -1 if there is none before `until_us`.
std::int64_t time_to_newer_epoch(const std::vector<Exchange>& by_sent, std::int64_t from_us,
                                 std::uint64_t epoch, std::int64_t until_us) {
  for (const Exchange& e : by_sent) {
    if (e.sent_us >= until_us) break;
    if (e.ok && e.sent_us >= from_us && e.epoch > epoch) return e.received_us - from_us;
  }
  return -1;
}

// The longest silence between answers from `from_us` to `until_us`; -1 if nothing answered.
std::int64_t longest_silence(const std::vector<Exchange>& by_sent, std::int64_t from_us,
                             std::int64_t until_us) {
  std::int64_t last = from_us;
  std::int64_t longest = 0;
  for (const Exchange& e : by_sent) {
    if (!e.ok || e.sent_us < from_us) continue;
    if (e.sent_us >= until_us) break;
    longest = std::max(longest, e.received_us - last);
    last = e.received_us;
  }
  return last == from_us ? -1 : longest;
}

void judge_outage(const std::string& name, const std::string& kind, std::int64_t outage,
                  const Bounds& bounds, Report& report) {
  if (outage < 0) {
    report.violations.push_back(name + ": service never resumed before the next fault");
    return;
  }
  report.outage_us[kind].push_back(outage);
  if (outage > bounds.service_gap(kind)) {
    report.violations.push_back(name + ": service resumed after " + ms(outage) +
                                ", beyond the bound of " + ms(bounds.service_gap(kind)));
  }
}

// A node held off (or kept out with a faulted plugin) served under a newer epoch than the one it
// lost: it took the role back while it should have stayed out.
void check_held_off(const std::string& name, const Fault& fault,
                    const std::vector<Exchange>& by_sent, Report& report) {
  for (const Exchange& e : by_sent) {
    if (e.sent_us >= fault.held_off_until_us) break;
    if (e.ok && e.sent_us >= fault.at_us && e.node == fault.target &&
        e.epoch > fault.epoch_before) {
      report.violations.push_back(name + ": " + e.node + " served again under epoch " +
                                  std::to_string(e.epoch) + " at " + ms(e.received_us) +
                                  " while it was to stay out (until " +
                                  ms(fault.held_off_until_us) + ")");
      return;
    }
  }
}

// Service after each fault: if the fault moved the lease, the time from the fault to the first
// answer under a newer epoch (and likewise from its second blow, if any); otherwise the longest
// silence between answers from the fault to the next fault.
void check_faults(const std::vector<Exchange>& by_sent, const std::vector<Fault>& faults,
                  const Bounds& bounds, Report& report) {
  std::uint64_t last_epoch = 0;
  for (std::size_t f = 0; f < faults.size(); ++f) {
    const Fault& fault = faults[f];
    const std::string name =
        "fault " + std::to_string(f + 1) + " (" + fault.kind + " of " + fault.target + ")";
    ++report.faults[fault.kind];
    if (fault.epoch_before < last_epoch || fault.epoch_after < fault.epoch_before) {
      report.violations.push_back(name + ": the lease epoch went back");
    }
    last_epoch = std::max(last_epoch, fault.epoch_after);
    if (fault.held_off_until_us > 0) check_held_off(name, fault, by_sent, report);
    if (!fault.settled) {
      report.violations.push_back(name + ": the cluster did not settle to one active node");
      continue;
    }
    const auto changes = static_cast<int>(fault.epoch_after - fault.epoch_before);
    const RoleChanges allowed = role_changes_allowed(fault.kind);
    if (changes < allowed.least || changes > allowed.most) {
      report.violations.push_back(name + ": " + std::to_string(changes) +
                                  " role changes (allowed " + std::to_string(allowed.least) + ".." +
                                  std::to_string(allowed.most) + ")");
    }
    const std::int64_t until_us = f + 1 < faults.size() ? faults[f + 1].at_us : INT64_MAX;
    if (fault.kind == "db_restart" && fault.healed_us > fault.at_us) {
      // How long PostgreSQL's own restart (crash recovery) takes is not the cluster's to shorten:
      // service must resume within the bound once the server is back.
      judge_outage(name, fault.kind,
                   time_to_newer_epoch(by_sent, fault.healed_us,
                                       fault.epoch_before > 0 ? fault.epoch_before - 1 : 0, until_us),
                   bounds, report);
      continue;
    }
    if (changes == 0) {
      judge_outage(name, fault.kind, longest_silence(by_sent, fault.at_us, until_us), bounds,
                   report);
      continue;
    }
    const std::int64_t first_until_us = fault.second_at_us > 0 ? fault.second_at_us : until_us;
    judge_outage(name, fault.kind,
                 time_to_newer_epoch(by_sent, fault.at_us, fault.epoch_before, first_until_us),
                 bounds, report);
    if (fault.second_at_us > 0) {
      judge_outage(name + " second blow", fault.kind + "/kill",
                   time_to_newer_epoch(by_sent, fault.second_at_us, fault.epoch_second, until_us),
                   bounds, report);
    }
  }
}

}  // namespace

RoleChanges role_changes_allowed(const std::string& fault_kind) {
  // The active was hit: exactly one takeover. A passive or a clock was hit: none. The database
  // restarted: the active may keep its lease (back within its renew deadline) or lose it once.
  // A plugin failed or faulted: the handover (or the switchover), then the kill of the node
  // that took over, and nothing more.
  if (fault_kind == "kill" || fault_kind == "stop" || fault_kind == "partition_active") {
    return {1, 1};
  }
  if (fault_kind == "plugin_fail" || fault_kind == "plugin_fault") return {2, 2};
  if (fault_kind == "db_restart") return {0, 1};
  return {0, 0};
}

std::int64_t Bounds::service_gap(const std::string& kind) const {
  const auto it = service_gap_by_kind_us.find(kind);
  return it == service_gap_by_kind_us.end() ? service_gap_us : it->second;
}

Report check(std::vector<Exchange> exchanges, const std::vector<Fault>& faults,
             std::vector<WriteRow> rows, const Bounds& bounds) {
  Report report;
  report.exchanges = exchanges.size();
  for (const Exchange& e : exchanges) {
    if (!e.ok) ++report.refusals[e.refusal];
  }
  std::sort(exchanges.begin(), exchanges.end(),
            [](const Exchange& a, const Exchange& b) { return a.sent_us < b.sent_us; });
  check_epoch_owners(exchanges, rows, report);
  check_no_stale_service(exchanges, report);
  check_writes(exchanges, std::move(rows), report);
  check_faults(exchanges, faults, bounds, report);
  return report;
}

std::int64_t quantile(std::vector<std::int64_t> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
  return values[std::min(values.size() - 1, rank == 0 ? 0 : rank - 1)];
}

}  // namespace emsnode::chaos
