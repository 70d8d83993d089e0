// The MQTT broker (3.1.1 and 5.0) as a state machine: sessions, subscriptions, retained
// messages, wills and the QoS 1 and 2 flows, with no sockets and no threads. The server feeds it
// decoded packets per connection and carries out what it asks through BrokerIo (send a packet,
// close a connection); durable changes go to a Committer, and every acknowledgement that promises
// durability (PUBACK, PUBREC, SUBACK and UNSUBACK of a persistent session, CONNACK) is sent
// only once the committer says the change is in the shared database.
//
// A message is routed when it arrives (queued for every matching session) but delivered only
// once its batch has committed: a subscriber never sees a message whose publisher could still
// lose it to a failover, which is what keeps QoS 2 exactly once across a failover.
//
// Wills are durable too: a new active publishes the will of a client that was connected to the
// node before it only if that client has not come back within `failover_will_delay` (or its own
// will delay, if longer), so that a failover does not announce every client as gone.
//
// Time is wall-clock milliseconds from BrokerOptions::clock; tick() runs what is due (delayed
// wills, expired sessions and retained messages).
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
#include <functional>
#include <list>
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

  // MQTT 5.0 limits, announced in CONNACK.
  /// QoS 1 and 2 publishes a 5.0 client may have unacknowledged; more is a protocol violation.
  std::uint16_t receive_maximum = 1000;
  std::uint16_t topic_alias_maximum = 10;        ///< topic aliases a 5.0 client may set
  std::uint32_t maximum_packet_size = 1u << 20;  ///< what the decoder accepts
  /// The longest a session outlives its connection, in seconds (3.1.1 persistent sessions
  /// included); none: as long as the client asks.
  std::optional<std::uint32_t> max_session_expiry;
  /// Seconds a client connected to a node that stopped being active has to reconnect before a
  /// new active publishes its will.
  std::uint32_t failover_will_delay = 60;
  /// Wall-clock milliseconds since the epoch; the system clock when empty.
  std::function<std::int64_t()> clock;
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
  sdk::Counter dropped_expired;
  sdk::Counter dropped_too_large;
  sdk::Counter refused_credentials;
  sdk::Counter refused_not_authorized;
  sdk::Counter refused_unavailable;  // the users' database could not be read
  sdk::Counter takeovers;
  sdk::Counter wills_published;
  sdk::Counter sessions_expired;
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
  /// `identity`: the CONNECT's credentials as already checked off this thread; without it the
  /// broker checks them itself.
  void on_packet(ConnectionId connection, Packet packet,
                 const std::optional<std::string>& certificate_name = std::nullopt,
                 std::optional<AccessControl::Outcome> identity = std::nullopt);
  /// Whether the transport should read more from the connection now: false while its
  /// publishes waiting for a commit exceed the bound. BrokerIo::resume says when to go on.
  bool accepts_more(ConnectionId connection);
  /// The connection ended without DISCONNECT (network error, keep-alive timeout, protocol
  /// violation): the will is published and a clean session ends.
  void on_connection_lost(ConnectionId connection);
  /// Every connection is gone at once (demotion, lost lease): no will is published, since the
  /// next active serves the clients.
  void drop_all_connections();
  /// Publishes the wills whose delay is over and ends the sessions and retained messages that
  /// expired. Call about once a second.
  void tick();

  // Observers for tests and metrics.
  std::size_t session_count() const { return sessions_.size(); }
  bool has_session(std::string_view client_id) const;
  /// Messages queued or in flight for the session; 0 when there is none.
  std::size_t queued(std::string_view client_id) const;
  std::size_t retained_count() const { return retained_.size(); }
  std::size_t connection_count() const { return connections_.size(); }
  /// Wills waiting for their delay (or a failover's) to pass.
  std::size_t pending_will_count() const { return pending_wills_.size(); }

 private:
  enum class EntryState { kQueued, kSent, kReleased };

  struct Entry {
    std::uint64_t seq = 0;
    std::shared_ptr<Message> message;
    QoS qos = QoS::kAtMostOnce;
    std::uint16_t packet_id = 0;
    bool retain = false;      // the RETAIN flag it is delivered with
    bool maybe_sent = false;  // loaded from the database: the previous active may have sent it
    bool held = false;        // waits for its own queue row to commit
    // QoS 2, released: whether the database knows. Until then no PUBREL may go out, or a new
    // active that still has the message as unreleased would send it again as new.
    bool release_committed = false;
    EntryState state = EntryState::kQueued;
  };

  struct Session {
    std::string client_id;
    std::optional<std::string> username;  // as authenticated, for the ACLs
    bool persistent = false;              // kept in the database
    // Seconds it outlives its connection: 0 ends it with the connection; none: never expires.
    std::optional<std::uint32_t> expiry_interval;
    std::optional<WallMs> expires_at;  // while offline, when the interval is finite
    ConnectionId connection = 0;       // 0: offline
    bool ready = false;                // CONNACK sent: deliveries may flow
    std::optional<Will> will;
    // Of the current connection: what the client announced, and its topic aliases.
    ProtocolVersion version = ProtocolVersion::kV311;
    std::size_t send_window = 0;  // in-flight bound: ours, or the client's receive maximum
    std::optional<std::uint32_t> max_packet_size;
    std::vector<std::string> topic_aliases;  // [alias - 1]
    std::size_t qos1_unacked = 0;            // received, PUBACK not sent yet
    // A list: an empty one allocates nothing, where a deque takes 576 bytes for every session.
    std::list<Entry> queue;
    std::size_t queued_bytes = 0;
    std::size_t inflight = 0;
    std::set<std::uint16_t> packet_ids;  // outbound ids in use
    std::uint16_t next_packet_id = 1;
    std::set<std::uint16_t> inbound;  // QoS 2 received, PUBREL not yet
    bool full_logged = false;
  };

  // What a message published now reaches.
  struct Routed {
    std::vector<std::string> targets;  // the sessions it was queued for
    bool matched = false;              // some subscription matched, queued or not
  };
  struct PendingWill {
    Will will;
    WallMs publish_at = 0;
  };

  void on_connect(ConnectionId connection, Connect& connect,
                  const std::optional<std::string>& certificate_name,
                  std::optional<AccessControl::Outcome> identity);
  // The CONNACK of a 5.0 client: the limits it must keep to.
  Connack accepted_connack(bool present, const std::string& assigned_id,
                           const std::optional<std::uint32_t>& capped_expiry) const;
  void on_publish(Session& session, Publish& publish);
  // Resolves or records the 5.0 topic alias; false when the connection was closed for it.
  bool resolve_topic_alias(Session& session, Publish& publish);
  void on_puback(Session& session, std::uint16_t packet_id);
  void on_pubrec(Session& session, const Pubrec& pubrec);
  void on_pubrel(Session& session, std::uint16_t packet_id);
  void on_pubcomp(Session& session, std::uint16_t packet_id);
  void on_subscribe(Session& session, const Subscribe& subscribe);
  void on_unsubscribe(Session& session, const Unsubscribe& unsubscribe);
  void on_disconnect(Session& session, const Disconnect& disconnect);
  // The subscriptions are committed: SUBACK, then the retained messages they match (filter and
  // QoS of each subscription that asked for them).
  void subscribed(ConnectionId connection, const Suback& suback,
                  const std::vector<std::pair<std::string, QoS>>& retained_for);

  Session* session_of(ConnectionId connection);
  // Ends the connection for a protocol violation: a 5.0 client is told why first.
  void disconnect(Session& session, std::uint8_t reason_code, std::string_view why);
  // The session's connection is gone: its will (now or after its delay), then the end of a
  // session that does not outlive its connection.
  void detach(Session& session, bool publish_will);
  // Ends the session; a will still waiting for its delay is published now, as the standard
  // asks when the session ends first.
  void end_session(const std::string& client_id, std::vector<StoreOp>& ops);
  void publish_will(const std::string& client_id, Will will, std::vector<StoreOp>& ops);

  WallMs now() const;
  std::shared_ptr<Message> make_message(std::string topic, Bytes payload, QoS qos,
                                        const Properties& properties);
  // Routes the message from `publisher` to every matching session and, when `retain`, into
  // the retained store; the durable changes are appended to `ops`.
  Routed route(std::string_view publisher, const std::shared_ptr<Message>& message, bool retain,
               std::vector<StoreOp>& ops);
  // Queues a message for one member of a shared subscription, taking them in turn.
  bool route_shared(const SharedMatch& share, const std::shared_ptr<Message>& message,
                    std::vector<StoreOp>& ops, Routed& routed);
  // Commits the ops, then lets the targets receive the message.
  void submit_routed(std::vector<StoreOp> ops, const std::shared_ptr<Message>& message,
                     std::vector<std::string> targets);
  // Queues the message for the session under the queue limits; false when it was not queued.
  bool enqueue(Session& session, const std::shared_ptr<Message>& message, QoS qos, bool retain,
               std::vector<StoreOp>& ops);
  void remove_entry(Session& session, std::list<Entry>::iterator entry, std::vector<StoreOp>& ops);
  std::optional<std::uint16_t> allocate_packet_id(Session& session);
  // Sends what the session may receive now: committed messages, within the in-flight window.
  void pump(Session& session);
  // False when the message cannot go to this client (over its maximum packet size).
  bool send_publish(Session& session, const Entry& entry, bool dup);
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
  std::map<std::string, PendingWill, std::less<>> pending_wills_;
  std::set<std::string, std::less<>> will_rows_;  // client ids with a will in the database
  std::map<std::string, std::size_t, std::less<>> share_turns_;  // next member per shared filter
  std::uint64_t next_id_ = 0;
  std::uint64_t next_client_number_ = 0;
  std::size_t total_queued_ = 0;
};

}  // namespace emsnode::plugins::mq
