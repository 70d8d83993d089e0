// The endpoint's documents, rendered from the Model's plain data: JSON for tools, text for the
// CLI (`emsnode status`, `emsnode settings`, `emsnode store`), and the HTML status page. Every
// value is escaped for its medium, since node ids, plugin errors and settings come from outside
// this process.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "admin/model.hpp"

namespace emsnode::admin {

// /status: one object with the keys node_id, version, role, epoch, not_active_reason, paused,
// lease_holder, lease_epoch, lease_expires_in_ms, last_transition ({from, to, reason, epoch, at}
// or null), transitions, nodes [...], plugins [...]; each plugin's facts are an array of {name,
// value, severity}.
std::string status_json(const StatusView& status);
// A plugin's facts follow its line, one each: "  - name: value", or "  ! name: value (warning)".
std::string status_text(const StatusView& status);
// Self-contained (no external asset, no script), refreshed every 2 seconds. A plugin's facts are a
// list under its row, each item of the class "fact severity-<severity>".
std::string status_html(const StatusView& status);

// /settings: an array of {key, value, updated_at_ms, updated_by, epoch}, in the given order.
std::string settings_json(const std::vector<Setting>& settings);
std::string settings_text(const std::vector<Setting>& settings);

// /store-stat/KEY: {key, size, sha256, modified_at_ms, writer_node, epoch}; /store: an array of
// those, in the given order.
std::string store_file_json(const StoreFile& file);
std::string store_list_json(const std::vector<StoreFile>& files);
// What `emsnode store stat` and `emsnode store ls` print.
std::string store_file_text(const StoreFile& file);
std::string store_list_text(const std::vector<StoreFile>& files, const std::string& prefix);
// A byte count for people: "512 B", "1.5 KiB", "3.2 GiB".
std::string format_bytes(std::uint64_t bytes);

// `text` made safe for one line of a terminal: control characters, backslashes and invalid
// UTF-8 bytes written as escapes (\n, \t, \\, \xNN), so no value can forge lines or move the
// cursor.
std::string printable(std::string_view text);
std::string html_escape(std::string_view text);

}  // namespace emsnode::admin
