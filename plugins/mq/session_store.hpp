// The message queue's durable state in the cluster's shared database: persistent sessions, their
// subscriptions, their queued and in-flight messages, the QoS 2 packet ids a publisher has not
// released yet, and the retained messages. Everything a passive needs to take over is here, so
// that a message acknowledged by a node that then dies is still delivered by the next active.
//
// A message is stored once in mq_messages however many sessions it goes to; each session's
// queue row references it, and the row goes when the last reference (queue row or retained
// entry) does. The broker never writes directly: it describes its changes as StoreOps, which
// the group committer applies in order, many per fenced transaction.
#pragma once

#include "mqtt_codec.hpp"

#include <emsnode/plugin.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace emsnode::plugins::mq {

/// Milliseconds since the Unix epoch: expiry times, kept in the database as they are, so that
/// whichever node is active judges them alike.
using WallMs = std::int64_t;

/// One application message as the broker routes it: immutable once built, shared by every
/// session it is queued for.
struct Message {
  std::uint64_t id = 0;
  std::string topic;
  Bytes payload;
  QoS qos = QoS::kAtMostOnce;  // as published
  /// The 5.0 properties passed on to subscribers unchanged: payload format, content type,
  /// response topic, correlation data, user properties. Empty for a 3.1.1 publisher.
  Properties properties;
  std::optional<WallMs> expires_at;  // from the Message Expiry Interval
  // Set on the broker's thread only (the committer never reads them): whether the batch that
  // routed the message has committed, and whether a SaveMessage for it has been submitted.
  bool committed = false;
  bool saved = false;

  std::size_t size() const { return topic.size() + payload.size(); }
  bool expired(WallMs now) const { return expires_at && *expires_at <= now; }
};

/// The changes the broker asks the store to make, applied in the order submitted.
namespace op {
/// Creates or updates a persistent session.
struct SaveSession {
  std::string client_id;
  std::optional<std::uint32_t> expiry_interval;  // seconds after disconnecting; none: never
  std::optional<WallMs> expires_at;              // set while offline
};
/// Removes the session with its subscriptions, queue and inbound packet ids.
struct DeleteSession {
  std::string client_id;
};
struct SaveSubscription {
  std::string client_id;
  std::string filter;
  SubscriptionOptions options;
};
struct DeleteSubscription {
  std::string client_id;
  std::string filter;
};
/// Stores the message once; a second save of the same id changes nothing.
struct SaveMessage {
  std::shared_ptr<const Message> message;
};
/// A message queued for (or in flight to) a persistent session, under the packet id it is
/// delivered with: fixed at queueing so that a redelivery after a failover reuses it.
struct Enqueue {
  std::string client_id;
  std::uint64_t seq = 0;
  std::uint64_t message_id = 0;
  QoS qos = QoS::kAtMostOnce;
  std::uint16_t packet_id = 0;
  bool retain = false;
};
/// The session acknowledged (or dropped) the queued message.
struct Dequeue {
  std::string client_id;
  std::uint64_t seq = 0;
  std::uint64_t message_id = 0;
};
/// QoS 2: the session sent PUBREC, so a redelivery sends PUBREL, not the message.
struct MarkReleased {
  std::string client_id;
  std::uint64_t seq = 0;
};
struct SetRetained {
  std::string topic;
  std::uint64_t message_id = 0;  // saved by a SaveMessage before
};
struct ClearRetained {
  std::string topic;
};
/// QoS 2 from a publisher: PUBREC sent, PUBREL not received yet.
struct AddInbound {
  std::string client_id;
  std::uint16_t packet_id = 0;
};
struct RemoveInbound {
  std::string client_id;
  std::uint16_t packet_id = 0;
};
/// The will of a connected client (whatever its session), so that a new active can publish it
/// if the client does not come back; `publish_at` once it is due after a delay.
struct SaveWill {
  std::string client_id;
  Will will;
  std::optional<WallMs> publish_at;
};
/// The will was published, or the client disconnected normally or left without one.
struct DeleteWill {
  std::string client_id;
};
}  // namespace op

using StoreOp = std::variant<op::SaveSession, op::DeleteSession, op::SaveSubscription,
                             op::DeleteSubscription, op::SaveMessage, op::Enqueue, op::Dequeue,
                             op::MarkReleased, op::SetRetained, op::ClearRetained, op::AddInbound,
                             op::RemoveInbound, op::SaveWill, op::DeleteWill>;

/// One row of a persistent session's queue, as loaded.
struct StoredQueueEntry {
  std::uint64_t seq = 0;
  std::uint64_t message_id = 0;
  QoS qos = QoS::kAtMostOnce;
  std::uint16_t packet_id = 0;
  bool retain = false;
  bool released = false;
};

struct StoredSession {
  std::string client_id;
  std::optional<std::uint32_t> expiry_interval;  // none: never expires
  std::optional<WallMs> expires_at;              // none: it was connected
  std::vector<std::pair<std::string, SubscriptionOptions>> subscriptions;
  std::vector<StoredQueueEntry> queue;  // in seq order
  std::vector<std::uint16_t> inbound;
};

struct StoredWill {
  std::string client_id;
  Will will;
  std::optional<WallMs> publish_at;  // none: its client was connected
};

/// Everything the new active loads on promotion.
struct DurableState {
  std::map<std::uint64_t, std::shared_ptr<Message>> messages;
  std::vector<StoredSession> sessions;
  std::vector<std::pair<std::string, std::uint64_t>> retained;  // topic, message id
  std::vector<StoredWill> wills;
};

/// The subscription options byte of SUBSCRIBE (QoS in the low bits), as stored.
std::uint8_t options_byte(const SubscriptionOptions& options);
SubscriptionOptions options_of(std::uint8_t byte);

/// The SQL behind StoreOps and DurableState: portable across SQLite and PostgreSQL.
class SessionStore {
 public:
  explicit SessionStore(sdk::Database db) : db_(db) {}

  /// Brings the mq_ tables to the current schema. Fenced: call on the active node only.
  void migrate() const;

  /// Reads the whole durable state.
  DurableState load() const;

  /// Applies `ops` in order inside the write transaction `tx`.
  static void apply(sdk::Transaction& tx, const std::vector<StoreOp>& ops);
  static void apply(sdk::Transaction& tx, const StoreOp& op);

 private:
  sdk::Database db_;
};

}  // namespace emsnode::plugins::mq
