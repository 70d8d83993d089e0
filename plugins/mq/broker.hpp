// The MQTT 3.1.1 broker as a state machine: sessions, subscriptions, retained messages and the
// QoS 1 and 2 flows, with no sockets and no threads. The server feeds it decoded packets per
// connection and carries out what it asks through BrokerIo (send a packet, close a
// connection); durable changes go to a Committer, and every acknowledgement that promises
// durability (PUBACK, PUBREC, SUBACK and UNSUBACK of a persistent session, CONNACK) is sent
// only once the committer says the change is in the shared database.
//
// A message is routed when it arrives (queued for every matching session) but delivered only
// once its batch has committed: a subscriber never sees a message whose publisher could still
// lose it to a failover, which is what keeps QoS 2 exactly once across a failover.
//
// Single-threaded: every call on the plugin's I/O thread.
#pragma once

#include "access.hpp"
#include "group_commit.hpp"
#include "mqtt_codec.hpp"
#include "session_store.hpp"
#include "topic.hpp"

#include <emsnode/plugin.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace emsnode::plugins::mq {

using ConnectionId = std::uint64_t;

/// What the broker asks of the transport.
class BrokerIo {
 public:
  virtual ~BrokerIo() = default;
  /// Queues `packet` for the connection (written in order).
  virtual void send(ConnectionId connection, const Packet& packet) = 0;
  /// Closes the connection once what was queued before is written. The broker has forgotten
  /// the connection already: no connection_lost follows.
  virtual void close(ConnectionId connection) = 0;
  /// Bytes queued for the connection and not written yet.
  virtual std::size_t backlog(ConnectionId connection) const = 0;
  /// The connection's publishes have committed down to half the bound: read from it again
  /// (see Broker::accepts_more).
  virtual void resume(ConnectionId connection) = 0;
};

/// What a session does when its queue is full.
enum class QueueFullPolicy { kDropNew, kDropOldest, kDisconnect };

struct BrokerOptions {
  std::size_t max_inflight = 32;           ///< QoS 1/2 messages sent and not acknowledged
  std::size_t max_queued_messages = 1000;  ///< per session, in flight included
  std::size_t max_queued_bytes = 8 << 20;  ///< per session: topics and payloads
  QueueFullPolicy queue_full_policy = QueueFullPolicy::kDropNew;
  std::size_t max_backlog_bytes = 8 << 20;  ///< QoS 0 is dropped above this unwritten backlog
  AccessControl access;                     ///< who may connect, and the topic ACLs
  /// A connection with this many publishes (or bytes of them) waiting for their commit is not
  /// read from until half have committed: a publisher faster than the database is slowed
  /// down instead of growing the committer's list.
  std::size_t max_uncommitted_publishes = 1000;
  std::size_t max_uncommitted_bytes = 4 << 20;
  /// Message ids and queue sequence numbers start above this: the epoch in the high bits, so
  /// that a new active never reuses an id of the one before and per-session order holds.
  std::uint64_t id_base = 0;
  std::string node_id = "node";  ///< names the ids given to clients that send none
};

/// The broker's counters and gauges, registered with the host.
struct BrokerMetrics {
  explicit BrokerMetrics(sdk::Host& host);

  sdk::Gauge sessions;
  sdk::Gauge queued;
  sdk::Counter messages_in[3];
  sdk::Counter messages_out[3];
  sdk::Counter dropped_queue_full;
  sdk::Counter dropped_slow_consumer;
  sdk::Counter dropped_not_authorized;
  sdk::Counter refused_credentials;
  sdk::Counter refused_not_authorized;
  sdk::Counter takeovers;
};

class Broker {
 public:
  Broker(BrokerOptions options, Committer& committer, BrokerIo& io, sdk::Logger log,
         BrokerMetrics& metrics);
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  /// Takes over what the previous active left in the database. Call before any packet.
  void load(const DurableState& state);

  /// A packet from the connection, in order. The first must be CONNECT (the decoder sees to
  /// that). `certificate_name`: the common name of the client's verified TLS certificate.
  void on_packet(ConnectionId connection, Packet packet,
                 const std::optional<std::string>& certificate_name = std::nullopt);
  /// Whether the transport should read more from the connection now: false while its
  /// publishes waiting for a commit exceed the bound. BrokerIo::resume says when to go on.
  bool accepts_more(ConnectionId connection);
  /// The connection ended without DISCONNECT (network error, keep-alive timeout, protocol
  /// violation): the will is published and a clean session ends.
  void on_connection_lost(ConnectionId connection);
  /// Every connection is gone at once (demotion, lost lease): no will is published, since the
  /// next active serves the clients.
  void drop_all_connections();

