// Parts of the PostgreSQL backend that are worth testing on their own. The backend itself is
// reached through open_postgres() in database.hpp.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace emsnode::db {

struct RewrittenSql {
  std::string sql;
  std::size_t placeholders = 0;  // how many `?` became $1..$n
};

// The portable SQL the callers write, as PostgreSQL needs it: each `?` becomes $1, $2, ... in
// order, and the type names INTEGER, BLOB and REAL (whole words, any case) become BIGINT (SQLite's
// integers have 64 bits), BYTEA and DOUBLE PRECISION. Nothing inside string literals ('...',
// E'...', $tag$...$tag$), quoted identifiers ("...") or comments (--, /* */) is touched.
RewrittenSql rewrite_for_postgres(std::string_view sql);

// "host:port/dbname" of a libpq connection string (URL or keyword=value), for logs and status:
// never the user's password. Throws std::invalid_argument when libpq cannot parse it, or when it
// holds a password (which belongs in the separate password option, where it is never shown).
std::string describe_postgres_url(const std::string& url);

// What a libpq connection string says about where it connects: the servers it names (its host
// and hostaddr lists; PGHOST when it names none; empty for libpq's default, the local Unix
// socket) and the sslmode it sets itself, if any. Throws std::invalid_argument when libpq cannot
// parse it.
struct PostgresTarget {
  std::vector<std::string> hosts;
  std::string sslmode;
};
PostgresTarget postgres_target(const std::string& url);

// True for a host on this machine only: a Unix socket's folder, localhost, 127.0.0.0/8, ::1.
bool is_loopback_host(std::string_view host);

}  // namespace emsnode::db
