// Throughput and peak memory of the shared file store: put (from a file) and get (to a file) on
// both backends, against a plain `cp` of the same file to the same filesystem in the same run.
//
//   store_bench [--sizes 1M,64M,1G] [--runs N] [--dir DIR]
//
// For each size a source file of incompressible bytes is written once into a private folder under
// DIR (default: the system's temporary folder), which also holds the share backend's directory
// and the SQLite databases, so cp, the share and the blob table all write to one filesystem. Each
// figure is the median of N runs (default 3); everything is removed at the end.
//
// How it measures:
// - cp is the real /bin/cp, timed from spawn to exit (so it pays its own process start, a few
//   milliseconds here: noticeable at 1 MiB only). cp leaves its copy in the page cache while a
//   put makes its file durable before publishing it, so "cp+sync" (cp, then `sync FILE`, an
//   fsync of the copy) is timed as well: the ratio to it shows what a put costs beyond the fsync.
//   The targets are against plain cp, as the issue sets them.
// - sha256 is the time to compute the source's SHA-256 and nothing else, in this process (OpenSSL,
//   over the file mapped from the page cache, so no read is timed). One stream's SHA-256 runs on
//   one core, and every put and every verified get computes it, so no store operation can be
//   faster whatever its I/O: cp's time over sha256's ("ceiling") is the best ratio to cp reachable
//   here, and the ratio to sha256 shows how close the store comes to it.
// - sqlite put and get are SQLite alone doing what the blob backend asks of it, without hashing:
//   the source inserted as 1 MiB rows in 64 MiB transactions (one prepared statement, the bytes
//   bound without a copy) into a fresh database with the settings core/db uses (WAL,
//   synchronous=FULL, the default page size), then selected back in order. The blob backend's
//   ratio to them shows what it adds to the database's own cost.
// - Each store operation runs in a fresh child process (this binary in `--child` mode) that opens
//   the database and the store, times only the put_file() or get_to_file() call, and reports its
//   peak resident memory (VmHWM of /proc/self/status, read when the operation is done). A fresh
//   process per operation keeps one run's memory from hiding another's, so the peak RSS per size
//   shows whether memory grows with the file.
// Throughput is in MB/s (10^6 bytes); the ratio is cp's time over the store's (1.0 = as fast as
// cp). Targets (issue 4): share >= 0.8x cp, blob >= 0.5x cp, peak memory flat in file size.
// Ends with `bench: NAME VALUE UNIT` lines.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "db/database.hpp"
#include "db/db_test_support.hpp"
#include "db/schema.hpp"
#include "log/log.hpp"
#include "store/crypto.hpp"
#include "store/file_store.hpp"
#include "support/process.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using emsnode::store::FileStore;
using emsnode::store::Writer;
using emsnode::testing::Process;

constexpr const char* kCp = "/bin/cp";
constexpr const char* kSync = "/bin/sync";
constexpr const char* kNode = "bench";
const Writer kWriter{kNode, 1};
// No single operation of a default run takes near this; a hung one fails the bench instead.
constexpr auto kOperationTimeout = 10min;
// Peak memory counts as flat when the largest file's exceeds the smallest's by no more than this
// (a few of the store's 1 MiB chunks in flight, allocator noise).
constexpr double kFlatMiB = 8;

struct Size {
  std::string label;  // as given: "64M"
  std::uint64_t bytes = 0;
};

// "64M" -> 64 MiB; suffixes K, M, G are powers of 1024.
Size parse_size(const std::string& text) {
  std::size_t end = 0;
  unsigned long long value = 0;
  try {
    value = std::stoull(text, &end);
  } catch (const std::exception&) {
    throw std::invalid_argument("bad size '" + text + "' (use e.g. 1M, 64M, 1G)");
  }
  const std::string suffix = text.substr(end);
  const std::map<std::string, std::uint64_t> units = {
      {"", 1}, {"K", 1ull << 10}, {"M", 1ull << 20}, {"G", 1ull << 30}};
  const auto unit = units.find(suffix);
  if (unit == units.end() || value == 0) {
    throw std::invalid_argument("bad size '" + text + "' (use e.g. 1M, 64M, 1G)");
  }
  return {text, value * unit->second};
}

