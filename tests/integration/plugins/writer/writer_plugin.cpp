// The writer test plugin: while its node is active it writes, every `period`, one row into
// writer_log in a fenced transaction: the epoch it writes under, its node id, and the time on the
// database's clock. The integration tests read the table to check that a node that lost the
// lease never wrote again under its old epoch. Refused writes are counted (metrics
// emsnode_plugin_writer_*) and logged, so that a test can tell a fenced write from a failed one.
#include <emsnode/plugin.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace emsnode::tests::writer {
namespace {

constexpr std::string_view kCreateTable =
    "CREATE TABLE writer_log (epoch BIGINT NOT NULL, node TEXT NOT NULL, at_ms BIGINT NOT NULL)";

// at_ms on the database's clock, computed as the node computes the lease's times (SQLite), so
// that a row compares with lease.acquired_at_ms.
constexpr std::string_view kInsert =
    "INSERT INTO writer_log (epoch, node, at_ms) VALUES (?, ?, "
    "CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER))";

class WriterPlugin final : public sdk::Plugin {
 public:
  explicit WriterPlugin(sdk::Host& host)
      : Plugin(host),
        period_(host.config().duration("period")),
        written_(host.counter("rows_written_total", "Rows written")),
        fenced_(host.counter("writes_fenced_total", "Writes refused: the lease is not ours")),
        failed_(host.counter("writes_failed_total", "Writes that failed otherwise")) {
    if (period_.count() <= 0) throw sdk::ConfigError("period", "must be longer than 0ms");
  }

  void start() override {
    host().db().migrate({kCreateTable});
    timer_ = host().every(period_, [this] { write_row(); });
  }

  void stop(std::chrono::milliseconds) override { timer_.cancel(); }

 private:
  void write_row() {
    const std::uint64_t epoch = host().epoch();
    try {
      host().db().write([&](sdk::Transaction& tx) {
        tx.exec(kInsert, {epoch, std::string(host().node_id())});
      });
      written_.add();
    } catch (const sdk::FencedError& e) {
      fenced_.add();
      host().log().warning("writer.fenced", {{"epoch", epoch}, {"error", e.what()}});
    } catch (const sdk::DbError& e) {
      failed_.add();
      host().log().warning("writer.failed", {{"epoch", epoch}, {"error", e.what()}});
    }
  }

  const std::chrono::milliseconds period_;
  sdk::Counter written_;
  sdk::Counter fenced_;
  sdk::Counter failed_;
  sdk::Timer timer_;
};

}  // namespace
}  // namespace emsnode::tests::writer

EMSNODE_PLUGIN(emsnode::tests::writer::WriterPlugin, "writer", "1.0.0")
