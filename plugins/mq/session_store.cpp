#include "session_store.hpp"

#include <string_view>
#include <type_traits>

namespace emsnode::plugins::mq {
namespace {

// Append-only: each step is one statement, and a shipped step is never edited.
const std::vector<std::string_view> kSchema = {
    "CREATE TABLE IF NOT EXISTS mq_messages (id BIGINT PRIMARY KEY, topic TEXT NOT NULL, "
    "payload BYTEA NOT NULL, qos BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS mq_sessions (client_id TEXT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS mq_subscriptions (client_id TEXT NOT NULL, "
    "topic_filter TEXT NOT NULL, qos BIGINT NOT NULL, PRIMARY KEY (client_id, topic_filter))",
    "CREATE TABLE IF NOT EXISTS mq_queue (client_id TEXT NOT NULL, seq BIGINT NOT NULL, "
    "message_id BIGINT NOT NULL, qos BIGINT NOT NULL, packet_id BIGINT NOT NULL, "
    "retain BIGINT NOT NULL, released BIGINT NOT NULL, PRIMARY KEY (client_id, seq))",
    // The garbage collection of messages asks "does any queue row still reference it?".
    "CREATE INDEX IF NOT EXISTS mq_queue_message ON mq_queue (message_id)",
    "CREATE TABLE IF NOT EXISTS mq_inbound (client_id TEXT NOT NULL, packet_id BIGINT NOT NULL, "
    "PRIMARY KEY (client_id, packet_id))",
    "CREATE TABLE IF NOT EXISTS mq_retained (topic TEXT PRIMARY KEY, message_id BIGINT NOT NULL)",
};

// SQL integers are signed 64-bit; ids use the whole unsigned range's lower half only.
std::int64_t sql_id(std::uint64_t id) {
  return static_cast<std::int64_t>(id);
}

std::uint64_t id_of(const sdk::Row& row, std::size_t column) {
  return static_cast<std::uint64_t>(row.integer(column));
}

QoS qos_of(const sdk::Row& row, std::size_t column) {
  const std::int64_t value = row.integer(column);
  if (value < 0 || value > 2) {
    throw sdk::DbError("mq: a stored QoS of " + std::to_string(value));
  }
  return static_cast<QoS>(value);
}

std::int64_t qos_value(QoS qos) {
  return static_cast<std::int64_t>(qos);
}

// Removes the message once nothing references it any more.
void collect_message(sdk::Transaction& tx, std::uint64_t message_id) {
  tx.exec(
      "DELETE FROM mq_messages WHERE id = ? "
      "AND NOT EXISTS (SELECT 1 FROM mq_queue WHERE message_id = ?) "
      "AND NOT EXISTS (SELECT 1 FROM mq_retained WHERE message_id = ?)",
      {sql_id(message_id), sql_id(message_id), sql_id(message_id)});
}

}  // namespace

void SessionStore::migrate() const {
  db_.migrate(kSchema);
}

DurableState SessionStore::load() const {
  DurableState state;
  db_.query("SELECT id, topic, payload, qos FROM mq_messages", {}, [&](const sdk::Row& row) {
    auto message = std::make_shared<Message>();
    message->id = id_of(row, 0);
    message->topic = row.text(1);
    const std::string& payload = row[2].type() == EMSNODE_DB_BLOB ? row.blob(2) : row.text(2);
    message->payload.assign(payload.begin(), payload.end());
    message->qos = qos_of(row, 3);
    message->committed = true;
    message->saved = true;
    state.messages.emplace(message->id, std::move(message));
  });

  std::map<std::string, StoredSession> sessions;
  db_.query("SELECT client_id FROM mq_sessions", {},
            [&](const sdk::Row& row) { sessions[row.text(0)].client_id = row.text(0); });
  // Rows of a session deleted between the reads above and these are skipped.
  db_.query("SELECT client_id, topic_filter, qos FROM mq_subscriptions", {},
            [&](const sdk::Row& row) {
              auto found = sessions.find(row.text(0));
              if (found != sessions.end()) {
                found->second.subscriptions.emplace_back(row.text(1), qos_of(row, 2));
              }
            });
  db_.query(
      "SELECT client_id, seq, message_id, qos, packet_id, retain, released FROM mq_queue "
      "ORDER BY client_id, seq",
      {}, [&](const sdk::Row& row) {
        auto found = sessions.find(row.text(0));
        if (found == sessions.end() || state.messages.count(id_of(row, 2)) == 0) {
          return;
        }
        StoredQueueEntry entry;
        entry.seq = id_of(row, 1);
        entry.message_id = id_of(row, 2);
        entry.qos = qos_of(row, 3);
        entry.packet_id = static_cast<std::uint16_t>(row.integer(4));
        entry.retain = row.integer(5) != 0;
        entry.released = row.integer(6) != 0;
        found->second.queue.push_back(entry);
      });
  db_.query("SELECT client_id, packet_id FROM mq_inbound", {}, [&](const sdk::Row& row) {
    auto found = sessions.find(row.text(0));
    if (found != sessions.end()) {
      found->second.inbound.push_back(static_cast<std::uint16_t>(row.integer(1)));
    }
  });
  db_.query("SELECT topic, message_id FROM mq_retained", {}, [&](const sdk::Row& row) {
    if (state.messages.count(id_of(row, 1)) != 0) {
      state.retained.emplace_back(row.text(0), id_of(row, 1));
    }
  });
  for (auto& [client_id, session] : sessions) {
    state.sessions.push_back(std::move(session));
  }
  return state;
}

void SessionStore::apply(sdk::Transaction& tx, const std::vector<StoreOp>& ops) {
  for (const StoreOp& op : ops) {
    apply(tx, op);
  }
}

void SessionStore::apply(sdk::Transaction& tx, const StoreOp& store_op) {
  std::visit(
      [&](const auto& o) {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, op::SaveSession>) {
          tx.exec(
              "INSERT INTO mq_sessions (client_id) VALUES (?) ON CONFLICT (client_id) "
              "DO NOTHING",
              {o.client_id});
        } else if constexpr (std::is_same_v<T, op::DeleteSession>) {
          std::vector<std::uint64_t> referenced;
          tx.query("SELECT DISTINCT message_id FROM mq_queue WHERE client_id = ?", {o.client_id},
                   [&](const sdk::Row& row) { referenced.push_back(id_of(row, 0)); });
          tx.exec("DELETE FROM mq_queue WHERE client_id = ?", {o.client_id});
          tx.exec("DELETE FROM mq_subscriptions WHERE client_id = ?", {o.client_id});
          tx.exec("DELETE FROM mq_inbound WHERE client_id = ?", {o.client_id});
          tx.exec("DELETE FROM mq_sessions WHERE client_id = ?", {o.client_id});
          for (std::uint64_t id : referenced) {
            collect_message(tx, id);
          }
        } else if constexpr (std::is_same_v<T, op::SaveSubscription>) {
          tx.exec(
              "INSERT INTO mq_subscriptions (client_id, topic_filter, qos) VALUES (?, ?, ?) "
              "ON CONFLICT (client_id, topic_filter) DO UPDATE SET qos = excluded.qos",
              {o.client_id, o.filter, qos_value(o.qos)});
        } else if constexpr (std::is_same_v<T, op::DeleteSubscription>) {
          tx.exec("DELETE FROM mq_subscriptions WHERE client_id = ? AND topic_filter = ?",
                  {o.client_id, o.filter});
        } else if constexpr (std::is_same_v<T, op::SaveMessage>) {
          const Message& m = *o.message;
          tx.exec(
              "INSERT INTO mq_messages (id, topic, payload, qos) VALUES (?, ?, ?, ?) "
              "ON CONFLICT (id) DO NOTHING",
              {sql_id(m.id), m.topic, sdk::Blob{std::string(m.payload.begin(), m.payload.end())},
               qos_value(m.qos)});
        } else if constexpr (std::is_same_v<T, op::Enqueue>) {
          tx.exec(
              "INSERT INTO mq_queue (client_id, seq, message_id, qos, packet_id, retain, "
              "released) VALUES (?, ?, ?, ?, ?, ?, 0) ON CONFLICT (client_id, seq) DO NOTHING",
              {o.client_id, sql_id(o.seq), sql_id(o.message_id), qos_value(o.qos),
               std::int64_t{o.packet_id}, o.retain});
        } else if constexpr (std::is_same_v<T, op::Dequeue>) {
          tx.exec("DELETE FROM mq_queue WHERE client_id = ? AND seq = ?",
                  {o.client_id, sql_id(o.seq)});
          collect_message(tx, o.message_id);
        } else if constexpr (std::is_same_v<T, op::MarkReleased>) {
          tx.exec("UPDATE mq_queue SET released = 1 WHERE client_id = ? AND seq = ?",
                  {o.client_id, sql_id(o.seq)});
        } else if constexpr (std::is_same_v<T, op::SetRetained>) {
          std::vector<std::uint64_t> previous;
          tx.query("SELECT message_id FROM mq_retained WHERE topic = ?", {o.topic},
                   [&](const sdk::Row& row) { previous.push_back(id_of(row, 0)); });
          tx.exec(
              "INSERT INTO mq_retained (topic, message_id) VALUES (?, ?) "
              "ON CONFLICT (topic) DO UPDATE SET message_id = excluded.message_id",
              {o.topic, sql_id(o.message_id)});
          for (std::uint64_t id : previous) {
            if (id != o.message_id) collect_message(tx, id);
          }
        } else if constexpr (std::is_same_v<T, op::ClearRetained>) {
          std::vector<std::uint64_t> previous;
          tx.query("SELECT message_id FROM mq_retained WHERE topic = ?", {o.topic},
                   [&](const sdk::Row& row) { previous.push_back(id_of(row, 0)); });
          tx.exec("DELETE FROM mq_retained WHERE topic = ?", {o.topic});
          for (std::uint64_t id : previous) {
            collect_message(tx, id);
          }
        } else if constexpr (std::is_same_v<T, op::AddInbound>) {
          tx.exec(
              "INSERT INTO mq_inbound (client_id, packet_id) VALUES (?, ?) "
              "ON CONFLICT (client_id, packet_id) DO NOTHING",
              {o.client_id, std::int64_t{o.packet_id}});
        } else if constexpr (std::is_same_v<T, op::RemoveInbound>) {
          tx.exec("DELETE FROM mq_inbound WHERE client_id = ? AND packet_id = ?",
                  {o.client_id, std::int64_t{o.packet_id}});
        } else {
          static_assert(sizeof(T) == 0, "every StoreOp is applied");
        }
      },
      store_op);
}

}  // namespace emsnode::plugins::mq
