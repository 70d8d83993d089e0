#include "db/confinement.hpp"

#include <algorithm>
#include <cctype>
#include <set>

#include "db/schema.hpp"

namespace emsnode::db {
namespace {

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string upper(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return text;
}

bool word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}

// The end of the quoted text that starts at `begin` (a quote), past its closing quote. A doubled
// quote stands for itself; `backslashes` (PostgreSQL's E'...') also lets a backslash escape.
std::size_t end_of_quoted(std::string_view sql, std::size_t begin, bool backslashes) {
  const char quote = sql[begin];
  std::size_t j = begin + 1;
  while (j < sql.size()) {
    if (backslashes && sql[j] == '\\') {
      j += 2;
    } else if (sql[j] != quote) {
      ++j;
    } else if (j + 1 < sql.size() && sql[j + 1] == quote) {
      j += 2;
    } else {
      return j + 1;
    }
  }
  return sql.size();
}

// A statement's tokens, lower case, for keyword comparisons.
std::vector<std::string> lowered(const std::vector<std::string>& tokens) {
  std::vector<std::string> words(tokens.size());
  std::transform(tokens.begin(), tokens.end(), words.begin(), lower);
  return words;
}

// The (possibly schema-qualified) name at `at`: the part after the last '.', lower case. Moves
// `at` past it.
std::string name_at(const std::vector<std::string>& tokens, std::size_t& at) {
  if (at >= tokens.size()) return std::string();
  std::string name = tokens[at++];
  while (at + 1 < tokens.size() && tokens[at] == ".") {
    name = tokens[at + 1];
    at += 2;
  }
  return lower(name);
}

// The tables a statement writes, wherever in it (a data-modifying WITH, a trigger's body):
// INSERT/REPLACE INTO t, UPDATE t SET, DELETE FROM t, MERGE INTO t; and those a foreign key
// REFERENCES, whose writes the plugin's rows could hold up.
std::vector<std::string> written_tables(const std::vector<std::string>& tokens,
                                        const std::vector<std::string>& words) {
  std::vector<std::string> names;
  const auto is = [&](std::size_t at, const char* word) {
    return at < words.size() && words[at] == word;
  };
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::size_t at = i + 1;
    const std::string& word = words[i];
    if (word == "insert" || word == "replace" || word == "merge") {
      if (word == "insert" && is(at, "or")) at += 2;  // INSERT OR REPLACE INTO
      if (!is(at, "into")) continue;                  // a trigger's event, replace()
      ++at;
      names.push_back(name_at(tokens, at));
    } else if (word == "references") {
      // A foreign key into another table would let the plugin's rows block that table's writes.
      names.push_back(name_at(tokens, at));
    } else if (word == "delete") {
      if (!is(at, "from")) continue;  // a trigger's event, ON DELETE CASCADE
      ++at;
      if (is(at, "only")) ++at;
      names.push_back(name_at(tokens, at));
    } else if (word == "update") {
      // UPDATE [OR ...] [ONLY] t [[AS] alias] SET: any other UPDATE is a trigger's event, an
      // upsert's DO UPDATE SET, ON UPDATE CASCADE or FOR UPDATE.
      if (is(at, "or")) at += 2;
      if (is(at, "only")) ++at;
      if (is(at, "set")) continue;
      const std::string name = name_at(tokens, at);
      if (is(at, "as")) ++at;
      if (!is(at, "set")) ++at;
      if (is(at, "set")) names.push_back(name);
    }
  }
  return names;
}

// The tables named in a statement's FROM and JOIN lists (`FROM a x, b JOIN c ON ...`), lower
// case; a subquery or a function there is skipped. What SQLite's authorizer sees exactly, read
// from the words, so that PostgreSQL, which has no authorizer, refuses a read of the core's
// tables too.
std::vector<std::string> read_tables(const std::vector<std::string>& tokens,
                                     const std::vector<std::string>& words) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (words[i] != "from" && words[i] != "join" && words[i] != "using") continue;
    std::size_t at = i + 1;
    for (;;) {
      if (at < words.size() && words[at] == "only") ++at;
      if (at >= tokens.size() || tokens[at] == "(") break;
      const std::size_t start = at;
      std::string name = name_at(tokens, at);
      if (at < tokens.size() && tokens[at] == "(") break;  // a function
      if (start < at) names.push_back(std::move(name));
      if (at < words.size() && words[at] == "as") ++at;
      if (at < tokens.size() && tokens[at] != "," && word_char(tokens[at].front()) &&
          words[at] != "where" && words[at] != "join" && words[at] != "on") {
        ++at;  // an alias
      }
      if (at >= tokens.size() || tokens[at] != ",") break;
      ++at;
    }
  }
  return names;
}

