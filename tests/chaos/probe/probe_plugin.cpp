// The chaos campaign's probe: while its node is active it accepts one request per connection and
// answers with the node and epoch that served it, so the campaign's checker can tell who served
// what under which epoch.
//   "R\n"      -> "R <node> <epoch>\n"                      a read served under <epoch>
//   "W <id>\n" -> "OK <node> <epoch> <seq>\n"                <id> committed, fenced, as write <seq>
//                 "FENCED <reason>\n" | "ERR <reason>\n"      nothing committed
//   (either)   -> "ERR not serving\n" while the node has no epoch (it is fencing itself), or
//                 while told to report failed (below)
// Writes go to probe_writes; `seq` comes from a counter row every write updates in its own
// transaction, so seq order is commit order on any backend (the row lock orders the writers).
//
// It fails on command, as an operator's broken service would, so the campaign can test the
// host's supervision: files in `<control>/<node id>/` (config `control`; none: never) say how.
//   report_failed  it reports EMSNODE_HEALTH_FAILED (checked every 20 ms) and refuses requests
//   fail_start     start fails
//   hang_stop      stop does not return until `release` exists (60 s at most): the host faults it.
//                  It still answers meanwhile, as abandoned code may: under epoch 0, refusing.
#include <emsnode/plugin.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace emsnode::tests::probe {
namespace {

const std::vector<std::string_view> kSchema = {
    "CREATE TABLE probe_writes (id TEXT PRIMARY KEY, seq BIGINT NOT NULL UNIQUE, "
    "epoch BIGINT NOT NULL, node TEXT NOT NULL)",
    "CREATE TABLE probe_counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)",
    "INSERT INTO probe_counter (id, n) VALUES (1, 0)",
};

// A socket closed when the owner goes.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in parse_ipv4(const std::string& text) {
  const auto colon = text.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (colon == std::string::npos ||
      ::inet_pton(AF_INET, text.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    throw sdk::ConfigError("listen", "'" + text + "' is not IPv4-address:port");
  }
  addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(text.substr(colon + 1))));
  return addr;
}

class ProbePlugin final : public sdk::Plugin {
 public:
  explicit ProbePlugin(sdk::Host& host)
      : Plugin(host),
        listen_(parse_ipv4(host.config().string("listen"))),
        control_(control_folder(host)) {}

  void start() override {
    if (told("fail_start")) throw std::runtime_error("probe: told to fail its start");
    host().db().migrate(kSchema);
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(listener_, reinterpret_cast<const sockaddr*>(&listen_), sizeof listen_) != 0 ||
        ::listen(listener_, 64) != 0) {
      const std::string why = std::strerror(errno);
      ::close(listener_);
      throw std::runtime_error("probe: cannot listen: " + why);
    }
    stopping_ = false;
    thread_ = std::thread([this] { serve(); });
    if (control_) health_timer_ = host().every(std::chrono::milliseconds(20), [this] { report(); });
  }

  void stop(std::chrono::milliseconds) override {
    health_timer_ = sdk::Timer();
    if (told("hang_stop")) {
      for (int waited_ms = 0; waited_ms < 60'000 && !told("release"); waited_ms += 10) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    if (!thread_.joinable()) return;
    stopping_ = true;
    thread_.join();
    ::close(listener_);
  }

 private:
  static std::optional<std::string> control_folder(sdk::Host& host) {
    const auto control = host.config().find<std::string>("control");
    if (!control) return std::nullopt;
    return *control + "/" + std::string(host.node_id());
  }

  // Whether the control folder holds the file `what`.
  bool told(const char* what) const {
    struct stat st;
    return control_ && ::stat((*control_ + "/" + what).c_str(), &st) == 0;
  }

  void report() {
    if (told("report_failed")) {
      host().health(EMSNODE_HEALTH_FAILED, "told to report failed");
    } else {
      host().health(EMSNODE_HEALTH_OK, "serving");
    }
  }

  void serve() {
    while (!stopping_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      const Fd client(::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC));
      if (client.get() < 0) continue;
      const std::string request = read_line(client.get());
      const std::string reply = answer(request) + "\n";
      ::send(client.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
    }
  }

  std::string read_line(int fd) {
    std::string line;
    pollfd p{fd, POLLIN, 0};
    while (line.find('\n') == std::string::npos && line.size() < 256 && !stopping_ &&
           ::poll(&p, 1, 1000) == 1) {
      char buffer[256];
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      line.append(buffer, static_cast<std::size_t>(n));
    }
    return line.substr(0, line.find('\n'));
  }

  std::string answer(const std::string& request) {
    const std::string node(host().node_id());
    const std::uint64_t epoch = host().epoch();
    // Epoch 0: the node is fencing itself or stopping; what it answered now would not be served
    // under any lease.
    if (epoch == 0 || told("report_failed")) return "ERR not serving";
    if (request == "R") return "R " + node + " " + std::to_string(epoch);
    if (request.rfind("W ", 0) != 0) return "ERR unknown request";
    try {
      std::int64_t seq = 0;
      host().db().write([&](sdk::Transaction& tx) {
        tx.exec("UPDATE probe_counter SET n = n + 1 WHERE id = 1");
        seq = tx.query("SELECT n FROM probe_counter WHERE id = 1").at(0).integer(0);
        tx.exec("INSERT INTO probe_writes (id, seq, epoch, node) VALUES (?, ?, ?, ?)",
                {request.substr(2), seq, epoch, node});
      });
      return "OK " + node + " " + std::to_string(epoch) + " " + std::to_string(seq);
    } catch (const sdk::FencedError& e) {
      return std::string("FENCED ") + e.what();
    } catch (const sdk::DbError& e) {
      return std::string("ERR ") + e.what();
    }
  }

  const sockaddr_in listen_;
  const std::optional<std::string> control_;  // the node's control folder
  int listener_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  sdk::Timer health_timer_;
};

}  // namespace
}  // namespace emsnode::tests::probe

EMSNODE_PLUGIN(emsnode::tests::probe::ProbePlugin, "probe", "1.0.0")
