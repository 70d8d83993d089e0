// Several hosts on one machine for tests: each host is a network namespace of its own with one
// address, linked by a veth pair to a bridge that lives in a namespace of the lab's own, so the
// test touches no interface of the machine it runs on. A host is partitioned by filtering its
// traffic (nftables inside its namespace) or by taking its link down; `tc netem` is not
// available here, so loss is all or nothing.
//
// Namespaces are named emsnode-<pid>-<lab>-<host>; a lab removes its own when destroyed, and
// removes those left by a test process that died before it could.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace emsnode::testing {

class NetLab {
 public:
  struct Host {
    std::string name;
    std::string netns;
    std::string address;
  };

  static constexpr const char* kIp = "/usr/sbin/ip";
  static constexpr const char* kNft = "/usr/sbin/nft";
  static constexpr const char* kSubnet =
      "10.213.0.";  // every lab has the same /24: they never meet

  // Why this machine cannot run a lab (not root, no `ip`/`nft`, namespaces refused), or nullopt.
  static std::optional<std::string> unavailable() {
    if (::geteuid() != 0) return "network namespaces need root";
    for (const char* tool : {kIp, kNft}) {
      if (::access(tool, X_OK) != 0) {
        return std::string(tool) + " is missing (packages iproute2 and nftables)";
      }
    }
    const int self = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0) return "cannot open /proc/thread-self/ns/net";
    ::close(self);
    return std::nullopt;
  }

  NetLab()
      : prefix_("emsnode-" + std::to_string(::getpid()) + "-" + std::to_string(next_lab()) + "-") {
    remove_orphans();
    hub_ = prefix_ + "hub";
    command({kIp, "netns", "add", hub_});
    in_ns(hub_, {kIp, "link", "set", "lo", "up"});
    in_ns(hub_, {kIp, "link", "add", "br0", "type", "bridge"});
    in_ns(hub_, {kIp, "link", "set", "br0", "up"});
  }

  ~NetLab() {
    for (const Host& host : hosts_) quietly({kIp, "netns", "del", host.netns});
    quietly({kIp, "netns", "del", hub_});
  }
  NetLab(const NetLab&) = delete;
  NetLab& operator=(const NetLab&) = delete;

  // A new host with the next address (10.213.0.2, .3, ...), its link up.
  const Host& add_host(const std::string& name) {
    Host host{name, prefix_ + name, kSubnet + std::to_string(hosts_.size() + 2)};
    const std::string port = "p" + std::to_string(hosts_.size());  // the bridge side of the pair
    command({kIp, "netns", "add", host.netns});
    in_ns(host.netns, {kIp, "link", "set", "lo", "up"});
    in_ns(host.netns,
          {kIp, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", hub_});
    in_ns(host.netns, {kIp, "addr", "add", host.address + "/24", "dev", "eth0"});
    in_ns(host.netns, {kIp, "link", "set", "eth0", "up"});
    in_ns(hub_, {kIp, "link", "set", port, "master", "br0"});
    in_ns(hub_, {kIp, "link", "set", port, "up"});
    hosts_.push_back(host);
    return hosts_.back();
  }

  // `argv` run inside `host`'s namespace (`ip netns exec` replaces itself with the command, so a
  // Process started with it has the command's own PID).
  static std::vector<std::string> inside(const Host& host, std::vector<std::string> argv) {
    argv.insert(argv.begin(), {kIp, "netns", "exec", host.netns});
    return argv;
  }

  // Drops every packet between `host` and `peer_address`, both ways, as a broken switch port
  // would: connections hang rather than being refused. Adds to cuts made earlier.
  void cut(const Host& host, const std::string& peer_address) {
    in_ns(host.netns, {kNft, "add table inet emsnode_cut"});
    in_ns(host.netns,
          {kNft, "add chain inet emsnode_cut in { type filter hook input priority 0; }"});
    in_ns(host.netns,
          {kNft, "add chain inet emsnode_cut out { type filter hook output priority 0; }"});
    in_ns(host.netns, {kNft, "add rule inet emsnode_cut in ip saddr " + peer_address + " drop"});
    in_ns(host.netns, {kNft, "add rule inet emsnode_cut out ip daddr " + peer_address + " drop"});
  }
  // Cuts `host` from every other host of the lab (its loopback still works).
  void isolate(const Host& host) {
    for (const Host& other : hosts_) {
      if (other.netns != host.netns) cut(host, other.address);
    }
  }
  // Removes every cut of `host`.
  void heal(const Host& host) {
    quietly({kIp, "netns", "exec", host.netns, kNft, "delete table inet emsnode_cut"});
  }

  // Moves `address` from `from` to `to`, as a virtual IP moves between servers, and has every
  // host forget the old owner's link address (what a gratuitous ARP tells them).
  void move_address(const Host& from, const Host& to, const std::string& address) {
    in_ns(from.netns, {kIp, "addr", "del", address + "/24", "dev", "eth0"});
    in_ns(to.netns, {kIp, "addr", "add", address + "/24", "dev", "eth0"});
    for (const Host& host : hosts_) in_ns(host.netns, {kIp, "neigh", "flush", "all"});
  }

  // Runs `body` with the calling thread in `host`'s namespace: sockets it opens belong to that
  // host (a socket keeps its namespace after the thread leaves it).
  template <typename Body>
  auto from(const Host& host, Body body) -> decltype(body()) {
    const NamespaceSwitch into(host.netns);
    return body();
  }

 private:
  // Moves the calling thread into a namespace until destroyed.
  class NamespaceSwitch {
   public:
    explicit NamespaceSwitch(const std::string& netns)
        : home_(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
      const int target = ::open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
      const bool entered = home_ >= 0 && target >= 0 && ::setns(target, CLONE_NEWNET) == 0;
      if (target >= 0) ::close(target);
      if (!entered) {
        if (home_ >= 0) ::close(home_);
        throw std::runtime_error("cannot enter network namespace " + netns);
      }
    }
    ~NamespaceSwitch() {
      ::setns(home_, CLONE_NEWNET);
      ::close(home_);
    }
    NamespaceSwitch(const NamespaceSwitch&) = delete;
    NamespaceSwitch& operator=(const NamespaceSwitch&) = delete;

   private:
    int home_;
  };

  static int next_lab() {
    static int n = 0;
    return n++;
  }

  Completed command(std::vector<std::string> argv) {
    const std::string text = joined(argv);
    Completed done = run(std::move(argv), dir_.path(), std::chrono::seconds(20));
    if (done.status != 0) throw std::runtime_error("`" + text + "` failed: " + done.err);
    return done;
  }
  // nft joins its arguments into one command line, so a rule can be passed as one string.
  void in_ns(const std::string& netns, std::vector<std::string> argv) {
    argv.insert(argv.begin(), {kIp, "netns", "exec", netns});
    command(std::move(argv));
  }
  void quietly(std::vector<std::string> argv) {
    try {
      run(std::move(argv), dir_.path(), std::chrono::seconds(20));
    } catch (const std::exception&) {
      // Cleanup that could not finish leaves a namespace that remove_orphans() takes later.
    }
  }

  // Namespaces of labs whose test process is gone.
  void remove_orphans() {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/var/run/netns", ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("emsnode-", 0) != 0) continue;
      const pid_t pid = static_cast<pid_t>(std::atol(name.c_str() + 8));
      if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) quietly({kIp, "netns", "del", name});
    }
  }

  static std::string joined(const std::vector<std::string>& argv) {
    std::string text;
    for (const auto& a : argv) text += (text.empty() ? "" : " ") + a;
    return text;
  }

  TempDir dir_;  // the output of the commands run
  std::string prefix_;
  std::string hub_;
  std::deque<Host> hosts_;  // a deque: the references add_host() returned stay valid
};

}  // namespace emsnode::testing
