// A real SMB network share on this host, for tests of code that must work on one: a private Samba
// server (smbd) serving a temporary folder on 127.0.0.1, mounted through FUSE with smbnetfs (this
// kernel has no CIFS client). Files written under path() travel over SMB to the served folder.
//
// How it is set up, and why:
// - smbd runs with its own smb.conf and every state, lock, pid, cache and log directory in the
//   fixture's temporary folder, listening only on 127.0.0.1 on a free port, so it neither needs
//   nor disturbs a system Samba. Guests are mapped to root ("force user"), so there is no account
//   to create and files on the server side belong to the test.
// - smbnetfs cannot be told a port, but libsmbclient reads `smb://HOST:PORT/...` URLs and
//   smbnetfs passes the path component after the mount point as HOST, so the share is reached as
//   `<mount>/127.0.0.1:<port>/<share>`: port 445 is not needed. It runs with HOME set to the
//   fixture's folder, so libsmbclient reads our ~/.smb/smb.conf, not the system's.
// - smbnetfs is mounted with big_writes: without it FUSE (libfuse 2) sends 4 KiB writes and
//   SMB writes are ten times slower. Failures are cached for 100 ms instead of 3 s, so the share
//   answers again soon after the server is back (`neg_cache "false"` would be the obvious way,
//   but smbnetfs 0.6.3 deadlocks reading it).
//
// Making the share go away: stop_server() kills smbd and its children (its process group, which
// smbd creates itself), as a server crash or a lost network does; operations through the mount
// then fail with EIO within a few seconds (smb_timeout), and work again after start_server().
// unmount() leaves the bare mount point, as an unmounted share does.
//
// Needs root, /dev/fuse, smbd (package samba), smbnetfs and fusermount (fuse3): available() says
// what is missing so that a test can skip (support/skip.hpp) where it cannot run.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "support/net.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace emsnode::testing {

namespace smb_detail {

inline constexpr long kFuseSuperMagic = 0x65735546;

// The executable `name` from PATH or the sbin folders (root's tools may be outside a user PATH);
// empty when there is none.
inline std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "";
  dirs += ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::istringstream in(dirs);
  for (std::string dir; std::getline(in, dir, ':');) {
    if (dir.empty()) continue;
    const auto candidate = std::filesystem::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return {};
}

inline bool accepts_connections(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return connected;
}

inline bool is_fuse_mount(const std::filesystem::path& dir) {
  struct statfs info {};
  return ::statfs(dir.c_str(), &info) == 0 && info.f_type == kFuseSuperMagic;
}

// The last `max` bytes of a file, for failure messages.
inline std::string tail_of(const std::filesystem::path& file, std::size_t max = 2000) {
  const std::string text = read_file(file);
  return text.size() <= max ? text : "..." + text.substr(text.size() - max);
}

}  // namespace smb_detail

class SmbShare {
 public:
  static constexpr const char* kShareName = "emsnode";

