// Parts of the SQLite backend that are worth testing on their own. The backend itself is reached
// through open_sqlite() in database.hpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace emsnode::db {

// The name of the network (or FUSE) filesystem whose statfs() f_type is `f_type`, or nullopt for
// a filesystem SQLite can lock correctly. On these, SQLite's POSIX locks and the WAL's shared
// memory do not keep processes on different hosts apart, so two nodes could both write.
std::optional<std::string_view> network_filesystem_name(std::int64_t f_type);

// The refusal for a database file `db_path` on a filesystem of type `f_type`, or nullopt when the
// filesystem is fine. The message says why and points to the PostgreSQL backend.
std::optional<std::string> network_filesystem_refusal(const std::string& db_path,
                                                      std::int64_t f_type);

}  // namespace emsnode::db
