#include "session_store.hpp"

#include <algorithm>
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
    // MQTT 5.0: session expiry, subscription options, message properties and expiry, wills.
    "ALTER TABLE mq_sessions ADD COLUMN expiry_interval BIGINT",
    "ALTER TABLE mq_sessions ADD COLUMN expires_at BIGINT",
    "ALTER TABLE mq_subscriptions ADD COLUMN options BIGINT",
    "ALTER TABLE mq_messages ADD COLUMN properties BYTEA",
    "ALTER TABLE mq_messages ADD COLUMN expires_at BIGINT",
    "CREATE TABLE IF NOT EXISTS mq_wills (client_id TEXT PRIMARY KEY, topic TEXT NOT NULL, "
    "payload BYTEA NOT NULL, qos BIGINT NOT NULL, retain BIGINT NOT NULL, properties BYTEA, "
    "delay_interval BIGINT NOT NULL, publish_at BIGINT)",
    // Collecting a message asks whether a retained entry still references it.
    "CREATE INDEX IF NOT EXISTS mq_retained_message ON mq_retained (message_id)",
    // Users beyond the password file (database_users = true), with the password file's hashes.
    "CREATE TABLE IF NOT EXISTS mq_users (username TEXT PRIMARY KEY, "
    "password_hash TEXT NOT NULL)",
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

Bytes bytes_of(const sdk::Row& row, std::size_t column) {
  const std::string& data =
      row[column].type() == EMSNODE_DB_BLOB ? row.blob(column) : row.text(column);
  return Bytes(data.begin(), data.end());
}

sdk::Blob blob_of(const Bytes& bytes) {
  return sdk::Blob{std::string(bytes.begin(), bytes.end())};
}

std::optional<std::int64_t> optional_integer(const sdk::Row& row, std::size_t column) {
  if (row.is_null(column)) return std::nullopt;
  return row.integer(column);
}

// Message properties as stored: NULL when there are none, which is every 3.1.1 message.
std::optional<sdk::Blob> properties_blob(const Properties& properties) {
  if (properties.empty()) return std::nullopt;
  return blob_of(encode_publish_properties(properties));
}