  // True when this machine can run an SmbShare; otherwise false, with what is missing in `why`.
  static bool available(std::string* why) {
    std::vector<std::string> missing;
    if (::geteuid() != 0) missing.push_back("not root (FUSE mounts and a private smbd need it)");
    if (smb_detail::find_program("smbd").empty()) missing.push_back("no smbd (package samba)");
    if (smb_detail::find_program("smbnetfs").empty()) {
      missing.push_back("no smbnetfs (package smbnetfs)");
    }
    if (fusermount().empty()) missing.push_back("no fusermount3 or fusermount (package fuse3)");
    const int fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      missing.push_back(std::string("cannot open /dev/fuse: ") + std::strerror(errno));
    } else {
      ::close(fd);
    }
    if (why) {
      why->clear();
      for (const auto& reason : missing) *why += (why->empty() ? "" : "; ") + reason;
      if (!why->empty()) *why = "no real SMB share on this machine: " + *why;
    }
    return missing.empty();
  }

  // Starts the server and mounts the share; throws, with the servers' logs, when either fails.
  SmbShare() : port_(free_port()) {
    const auto& root = dir_.path();
    served_ = root / "served";
    mount_point_ = root / "mnt";
    share_path_ = mount_point_ / ("127.0.0.1:" + std::to_string(port_)) / kShareName;
    for (const char* sub : {"served", "mnt", "out", "home/.smb", "samba/state", "samba/lock",
                            "samba/pid", "samba/cache", "samba/private", "samba/ncalrpc"}) {
      std::filesystem::create_directories(root / sub);
    }
    write_configs();
    try {
      start_server();
      mount();
    } catch (...) {
      teardown();  // no destructor runs after a constructor throws
      throw;
    }
  }

  ~SmbShare() { teardown(); }

  SmbShare(const SmbShare&) = delete;
  SmbShare& operator=(const SmbShare&) = delete;

  // The share's root folder as seen through the mount (I/O here goes over SMB).
  const std::filesystem::path& path() const { return share_path_; }
  // The folder smbd serves, as seen on the server's side (the ground truth of what was written).
  const std::filesystem::path& served() const { return served_; }
  const std::filesystem::path& mount_point() const { return mount_point_; }
  std::uint16_t port() const { return port_; }
  bool server_running() const { return smbd_ != nullptr; }
  bool mounted() const { return smbnetfs_ != nullptr; }

  // Kills smbd and every smbd child at once (SIGKILL to the process group smbd leads): open
  // connections drop in the middle of whatever they were doing. Returns once smbd is reaped.
  void stop_server() {
    if (!smbd_) return;
    const pid_t pid = smbd_->pid();
    // smbd makes itself a process group leader at start; never signal a group that is not its
    // own (that could be ours), only smbd itself then.
    if (::getpgid(pid) == pid) {
      ::kill(-pid, SIGKILL);
    } else {
      ::kill(pid, SIGKILL);
    }
    smbd_->wait(std::chrono::seconds(10));
    smbd_.reset();
  }

  // Starts smbd (again) on the same port and folder; once it accepts connections and, when
  // mounted, once the share answers through the mount again.
  void start_server() {
    if (smbd_) return;
    smbd_ = std::make_unique<Process>(
        std::vector<std::string>{smb_detail::find_program("smbd"), "--foreground", "-s",
                                 (dir_ / "smb.conf").string()},
        dir_ / "out");
    if (!eventually([&] { return smb_detail::accepts_connections(port_) || !smbd_->running(); },
                    std::chrono::seconds(15)) ||
        !smbd_->running()) {
      const std::string why = "smbd did not start on 127.0.0.1:" + std::to_string(port_);
      stop_server();
      throw std::runtime_error(why + "\n" + diagnostics());
    }
    if (smbnetfs_) await_share("the share did not answer through the mount after smbd started");
  }

  // Mounts the share with smbnetfs (FUSE) and waits until path() answers.
  void mount() {
    if (smbnetfs_) return;
    const auto home = dir_ / "home";
    const std::string options = "config=" + (home / ".smb/smbnetfs.conf").string() +
                                ",log_file=" + (dir_ / "smbnetfs.log").string() +
                                ",big_writes,max_write=131072,fsname=emsnode-test-smb";
    // env(1) replaces HOME (Process only appends to the environment, and getenv takes the first).
    smbnetfs_ = std::make_unique<Process>(
        std::vector<std::string>{"/usr/bin/env", "HOME=" + home.string(),
                                 smb_detail::find_program("smbnetfs"), mount_point_.string(), "-f",
                                 "-o", options},
        dir_ / "out");
    if (!eventually(
            [&] { return smb_detail::is_fuse_mount(mount_point_) || !smbnetfs_->running(); },
            std::chrono::seconds(15)) ||
        !smbnetfs_->running()) {
      const std::string why =
          "smbnetfs did not mount " + mount_point_.string() + ": " + smbnetfs_->err();
      smbnetfs_.reset();
      throw std::runtime_error(why + "\n" + diagnostics());
    }
    if (smbd_) await_share("the share did not answer through the mount");
  }

  // Unmounts (lazily when something still has a file open), leaving the bare mount point.
  void unmount() {
    if (!smbnetfs_) return;
    std::string errors;
    bool done = false;
    for (const char* flags : {"-u", "-uz"}) {
      const auto result =
          run({fusermount(), flags, mount_point_.string()}, dir_ / "out", std::chrono::seconds(20));
      if (result.status == 0) {
        done = true;
        break;
      }
      errors += std::string(flags) + ": " + result.err;
    }
    // smbnetfs leaves when its mount goes; it is killed (by PID) if it hangs.
    if (!smbnetfs_->wait(std::chrono::seconds(10))) smbnetfs_->signal(SIGKILL);
    smbnetfs_.reset();
    if (!done) throw std::runtime_error("cannot unmount " + mount_point_.string() + ": " + errors);
  }

  // The end of smbd's and smbnetfs's logs, to explain a failure.
  std::string diagnostics() const {
    return "--- smbd log:\n" + smb_detail::tail_of(dir_ / "samba/smbd.log") +
           "\n--- smbnetfs log:\n" + smb_detail::tail_of(dir_ / "smbnetfs.log");
  }

 private:
  // Unmounts, then stops the server (with smbd gone first, anything still touching the mount
  // would wait for smb_timeout). Never throws: it runs in the destructor; what it cannot undo is
  // reported on standard error, and the Process members still kill what is left by PID.
  void teardown() noexcept {
    try {
      unmount();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "SmbShare: %s\n", e.what());
    }
    stop_server();
  }

  static std::string fusermount() {
    const std::string fuse3 = smb_detail::find_program("fusermount3");
    return fuse3.empty() ? smb_detail::find_program("fusermount") : fuse3;
  }

  // Waits until the share answers a request that really reaches smbnetfs: a listing (FUSE caches
  // attributes, so a stat may succeed from the cache while smbnetfs still fails every request
  // for a moment after the server came back).
  void await_share(const std::string& what) {
    std::error_code error;
    if (!eventually(
            [&] {
              std::filesystem::directory_iterator listing(share_path_, error);
              return !error;
            },
            std::chrono::seconds(15))) {
      throw std::runtime_error(what + ": " + share_path_.string() + ": " + error.message() + "\n" +
                               diagnostics());
    }
  }

  void write_configs() const {
    const auto samba = dir_ / "samba";
    using Settings = std::vector<std::pair<std::string, std::string>>;
    const Settings global = {
        {"server role", "standalone server"},
        {"interfaces", "127.0.0.1"},
        {"bind interfaces only", "yes"},
        {"smb ports", std::to_string(port_)},
        {"disable netbios", "yes"},
        {"pid directory", (samba / "pid").string()},
        {"lock directory", (samba / "lock").string()},
        {"state directory", (samba / "state").string()},
        {"cache directory", (samba / "cache").string()},
        {"private dir", (samba / "private").string()},
        {"ncalrpc dir", (samba / "ncalrpc").string()},
        {"passdb backend", "tdbsam:" + (samba / "private/passdb.tdb").string()},
        {"log file", (samba / "smbd.log").string()},
        {"log level", "1"},
        {"map to guest", "Bad User"},
        {"load printers", "no"},
        {"printcap name", "/dev/null"},
        {"disable spoolss", "yes"},
    };
    const Settings share = {
        {"path", served_.string()}, {"read only", "no"},    {"guest ok", "yes"},
        {"guest only", "yes"},      {"force user", "root"},
    };
    std::string text = "[global]\n";
    for (const auto& [name, value] : global) text += "  " + name + " = " + value + "\n";
    text += "[" + std::string(kShareName) + "]\n";
    for (const auto& [name, value] : share) text += "  " + name + " = " + value + "\n";
    dir_.write("smb.conf", text);
    // The client side: libsmbclient's smb.conf and smbnetfs's own configuration, which smbnetfs
    // ignores (with a warning) unless only its owner can read it.
    dir_.write("home/.smb/smb.conf",
               "[global]\n  client min protocol = SMB2\n  disable netbios = yes\n");
    const auto conf = dir_.write("home/.smb/smbnetfs.conf",
                                 "smb_query_browsers \"false\"\n"
                                 "use_libsecret \"false\"\n"
                                 "neg_cache_timeout 100\n"
                                 "smb_timeout 5000\n"
                                 "auth \"guest\" \"\"\n");
    std::filesystem::permissions(
        conf, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }

  TempDir dir_;  // first member: removed last, after the mount and the servers are gone
  std::uint16_t port_;
  std::filesystem::path served_;
  std::filesystem::path mount_point_;
  std::filesystem::path share_path_;
  std::unique_ptr<Process> smbd_;
  std::unique_ptr<Process> smbnetfs_;
};

}  // namespace emsnode::testing