// Incompressible bytes (splitmix64): neither the filesystem nor SQLite can shortcut them.
void write_source(const fs::path& file, std::uint64_t size) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  std::vector<char> buffer(1 << 20);
  std::uint64_t state = size;
  for (std::uint64_t done = 0; done < size;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), size - done));
    for (std::size_t i = 0; i < n; i += 8) {
      std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      z ^= z >> 31;
      std::memcpy(buffer.data() + i, &z, std::min<std::size_t>(8, n - i));
    }
    out.write(buffer.data(), static_cast<std::streamsize>(n));
    done += n;
  }
  out.close();
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

double median(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  const std::size_t n = samples.size();
  return n % 2 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
}

// Runs `argv` to completion and returns its wall time in seconds. Waits on a pidfd rather than
// polling, so that a 1 MiB copy (a millisecond or two) is timed to the microsecond; bounded by
// kOperationTimeout.
double time_command(std::vector<std::string> argv) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const auto start = Clock::now();
  pid_t pid = -1;
  if (posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) {
    throw std::runtime_error("cannot start " + argv[0]);
  }
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  const int pidfd_error = errno;
  pollfd p{pidfd, POLLIN, 0};
  const int timeout_ms = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(kOperationTimeout).count());
  const bool exited = pidfd >= 0 && ::poll(&p, 1, timeout_ms) == 1;
  if (!exited) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  const auto end = Clock::now();
  if (pidfd < 0) {
    throw std::runtime_error("cannot wait for " + argv[0] +
                             " (pidfd_open: " + std::strerror(pidfd_error) + ")");
  }
  ::close(pidfd);
  if (!exited) throw std::runtime_error(argv[0] + " did not finish in time");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error(argv[0] + " failed (status " + std::to_string(status) + ")");
  }
  return std::chrono::duration<double>(end - start).count();
}

// Seconds to compute the SHA-256 of `file` where it lies in the page cache (mapped, so that no
// copy is timed with it), in 1 MiB steps as the store hashes.
double time_sha256(const fs::path& file) {
  const auto size = static_cast<std::size_t>(fs::file_size(file));
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + file.string());
  void* const mapped = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  ::close(fd);
  if (mapped == MAP_FAILED) throw std::runtime_error("cannot map " + file.string());
  const auto* bytes = static_cast<const char*>(mapped);
  const auto start = Clock::now();
  emsnode::store::Sha256 sha;
  for (std::size_t done = 0; done < size; done += 1 << 20) {
    sha.update(bytes + done, std::min<std::size_t>(1 << 20, size - done));
  }
  sha.hex();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  ::munmap(mapped, size);
  return seconds;
}

// Seconds SQLite takes to insert `file` as the blob backend's rows would be, and to select them
// back, in a fresh database at `db` (removed afterwards).
std::pair<double, double> time_sqlite(const fs::path& file, const fs::path& db) {
  sqlite3* raw = nullptr;
  const int opened = sqlite3_open(db.c_str(), &raw);
  const std::unique_ptr<sqlite3, int (*)(sqlite3*)> connection(raw, sqlite3_close);
  const auto check = [&](int rc, const char* what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
      throw std::runtime_error(std::string("sqlite peer: ") + what + ": " +
                               sqlite3_errmsg(connection.get()));
    }
  };
  check(opened, "open");
  const auto exec = [&](const char* sql) {
    check(sqlite3_exec(connection.get(), sql, nullptr, nullptr, nullptr), sql);
  };
  exec("PRAGMA journal_mode = WAL");
  exec("PRAGMA synchronous = FULL");
  exec(
      "CREATE TABLE chunks (blob_id TEXT NOT NULL, seq BIGINT NOT NULL, data BLOB NOT NULL, "
      "PRIMARY KEY (blob_id, seq))");
  const auto prepare = [&](const char* sql) {
    sqlite3_stmt* statement = nullptr;
    check(sqlite3_prepare_v2(connection.get(), sql, -1, &statement, nullptr), sql);
    return std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)>(statement, sqlite3_finalize);
  };
  constexpr std::size_t kRow = 1 << 20;
  constexpr int kRowsPerTransaction = 64;

  auto start = Clock::now();
  const auto insert = prepare("INSERT INTO chunks (blob_id, seq, data) VALUES ('b', ?, ?)");
  std::ifstream in(file, std::ios::binary);
  std::vector<char> buffer(kRow);
  std::int64_t rows = 0;
  for (bool more = true; more;) {
    exec("BEGIN IMMEDIATE");
    for (int i = 0; i < kRowsPerTransaction; ++i) {
      in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      const auto got = static_cast<int>(in.gcount());
      more = static_cast<bool>(in);
      if (got == 0) break;
      check(sqlite3_bind_int64(insert.get(), 1, rows++), "bind");
      check(sqlite3_bind_blob(insert.get(), 2, buffer.data(), got, SQLITE_STATIC), "bind");
      check(sqlite3_step(insert.get()), "insert");
      check(sqlite3_reset(insert.get()), "insert");
      if (!more) break;
    }
    exec("COMMIT");
  }
  const double put = std::chrono::duration<double>(Clock::now() - start).count();

  start = Clock::now();
  const auto select = prepare("SELECT data FROM chunks WHERE blob_id = 'b' AND seq = ?");
  std::uint64_t bytes = 0;
  for (std::int64_t seq = 0; seq < rows; ++seq) {
    check(sqlite3_bind_int64(select.get(), 1, seq), "bind");
    check(sqlite3_step(select.get()), "select");
    const void* data = sqlite3_column_blob(select.get(), 0);
    bytes += static_cast<std::uint64_t>(sqlite3_column_bytes(select.get(), 0));
    if (data == nullptr) throw std::runtime_error("sqlite peer: a row lost its data");
    check(sqlite3_reset(select.get()), "select");
  }
  const double get = std::chrono::duration<double>(Clock::now() - start).count();
  if (bytes != fs::file_size(file)) throw std::runtime_error("sqlite peer: read back too little");
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db.string() + suffix);
  return {put, get};
}

