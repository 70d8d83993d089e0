// What the two backends, migrate() and watch() share beyond the catalog.
#pragma once

#include <cstddef>
#include <exception>
#include <filesystem>
#include <string>

#include "log/log.hpp"
#include "store/file_store.hpp"

namespace emsnode::store {

// Content moves in chunks of this size: the unit of reads and writes on the share, one row of
// store_blob_chunks, and so the bound of what any operation holds in memory per file.
inline constexpr std::size_t kChunkBytes = std::size_t{1} << 20;
// Chunks a transfer has in flight at once (HashedChunks): enough for the hasher and the I/O to
// keep each other busy through uneven steps, few enough to keep memory flat.
inline constexpr std::size_t kChunksInFlight = 4;

// The log component "store".
const log::Logger& store_log();

// Logs that cleanup after a failure or after a commit did not happen (`what` names the leftover)
// and that collect_garbage() will remove it. Cleanup never replaces the error being reported.
void log_left_for_gc(const std::string& what, const std::exception& error);

// The file every put and remove on a share store replaces: watch() polls it as its wake-up.
// Null for a store of another backend.
const std::filesystem::path* changes_file_of(const FileStore& store);

}  // namespace emsnode::store
