// The token of a node whose config sets none: made on the node's first start in its data_dir,
// readable by the file's owner only, and read from there by the CLI run with the same config.
// Whoever can read the node's data can operate it; nobody else on the host can.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>

#include "config/node_config.hpp"

namespace emsnode::admin {

// <data_dir>/admin.token
std::filesystem::path local_token_path(const std::filesystem::path& data_dir);

// For the node: the token in <data_dir>/admin.token, or a new one (32 random bytes in hex) in a
// new file of mode 0600 when there is none. Throws std::runtime_error naming the file when it
// cannot be made or read, when it is no regular file, when its group or others may read it, or
// when it holds fewer than config::kMinAdminTokenLength characters.
std::string ensure_local_token(const std::filesystem::path& data_dir);

// For the CLI: the token in <data_dir>/admin.token, or nullopt when there is none or this user
// may not read it (the node then refuses what needs the token, and says so).
std::optional<std::string> read_local_token(const std::filesystem::path& data_dir);

}  // namespace emsnode::admin
