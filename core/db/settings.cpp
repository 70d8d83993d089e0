#include "db/settings.hpp"

#include <stdexcept>

namespace emsnode::db {

std::string check_setting_key(std::string_view key) {
  const auto is_lower = [](char c) { return c >= 'a' && c <= 'z'; };
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  const std::string rule =
      ": a setting key is a lowercase letter followed by up to 127 of a-z, 0-9, '_', '.', '-'";
  if (key.empty()) return "empty setting key" + rule;
  if (key.size() > Settings::kMaxKeyLength) {
    return "setting key of " + std::to_string(key.size()) + " characters" + rule;
  }
  if (!is_lower(key.front())) return "setting key \"" + std::string(key) + "\"" + rule;
  for (const char c : key) {
    if (!is_lower(c) && !is_digit(c) && c != '_' && c != '.' && c != '-') {
      return "setting key \"" + std::string(key) + "\"" + rule;
    }
  }
  return {};
}

std::optional<std::string> Settings::get(std::string_view key) {
  const Rows rows = database_.query("SELECT value FROM settings WHERE key = ?", {std::string(key)});
  if (rows.empty()) return std::nullopt;
  return rows.front().text(0);
}

std::vector<Setting> Settings::list() {
  std::vector<Setting> settings;
  for (const Row& row : database_.query("SELECT key, value, updated_at_ms, updated_by, epoch FROM "
                                        "settings ORDER BY key COLLATE \"C\"")) {
    settings.push_back({row.text(0), row.text(1), row.integer(2), row.text(3),
                        static_cast<std::uint64_t>(row.integer(4))});
  }
  return settings;
}

void Settings::set(std::string_view key, std::string_view value, std::string_view node_id,
                   std::uint64_t epoch) {
  if (const std::string error = check_setting_key(key); !error.empty()) {
    throw std::invalid_argument(error);
  }
  if (value.size() > kMaxValueBytes) {
    throw std::invalid_argument("the value of setting \"" + std::string(key) + "\" has " +
                                std::to_string(value.size()) + " bytes; at most " +
                                std::to_string(kMaxValueBytes) + " (64 KiB) are allowed");
  }
  database_.fenced(node_id, epoch, [&](Transaction& tx) {
    tx.exec(
        "INSERT INTO settings (key, value, updated_at_ms, updated_by, epoch) "
        "VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
        "updated_at_ms = excluded.updated_at_ms, updated_by = excluded.updated_by, "
        "epoch = excluded.epoch",
        {std::string(key), std::string(value), database_.now_ms(), std::string(node_id),
         static_cast<std::int64_t>(epoch)});
  });
}

}  // namespace emsnode::db