std::uint64_t vmhwm_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6));
  }
  throw std::runtime_error("no VmHWM in /proc/self/status");
}

// Where one benchmark run keeps everything: paths the parent and its children agree on.
struct Layout {
  fs::path root;
  fs::path share_dir() const { return root / "share"; }
  fs::path share_db() const { return root / "share.db"; }
  fs::path blob_db() const { return root / "blob.db"; }
  fs::path db_of(const std::string& backend) const {
    return backend == "share" ? share_db() : blob_db();
  }
};

std::unique_ptr<FileStore> open_store(emsnode::db::Database& database, const Layout& layout,
                                      const std::string& backend) {
  return backend == "share"
             ? emsnode::store::open_share_store(database, layout.share_dir().string())
             : emsnode::store::open_blob_store(database);
}

// `--child put|get BACKEND ROOT KEY FILE`: one timed operation, reported on standard output as
// "seconds S" and "vmhwm_kib K".
int child_main(const std::vector<std::string>& args) {
  if (args.size() != 5 || (args[0] != "put" && args[0] != "get")) {
    std::cerr << "store_bench --child: usage: put|get BACKEND ROOT KEY FILE\n";
    return 2;
  }
  const std::string& backend = args[1];
  const Layout layout{args[2]};
  auto database = emsnode::db::open_sqlite(layout.db_of(backend).string());
  auto store = open_store(*database, layout, backend);
  const auto start = Clock::now();
  if (args[0] == "put") {
    store->put_file(args[3], args[4], kWriter);
  } else {
    store->get_to_file(args[3], args[4]);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("seconds %.9f\nvmhwm_kib %" PRIu64 "\n", seconds, vmhwm_kib());
  return 0;
}

struct Sample {
  double seconds = 0;
  std::uint64_t peak_kib = 0;
};

class Bench {
 public:
  Bench(const fs::path& root, int runs) : layout_{root}, runs_(runs) {
    self_ = fs::read_symlink("/proc/self/exe").string();
    fs::create_directories(layout_.share_dir());
    fs::create_directories(root / "out");
    for (const std::string backend : {"share", "blob"}) {
      auto& database = databases_[backend];
      database = emsnode::db::open_sqlite(layout_.db_of(backend).string());
      emsnode::db::migrate_core(*database, kNode);
      // The bench node holds the lease for the whole run, so that its writes pass the fence.
      emsnode::db::testing::set_lease(*database, kNode, 1, 24 * 3600 * 1000);
      stores_[backend] = open_store(*database, layout_, backend);
    }
  }

  struct Copy {
    double seconds = 0;             // cp
    double sync_seconds = 0;        // cp, then sync of the copy
    double sha256_seconds = 0;      // the SHA-256 of the source, alone
    double sqlite_put_seconds = 0;  // SQLite alone inserting the source as the blob rows
    double sqlite_get_seconds = 0;  // and selecting them back
  };
  // The median times of copying `source` with cp to the same filesystem, without and with an
  // fsync of the copy, of hashing it, and of SQLite storing it.
  Copy copy(const fs::path& source) {
    const auto destination = layout_.root / "cp-destination";
    std::vector<double> plain;
    std::vector<double> synced;
    std::vector<double> hashed;
    std::vector<double> sqlite_put;
    std::vector<double> sqlite_get;
    for (int run = 0; run < runs_; ++run) {
      plain.push_back(time_command({kCp, source.string(), destination.string()}));
      fs::remove(destination);
      const double copied = time_command({kCp, source.string(), destination.string()});
      synced.push_back(copied + time_command({kSync, destination.string()}));
      fs::remove(destination);
      hashed.push_back(time_sha256(source));
      const auto [put, get] = time_sqlite(source, layout_.root / "sqlite-peer.db");
      sqlite_put.push_back(put);
      sqlite_get.push_back(get);
    }
    return {median(plain), median(synced), median(hashed), median(sqlite_put), median(sqlite_get)};
  }

  // The median time and the highest peak RSS of putting `source` into `backend`; the file stays
  // stored for get().
  Sample put(const std::string& backend, const std::string& key, const fs::path& source) {
    std::vector<Sample> runs;
    for (int run = 0; run < runs_; ++run) {
      forget(backend, key);  // each run publishes a new file, not a replacement
      runs.push_back(child({"put", backend, layout_.root.string(), key, source.string()}));
    }
    return summary(runs);
  }

  Sample get(const std::string& backend, const std::string& key) {
    const auto destination = layout_.root / "get-destination";
    std::vector<Sample> runs;
    for (int run = 0; run < runs_; ++run) {
      runs.push_back(child({"get", backend, layout_.root.string(), key, destination.string()}));
      fs::remove(destination);
    }
    return summary(runs);
  }

  // Removes `key` and its content now (garbage collection would otherwise wait), so that a 1 GiB
  // run does not leave gigabytes behind.
  void forget(const std::string& backend, const std::string& key) {
    auto& store = *stores_.at(backend);
    if (store.stat(key)) store.remove(key, kWriter);
    store.collect_garbage(0ms);
  }

 private:
  Sample child(std::vector<std::string> args) {
    args.insert(args.begin(), {self_, "--child"});
    Process process(args, layout_.root / "out");
    const auto status = process.wait(kOperationTimeout);
    if (!status) throw std::runtime_error("store_bench --child did not finish in time");
    if (*status != 0) {
      throw std::runtime_error("store_bench --child " + args[2] + " " + args[3] +
                               " failed: " + process.err());
    }
    Sample sample;
    std::istringstream out(process.out());
    for (std::string name; out >> name;) {
      if (name == "seconds") out >> sample.seconds;
      if (name == "vmhwm_kib") out >> sample.peak_kib;
    }
    if (sample.seconds <= 0 || sample.peak_kib == 0) {
      throw std::runtime_error("store_bench --child said: " + process.out());
    }
    return sample;
  }

  static Sample summary(const std::vector<Sample>& runs) {
    std::vector<double> seconds;
    Sample result;
    for (const auto& run : runs) {
      seconds.push_back(run.seconds);
      result.peak_kib = std::max(result.peak_kib, run.peak_kib);
    }
    result.seconds = median(seconds);
    return result;
  }

  Layout layout_;
  int runs_;
  std::string self_;
  std::map<std::string, std::unique_ptr<emsnode::db::Database>> databases_;
  std::map<std::string, std::unique_ptr<FileStore>> stores_;
};

struct Result {
  std::string name;  // "share_put"
  Size size;
  double seconds = 0;
  Bench::Copy cp;
  std::uint64_t peak_kib = 0;
};

double mbps(std::uint64_t bytes, double seconds) {
  return bytes / seconds / 1e6;
}
double mib(std::uint64_t kib) {
  return kib / 1024.0;
}

void report(const std::vector<Size>& sizes, const std::vector<Bench::Copy>& copies,
            const std::vector<Result>& results) {
  const std::map<std::string, double> targets = {{"share", 0.8}, {"blob", 0.5}};
  std::printf("\n%-6s %-10s %10s %12s %13s %17s %16s %13s\n", "size", "operation", "MB/s",
              "ratio to cp", "target", "ratio to cp+sync", "ratio to sha256", "peak RSS MiB");
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    std::printf("%-6s %-10s %10.1f\n", sizes[i].label.c_str(), "cp",
                mbps(sizes[i].bytes, copies[i].seconds));
    std::printf("%-6s %-10s %10.1f\n", sizes[i].label.c_str(), "cp+sync",
                mbps(sizes[i].bytes, copies[i].sync_seconds));
    std::printf("%-6s %-10s %10.1f %11.2fx %13s\n", sizes[i].label.c_str(), "sha256",
                mbps(sizes[i].bytes, copies[i].sha256_seconds),
                copies[i].seconds / copies[i].sha256_seconds, "(ceiling)");
    std::printf("%-6s %-10s %10.1f %11.2fx\n", sizes[i].label.c_str(), "sqlite put",
                mbps(sizes[i].bytes, copies[i].sqlite_put_seconds),
                copies[i].seconds / copies[i].sqlite_put_seconds);
    std::printf("%-6s %-10s %10.1f %11.2fx\n", sizes[i].label.c_str(), "sqlite get",
                mbps(sizes[i].bytes, copies[i].sqlite_get_seconds),
                copies[i].seconds / copies[i].sqlite_get_seconds);
    for (const auto& r : results) {
      if (r.size.label != sizes[i].label) continue;
      const double ratio = r.cp.seconds / r.seconds;
      const double target = targets.at(r.name.substr(0, r.name.find('_')));
      char goal[32];
      std::snprintf(goal, sizeof goal, ">= %.1fx %s", target, ratio >= target ? "met" : "MISS");
      std::printf("%-6s %-10s %10.1f %11.2fx %13s %16.2fx %15.2fx %13.1f\n", r.size.label.c_str(),
                  r.name.c_str(), mbps(r.size.bytes, r.seconds), ratio, goal,
                  r.cp.sync_seconds / r.seconds, r.cp.sha256_seconds / r.seconds, mib(r.peak_kib));
    }
  }

  // Memory: the peak of each operation from the smallest to the largest size.
  std::printf("\npeak memory from %s to %s (target: flat, growth <= %.0f MiB):\n",
              sizes.front().label.c_str(), sizes.back().label.c_str(), kFlatMiB);
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> extremes;
  for (const auto& r : results) {
    if (r.size.label == sizes.front().label) extremes[r.name].first = r.peak_kib;
    if (r.size.label == sizes.back().label) extremes[r.name].second = r.peak_kib;
  }
  for (const auto& [name, peaks] : extremes) {
    const double growth = mib(peaks.second) - mib(peaks.first);
    std::printf("  %-10s %.1f MiB -> %.1f MiB (growth %.1f MiB: %s)\n", name.c_str(),
                mib(peaks.first), mib(peaks.second), growth,
                growth <= kFlatMiB ? "flat" : "GROWS WITH SIZE");
  }

  std::printf("\n");
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    std::printf("bench: store_cp_%s_mbps %.1f MB/s\n", sizes[i].label.c_str(),
                mbps(sizes[i].bytes, copies[i].seconds));
    std::printf("bench: store_cp_sync_%s_mbps %.1f MB/s\n", sizes[i].label.c_str(),
                mbps(sizes[i].bytes, copies[i].sync_seconds));
    std::printf("bench: store_sha256_%s_mbps %.1f MB/s\n", sizes[i].label.c_str(),
                mbps(sizes[i].bytes, copies[i].sha256_seconds));
    std::printf("bench: store_ceiling_%s_ratio_to_cp %.2f x\n", sizes[i].label.c_str(),
                copies[i].seconds / copies[i].sha256_seconds);
    std::printf("bench: store_sqlite_put_%s_mbps %.1f MB/s\n", sizes[i].label.c_str(),
                mbps(sizes[i].bytes, copies[i].sqlite_put_seconds));
    std::printf("bench: store_sqlite_get_%s_mbps %.1f MB/s\n", sizes[i].label.c_str(),
                mbps(sizes[i].bytes, copies[i].sqlite_get_seconds));
  }
  for (const auto& r : results) {
    const char* name = r.name.c_str();
    const char* size = r.size.label.c_str();
    std::printf("bench: store_%s_%s_mbps %.1f MB/s\n", name, size, mbps(r.size.bytes, r.seconds));
    std::printf("bench: store_%s_%s_ratio_to_cp %.2f x\n", name, size, r.cp.seconds / r.seconds);
    std::printf("bench: store_%s_%s_ratio_to_cp_sync %.2f x\n", name, size,
                r.cp.sync_seconds / r.seconds);
    std::printf("bench: store_%s_%s_ratio_to_sha256 %.2f x\n", name, size,
                r.cp.sha256_seconds / r.seconds);
    if (r.name == "blob_put" || r.name == "blob_get") {
      const double sqlite =
          r.name == "blob_put" ? r.cp.sqlite_put_seconds : r.cp.sqlite_get_seconds;
      std::printf("bench: store_%s_%s_ratio_to_sqlite %.2f x\n", name, size, sqlite / r.seconds);
    }
    std::printf("bench: store_%s_%s_peak_rss %.1f MiB\n", name, size, mib(r.peak_kib));
  }
  for (const auto& [name, peaks] : extremes) {
    std::printf("bench: store_%s_peak_rss_growth %.1f MiB\n", name.c_str(),
                mib(peaks.second) - mib(peaks.first));
  }
}

