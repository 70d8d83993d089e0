#include "admin/render.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iterator>

#include "admin/json.hpp"

namespace emsnode::admin {
namespace {

// A duration for people: "350ms", "1.8s", "12m", "3h".
std::string format_ms(std::int64_t ms) {
  char text[32];
  if (ms < 1000) {
    std::snprintf(text, sizeof text, "%lldms", static_cast<long long>(ms));
  } else if (ms < 60'000) {
    std::snprintf(text, sizeof text, "%.1fs", static_cast<double>(ms) / 1000);
  } else if (ms < 3'600'000) {
    std::snprintf(text, sizeof text, "%lldm", static_cast<long long>(ms / 60'000));
  } else {
    std::snprintf(text, sizeof text, "%lldh", static_cast<long long>(ms / 3'600'000));
  }
  return text;
}

std::string format_unix_ms(std::int64_t ms) {
  return iso8601_utc(std::chrono::system_clock::time_point(std::chrono::milliseconds(ms)));
}

// Code points, not bytes, so that non-ASCII ids keep the columns aligned.
std::size_t display_width(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

// Left-aligned columns two spaces apart; cells must already be printable().
void append_table(std::string& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], display_width(row[i]));
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - display_width(row[i]) + 2, ' ');
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out += line;
    out += '\n';
  }
}

std::string lease_summary(const StatusView& status) {
  if (status.lease_holder.empty()) return "not held";
  const std::string holder = printable(status.lease_holder);
  const std::string epoch = std::to_string(status.lease_epoch);
  if (status.lease_expires_in_ms <= 0) {
    return "free (last held by " + holder + ", epoch " + epoch + ")";
  }
  return "held by " + holder + ", epoch " + epoch + ", expires in " +
         format_ms(status.lease_expires_in_ms);
}

std::string role_summary(const StatusView& status) {
  std::string role = printable(status.role);
  if (!status.not_active_reason.empty()) role += " (" + printable(status.not_active_reason) + ")";
  if (status.epoch != 0) role += ", epoch " + std::to_string(status.epoch);
  return role;
}

std::string transition_summary(const StatusView& status) {
  std::string text;
  if (status.last_transition) {
    const TransitionView& t = *status.last_transition;
    text = printable(t.from) + " -> " + printable(t.to) + " (" + printable(t.reason) + "), epoch " +
           std::to_string(t.epoch) + ", at " + printable(t.at) + "; ";
  }
  return text + std::to_string(status.transitions) + " transition" +
         (status.transitions == 1 ? "" : "s");
}

std::string node_note(const NodeView& node) {
  std::string note = printable(node.reason);
  if (node.paused) note += note.empty() ? "paused" : ", paused";
  return note;
}

std::string plugin_detail(const PluginView& plugin) {
  std::string detail = printable(plugin.health_detail);
  if (!plugin.last_error.empty()) {
    detail += (detail.empty() ? "last error: " : "; last error: ") + printable(plugin.last_error);
  }
  if (plugin.restarts > 0) {
    detail += (detail.empty() ? "" : "; ") + std::string("restarted ") +
              std::to_string(plugin.restarts) + "x";
  }
  if (!plugin.required) detail += detail.empty() ? "not required" : "; not required";
  return detail;
}

// "  - seats: 120 of 500", or with "!" and the severity when it needs an operator.
std::string fact_line(const FactView& fact) {
  const bool info = fact.severity == "info";
  return std::string(info ? "  - " : "  ! ") + printable(fact.name) + ": " + printable(fact.value) +
         (info ? "" : " (" + printable(fact.severity) + ")") + "\n";
}

// Only the three severities the host knows become a class: anything else is shown, unstyled.
std::string severity_class(const std::string& severity) {
  if (severity == "info" || severity == "warning" || severity == "critical") {
    return " severity-" + severity;
  }
  return "";
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      std::size_t ill_formed = 0;
      const std::size_t n = utf8_sequence(text.substr(i), &ill_formed);
      // C1 controls (U+0080..U+009F) are escaped too: some terminals act on them.
      if (n > 0 && !(c == 0xC2 && static_cast<unsigned char>(text[i + 1]) < 0xA0)) {
        out.append(text, i, n);
        i += n;
        continue;
      }
    }
    char escaped[8];
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (c < 0x20 || c >= 0x7F) {
          std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
          out += escaped;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  return out;
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string status_json(const StatusView& status) {
  JsonWriter json;
  json.begin_object();
  json.key("node_id").string(status.node_id);
  json.key("version").string(status.version);
  json.key("role").string(status.role);
  json.key("epoch").number(status.epoch);
  json.key("not_active_reason").string(status.not_active_reason);
  json.key("paused").boolean(status.paused);
  json.key("lease_holder").string(status.lease_holder);
  json.key("lease_epoch").number(status.lease_epoch);
  json.key("lease_expires_in_ms").number(status.lease_expires_in_ms);
  json.key("last_transition");
  if (status.last_transition) {
    const TransitionView& t = *status.last_transition;
    json.begin_object();
    json.key("from").string(t.from);
    json.key("to").string(t.to);
    json.key("reason").string(t.reason);
    json.key("epoch").number(t.epoch);
    json.key("at").string(t.at);
    json.end_object();
  } else {
    json.null();
  }
  json.key("transitions").number(status.transitions);
  json.key("nodes").begin_array();
  for (const NodeView& node : status.nodes) {
    json.begin_object();
    json.key("id").string(node.id);
    json.key("address").string(node.address);
    json.key("admin_address").string(node.admin_address);
    json.key("version").string(node.version);
    json.key("backup_dir").string(node.backup_dir);
    json.key("role").string(node.role);
    json.key("reason").string(node.reason);
    json.key("paused").boolean(node.paused);
    json.key("seen_ms_ago").number(node.seen_ms_ago);
    json.end_object();
  }
  json.end_array();
  json.key("plugins").begin_array();
  for (const PluginView& plugin : status.plugins) {
    json.begin_object();
    json.key("id").string(plugin.id);
    json.key("version").string(plugin.version);
    json.key("state").string(plugin.state);
    json.key("health").string(plugin.health);
    json.key("health_detail").string(plugin.health_detail);
    json.key("last_error").string(plugin.last_error);
    json.key("restarts").number(plugin.restarts);
    json.key("required").boolean(plugin.required);
    json.key("facts").begin_array();
    for (const FactView& fact : plugin.facts) {
      json.begin_object();
      json.key("name").string(fact.name);
      json.key("value").string(fact.value);
      json.key("severity").string(fact.severity);
      json.end_object();
    }
    json.end_array();
    json.end_object();
  }
  json.end_array();
  json.end_object();
  return json.take();
}

std::string status_text(const StatusView& status) {
  std::string out;
  append_table(out,
               {
                   {"node", printable(status.node_id) + " (" + printable(status.version) + ")"},
                   {"role", role_summary(status)},
                   {"paused", status.paused ? "yes" : "no"},
                   {"lease", lease_summary(status)},
                   {"last", transition_summary(status)},
               });
  if (!status.nodes.empty()) {
    std::vector<std::vector<std::string>> rows{
        {"NODE", "ROLE", "ADDRESS", "ADMIN", "VERSION", "BACKUP DIR", "SEEN", "NOTE"}};
    for (const NodeView& node : status.nodes) {
      rows.push_back({printable(node.id), printable(node.role), printable(node.address),
                      printable(node.admin_address), printable(node.version),
                      printable(node.backup_dir), format_ms(node.seen_ms_ago) + " ago",
                      node_note(node)});
    }
    out += '\n';
    append_table(out, rows);
  }
  if (!status.plugins.empty()) {
    std::vector<std::vector<std::string>> rows{{"PLUGIN", "VERSION", "STATE", "HEALTH", "DETAIL"}};
    for (const PluginView& plugin : status.plugins) {
      rows.push_back({printable(plugin.id), printable(plugin.version), printable(plugin.state),
                      printable(plugin.health), plugin_detail(plugin)});
    }
    // The table's columns are measured on the plugins' lines alone; each plugin's facts follow
    // its line, indented.
    std::string table;
    append_table(table, rows);
    out += '\n';
    std::size_t begin = 0;
    for (std::size_t line = 0; begin < table.size(); ++line) {
      const std::size_t end = table.find('\n', begin) + 1;
      out.append(table, begin, end - begin);
      begin = end;
      if (line == 0) continue;  // the header
      for (const FactView& fact : status.plugins[line - 1].facts) out += fact_line(fact);
    }
  }
  return out;
}

std::string status_html(const StatusView& status) {
  const auto row = [](std::string& out, const std::vector<std::string>& cells, const char* tag) {
    out += "<tr>";
    for (const std::string& cell : cells) {
      out += std::string("<") + tag + ">" + html_escape(cell) + "</" + tag + ">";
    }
    out += "</tr>\n";
  };
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"refresh\" content=\"2\">\n<title>emsnode " +
      html_escape(status.node_id) + ": " + html_escape(status.role) +
      "</title>\n<style>\n"
      "body{font:14px system-ui,sans-serif;margin:2em;color:#222}\n"
      "table{border-collapse:collapse;margin:.5em 0 1.5em}\n"
      "th,td{text-align:left;padding:.2em .9em .2em 0;border-bottom:1px solid #ddd}\n"
      ".role{padding:.1em .5em;border-radius:.3em;background:#ddd}\n"
      ".active{background:#2a2;color:#fff}\n"
      ".facts ul{list-style:none;margin:0;padding:0}\n"
      ".severity{display:inline-block;min-width:4.5em;padding:0 .3em;border-radius:.3em;"
      "font-size:85%}\n"
      ".severity-info .severity{background:#e4eef9}\n"
      ".severity-warning .severity{background:#f5c542}\n"
      ".severity-critical .severity{background:#c22;color:#fff}\n"
      "</style></head><body>\n<h1>" +
      html_escape(status.node_id) + " <span class=\"role" +
      (status.role == "active" ? " active" : "") + "\">" + html_escape(status.role) +
      "</span></h1>\n<table>\n";
  row(out, {"version", status.version}, "td");
  row(out, {"role", role_summary(status)}, "td");
  row(out, {"paused", status.paused ? "yes" : "no"}, "td");
  row(out, {"lease", lease_summary(status)}, "td");
  row(out, {"last transition", transition_summary(status)}, "td");
  out += "</table>\n<h2>Nodes</h2>\n<table>\n";
  row(out, {"node", "role", "address", "admin", "version", "backup dir", "seen", "note"}, "th");
  for (const NodeView& node : status.nodes) {
    row(out,
        {node.id, node.role, node.address, node.admin_address, node.version, node.backup_dir,
         format_ms(node.seen_ms_ago) + " ago", node_note(node)},
        "td");
  }
  out += "</table>\n<h2>Plugins</h2>\n<table>\n";
  row(out, {"plugin", "version", "state", "health", "detail"}, "th");
  for (const PluginView& plugin : status.plugins) {
    row(out, {plugin.id, plugin.version, plugin.state, plugin.health, plugin_detail(plugin)}, "td");
    if (plugin.facts.empty()) continue;
    out += "<tr class=\"facts\"><td></td><td colspan=\"4\"><ul>\n";
    for (const FactView& fact : plugin.facts) {
      out += "<li class=\"fact" + severity_class(fact.severity) + "\"><span class=\"severity\">" +
             html_escape(fact.severity) + "</span> <b>" + html_escape(fact.name) + "</b> " +
             html_escape(fact.value) + "</li>\n";
    }
    out += "</ul></td></tr>\n";
  }
  out += "</table>\n</body></html>\n";
  return out;
}

std::string settings_json(const std::vector<Setting>& settings) {
  JsonWriter json;
  json.begin_array();
  for (const Setting& setting : settings) {
    json.begin_object();
    json.key("key").string(setting.key);
    json.key("value").string(setting.value);
    json.key("updated_at_ms").number(setting.updated_at_ms);
    json.key("updated_by").string(setting.updated_by);
    json.key("epoch").number(setting.epoch);
    json.end_object();
  }
  json.end_array();
  return json.take();
}

std::string settings_text(const std::vector<Setting>& settings) {
  if (settings.empty()) return "no cluster settings are set\n";
  std::vector<std::vector<std::string>> rows{{"KEY", "VALUE", "UPDATED", "BY", "EPOCH"}};
  for (const Setting& setting : settings) {
    rows.push_back({printable(setting.key), printable(setting.value),
                    format_unix_ms(setting.updated_at_ms), printable(setting.updated_by),
                    std::to_string(setting.epoch)});
  }
  std::string out;
  append_table(out, rows);
  return out;
}

std::string format_bytes(std::uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.1f %s", value, kUnits[unit]);
  return text;
}

namespace {

void append_file(JsonWriter& json, const StoreFile& file) {
  json.begin_object();
  json.key("key").string(file.key);
  json.key("size").number(file.size);
  json.key("sha256").string(file.sha256);
  json.key("modified_at_ms").number(file.modified_at_ms);
  json.key("writer_node").string(file.writer_node);
  json.key("epoch").number(file.epoch);
  json.end_object();
}

}  // namespace

std::string store_file_json(const StoreFile& file) {
  JsonWriter json;
  append_file(json, file);
  return json.take();
}

std::string store_list_json(const std::vector<StoreFile>& files) {
  JsonWriter json;
  json.begin_array();
  for (const StoreFile& file : files) append_file(json, file);
  json.end_array();
  return json.take();
}

std::string store_file_text(const StoreFile& file) {
  std::string out;
  append_table(
      out, {
               {"key", printable(file.key)},
               {"size", std::to_string(file.size) + " bytes (" + format_bytes(file.size) + ")"},
               {"sha256", printable(file.sha256)},
               {"modified", format_unix_ms(file.modified_at_ms)},
               {"writer", printable(file.writer_node) + ", epoch " + std::to_string(file.epoch)},
           });
  return out;
}

std::string store_list_text(const std::vector<StoreFile>& files, const std::string& prefix) {
  if (files.empty()) {
    return prefix.empty() ? "the file store is empty\n"
                          : "no file in the store starts with " + printable(prefix) + "\n";
  }
  std::vector<std::vector<std::string>> rows{{"KEY", "SIZE", "MODIFIED", "BY", "EPOCH"}};
  std::uint64_t total = 0;
  for (const StoreFile& file : files) {
    rows.push_back({printable(file.key), format_bytes(file.size),
                    format_unix_ms(file.modified_at_ms), printable(file.writer_node),
                    std::to_string(file.epoch)});
    total += file.size;
  }
  std::string out;
  append_table(out, rows);
  out += std::to_string(files.size()) + (files.size() == 1 ? " file, " : " files, ") +
         format_bytes(total) + "\n";
  return out;
}

}  // namespace emsnode::admin