// Functions that change the shared connection's settings or reach other sessions.
constexpr const char* kRefusedFunctions[] = {
    "set_config",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_notify",
    "lo_import",
    "lo_export",
    "load_extension",
};

// The statements a plugin may start with; everything else changes the connection or its
// transactions (PRAGMA, ATTACH, SET, RESET, BEGIN, COMMIT, SAVEPOINT, VACUUM, COPY, DO, ...).
constexpr const char* kAllowedStarts[] = {"select", "with",    "values", "insert", "update",
                                          "delete", "replace", "create", "alter",  "drop"};

}  // namespace

std::vector<std::string> sql_tokens(std::string_view sql) {
  std::vector<std::string> tokens;
  const std::size_t n = sql.size();
  std::size_t i = 0;
  while (i < n) {
    const char c = sql[i];
    const char next = i + 1 < n ? sql[i + 1] : '\0';
    if (std::isspace(static_cast<unsigned char>(c)) != 0) {
      ++i;
    } else if (c == '-' && next == '-') {
      const std::size_t end = sql.find('\n', i);
      i = end == std::string_view::npos ? n : end;
    } else if (c == '/' && next == '*') {
      int depth = 1;  // PostgreSQL's block comments nest
      i += 2;
      while (i < n && depth > 0) {
        if (sql.compare(i, 2, "/*") == 0) {
          ++depth;
          i += 2;
        } else if (sql.compare(i, 2, "*/") == 0) {
          --depth;
          i += 2;
        } else {
          ++i;
        }
      }
    } else if (c == '\'') {
      // A string literal is no name. E'...' takes backslash escapes on PostgreSQL: reading it
      // as PostgreSQL does keeps a quote from hiding the words after it.
      const bool escapes = !tokens.empty() && (tokens.back() == "E" || tokens.back() == "e") &&
                           i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e');
      if (escapes) tokens.pop_back();
      i = end_of_quoted(sql, i, escapes);
    } else if (c == '"' || c == '`') {
      const std::size_t end = end_of_quoted(sql, i, false);
      std::string name;
      for (std::size_t j = i + 1; j < end; ++j) {
        if (sql[j] == c) {
          if (j + 1 == end || sql[j + 1] != c) break;
          ++j;  // a doubled quote stands for itself
        }
        name += sql[j];
      }
      tokens.push_back(name);
      i = end;
    } else if (c == '$' && (i == 0 || !word_char(sql[i - 1])) &&
               !(std::isdigit(static_cast<unsigned char>(next)) != 0)) {
      // A dollar-quoted string, $tag$ ... $tag$ (PostgreSQL): a string, as above.
      std::size_t j = i + 1;
      while (j < n && word_char(sql[j]) && sql[j] != '$') ++j;
      if (j < n && sql[j] == '$') {
        const std::string_view tag = sql.substr(i, j - i + 1);
        const std::size_t close = sql.find(tag, j + 1);
        i = close == std::string_view::npos ? n : close + tag.size();
      } else {
        tokens.emplace_back(1, c);
        ++i;
      }
    } else if (word_char(c)) {
      std::size_t j = i;
      while (j < n && word_char(sql[j])) ++j;
      tokens.emplace_back(sql.substr(i, j - i));
      i = j;
    } else {
      tokens.emplace_back(1, c);
      ++i;
    }
  }
  return tokens;
}

std::vector<std::string> ddl_names(std::string_view sql) {
  const std::vector<std::string> tokens = sql_tokens(sql);
  const std::vector<std::string> words = lowered(tokens);
  std::size_t at = 0;
  const auto next_is = [&](std::initializer_list<const char*> list) {
    if (at >= words.size()) return false;
    return std::any_of(list.begin(), list.end(),
                       [&](const char* word) { return words[at] == word; });
  };
  const auto skip = [&](std::initializer_list<const char*> list) {
    while (next_is(list)) ++at;
  };
  std::vector<std::string> names;
  const auto take_name = [&] { names.push_back(name_at(tokens, at)); };
  // The table a trigger or an index is on: the name after the next ON.
  const auto take_on = [&] {
    while (at < words.size() && words[at] != "on") ++at;
    if (at < words.size()) {
      ++at;
      skip({"only"});
      take_name();
    }
  };

  if (next_is({"create"})) {
    ++at;
    skip({"or", "replace", "unique", "temp", "temporary"});
    if (!next_is({"table", "index", "view", "trigger"})) return names;
    const std::string kind = words[at++];
    skip({"if", "not", "exists", "concurrently"});
    take_name();
    if (kind == "index" || kind == "trigger") take_on();
  } else if (next_is({"drop"})) {
    ++at;
    if (!next_is({"table", "index", "view", "trigger"})) return names;
    const std::string kind = words[at++];
    skip({"if", "exists"});
    take_name();
    if (kind == "trigger" && next_is({"on"})) take_on();  // PostgreSQL: DROP TRIGGER t ON table
  } else if (next_is({"alter"})) {
    ++at;
    if (!next_is({"table"})) return names;
    ++at;
    skip({"if", "exists", "only"});
    take_name();
    for (; at + 1 < words.size(); ++at) {
      if (words[at] == "rename" && words[at + 1] == "to") {
        at += 2;
        take_name();
        break;
      }
    }
  }
  return names;
}