int run(const std::vector<Size>& sizes, const fs::path& dir, int runs) {
  std::string pattern = (dir / "store-bench-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) {
    throw std::runtime_error("cannot create a folder in " + dir.string());
  }
  // Removed on every way out of this function, with whatever a failed run left.
  struct Cleanup {
    fs::path root;
    ~Cleanup() {
      std::error_code ignored;
      fs::remove_all(root, ignored);
    }
  } cleanup{pattern};
  const fs::path root = pattern;
  std::printf("store bench: sizes");
  for (const auto& size : sizes) std::printf(" %s", size.label.c_str());
  std::printf(", median of %d runs, in %s\n", runs, root.c_str());

  Bench bench(root, runs);
  std::vector<Bench::Copy> copies;
  std::vector<Result> results;
  for (const auto& size : sizes) {
    const auto source = root / ("source-" + size.label);
    write_source(source, size.bytes);
    copies.push_back(bench.copy(source));
    for (const std::string backend : {"share", "blob"}) {
      const std::string key = "bench/" + size.label + ".bin";
      const Sample put = bench.put(backend, key, source);
      const Sample get = bench.get(backend, key);
      results.push_back({backend + "_put", size, put.seconds, copies.back(), put.peak_kib});
      results.push_back({backend + "_get", size, get.seconds, copies.back(), get.peak_kib});
      bench.forget(backend, key);
      std::printf("  %s %s: put %.1f MB/s, get %.1f MB/s, cp %.1f MB/s, sha256 %.1f MB/s\n",
                  size.label.c_str(), backend.c_str(), mbps(size.bytes, put.seconds),
                  mbps(size.bytes, get.seconds), mbps(size.bytes, copies.back().seconds),
                  mbps(size.bytes, copies.back().sha256_seconds));
      std::fflush(stdout);
    }
    fs::remove(source);
  }
  report(sizes, copies, results);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  // The store logs every garbage collection at info; only its warnings belong in bench output.
  emsnode::log::Settings quiet;
  quiet.level = emsnode::log::Level::warning;
  emsnode::log::init(quiet);
  try {
    if (!args.empty() && args[0] == "--child") {
      return child_main({args.begin() + 1, args.end()});
    }
    std::vector<Size> sizes;
    fs::path dir = fs::temp_directory_path();
    int runs = 3;
    for (std::size_t i = 0; i < args.size(); ++i) {
      if (args[i] == "--sizes" && i + 1 < args.size()) {
        std::istringstream list(args[++i]);
        for (std::string item; std::getline(list, item, ',');) sizes.push_back(parse_size(item));
      } else if (args[i] == "--dir" && i + 1 < args.size()) {
        dir = args[++i];
      } else if (args[i] == "--runs" && i + 1 < args.size()) {
        runs = std::max(1, std::atoi(args[++i].c_str()));
      } else {
        std::cerr << "usage: store_bench [--sizes 1M,64M,1G] [--runs N] [--dir DIR]\n";
        return 2;
      }
    }
    if (sizes.empty()) sizes = {parse_size("1M"), parse_size("64M"), parse_size("1G")};
    return run(sizes, dir, runs);
  } catch (const std::exception& e) {
    std::cerr << "store_bench: " << e.what() << '\n';
    return 1;
  }
}
