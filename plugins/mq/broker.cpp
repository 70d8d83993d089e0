#include "broker.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <type_traits>
#include <utility>

namespace emsnode::plugins::mq {
namespace {

QoS min_qos(QoS a, QoS b) {
  return static_cast<std::uint8_t>(a) < static_cast<std::uint8_t>(b) ? a : b;
}

// An acknowledgement of `packet_id` (3.1.1: the reason code and properties stay unset).
template <typename Ack>
Ack ack(std::uint16_t packet_id, std::uint8_t reason_code = reason::kSuccess) {
  Ack packet;
  packet.packet_id = packet_id;
  packet.reason_code = reason_code;
  return packet;
}

std::size_t qos_index(QoS qos) {
  return static_cast<std::size_t>(qos);
}

std::string_view policy_name(QueueFullPolicy policy) {
  switch (policy) {
    case QueueFullPolicy::kDropNew:
      return "drop_new";
    case QueueFullPolicy::kDropOldest:
      return "drop_oldest";
    case QueueFullPolicy::kDisconnect:
      return "disconnect";
  }
  return "unknown";
}

// The 5.0 CONNACK reason for a refusal decided in 3.1.1 terms.
std::uint8_t v5_connect_reason(std::uint8_t v311_code) {
  switch (v311_code) {
    case connack_v311::kUnacceptableProtocolVersion:
      return reason::kUnsupportedProtocolVersion;
    case connack_v311::kIdentifierRejected:
      return reason::kClientIdentifierNotValid;
    case connack_v311::kServerUnavailable:
      return reason::kServerUnavailable;
    case connack_v311::kBadUserNameOrPassword:
      return reason::kBadUserNameOrPassword;
    case connack_v311::kNotAuthorized:
      return reason::kNotAuthorized;
    default:
      return reason::kUnspecifiedError;
  }
}

// The properties a message carries from its publisher to its subscribers unchanged. The
// expiry travels as a time of its own and topic aliases belong to one connection.
Properties forwarded(const Properties& in) {
  Properties out;
  out.payload_format_indicator = in.payload_format_indicator;
  out.content_type = in.content_type;
  out.response_topic = in.response_topic;
  out.correlation_data = in.correlation_data;
  out.user_properties = in.user_properties;
  return out;
}

constexpr std::uint32_t kNeverExpires = 0xFFFFFFFF;  // a Session Expiry Interval of "never"

// Seconds from now until `at`, at least 1: an interval of 0 would mean "already expired".
std::uint32_t seconds_until(WallMs at, WallMs now) {
  const WallMs left = at - now;
  return left <= 1000 ? 1u : static_cast<std::uint32_t>((left + 999) / 1000);
}

}  // namespace

BrokerMetrics::BrokerMetrics(sdk::Host& host)
    : sessions(host.gauge("sessions", "Sessions held: connected, and persistent offline ones")),
      queued(host.gauge("queued_messages", "Messages queued or in flight, all sessions")),
      messages_in{
          host.counter("messages_in_total", "PUBLISH packets received", {{"qos", "0"}}),
          host.counter("messages_in_total", "PUBLISH packets received", {{"qos", "1"}}),
          host.counter("messages_in_total", "PUBLISH packets received", {{"qos", "2"}}),
      },
      messages_out{
          host.counter("messages_out_total", "PUBLISH packets sent", {{"qos", "0"}}),
          host.counter("messages_out_total", "PUBLISH packets sent", {{"qos", "1"}}),
          host.counter("messages_out_total", "PUBLISH packets sent", {{"qos", "2"}}),
      },
      dropped_queue_full(host.counter("dropped_messages_total", "Deliveries dropped, by reason",
                                      {{"reason", "queue_full"}})),
      dropped_slow_consumer(host.counter("dropped_messages_total", "Deliveries dropped, by reason",
                                         {{"reason", "slow_consumer"}})),
      dropped_not_authorized(host.counter("dropped_messages_total", "Deliveries dropped, by reason",
                                          {{"reason", "not_authorized"}})),
      dropped_expired(host.counter("dropped_messages_total", "Deliveries dropped, by reason",
                                   {{"reason", "expired"}})),
      dropped_too_large(host.counter("dropped_messages_total", "Deliveries dropped, by reason",
                                     {{"reason", "over_client_maximum_packet_size"}})),
      refused_credentials(host.counter("connects_refused_total", "CONNECTs refused, by reason",
                                       {{"reason", "bad_credentials"}})),
      refused_not_authorized(host.counter("connects_refused_total", "CONNECTs refused, by reason",
                                          {{"reason", "not_authorized"}})),
      refused_unavailable(host.counter("connects_refused_total", "CONNECTs refused, by reason",
                                       {{"reason", "server_unavailable"}})),
      takeovers(host.counter("session_takeovers_total",
                             "Connections closed because their client id connected again")),
      wills_published(host.counter("wills_published_total", "Will messages published")),
      sessions_expired(
          host.counter("sessions_expired_total", "Sessions ended by their expiry interval")) {}

Broker::Broker(BrokerOptions options, Committer& committer, BrokerIo& io, sdk::Logger log,
               BrokerMetrics& metrics)
    : options_(std::move(options)),
      committer_(committer),
      io_(io),
      log_(log),
      metrics_(metrics),
      next_id_(options_.id_base + 1) {}

WallMs Broker::now() const {
  if (options_.clock) return options_.clock();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool Broker::has_session(std::string_view client_id) const {
  return sessions_.find(client_id) != sessions_.end();
}

std::size_t Broker::queued(std::string_view client_id) const {
  auto found = sessions_.find(client_id);
  return found == sessions_.end() ? 0 : found->second->queue.size();
}

void Broker::load(const DurableState& state) {
  const WallMs at_load = now();
  for (const auto& [id, message] : state.messages) {
    next_id_ = std::max(next_id_, id + 1);
  }
  for (const auto& [topic, message_id] : state.retained) {
    retained_[topic] = state.messages.at(message_id);
  }
  for (const StoredSession& stored : state.sessions) {
    auto session = std::make_unique<Session>();
    session->client_id = stored.client_id;
    session->persistent = true;
    session->expiry_interval = stored.expiry_interval;
    session->expires_at = stored.expires_at;
    // Connected to the node before this one: its clock starts now, as its connection ended.
    if (!session->expires_at && stored.expiry_interval) {
      session->expires_at = at_load + WallMs{*stored.expiry_interval} * 1000;
    }
    for (const auto& [filter, options] : stored.subscriptions) {
      SubscriptionEntry entry;
      entry.options = options;
      subscriptions_.add(stored.client_id, filter, entry);
    }
    for (const StoredQueueEntry& row : stored.queue) {
      Entry entry;
      entry.seq = row.seq;
      entry.message = state.messages.at(row.message_id);
      entry.qos = row.qos;
      entry.packet_id = row.packet_id;
      entry.retain = row.retain;
      entry.maybe_sent = true;
      if (row.released) {
        entry.state = EntryState::kReleased;
        entry.release_committed = true;
        ++session->inflight;
      }
      session->packet_ids.insert(row.packet_id);
      session->next_packet_id = static_cast<std::uint16_t>(row.packet_id + 1);
      if (session->next_packet_id == 0) session->next_packet_id = 1;
      session->queued_bytes += entry.message->size();
      next_id_ = std::max(next_id_, row.seq + 1);
      session->queue.push_back(std::move(entry));
      ++total_queued_;
    }
    session->inbound.insert(stored.inbound.begin(), stored.inbound.end());
    sessions_.emplace(stored.client_id, std::move(session));
  }
  for (const StoredWill& stored : state.wills) {
    will_rows_.insert(stored.client_id);
    WallMs publish_at = 0;
    if (stored.publish_at) {
      publish_at = *stored.publish_at;
    } else {
      // Its client was connected to the node before this one and may well be alive: give it
      // the time to reconnect, which cancels the will.
      const std::uint32_t delay = std::max(stored.will.properties.will_delay_interval.value_or(0),
                                           options_.failover_will_delay);
      publish_at = at_load + WallMs{delay} * 1000;
    }
    pending_wills_[stored.client_id] = PendingWill{stored.will, publish_at};
  }
  metrics_.sessions.set(static_cast<double>(sessions_.size()));
  update_queued_gauge();
  log_.info("mq.loaded", {{"sessions", state.sessions.size()},
                          {"messages", state.messages.size()},
                          {"retained", state.retained.size()},
                          {"wills", state.wills.size()}});
}

Broker::Session* Broker::session_of(ConnectionId connection) {
  auto found = connections_.find(connection);
  return found == connections_.end() ? nullptr : found->second;
}

void Broker::submit(std::vector<StoreOp> ops, std::function<void()> done) {
  committer_.submit(
      std::move(ops), done ? std::move(done) : [] {});
}

void Broker::on_packet(ConnectionId connection, Packet packet,
                       const std::optional<std::string>& certificate_name,
                       std::optional<AccessControl::Outcome> identity) {
  if (auto* connect = std::get_if<Connect>(&packet)) {
    on_connect(connection, *connect, certificate_name, std::move(identity));
    return;
  }
  Session* session = session_of(connection);
  if (session == nullptr) {
    return;  // being closed, or refused at CONNECT
  }
  std::visit(
      [&](auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Publish>) {
          on_publish(*session, p);
        } else if constexpr (std::is_same_v<T, Puback>) {
          on_puback(*session, p.packet_id);
        } else if constexpr (std::is_same_v<T, Pubrec>) {
          on_pubrec(*session, p);
        } else if constexpr (std::is_same_v<T, Pubrel>) {
          on_pubrel(*session, p.packet_id);
        } else if constexpr (std::is_same_v<T, Pubcomp>) {
          on_pubcomp(*session, p.packet_id);
        } else if constexpr (std::is_same_v<T, Subscribe>) {
          on_subscribe(*session, p);
        } else if constexpr (std::is_same_v<T, Unsubscribe>) {
          on_unsubscribe(*session, p);
        } else if constexpr (std::is_same_v<T, Pingreq>) {
          io_.send(connection, Pingresp{});
        } else if constexpr (std::is_same_v<T, Disconnect>) {
          on_disconnect(*session, p);
        } else if constexpr (std::is_same_v<T, Auth>) {
          // No authentication method is offered, so a client may not start an exchange.
          disconnect(*session, reason::kProtocolError, "AUTH without an authentication method");
        } else {
          // The decoder lets through no other packet from a client.
          log_.warning("mq.unexpected_packet",
                       {{"client_id", session->client_id}, {"packet", describe(packet)}});
          disconnect(*session, reason::kProtocolError, "unexpected packet");
        }
      },
      packet);
}

void Broker::disconnect(Session& session, std::uint8_t reason_code, std::string_view why) {
  log_.info("mq.protocol_violation", {{"client_id", session.client_id}, {"reason", why}});
  const ConnectionId connection = session.connection;
  if (session.version == ProtocolVersion::kV5) {
    Disconnect packet;
    packet.reason_code = reason_code;
    io_.send(connection, packet);
  }
  io_.close(connection);
  detach(session, true);
}

void Broker::on_connect(ConnectionId connection, Connect& connect,
                        const std::optional<std::string>& certificate_name,
                        std::optional<AccessControl::Outcome> checked) {
  const bool v5 = connect.version == ProtocolVersion::kV5;
  if (v5 && connect.properties.authentication_method) {
    // Enhanced authentication (AUTH exchanges) is not offered.
    Connack refused;
    refused.reason_code = reason::kBadAuthenticationMethod;
    io_.send(connection, refused);
    io_.close(connection);
    return;
  }
  const AccessControl::Outcome identity =
      checked ? std::move(*checked) : options_.access.authenticate(connect, certificate_name);
  if (identity.connack_code != connack_v311::kAccepted) {
    // Never the password: the user name and the reason are enough to tell what went wrong.
    switch (identity.connack_code) {
      case connack_v311::kBadUserNameOrPassword:
        metrics_.refused_credentials.add();
        break;
      case connack_v311::kServerUnavailable:
        metrics_.refused_unavailable.add();
        break;
      default:
        metrics_.refused_not_authorized.add();
    }
    log_.warning("mq.connect_refused", {{"client_id", connect.client_id},
                                        {"username", connect.username.value_or("")},
                                        {"reason", identity.reason},
                                        {"code", static_cast<int>(identity.connack_code)}});
    Connack refused;
    refused.reason_code = v5 ? v5_connect_reason(identity.connack_code) : identity.connack_code;
    io_.send(connection, refused);
    io_.close(connection);
    return;
  }
  std::string client_id = connect.client_id;
  std::string assigned_id;
  if (client_id.empty()) {
    // 3.1.1: the decoder refuses an empty id without a clean session. Give it a unique id.
    client_id = "auto-" + options_.node_id + "-" + std::to_string(options_.id_base) + "-" +
                std::to_string(++next_client_number_);
    if (v5) assigned_id = client_id;
  }
  // How long the session outlives the connection: 3.1.1 says it with the clean session flag.
  std::optional<std::uint32_t> expiry;
  if (v5) {
    const std::uint32_t asked = connect.properties.session_expiry_interval.value_or(0);
    if (asked != kNeverExpires) expiry = asked;
  } else if (connect.clean_start) {
    expiry = 0;
  }
  std::optional<std::uint32_t> capped;
  if (options_.max_session_expiry && (!expiry || *expiry > *options_.max_session_expiry)) {
    expiry = *options_.max_session_expiry;
    capped = expiry;
  }

  std::vector<StoreOp> ops;
  auto found = sessions_.find(client_id);
  if (found != sessions_.end() && found->second->connection != 0) {
    // Takeover: the standard asks to close the existing connection; it did not DISCONNECT, so
    // its will goes out (after its delay, which the new connection then cancels).
    Session& old = *found->second;
    metrics_.takeovers.add();
    log_.info("mq.session_taken_over", {{"client_id", client_id}});
    if (old.version == ProtocolVersion::kV5) {
      Disconnect taken;
      taken.reason_code = reason::kSessionTakenOver;
      io_.send(old.connection, taken);
    }
    io_.close(old.connection);
    detach(old, true);  // a session that does not outlive its connection ends here
    found = sessions_.find(client_id);
  }
  // The client is back: a will waiting for its delay is not published.
  pending_wills_.erase(client_id);
  if (found != sessions_.end() && connect.clean_start) {
    end_session(client_id, ops);
    found = sessions_.end();
  }
  const bool present = found != sessions_.end();
  Session* session = nullptr;
  if (present) {
    session = found->second.get();
  } else {
    auto created = std::make_unique<Session>();
    created->client_id = client_id;
    created->persistent = expiry != std::optional<std::uint32_t>{0};
    session = created.get();
    sessions_.emplace(client_id, std::move(created));
    metrics_.sessions.set(static_cast<double>(sessions_.size()));
  }
  session->expiry_interval = expiry;
  session->expires_at.reset();
  if (session->persistent) ops.push_back(op::SaveSession{client_id, expiry, std::nullopt});
  session->connection = connection;
  session->ready = false;
  session->username = identity.username;
  session->version = connect.version;
  session->send_window = std::min<std::size_t>(
      options_.max_inflight,
      connect.properties.receive_maximum.value_or(std::numeric_limits<std::uint16_t>::max()));
  session->max_packet_size = connect.properties.maximum_packet_size;
  session->topic_aliases.clear();
  session->qos1_unacked = 0;
  session->will = std::move(connect.will);
  if (session->will && options_.access.acl &&
      !options_.access.acl->may_write(client_id, session->username, session->will->topic)) {
    // As a publish to a denied topic, a will there is dropped without refusing the client.
    log_.info("mq.will_denied", {{"client_id", client_id}, {"topic", session->will->topic}});
    session->will.reset();
  }
  if (session->will) {
    ops.push_back(op::SaveWill{client_id, *session->will, std::nullopt});
    will_rows_.insert(client_id);
  } else if (will_rows_.erase(client_id) > 0) {
    ops.push_back(op::DeleteWill{client_id});
  }
  connections_[connection] = session;
  log_.debug("mq.connected", {{"client_id", client_id},
                              {"version", static_cast<int>(connect.version)},
                              {"clean_start", connect.clean_start},
                              {"session_present", present}});

  submit(std::move(ops), [this, connection, client_id, present, v5, assigned_id, capped] {
    Session* s = session_of(connection);
    if (s == nullptr || s->client_id != client_id) return;
    if (v5) {
      io_.send(connection, accepted_connack(present, assigned_id, capped));
    } else {
      Connack accepted;
      accepted.session_present = present;
      accepted.reason_code = connack_v311::kAccepted;
      io_.send(connection, accepted);
    }
    s->ready = true;
    redeliver(*s);
    pump(*s);
  });
}

Connack Broker::accepted_connack(bool present, const std::string& assigned_id,
                                 const std::optional<std::uint32_t>& capped_expiry) const {
  Connack connack;
  connack.session_present = present;
  Properties& p = connack.properties;
  if (options_.receive_maximum != std::numeric_limits<std::uint16_t>::max()) {
    p.receive_maximum = options_.receive_maximum;
  }
  p.maximum_packet_size = options_.maximum_packet_size;
  if (options_.topic_alias_maximum > 0) p.topic_alias_maximum = options_.topic_alias_maximum;
  if (!assigned_id.empty()) p.assigned_client_identifier = assigned_id;
  if (capped_expiry) p.session_expiry_interval = *capped_expiry;
  p.subscription_identifier_available = false;
  return connack;
}

bool Broker::resolve_topic_alias(Session& session, Publish& publish) {
  const auto alias = publish.properties.topic_alias;
  if (!alias) return true;
  if (*alias == 0 || *alias > options_.topic_alias_maximum) {
    disconnect(session, reason::kTopicAliasInvalid, "topic alias out of range");
    return false;
  }
  auto& aliases = session.topic_aliases;
  if (aliases.size() < *alias) aliases.resize(*alias);
  std::string& mapped = aliases[*alias - 1u];
  if (!publish.topic.empty()) {
    mapped = publish.topic;
  } else if (mapped.empty()) {
    disconnect(session, reason::kProtocolError, "unknown topic alias");
    return false;
  } else {
    publish.topic = mapped;
  }
  return true;
}

std::shared_ptr<Message> Broker::make_message(std::string topic, Bytes payload, QoS qos,
                                              const Properties& properties) {
  auto message = std::make_shared<Message>();
  message->id = next_id_++;
  message->topic = std::move(topic);
  message->payload = std::move(payload);
  message->qos = qos;
  message->properties = forwarded(properties);
  if (properties.message_expiry_interval) {
    message->expires_at = now() + WallMs{*properties.message_expiry_interval} * 1000;
  }
  return message;
}

void Broker::on_publish(Session& session, Publish& publish) {
  metrics_.messages_in[qos_index(publish.qos)].add();
  const ConnectionId connection = session.connection;
  const bool v5 = session.version == ProtocolVersion::kV5;
  if (v5 && !resolve_topic_alias(session, publish)) return;
  if (!is_valid_topic_name(publish.topic)) {
    disconnect(session, reason::kTopicNameInvalid, "invalid topic name");
    return;
  }
  if (publish.properties.response_topic &&
      !is_valid_topic_name(*publish.properties.response_topic)) {
    disconnect(session, reason::kProtocolError, "invalid response topic");
    return;
  }
  const std::uint16_t packet_id = publish.packet_id;
  const bool duplicate_qos2 =
      publish.qos == QoS::kExactlyOnce && session.inbound.count(packet_id) != 0;
  if (v5 && publish.qos != QoS::kAtMostOnce && !duplicate_qos2 &&
      session.qos1_unacked + session.inbound.size() >= options_.receive_maximum) {
    disconnect(session, reason::kReceiveMaximumExceeded, "receive maximum exceeded");
    return;
  }
  if (duplicate_qos2) {
    // A redelivery of a message already taken: acknowledge again, do not route it twice.
    submit({}, [this, connection, packet_id] {
      if (session_of(connection) != nullptr) io_.send(connection, ack<Pubrec>(packet_id));
    });
    return;
  }
  const bool allowed =
      !options_.access.acl ||
      options_.access.acl->may_write(session.client_id, session.username, publish.topic);
  std::vector<StoreOp> ops;
  if (publish.qos == QoS::kExactlyOnce && (allowed || !v5)) {
    session.inbound.insert(packet_id);
    if (session.persistent) ops.push_back(op::AddInbound{session.client_id, packet_id});
  }
  if (publish.qos == QoS::kAtLeastOnce) ++session.qos1_unacked;
  std::shared_ptr<Message> message;
  Routed routed;
  std::uint8_t code = reason::kSuccess;
  if (!allowed) {
    // 3.1.1 has no way to say no: the publisher is acknowledged and nobody gets the message,
    // as mosquitto does. 5.0 acknowledges with "not authorized".
    metrics_.dropped_not_authorized.add();
    log_.debug("mq.publish_denied", {{"client_id", session.client_id}, {"topic", publish.topic}});
    message = std::make_shared<Message>();
    code = reason::kNotAuthorized;
  } else {
    message = make_message(std::move(publish.topic), std::move(publish.payload), publish.qos,
                           publish.properties);
    routed = route(session.client_id, message, publish.retain, ops);
    if (!routed.matched) code = reason::kNoMatchingSubscribers;
  }
  if (!v5) code = reason::kSuccess;
  const QoS qos = publish.qos;
  const std::size_t bytes = message->size();
  Uncommitted& waiting = uncommitted_[connection];
  ++waiting.publishes;
  waiting.bytes += bytes;
  submit(std::move(ops), [this, message, targets = std::move(routed.targets), connection, packet_id,
                          qos, bytes, code] {
    committed_publish(connection, bytes);
    message->committed = true;
    pump_all(targets);
    Session* s = session_of(connection);
    if (qos == QoS::kAtMostOnce || s == nullptr) return;
    if (qos == QoS::kAtLeastOnce) {
      --s->qos1_unacked;
      io_.send(connection, ack<Puback>(packet_id, code));
    } else {
      io_.send(connection, ack<Pubrec>(packet_id, code));
    }
  });
}

Broker::Routed Broker::route(std::string_view publisher, const std::shared_ptr<Message>& message,
                             bool retain, std::vector<StoreOp>& ops) {
  const std::string& topic = message->topic;
  if (retain) {
    if (message->payload.empty()) {
      // An empty retained message clears the topic and is itself not kept.
      if (retained_.erase(topic) > 0) ops.push_back(op::ClearRetained{topic});
    } else {
      retained_[topic] = message;
      ops.push_back(op::SaveMessage{message});
      message->saved = true;
      ops.push_back(op::SetRetained{topic, message->id});
    }
  }
  Routed routed;
  std::vector<std::string> to_disconnect;
  const MatchResult matches = subscriptions_.match(topic, publisher);
  routed.matched = !matches.clients.empty() || !matches.shared.empty();
  for (const ClientMatch& match : matches.clients) {
    auto found = sessions_.find(match.client_id);
    if (found == sessions_.end()) continue;
    Session& session = *found->second;
    // Established subscriptions get RETAIN 0, unless one asked for it as published.
    const bool as_published =
        retain && std::any_of(match.subscriptions.begin(), match.subscriptions.end(),
                              [](const MatchedSubscription& m) {
                                return m.entry.options.retain_as_published;
                              });
    if (enqueue(session, message, min_qos(message->qos, match.max_qos), as_published, ops)) {
      routed.targets.push_back(session.client_id);
    } else if (options_.queue_full_policy == QueueFullPolicy::kDisconnect &&
               session.connection != 0) {
      to_disconnect.push_back(session.client_id);
    }
  }
  for (const SharedMatch& share : matches.shared) {
    route_shared(share, message, ops, routed);
  }
  // Closing a session changes the index that `matches` points into: only now.
  for (const std::string& client_id : to_disconnect) {
    auto found = sessions_.find(client_id);
    if (found == sessions_.end() || found->second->connection == 0) continue;
    log_.warning("mq.queue_full_disconnect", {{"client_id", client_id}});
    disconnect(*found->second, reason::kQuotaExceeded, "queue full");
  }
  return routed;
}

bool Broker::route_shared(const SharedMatch& share, const std::shared_ptr<Message>& message,
                          std::vector<StoreOp>& ops, Routed& routed) {
  const std::size_t count = share.members.size();
  std::string key = "$share/";
  key.append(share.group).append("/").append(share.filter);
  std::size_t& turn = share_turns_[key];
  // Connected members first, in turn; an offline persistent member keeps it otherwise.
  for (const bool online : {true, false}) {
    for (std::size_t i = 0; i < count; ++i) {
      const SharedMember& member = share.members[(turn + i) % count];
      auto found = sessions_.find(member.client_id);
      if (found == sessions_.end()) continue;
      Session& session = *found->second;
      if ((session.connection != 0 && session.ready) != online) continue;
      if (enqueue(session, message, min_qos(message->qos, member.entry.options.max_qos), false,
                  ops)) {
        turn = (turn + i + 1) % count;
        routed.targets.push_back(session.client_id);
        return true;
      }
    }
  }
  return false;
}

bool Broker::enqueue(Session& session, const std::shared_ptr<Message>& message, QoS qos,
                     bool retain, std::vector<StoreOp>& ops) {
  if (message->expired(now())) {
    metrics_.dropped_expired.add();
    return false;
  }
  if (qos == QoS::kAtMostOnce) {
    // QoS 0 is not kept for an offline session, nor piled onto a connection that does not
    // keep up.
    if (session.connection == 0) return false;
    if (io_.backlog(session.connection) > options_.max_backlog_bytes) {
      metrics_.dropped_slow_consumer.add();
      return false;
    }
  }
  const auto full = [&] {
    return session.queue.size() >= options_.max_queued_messages ||
           session.queued_bytes + message->size() > options_.max_queued_bytes;
  };
  if (full() && options_.queue_full_policy == QueueFullPolicy::kDropOldest) {
    auto oldest = std::find_if(session.queue.begin(), session.queue.end(),
                               [](const Entry& e) { return e.state == EntryState::kQueued; });
    while (oldest != session.queue.end() && full()) {
      metrics_.dropped_queue_full.add();
      remove_entry(session, oldest, ops);
      oldest = std::find_if(session.queue.begin(), session.queue.end(),
                            [](const Entry& e) { return e.state == EntryState::kQueued; });
    }
  }
  std::optional<std::uint16_t> packet_id;
  if (!full() && qos != QoS::kAtMostOnce) {
    packet_id = allocate_packet_id(session);
  }
  if (full() || (qos != QoS::kAtMostOnce && !packet_id)) {
    metrics_.dropped_queue_full.add();
    if (!session.full_logged) {
      session.full_logged = true;
      log_.warning("mq.queue_full", {{"client_id", session.client_id},
                                     {"queued", session.queue.size()},
                                     {"queued_bytes", session.queued_bytes},
                                     {"policy", policy_name(options_.queue_full_policy)}});
    }
    return false;
  }
  Entry entry;
  entry.seq = next_id_++;
  entry.message = message;
  entry.qos = qos;
  entry.packet_id = packet_id.value_or(0);
  entry.retain = retain;
  if (session.persistent && qos != QoS::kAtMostOnce) {
    if (!message->saved) {
      ops.push_back(op::SaveMessage{message});
      message->saved = true;
    }
    ops.push_back(
        op::Enqueue{session.client_id, entry.seq, message->id, qos, entry.packet_id, retain});
  }
  session.queued_bytes += message->size();
  session.queue.push_back(std::move(entry));
  ++total_queued_;
  update_queued_gauge();
  return true;
}

std::optional<std::uint16_t> Broker::allocate_packet_id(Session& session) {
  for (std::uint32_t tries = 0; tries < 65535; ++tries) {
    const std::uint16_t id = session.next_packet_id;
    session.next_packet_id = static_cast<std::uint16_t>(id == 65535 ? 1 : id + 1);
    if (session.packet_ids.insert(id).second) return id;
  }
  return std::nullopt;
}

void Broker::remove_entry(Session& session, std::list<Entry>::iterator entry,
                          std::vector<StoreOp>& ops) {
  if (entry->state != EntryState::kQueued) --session.inflight;
  if (entry->qos != QoS::kAtMostOnce) {
    session.packet_ids.erase(entry->packet_id);
    if (session.persistent) {
      ops.push_back(op::Dequeue{session.client_id, entry->seq, entry->message->id});
    }
  }
  session.queued_bytes -= entry->message->size();
  session.queue.erase(entry);
  --total_queued_;
  update_queued_gauge();
}

bool Broker::send_publish(Session& session, const Entry& entry, bool dup) {
  const Message& message = *entry.message;
  Packet packet{std::in_place_type<Publish>};  // built in place: no copy of the payload to send
  Publish& publish = std::get<Publish>(packet);
  publish.dup = dup && entry.qos != QoS::kAtMostOnce;
  publish.qos = entry.qos;
  publish.retain = entry.retain;
  publish.topic = message.topic;
  publish.packet_id = entry.packet_id;
  publish.payload = message.payload;
  if (session.version == ProtocolVersion::kV5) {
    publish.properties = message.properties;
    if (message.expires_at) {
      // What is left of the interval, as the standard asks of a forwarded message.
      publish.properties.message_expiry_interval = seconds_until(*message.expires_at, now());
    }
    if (session.max_packet_size &&
        encoded_size(packet, ProtocolVersion::kV5) > *session.max_packet_size) {
      // The standard's rule: discard it as if it had been delivered.
      metrics_.dropped_too_large.add();
      return false;
    }
  }
  metrics_.messages_out[qos_index(entry.qos)].add();
  io_.send(session.connection, packet);
  return true;
}

void Broker::pump(Session& session) {
  if (session.connection == 0 || !session.ready) return;
  const auto first_queued = [&session] {
    return std::find_if(session.queue.begin(), session.queue.end(),
                        [](const Entry& e) { return e.state == EntryState::kQueued; });
  };
  const WallMs at = now();
  for (auto it = session.queue.begin(); it != session.queue.end();) {
    if (it->state != EntryState::kQueued) {
      ++it;
      continue;
    }
    // Order is kept: nothing overtakes a message whose batch has not committed.
    if (!it->message->committed || it->held) break;
    if (it->qos != QoS::kAtMostOnce && session.inflight >= session.send_window) break;
    const bool expired = it->message->expired(at);
    if (expired) metrics_.dropped_expired.add();
    if (expired || !may_receive(session, *it) ||
        !send_publish(session, *it, it->maybe_sent && it->qos != QoS::kAtMostOnce)) {
      std::vector<StoreOp> ops;
      remove_entry(session, it, ops);
      if (!ops.empty()) submit(std::move(ops), nullptr);
      // remove_entry invalidated the iterator; every entry before this one is in flight.
      it = first_queued();
      continue;
    }
    if (it->qos == QoS::kAtMostOnce) {
      std::vector<StoreOp> none;
      remove_entry(session, it, none);
      it = first_queued();
      continue;
    }
    it->state = EntryState::kSent;
    ++session.inflight;
    ++it;
  }
  if (session.full_logged && session.queue.size() < options_.max_queued_messages / 2) {
    session.full_logged = false;  // log the next time it fills up
  }
}

bool Broker::may_receive(const Session& session, const Entry& entry) {
  // Checked again at delivery although the subscription was: a persistent session may be
  // resumed by another user than the one who subscribed (its client id is all it takes).
  if (!options_.access.acl ||
      options_.access.acl->may_read(session.client_id, session.username, entry.message->topic)) {
    return true;
  }
  metrics_.dropped_not_authorized.add();
  return false;
}

void Broker::redeliver(Session& session) {
  // A delivery once started is finished even past the message's expiry, as the standard asks;
  // one the client may no longer read, or can no longer take, is dropped.
  std::vector<StoreOp> ops;
  for (auto it = session.queue.begin(); it != session.queue.end();) {
    bool keep = true;
    if (it->state == EntryState::kSent) {
      keep = may_receive(session, *it) && send_publish(session, *it, true);
    } else if (it->state == EntryState::kReleased && it->release_committed) {
      io_.send(session.connection, ack<Pubrel>(it->packet_id));
    }
    if (keep) {
      ++it;
      continue;
    }
    const std::uint64_t seq = it->seq;
    remove_entry(session, it, ops);
    it = std::find_if(session.queue.begin(), session.queue.end(),
                      [seq](const Entry& e) { return e.seq > seq; });
  }
  if (!ops.empty()) submit(std::move(ops), nullptr);
}

void Broker::pump_all(const std::vector<std::string>& client_ids) {
  for (const std::string& client_id : client_ids) {
    auto found = sessions_.find(client_id);
    if (found != sessions_.end()) pump(*found->second);
  }
}

void Broker::on_puback(Session& session, std::uint16_t packet_id) {
  auto entry = std::find_if(session.queue.begin(), session.queue.end(), [&](const Entry& e) {
    return e.packet_id == packet_id && e.qos == QoS::kAtLeastOnce && e.state == EntryState::kSent;
  });
  if (entry == session.queue.end()) return;  // unknown id: nothing to do
  std::vector<StoreOp> ops;
  remove_entry(session, entry, ops);
  submit(std::move(ops), nullptr);
  pump(session);
}

void Broker::on_pubrec(Session& session, const Pubrec& pubrec) {
  const std::uint16_t packet_id = pubrec.packet_id;
  auto entry = std::find_if(session.queue.begin(), session.queue.end(), [&](const Entry& e) {
    return e.packet_id == packet_id && e.qos == QoS::kExactlyOnce && e.state != EntryState::kQueued;
  });
  if (entry == session.queue.end()) return;
  std::vector<StoreOp> ops;
  if (pubrec.reason_code >= reason::kUnspecifiedError) {
    // 5.0: the client refused the message; the exchange ends here, without PUBREL.
    remove_entry(session, entry, ops);
    submit(std::move(ops), nullptr);
    pump(session);
    return;
  }
  if (entry->state == EntryState::kSent) {
    entry->state = EntryState::kReleased;
    if (session.persistent) ops.push_back(op::MarkReleased{session.client_id, entry->seq});
  }
  // The client delivers on PUBREL and then forgets the packet id: a new active must know the
  // message was released, or it would send it again as new. So PUBREL waits for the commit, and
  // goes to whichever connection the session has by then (redeliver() sends none before).
  submit(std::move(ops), [this, client_id = session.client_id, seq = entry->seq, packet_id] {
    auto found = sessions_.find(client_id);
    if (found == sessions_.end()) return;
    Session& s = *found->second;
    auto released = std::find_if(s.queue.begin(), s.queue.end(), [&](const Entry& e) {
      return e.seq == seq && e.state == EntryState::kReleased;
    });
    if (released == s.queue.end()) return;
    released->release_committed = true;
    if (s.connection != 0 && s.ready) io_.send(s.connection, ack<Pubrel>(packet_id));
  });
}

void Broker::on_pubcomp(Session& session, std::uint16_t packet_id) {
  auto entry = std::find_if(session.queue.begin(), session.queue.end(), [&](const Entry& e) {
    return e.packet_id == packet_id && e.qos == QoS::kExactlyOnce &&
           e.state == EntryState::kReleased;
  });
  if (entry == session.queue.end()) return;
  std::vector<StoreOp> ops;
  remove_entry(session, entry, ops);
  submit(std::move(ops), nullptr);
  pump(session);
}

void Broker::on_pubrel(Session& session, std::uint16_t packet_id) {
  std::vector<StoreOp> ops;
  const bool known = session.inbound.erase(packet_id) > 0;
  if (known && session.persistent) {
    ops.push_back(op::RemoveInbound{session.client_id, packet_id});
  }
  const std::uint8_t code = known || session.version != ProtocolVersion::kV5
                                ? reason::kSuccess
                                : reason::kPacketIdentifierNotFound;
  // PUBCOMP frees the id for the publisher's next message: the release must be durable first,
  // or a new active would take that next message for a duplicate.
  const ConnectionId connection = session.connection;
  submit(std::move(ops), [this, connection, packet_id, code] {
    if (session_of(connection) != nullptr) io_.send(connection, ack<Pubcomp>(packet_id, code));
  });
}

void Broker::on_subscribe(Session& session, const Subscribe& subscribe) {
  const bool v5 = session.version == ProtocolVersion::kV5;
  if (!subscribe.properties.subscription_identifiers.empty()) {
    // CONNACK said they are not available: the standard makes using them a protocol error.
    disconnect(session, reason::kSubscriptionIdentifiersNotSupported,
               "subscription identifiers are not supported");
    return;
  }
  for (const TopicSubscription& wanted : subscribe.subscriptions) {
    if (wanted.options.no_local && is_shared_subscription(wanted.filter)) {
      disconnect(session, reason::kProtocolError, "no local on a shared subscription");
      return;
    }
  }
  std::vector<StoreOp> ops;
  Suback suback;
  suback.packet_id = subscribe.packet_id;
  std::vector<std::pair<std::string, QoS>> retained_for;
  for (const TopicSubscription& wanted : subscribe.subscriptions) {
    const auto shared = parse_shared_subscription(wanted.filter);
    if (!is_valid_subscription_filter(wanted.filter)) {
      suback.reason_codes.push_back(v5 ? reason::kTopicFilterInvalid : reason::kUnspecifiedError);
      continue;
    }
    const std::string_view filter = shared ? shared->filter : std::string_view(wanted.filter);
    if (options_.access.acl &&
        !options_.access.acl->may_read(session.client_id, session.username, filter)) {
      log_.info("mq.subscribe_denied",
                {{"client_id", session.client_id}, {"filter", wanted.filter}});
      // 0x80 is "Failure" in 3.1.1.
      suback.reason_codes.push_back(v5 ? reason::kNotAuthorized : reason::kUnspecifiedError);
      continue;
    }
    SubscriptionEntry entry;
    entry.options = wanted.options;
    const bool existed = subscriptions_.add(session.client_id, wanted.filter, entry);
    if (session.persistent) {
      ops.push_back(op::SaveSubscription{session.client_id, wanted.filter, wanted.options});
    }
    suback.reason_codes.push_back(static_cast<std::uint8_t>(wanted.options.max_qos));
    // A shared subscription never gets retained messages; retain handling says when others do.
    const RetainHandling handling = wanted.options.retain_handling;
    if (!shared && (handling == RetainHandling::kSendOnSubscribe ||
                    (handling == RetainHandling::kSendOnNewSubscribe && !existed))) {
      retained_for.emplace_back(wanted.filter, wanted.options.max_qos);
    }
  }
  const ConnectionId connection = session.connection;
  submit(std::move(ops),
         [this, connection, suback = std::move(suback), retained_for = std::move(retained_for)] {
           subscribed(connection, suback, retained_for);
         });
}

void Broker::subscribed(ConnectionId connection, const Suback& suback,
                        const std::vector<std::pair<std::string, QoS>>& retained_for) {
  Session* session = session_of(connection);
  if (session == nullptr) return;
  io_.send(connection, suback);
  // Retained messages follow the SUBACK. Every batch submitted before this one has committed,
  // so the retained messages seen now are committed too; they are held until their own queue
  // rows commit, since the packet id a client sees must be the one a new active would
  // redeliver under.
  std::vector<StoreOp> ops;
  std::vector<std::uint64_t> held;
  for (const auto& [filter, qos] : retained_for) {
    for (const auto& [topic, message] : retained_) {
      if (topic_matches(filter, topic) &&
          enqueue(*session, message, min_qos(message->qos, qos), true, ops)) {
        session->queue.back().held = true;
        held.push_back(session->queue.back().seq);
      }
    }
  }
  if (held.empty()) return;
  submit(std::move(ops), [this, connection, held = std::move(held)] {
    Session* s = session_of(connection);
    if (s == nullptr) return;
    for (Entry& entry : s->queue) {
      if (std::find(held.begin(), held.end(), entry.seq) != held.end()) entry.held = false;
    }
    pump(*s);
  });
}

void Broker::on_unsubscribe(Session& session, const Unsubscribe& unsubscribe) {
  std::vector<StoreOp> ops;
  Unsuback unsuback;
  unsuback.packet_id = unsubscribe.packet_id;
  for (const std::string& filter : unsubscribe.filters) {
    const bool removed = subscriptions_.remove(session.client_id, filter);
    if (removed && session.persistent) {
      ops.push_back(op::DeleteSubscription{session.client_id, filter});
    }
    if (session.version == ProtocolVersion::kV5) {
      unsuback.reason_codes.push_back(removed ? reason::kSuccess : reason::kNoSubscriptionExisted);
    }
  }
  const ConnectionId connection = session.connection;
  submit(std::move(ops), [this, connection, unsuback = std::move(unsuback)] {
    if (session_of(connection) != nullptr) io_.send(connection, unsuback);
  });
}

void Broker::on_disconnect(Session& session, const Disconnect& disconnect_packet) {
  if (const auto expiry = disconnect_packet.properties.session_expiry_interval) {
    if (session.expiry_interval == std::optional<std::uint32_t>{0} && *expiry != 0) {
      // A session that was to end with its connection cannot be kept after all.
      disconnect(session, reason::kProtocolError, "session expiry set at DISCONNECT");
      return;
    }
    std::optional<std::uint32_t> wanted;
    if (*expiry != kNeverExpires) wanted = *expiry;
    if (options_.max_session_expiry && (!wanted || *wanted > *options_.max_session_expiry)) {
      wanted = *options_.max_session_expiry;
    }
    session.expiry_interval = wanted;
  }
  // A normal end discards the will; 5.0 lets the client ask for it all the same.
  const bool with_will = disconnect_packet.reason_code == reason::kDisconnectWithWill;
  io_.close(session.connection);
  detach(session, with_will);
}

void Broker::on_connection_lost(ConnectionId connection) {
  Session* session = session_of(connection);
  if (session != nullptr) detach(*session, true);
}

void Broker::detach(Session& session, bool publish) {
  connections_.erase(session.connection);
  session.connection = 0;
  session.ready = false;
  std::optional<Will> will = std::move(session.will);
  session.will.reset();
  const std::string client_id = session.client_id;
  const std::optional<std::uint32_t> expiry = session.expiry_interval;
  std::vector<StoreOp> ops;
  const bool outlives = session.persistent && expiry != std::optional<std::uint32_t>{0};
  if (outlives) {
    if (expiry) session.expires_at = now() + WallMs{*expiry} * 1000;
    ops.push_back(op::SaveSession{client_id, expiry, session.expires_at});
  } else {
    end_session(client_id, ops);  // `session` is gone from here on
  }
  if (publish && will) {
    // The will waits for its delay, but never longer than the session lives.
    std::uint32_t delay = will->properties.will_delay_interval.value_or(0);
    if (!outlives) delay = 0;
    if (expiry) delay = std::min(delay, *expiry);
    if (delay == 0) {
      publish_will(client_id, std::move(*will), ops);
      return;  // publish_will submitted the ops
    }
    const WallMs publish_at = now() + WallMs{delay} * 1000;
    ops.push_back(op::SaveWill{client_id, *will, publish_at});
    pending_wills_[client_id] = PendingWill{std::move(*will), publish_at};
  } else if (will_rows_.erase(client_id) > 0) {
    ops.push_back(op::DeleteWill{client_id});
  }
  if (!ops.empty()) submit(std::move(ops), nullptr);
}

void Broker::publish_will(const std::string& client_id, Will will, std::vector<StoreOp>& ops) {
  metrics_.wills_published.add();
  log_.debug("mq.will_published", {{"client_id", client_id}, {"topic", will.topic}});
  if (will_rows_.erase(client_id) > 0) ops.push_back(op::DeleteWill{client_id});
  auto message =
      make_message(std::move(will.topic), std::move(will.payload), will.qos, will.properties);
  Routed routed = route(client_id, message, will.retain, ops);
  submit_routed(std::move(ops), message, std::move(routed.targets));
}

void Broker::submit_routed(std::vector<StoreOp> ops, const std::shared_ptr<Message>& message,
                           std::vector<std::string> targets) {
  submit(std::move(ops), [this, message, targets = std::move(targets)] {
    message->committed = true;
    pump_all(targets);
  });
}

void Broker::end_session(const std::string& client_id, std::vector<StoreOp>& ops) {
  auto found = sessions_.find(client_id);
  if (found == sessions_.end()) return;
  Session& session = *found->second;
  if (session.connection != 0) connections_.erase(session.connection);
  total_queued_ -= session.queue.size();
  subscriptions_.remove_client(client_id);
  if (session.persistent) ops.push_back(op::DeleteSession{client_id});
  sessions_.erase(found);
  metrics_.sessions.set(static_cast<double>(sessions_.size()));
  update_queued_gauge();
  auto will = pending_wills_.find(client_id);
  if (will != pending_wills_.end()) {
    Will due = std::move(will->second.will);
    pending_wills_.erase(will);
    std::vector<StoreOp> will_ops;
    publish_will(client_id, std::move(due), will_ops);
  }
}

void Broker::tick() {
  const WallMs at = now();
  std::vector<std::string> due;
  for (const auto& [client_id, pending] : pending_wills_) {
    if (pending.publish_at <= at) due.push_back(client_id);
  }
  for (const std::string& client_id : due) {
    auto found = pending_wills_.find(client_id);
    Will will = std::move(found->second.will);
    pending_wills_.erase(found);
    std::vector<StoreOp> ops;
    publish_will(client_id, std::move(will), ops);
  }
  std::vector<std::string> expired;
  for (const auto& [client_id, session] : sessions_) {
    if (session->connection == 0 && session->expires_at && *session->expires_at <= at) {
      expired.push_back(client_id);
    }
  }
  std::vector<StoreOp> ops;
  for (const std::string& client_id : expired) {
    metrics_.sessions_expired.add();
    log_.debug("mq.session_expired", {{"client_id", client_id}});
    end_session(client_id, ops);
  }
  for (auto it = retained_.begin(); it != retained_.end();) {
    if (it->second->expired(at)) {
      ops.push_back(op::ClearRetained{it->first});
      it = retained_.erase(it);
    } else {
      ++it;
    }
  }
  if (!ops.empty()) submit(std::move(ops), nullptr);
}

void Broker::drop_all_connections() {
  std::vector<std::string> clean;
  for (const auto& [connection, session] : connections_) {
    io_.close(connection);
    session->connection = 0;
    session->ready = false;
    // Its will stays in the database: the next active publishes it if the client does not
    // come back to it.
    session->will.reset();
    if (!session->persistent || session->expiry_interval == std::optional<std::uint32_t>{0}) {
      clean.push_back(session->client_id);
    }
  }
  connections_.clear();
  pending_wills_.clear();
  std::vector<StoreOp> none;
  for (const std::string& client_id : clean) end_session(client_id, none);
}

bool Broker::accepts_more(ConnectionId connection) {
  auto found = uncommitted_.find(connection);
  if (found == uncommitted_.end()) return true;
  Uncommitted& waiting = found->second;
  const bool over = waiting.publishes >= options_.max_uncommitted_publishes ||
                    waiting.bytes >= options_.max_uncommitted_bytes;
  // Remembered so that the commit bringing it back down calls resume() exactly once.
  if (over) waiting.paused = true;
  return !over;
}

void Broker::committed_publish(ConnectionId connection, std::size_t bytes) {
  auto found = uncommitted_.find(connection);
  if (found == uncommitted_.end()) return;
  Uncommitted& waiting = found->second;
  --waiting.publishes;
  waiting.bytes -= bytes;
  const bool resume = waiting.paused &&
                      waiting.publishes <= options_.max_uncommitted_publishes / 2 &&
                      waiting.bytes <= options_.max_uncommitted_bytes / 2;
  if (waiting.publishes == 0) {
    uncommitted_.erase(found);
  } else if (resume) {
    waiting.paused = false;
  }
  if (resume) io_.resume(connection);
}

void Broker::update_queued_gauge() {
  metrics_.queued.set(static_cast<double>(total_queued_));
}

}  // namespace emsnode::plugins::mq
