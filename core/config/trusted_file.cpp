#include "config/trusted_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <system_error>

namespace emsnode::config {
namespace {

namespace fs = std::filesystem;

std::string octal_mode(mode_t mode) {
  std::ostringstream text;
  text << "0" << std::oct << (mode & 07777);
  return text.str();
}

// Owner and mode of one file or folder; `what` names it in the reason.
std::string judge(const struct stat& st, const std::string& shown, bool folder) {
  const uid_t self = ::geteuid();
  if (st.st_uid != 0 && st.st_uid != self) {
    return shown + ": owned by uid " + std::to_string(st.st_uid) +
           ", neither root nor the user running the node (uid " + std::to_string(self) +
           "); chown it to one of them";
  }
  const bool sticky = (st.st_mode & S_ISVTX) != 0;
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && !(folder && sticky)) {
    return shown + ": writable by group or others (mode " + octal_mode(st.st_mode) + "); " +
           (folder ? "a folder above a file the node trusts (plugin, hook)"
                   : "a file the node trusts (plugin, hook)") +
           " must be writable by its owner only (chmod go-w)";
  }
  return {};
}

std::string judge_folders(const fs::path& file) {
  std::error_code error;
  fs::path folder = fs::weakly_canonical(fs::absolute(file, error).parent_path(), error);
  if (error) return file.string() + ": cannot resolve its folder: " + error.message();
  for (;;) {
    struct stat st {};
    if (::stat(folder.c_str(), &st) != 0) {
      return folder.string() + ": cannot stat: " + std::strerror(errno);
    }
    if (std::string reason = judge(st, folder.string(), true); !reason.empty()) return reason;
    if (folder == folder.root_path() || folder.parent_path() == folder) return {};
    folder = folder.parent_path();
  }
}

}  // namespace

std::string untrusted_reason(const fs::path& file) {
  std::error_code error;
  const fs::path real = fs::canonical(file, error);  // a link is judged where it leads
  if (error) return file.string() + ": cannot resolve: " + error.message();
  struct stat st {};
  if (::stat(real.c_str(), &st) != 0) {
    return file.string() + ": cannot stat: " + std::strerror(errno);
  }
  if (std::string reason = judge(st, file.string(), false); !reason.empty()) return reason;
  return judge_folders(real);
}

std::string untrusted_reason(int fd, const fs::path& file) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return file.string() + ": cannot stat: " + std::strerror(errno);
  if (!S_ISREG(st.st_mode)) return file.string() + ": not a regular file";
  if (std::string reason = judge(st, file.string(), false); !reason.empty()) return reason;
  return judge_folders(file);
}

std::string exposed_secret_reason(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return {};  // the read that follows reports it
  if ((st.st_mode & S_IROTH) != 0) {
    return file.string() + ": readable by every user (mode " + octal_mode(st.st_mode) +
           "); a secret file must not be (chmod o-r)";
  }
  return {};
}

}  // namespace emsnode::config
