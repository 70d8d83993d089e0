// Trusted files: what runs with the node's power (plugin libraries, hook executables) or holds its
// secrets is trusted only when no other local user could have written it, as sshd's StrictModes
// asks of a user's keys.
#pragma once

#include <filesystem>
#include <string>

namespace emsnode::config {

// Why `file` cannot be trusted, as one line "<path>: <why> (<fix>)", or "" when it can: it and
// every folder above it belong to root or to the user running the node, and neither group nor
// others may write to them. A folder others may write to passes only with the sticky bit (/tmp):
// there nobody else may rename or remove our entries. Folders are judged by their real path, so a
// root-owned link such as /lib -> usr/lib is followed.
std::string untrusted_reason(const std::filesystem::path& file);

// The same judgement of a file already opened (with O_NOFOLLOW) as `fd`, shown as `file`, and of
// the folders above it: a caller that goes on to use that descriptor leaves no moment in which
// the file could be swapped after the check.
std::string untrusted_reason(int fd, const std::filesystem::path& file);

// Why the secret file `file` must not be used, or "": it is readable by every user.
std::string exposed_secret_reason(const std::filesystem::path& file);

}  // namespace emsnode::config