Properties properties_of(const sdk::Row& row, std::size_t column) {
  if (row.is_null(column)) return {};
  auto properties = decode_publish_properties(bytes_of(row, column));
  if (!properties) throw sdk::DbError("mq: stored message properties cannot be decoded");
  return std::move(*properties);
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

std::uint8_t options_byte(const SubscriptionOptions& options) {
  return static_cast<std::uint8_t>(static_cast<int>(options.max_qos) | (options.no_local << 2) |
                                   (options.retain_as_published << 3) |
                                   (static_cast<int>(options.retain_handling) << 4));
}

SubscriptionOptions options_of(std::uint8_t byte) {
  SubscriptionOptions options;
  options.max_qos = static_cast<QoS>(std::min(byte & 0x03, 2));
  options.no_local = (byte & 0x04) != 0;
  options.retain_as_published = (byte & 0x08) != 0;
  options.retain_handling = static_cast<RetainHandling>(std::min((byte >> 4) & 0x03, 2));
  return options;
}

void SessionStore::migrate() const {
  db_.migrate(kSchema);
}

DurableState SessionStore::load() const {
  DurableState state;
  db_.query("SELECT id, topic, payload, qos, properties, expires_at FROM mq_messages", {},
            [&](const sdk::Row& row) {
              auto message = std::make_shared<Message>();
              message->id = id_of(row, 0);
              message->topic = row.text(1);
              message->payload = bytes_of(row, 2);
              message->qos = qos_of(row, 3);
              message->properties = properties_of(row, 4);
              message->expires_at = optional_integer(row, 5);
              message->committed = true;
              message->saved = true;
              state.messages.emplace(message->id, std::move(message));
            });

  std::map<std::string, StoredSession> sessions;
  db_.query("SELECT client_id, expiry_interval, expires_at FROM mq_sessions", {},
            [&](const sdk::Row& row) {
              StoredSession& session = sessions[row.text(0)];
              session.client_id = row.text(0);
              if (auto interval = optional_integer(row, 1)) {
                session.expiry_interval = static_cast<std::uint32_t>(*interval);
              }
              session.expires_at = optional_integer(row, 2);
            });
  // Rows of a session deleted between the reads above and these are skipped.
  db_.query("SELECT client_id, topic_filter, qos, options FROM mq_subscriptions", {},
            [&](const sdk::Row& row) {
              auto found = sessions.find(row.text(0));
              if (found == sessions.end()) return;
              // Rows from before 5.0 hold the QoS alone.
              SubscriptionOptions options;
              if (row.is_null(3)) {
                options.max_qos = qos_of(row, 2);
              } else {
                options = options_of(static_cast<std::uint8_t>(row.integer(3)));
              }
              found->second.subscriptions.emplace_back(row.text(1), options);
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
  db_.query(
      "SELECT client_id, topic, payload, qos, retain, properties, delay_interval, publish_at "
      "FROM mq_wills",
      {}, [&](const sdk::Row& row) {
        StoredWill stored;
        stored.client_id = row.text(0);
        stored.will.topic = row.text(1);
        stored.will.payload = bytes_of(row, 2);
        stored.will.qos = qos_of(row, 3);
        stored.will.retain = row.integer(4) != 0;
        stored.will.properties = properties_of(row, 5);
        if (const std::int64_t delay = row.integer(6); delay > 0) {
          stored.will.properties.will_delay_interval = static_cast<std::uint32_t>(delay);
        }
        stored.publish_at = optional_integer(row, 7);
        state.wills.push_back(std::move(stored));
      });
  for (auto& [client_id, session] : sessions) {
    state.sessions.push_back(std::move(session));
  }
  return state;
}

namespace {

// Multi-row statements take their rows in chunks of these sizes only, largest first, so that a
// few statement texts serve every batch (the host prepares each text once).
constexpr std::size_t kChunkSizes[] = {64, 16, 4, 1};

// "(?, ?), (?, ?)" for `rows` rows of `columns` placeholders.
std::string placeholders(std::size_t rows, std::size_t columns) {
  std::string row = "(?";
  for (std::size_t c = 1; c < columns; ++c) row += ", ?";
  row += ")";
  std::string all = row;
  for (std::size_t r = 1; r < rows; ++r) all += ", " + row;
  return all;
}

// Calls `run(first, count)` over [0, total) in chunks of kChunkSizes.
template <typename Run>
void in_chunks(std::size_t total, Run run) {
  std::size_t done = 0;
  for (const std::size_t size : kChunkSizes) {
    for (; total - done >= size; done += size) run(done, size);
  }
}

// The run of a batch that a few multi-row statements can write: messages, queue rows, and the
// removal of queue rows (then of the messages nothing references any more). Within a run the
// inserts go first: a row is always inserted before it can be removed, and a message is
// collected only after every queue row of the run that references it is in, so the outcome is
// that of the ops in their order. Everything else is applied one op at a time, in order, after
// the run before it is written.
class BatchWriter {
 public:
  explicit BatchWriter(sdk::Transaction& tx) : tx_(tx) {}

  bool take(const StoreOp& store_op) {
    if (const auto* o = std::get_if<op::SaveMessage>(&store_op)) {
      messages_.push_back(o);
    } else if (const auto* e = std::get_if<op::Enqueue>(&store_op)) {
      enqueues_.push_back(e);
    } else if (const auto* d = std::get_if<op::Dequeue>(&store_op)) {
      dequeues_[d->client_id].push_back(sql_id(d->seq));
      collected_.push_back(sql_id(d->message_id));
    } else {
      return false;
    }
    return true;
  }

  void flush() {
    in_chunks(messages_.size(), [&](std::size_t first, std::size_t count) {
      sdk::Params params;
      for (std::size_t i = first; i < first + count; ++i) {
        const Message& m = *messages_[i]->message;
        params.insert(params.end(), {sql_id(m.id), m.topic, blob_of(m.payload), qos_value(m.qos),
                                     properties_blob(m.properties), m.expires_at});
      }
      tx_.exec("INSERT INTO mq_messages (id, topic, payload, qos, properties, expires_at) VALUES " +
                   placeholders(count, 6) + " ON CONFLICT (id) DO NOTHING",
               params);
    });
    in_chunks(enqueues_.size(), [&](std::size_t first, std::size_t count) {
      sdk::Params params;
      for (std::size_t i = first; i < first + count; ++i) {
        const op::Enqueue& e = *enqueues_[i];
        params.insert(params.end(), {e.client_id, sql_id(e.seq), sql_id(e.message_id),
                                     qos_value(e.qos), std::int64_t{e.packet_id}, e.retain, false});
      }
      tx_.exec(
          "INSERT INTO mq_queue (client_id, seq, message_id, qos, packet_id, retain, released) "
          "VALUES " +
              placeholders(count, 7) + " ON CONFLICT (client_id, seq) DO NOTHING",
          params);
    });
    for (const auto& [client_id, seqs] : dequeues_) {
      in_chunks(seqs.size(), [&, client = &client_id](std::size_t first, std::size_t count) {
        sdk::Params params = {*client};
        params.insert(params.end(), seqs.begin() + static_cast<std::ptrdiff_t>(first),
                      seqs.begin() + static_cast<std::ptrdiff_t>(first + count));
        tx_.exec("DELETE FROM mq_queue WHERE client_id = ? AND seq IN " + placeholders(1, count),
                 params);
      });
    }
    std::sort(collected_.begin(), collected_.end());
    collected_.erase(std::unique(collected_.begin(), collected_.end()), collected_.end());
    in_chunks(collected_.size(), [&](std::size_t first, std::size_t count) {
      sdk::Params params(collected_.begin() + static_cast<std::ptrdiff_t>(first),
                         collected_.begin() + static_cast<std::ptrdiff_t>(first + count));
      tx_.exec("DELETE FROM mq_messages WHERE id IN " + placeholders(1, count) +
                   " AND NOT EXISTS (SELECT 1 FROM mq_queue WHERE mq_queue.message_id = "
                   "mq_messages.id) AND NOT EXISTS (SELECT 1 FROM mq_retained WHERE "
                   "mq_retained.message_id = mq_messages.id)",
               params);
    });
    messages_.clear();
    enqueues_.clear();
    dequeues_.clear();
    collected_.clear();
  }

 private:
  sdk::Transaction& tx_;
  std::vector<const op::SaveMessage*> messages_;
  std::vector<const op::Enqueue*> enqueues_;
  std::map<std::string, std::vector<std::int64_t>> dequeues_;  // seqs by client id
  std::vector<std::int64_t> collected_;                        // message ids
};

}  // namespace

void SessionStore::apply(sdk::Transaction& tx, const std::vector<StoreOp>& ops) {
  BatchWriter batch(tx);
  for (const StoreOp& store_op : ops) {
    if (batch.take(store_op)) continue;
    batch.flush();
    apply(tx, store_op);
  }
  batch.flush();
}

void SessionStore::apply(sdk::Transaction& tx, const StoreOp& store_op) {
  std::visit(
      [&](const auto& o) {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, op::SaveSession>) {
          tx.exec(
              "INSERT INTO mq_sessions (client_id, expiry_interval, expires_at) VALUES (?, ?, ?) "
              "ON CONFLICT (client_id) DO UPDATE SET expiry_interval = excluded.expiry_interval, "
              "expires_at = excluded.expires_at",
              {o.client_id, o.expiry_interval, o.expires_at});
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
              "INSERT INTO mq_subscriptions (client_id, topic_filter, qos, options) "
              "VALUES (?, ?, ?, ?) ON CONFLICT (client_id, topic_filter) "
              "DO UPDATE SET qos = excluded.qos, options = excluded.options",
              {o.client_id, o.filter, qos_value(o.options.max_qos),
               std::int64_t{options_byte(o.options)}});
        } else if constexpr (std::is_same_v<T, op::DeleteSubscription>) {
          tx.exec("DELETE FROM mq_subscriptions WHERE client_id = ? AND topic_filter = ?",
                  {o.client_id, o.filter});
        } else if constexpr (std::is_same_v<T, op::SaveMessage>) {
          const Message& m = *o.message;
          tx.exec(
              "INSERT INTO mq_messages (id, topic, payload, qos, properties, expires_at) "
              "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
              {sql_id(m.id), m.topic, blob_of(m.payload), qos_value(m.qos),
               properties_blob(m.properties), m.expires_at});
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
        } else if constexpr (std::is_same_v<T, op::SaveWill>) {
          // The delay has a column of its own: it is not a property a PUBLISH may carry.
          Properties properties = o.will.properties;
          const std::uint32_t delay = properties.will_delay_interval.value_or(0);
          properties.will_delay_interval.reset();
          tx.exec(
              "INSERT INTO mq_wills (client_id, topic, payload, qos, retain, properties, "
              "delay_interval, publish_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
              "ON CONFLICT (client_id) DO UPDATE SET topic = excluded.topic, "
              "payload = excluded.payload, qos = excluded.qos, retain = excluded.retain, "
              "properties = excluded.properties, delay_interval = excluded.delay_interval, "
              "publish_at = excluded.publish_at",
              {o.client_id, o.will.topic, blob_of(o.will.payload), qos_value(o.will.qos),
               o.will.retain, properties_blob(properties), std::int64_t{delay}, o.publish_at});
        } else if constexpr (std::is_same_v<T, op::DeleteWill>) {
          tx.exec("DELETE FROM mq_wills WHERE client_id = ?", {o.client_id});
        } else {
          static_assert(sizeof(T) == 0, "every StoreOp is applied");
        }
      },
      store_op);
}

}  // namespace emsnode::plugins::mq