bool is_core_object(std::string_view name) {
  static const std::set<std::string, std::less<>> objects = [] {
    std::set<std::string, std::less<>> found = {"schema_versions"};
    for (const Migration& migration : core_migrations()) {
      for (const std::string& statement : migration.statements) {
        for (const std::string& object : ddl_names(statement)) found.insert(object);
      }
    }
    return found;
  }();
  return objects.count(lower(std::string(name))) > 0;
}

bool owns(const Confinement& confinement, std::string_view name) {
  const std::string lowered_name = lower(std::string(name));
  return !confinement.table_prefix.empty() &&
         lowered_name.compare(0, confinement.table_prefix.size(), confinement.table_prefix) == 0 &&
         lowered_name.size() > confinement.table_prefix.size() && !is_core_object(lowered_name);
}

std::optional<std::string> confinement_refusal(const Confinement& confinement,
                                               std::string_view sql) {
  const std::vector<std::string> tokens = sql_tokens(sql);
  if (tokens.empty()) return std::nullopt;  // the backend explains an empty statement
  const std::vector<std::string> words = lowered(tokens);
  const std::string& first = words.front();
  const std::string refused = "\"" + upper(tokens.front()) + "\" is refused: ";
  if (std::find(std::begin(kAllowedStarts), std::end(kAllowedStarts), first) ==
      std::end(kAllowedStarts)) {
    return refused +
           "a plugin's statement may not change the node's database connection or its "
           "transactions (it runs SELECT, INSERT, UPDATE, DELETE, and CREATE, ALTER or DROP "
           "of its own tables; db_write makes the transaction)";
  }
  if (first == "create" || first == "drop" || first == "alter") {
    std::size_t at = 1;
    while (at < words.size() &&
           (words[at] == "unique" || words[at] == "or" || words[at] == "replace")) {
      ++at;
    }
    const std::string kind = at < words.size() ? words[at] : std::string();
    if (kind == "temp" || kind == "temporary") {
      return refused +
             "a temporary object would live on the node's shared connection, where it could "
             "hide the core's tables";
    }
    const bool allowed = first == "alter" ? kind == "table"
                                          : (kind == "table" || kind == "index" || kind == "view" ||
                                             kind == "trigger");
    if (!allowed) {
      return "\"" + upper(tokens.front()) + " " + upper(kind) +
             "\" is refused: a plugin creates, alters and drops only tables, indexes, views and "
             "triggers of its own";
    }
  }
  const auto not_owned = [&](const std::string& name) {
    return "touches \"" + name + "\"" + (is_core_object(name) ? " (the core's)" : "") +
           ", which is not " + confinement.owner +
           "'s: its tables, indexes, views and triggers are named " + confinement.table_prefix +
           "...";
  };
  for (const std::string& name : ddl_names(sql)) {
    if (!owns(confinement, name)) return "refused: it " + not_owned(name);
  }
  for (const std::string& name : written_tables(tokens, words)) {
    if (!owns(confinement, name)) return "writing is refused: it " + not_owned(name);
  }
  for (const std::string& name : read_tables(tokens, words)) {
    if (is_core_object(name)) {
      return "reading \"" + name + "\" is refused: it is one of the core's tables";
    }
  }
  for (std::size_t i = 0; i + 1 < words.size(); ++i) {
    if (tokens[i + 1] != "(") continue;
    if (std::find(std::begin(kRefusedFunctions), std::end(kRefusedFunctions), words[i]) !=
        std::end(kRefusedFunctions)) {
      return words[i] +
             "() is refused: it changes the node's database connection or reaches other "
             "sessions";
    }
  }
  return std::nullopt;
}

}  // namespace emsnode::db