  // Observers for tests and metrics.
  std::size_t session_count() const { return sessions_.size(); }
  bool has_session(std::string_view client_id) const;
  /// Messages queued or in flight for the session; 0 when there is none.
  std::size_t queued(std::string_view client_id) const;
  std::size_t retained_count() const { return retained_.size(); }
  std::size_t connection_count() const { return connections_.size(); }

 private:
  enum class EntryState { kQueued, kSent, kReleased };

  struct Entry {
    std::uint64_t seq = 0;
    std::shared_ptr<Message> message;
    QoS qos = QoS::kAtMostOnce;
    std::uint16_t packet_id = 0;
    bool retain = false;
    bool maybe_sent = false;  // loaded from the database: the previous active may have sent it
    bool held = false;        // waits for its own queue row to commit
    EntryState state = EntryState::kQueued;
  };

  struct Session {
    std::string client_id;
    std::optional<std::string> username;  // as authenticated, for the ACLs
    bool persistent = false;
    ConnectionId connection = 0;  // 0: offline
    bool ready = false;           // CONNACK sent: deliveries may flow
    std::optional<Will> will;
    std::deque<Entry> queue;
    std::size_t queued_bytes = 0;
    std::size_t inflight = 0;
    std::set<std::uint16_t> packet_ids;  // outbound ids in use
    std::uint16_t next_packet_id = 1;
    std::set<std::uint16_t> inbound;  // QoS 2 received, PUBREL not yet
    bool full_logged = false;
  };

  void on_connect(ConnectionId connection, Connect& connect,
                  const std::optional<std::string>& certificate_name);
  void on_publish(Session& session, Publish& publish);
  void on_puback(Session& session, std::uint16_t packet_id);
  void on_pubrec(Session& session, std::uint16_t packet_id);
  void on_pubrel(Session& session, std::uint16_t packet_id);
  void on_pubcomp(Session& session, std::uint16_t packet_id);
  void on_subscribe(Session& session, const Subscribe& subscribe);
  void on_unsubscribe(Session& session, const Unsubscribe& unsubscribe);
  // The subscriptions are committed: SUBACK, then the retained messages they match.
  void subscribed(ConnectionId connection, std::uint16_t packet_id,
                  const std::vector<std::uint8_t>& codes,
                  const std::vector<std::pair<std::string, QoS>>& granted);

  Session* session_of(ConnectionId connection);
  // The session's connection is gone: will, then the end of a clean session.
  void detach(Session& session, bool publish_will);
  void end_session(const std::string& client_id, std::vector<StoreOp>& ops);

  // Routes a message published by `publisher` to every matching session (named in `targets`)
  // and into the retained store; the durable changes are appended to `ops`.
  std::shared_ptr<Message> route(std::string_view publisher, const std::string& topic,
                                 Bytes payload, QoS qos, bool retain, std::vector<StoreOp>& ops,
                                 std::vector<std::string>& targets);
  // Queues the message for the session under the queue limits; false when it was not queued.
  bool enqueue(Session& session, const std::shared_ptr<Message>& message, QoS qos, bool retain,
               std::vector<StoreOp>& ops);
  void remove_entry(Session& session, std::deque<Entry>::iterator entry, std::vector<StoreOp>& ops);
  std::optional<std::uint16_t> allocate_packet_id(Session& session);
  // Sends what the session may receive now: committed messages, within the in-flight window.
  void pump(Session& session);
  void send_publish(Session& session, const Entry& entry, bool dup);
  void redeliver(Session& session);
  // Whether the session's user may read the entry's topic; counts the drop when not.
  bool may_receive(const Session& session, const Entry& entry);
  void pump_all(const std::vector<std::string>& client_ids);
  void submit(std::vector<StoreOp> ops, std::function<void()> done);
  void update_queued_gauge();
  void committed_publish(ConnectionId connection, std::size_t bytes);

  BrokerOptions options_;
  Committer& committer_;
  BrokerIo& io_;
  sdk::Logger log_;
  BrokerMetrics& metrics_;

  std::map<std::string, std::unique_ptr<Session>, std::less<>> sessions_;
  std::unordered_map<ConnectionId, Session*> connections_;
  struct Uncommitted {
    std::size_t publishes = 0;
    std::size_t bytes = 0;
    bool paused = false;  // accepts_more said no: resume() is owed
  };
  std::unordered_map<ConnectionId, Uncommitted> uncommitted_;
  SubscriptionIndex subscriptions_;
  std::map<std::string, std::shared_ptr<Message>, std::less<>> retained_;
  std::uint64_t next_id_ = 0;
  std::uint64_t next_client_number_ = 0;
  std::size_t total_queued_ = 0;
};

}  // namespace emsnode::plugins::mq
