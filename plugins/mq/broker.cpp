#include "broker.hpp"

#include <algorithm>
#include <type_traits>
#include <utility>

namespace emsnode::plugins::mq {
namespace {

QoS min_qos(QoS a, QoS b) {
  return static_cast<std::uint8_t>(a) < static_cast<std::uint8_t>(b) ? a : b;
}

// An acknowledgement of `packet_id` (3.1.1: the reason code and properties stay unset).
template <typename Ack>
Ack ack(std::uint16_t packet_id) {
  Ack packet;
  packet.packet_id = packet_id;
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
      refused_credentials(host.counter("connects_refused_total", "CONNECTs refused, by reason",
                                       {{"reason", "bad_credentials"}})),
      refused_not_authorized(host.counter("connects_refused_total", "CONNECTs refused, by reason",
                                          {{"reason", "not_authorized"}})),
      takeovers(host.counter("session_takeovers_total",
                             "Connections closed because their client id connected again")) {}

Broker::Broker(BrokerOptions options, Committer& committer, BrokerIo& io, sdk::Logger log,
               BrokerMetrics& metrics)
    : options_(std::move(options)),
      committer_(committer),
      io_(io),
      log_(log),
      metrics_(metrics),
      next_id_(options_.id_base + 1) {}

bool Broker::has_session(std::string_view client_id) const {
  return sessions_.find(client_id) != sessions_.end();
}

std::size_t Broker::queued(std::string_view client_id) const {
  auto found = sessions_.find(client_id);
  return found == sessions_.end() ? 0 : found->second->queue.size();
}

void Broker::load(const DurableState& state) {
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
    for (const auto& [filter, qos] : stored.subscriptions) {
      SubscriptionEntry entry;
      entry.options.max_qos = qos;
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
  metrics_.sessions.set(static_cast<double>(sessions_.size()));
  update_queued_gauge();
  log_.info("mq.loaded", {{"sessions", state.sessions.size()},
                          {"messages", state.messages.size()},
                          {"retained", state.retained.size()}});
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
                       const std::optional<std::string>& certificate_name) {
  if (auto* connect = std::get_if<Connect>(&packet)) {
    on_connect(connection, *connect, certificate_name);
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
          on_pubrec(*session, p.packet_id);
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
          // A normal end: the will is discarded.
          session->will.reset();
          io_.close(connection);
          detach(*session, false);
        } else {
          // The decoder lets through no other packet from a client in 3.1.1.
          log_.warning("mq.unexpected_packet",
                       {{"client_id", session->client_id}, {"packet", describe(packet)}});
          io_.close(connection);
          detach(*session, true);
        }
      },
      packet);
}

void Broker::on_connect(ConnectionId connection, Connect& connect,
                        const std::optional<std::string>& certificate_name) {
  if (connect.version != ProtocolVersion::kV311) {
    Connack refused;
    refused.reason_code = reason::kUnsupportedProtocolVersion;
    io_.send(connection, refused);
    io_.close(connection);
    return;
  }
  AccessControl::Outcome identity = options_.access.authenticate(connect, certificate_name);
  if (identity.connack_code != connack_v311::kAccepted) {
    // Never the password: the user name and the reason are enough to tell what went wrong.
    (identity.connack_code == connack_v311::kBadUserNameOrPassword
         ? metrics_.refused_credentials
         : metrics_.refused_not_authorized)
        .add();
    log_.warning("mq.connect_refused", {{"client_id", connect.client_id},
                                        {"username", connect.username.value_or("")},
                                        {"reason", identity.reason},
                                        {"code", static_cast<int>(identity.connack_code)}});
    Connack refused;
    refused.reason_code = identity.connack_code;
    io_.send(connection, refused);
    io_.close(connection);
    return;
  }
  std::string client_id = connect.client_id;
  if (client_id.empty()) {
    // The decoder refuses an empty id without a clean session; give this one a unique id.
    client_id = "auto-" + options_.node_id + "-" + std::to_string(options_.id_base) + "-" +
                std::to_string(++next_client_number_);
  }

  std::vector<StoreOp> ops;
  auto found = sessions_.find(client_id);
  if (found != sessions_.end() && found->second->connection != 0) {
    // Takeover: the standard asks to close the existing connection; it did not DISCONNECT, so
    // its will goes out.
    Session& old = *found->second;
    metrics_.takeovers.add();
    log_.info("mq.session_taken_over", {{"client_id", client_id}});
    io_.close(old.connection);
    detach(old, true);  // a clean session ends here
    found = sessions_.find(client_id);
  }
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
    created->persistent = !connect.clean_start;
    if (created->persistent) ops.push_back(op::SaveSession{client_id});
    session = created.get();
    sessions_.emplace(client_id, std::move(created));
    metrics_.sessions.set(static_cast<double>(sessions_.size()));
  }
  session->connection = connection;
  session->ready = false;
  session->username = identity.username;
  session->will = std::move(connect.will);
  if (session->will && options_.access.acl &&
      !options_.access.acl->may_write(client_id, session->username, session->will->topic)) {
    // As a publish to a denied topic, a will there is dropped without refusing the client.
    log_.info("mq.will_denied", {{"client_id", client_id}, {"topic", session->will->topic}});
    session->will.reset();
  }
  connections_[connection] = session;
  log_.debug("mq.connected", {{"client_id", client_id},
                              {"clean_session", connect.clean_start},
                              {"session_present", present}});

  submit(std::move(ops), [this, connection, client_id, present] {
    Session* s = session_of(connection);
    if (s == nullptr || s->client_id != client_id) return;
    Connack accepted;
    accepted.session_present = present;
    accepted.reason_code = connack_v311::kAccepted;
    io_.send(connection, accepted);
    s->ready = true;
    redeliver(*s);
    pump(*s);
  });
}

void Broker::on_publish(Session& session, Publish& publish) {
  metrics_.messages_in[qos_index(publish.qos)].add();
  const ConnectionId connection = session.connection;
  if (!is_valid_topic_name(publish.topic)) {
    log_.info("mq.protocol_violation",
              {{"client_id", session.client_id}, {"reason", "invalid topic name"}});
    io_.close(connection);
    detach(session, true);
    return;
  }
  const std::uint16_t packet_id = publish.packet_id;
  std::vector<StoreOp> ops;
  if (publish.qos == QoS::kExactlyOnce) {
    if (session.inbound.count(packet_id) != 0) {
      // A redelivery of a message already taken: acknowledge again, do not route it twice.
      submit({}, [this, connection, packet_id] {
        if (session_of(connection) != nullptr) io_.send(connection, ack<Pubrec>(packet_id));
      });
      return;
    }
    session.inbound.insert(packet_id);
    if (session.persistent) ops.push_back(op::AddInbound{session.client_id, packet_id});
  }
  std::vector<std::string> targets;
  std::shared_ptr<Message> message;
  if (options_.access.acl &&
      !options_.access.acl->may_write(session.client_id, session.username, publish.topic)) {
    // As mosquitto does in 3.1.1: the publisher is acknowledged but nobody gets the message,
    // since the protocol has no way to say no.
    metrics_.dropped_not_authorized.add();
    log_.debug("mq.publish_denied", {{"client_id", session.client_id}, {"topic", publish.topic}});
    message = std::make_shared<Message>();
  } else {
    message = route(session.client_id, publish.topic, std::move(publish.payload), publish.qos,
                    publish.retain, ops, targets);
  }
  const QoS qos = publish.qos;
  const std::size_t bytes = publish.topic.size() + message->payload.size();
  Uncommitted& waiting = uncommitted_[connection];
  ++waiting.publishes;
  waiting.bytes += bytes;
  submit(std::move(ops),
         [this, message, targets = std::move(targets), connection, packet_id, qos, bytes] {
           committed_publish(connection, bytes);
           message->committed = true;
           pump_all(targets);
           if (qos == QoS::kAtMostOnce || session_of(connection) == nullptr) return;
           if (qos == QoS::kAtLeastOnce) {
             io_.send(connection, ack<Puback>(packet_id));
           } else {
             io_.send(connection, ack<Pubrec>(packet_id));
           }
         });
}

std::shared_ptr<Message> Broker::route(std::string_view publisher, const std::string& topic,
                                       Bytes payload, QoS qos, bool retain,
                                       std::vector<StoreOp>& ops,
                                       std::vector<std::string>& targets) {
  (void)publisher;  // no-local is MQTT 5.0
  auto message = std::make_shared<Message>();
  message->id = next_id_++;
  message->topic = topic;
  message->payload = std::move(payload);
  message->qos = qos;
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
  std::vector<std::string> to_disconnect;
  const MatchResult matches = subscriptions_.match(topic);
  for (const ClientMatch& match : matches.clients) {
    auto found = sessions_.find(match.client_id);
    if (found == sessions_.end()) continue;
    Session& session = *found->second;
    // Established subscriptions get the message with RETAIN 0, as the standard asks.
    if (enqueue(session, message, min_qos(qos, match.max_qos), false, ops)) {
      targets.push_back(session.client_id);
    } else if (options_.queue_full_policy == QueueFullPolicy::kDisconnect &&
               session.connection != 0) {
      to_disconnect.push_back(session.client_id);
    }
  }
  // Closing a clean session changes the index that `matches` points into: only now.
  for (const std::string& client_id : to_disconnect) {
    auto found = sessions_.find(client_id);
    if (found == sessions_.end() || found->second->connection == 0) continue;
    log_.warning("mq.queue_full_disconnect", {{"client_id", client_id}});
    io_.close(found->second->connection);
    detach(*found->second, true);
  }
  return message;
}

bool Broker::enqueue(Session& session, const std::shared_ptr<Message>& message, QoS qos,
                     bool retain, std::vector<StoreOp>& ops) {
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

void Broker::remove_entry(Session& session, std::deque<Entry>::iterator entry,
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

void Broker::send_publish(Session& session, const Entry& entry, bool dup) {
  Publish publish;
  publish.dup = dup && entry.qos != QoS::kAtMostOnce;
  publish.qos = entry.qos;
  publish.retain = entry.retain;
  publish.topic = entry.message->topic;
  publish.packet_id = entry.packet_id;
  publish.payload = entry.message->payload;
  metrics_.messages_out[qos_index(entry.qos)].add();
  io_.send(session.connection, publish);
}

void Broker::pump(Session& session) {
  if (session.connection == 0 || !session.ready) return;
  for (auto it = session.queue.begin(); it != session.queue.end();) {
    if (it->state != EntryState::kQueued) {
      ++it;
      continue;
    }
    // Order is kept: nothing overtakes a message whose batch has not committed.
    if (!it->message->committed || it->held) break;
    if (!may_receive(session, *it)) {
      std::vector<StoreOp> ops;
      remove_entry(session, it, ops);
      submit(std::move(ops), nullptr);
      it = std::find_if(session.queue.begin(), session.queue.end(),
                        [](const Entry& e) { return e.state == EntryState::kQueued; });
      continue;
    }
    if (it->qos == QoS::kAtMostOnce) {
      send_publish(session, *it, false);
      std::vector<StoreOp> none;
      remove_entry(session, it, none);
      // remove_entry invalidated the iterator; QoS 0 entries are never in flight, so every
      // entry before this one is in flight: start over from the first still queued.
      it = std::find_if(session.queue.begin(), session.queue.end(),
                        [](const Entry& e) { return e.state == EntryState::kQueued; });
      continue;
    }
    if (session.inflight >= options_.max_inflight) break;
    send_publish(session, *it, it->maybe_sent);
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
  std::vector<StoreOp> ops;
  for (;;) {
    auto denied = std::find_if(session.queue.begin(), session.queue.end(), [&](const Entry& e) {
      return e.state == EntryState::kSent && !may_receive(session, e);
    });
    if (denied == session.queue.end()) break;
    remove_entry(session, denied, ops);
  }
  if (!ops.empty()) submit(std::move(ops), nullptr);
  for (const Entry& entry : session.queue) {
    if (entry.state == EntryState::kSent) {
      send_publish(session, entry, true);
    } else if (entry.state == EntryState::kReleased) {
      io_.send(session.connection, ack<Pubrel>(entry.packet_id));
    }
  }
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

void Broker::on_pubrec(Session& session, std::uint16_t packet_id) {
  auto entry = std::find_if(session.queue.begin(), session.queue.end(), [&](const Entry& e) {
    return e.packet_id == packet_id && e.qos == QoS::kExactlyOnce && e.state != EntryState::kQueued;
  });
  if (entry == session.queue.end()) return;
  std::vector<StoreOp> ops;
  if (entry->state == EntryState::kSent) {
    entry->state = EntryState::kReleased;
    if (session.persistent) ops.push_back(op::MarkReleased{session.client_id, entry->seq});
  }
  // The client delivers on PUBREL and then forgets the packet id: a new active must know the
  // message was released, or it would send it again as new. So PUBREL waits for the commit.
  const ConnectionId connection = session.connection;
  submit(std::move(ops), [this, connection, packet_id] {
    if (session_of(connection) != nullptr) io_.send(connection, ack<Pubrel>(packet_id));
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
  if (session.inbound.erase(packet_id) > 0 && session.persistent) {
    ops.push_back(op::RemoveInbound{session.client_id, packet_id});
  }
  // PUBCOMP frees the id for the publisher's next message: the release must be durable first,
  // or a new active would take that next message for a duplicate.
  const ConnectionId connection = session.connection;
  submit(std::move(ops), [this, connection, packet_id] {
    if (session_of(connection) != nullptr) io_.send(connection, ack<Pubcomp>(packet_id));
  });
}

void Broker::on_subscribe(Session& session, const Subscribe& subscribe) {
  std::vector<StoreOp> ops;
  std::vector<std::uint8_t> codes;
  std::vector<std::pair<std::string, QoS>> granted;
  for (const TopicSubscription& wanted : subscribe.subscriptions) {
    // Shared subscriptions are MQTT 5.0: in 3.1.1 "$share/..." is refused rather than taken
    // for a plain filter that a 5.0 client would read differently.
    if (!is_valid_topic_filter(wanted.filter) || is_shared_subscription(wanted.filter)) {
      codes.push_back(reason::kUnspecifiedError);
      continue;
    }
    if (options_.access.acl &&
        !options_.access.acl->may_read(session.client_id, session.username, wanted.filter)) {
      log_.info("mq.subscribe_denied",
                {{"client_id", session.client_id}, {"filter", wanted.filter}});
      codes.push_back(reason::kUnspecifiedError);  // 0x80, "Failure" in 3.1.1
      continue;
    }
    SubscriptionEntry entry;
    entry.options.max_qos = wanted.options.max_qos;
    subscriptions_.add(session.client_id, wanted.filter, entry);
    if (session.persistent) {
      ops.push_back(op::SaveSubscription{session.client_id, wanted.filter, wanted.options.max_qos});
    }
    codes.push_back(static_cast<std::uint8_t>(wanted.options.max_qos));
    granted.emplace_back(wanted.filter, wanted.options.max_qos);
  }
  const ConnectionId connection = session.connection;
  const std::uint16_t packet_id = subscribe.packet_id;
  submit(std::move(ops),
         [this, connection, packet_id, codes = std::move(codes), granted = std::move(granted)] {
           subscribed(connection, packet_id, codes, granted);
         });
}

void Broker::subscribed(ConnectionId connection, std::uint16_t packet_id,
                        const std::vector<std::uint8_t>& codes,
                        const std::vector<std::pair<std::string, QoS>>& granted) {
  Session* session = session_of(connection);
  if (session == nullptr) return;
  Suback suback;
  suback.packet_id = packet_id;
  suback.reason_codes = codes;
  io_.send(connection, suback);
  // Retained messages follow the SUBACK. Every batch submitted before this one has committed,
  // so the retained messages seen now are committed too; they are held until their own queue
  // rows commit, since the packet id a client sees must be the one a new active would
  // redeliver under.
  std::vector<StoreOp> ops;
  std::vector<std::uint64_t> held;
  for (const auto& [filter, qos] : granted) {
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
  for (const std::string& filter : unsubscribe.filters) {
    if (subscriptions_.remove(session.client_id, filter) && session.persistent) {
      ops.push_back(op::DeleteSubscription{session.client_id, filter});
    }
  }
  const ConnectionId connection = session.connection;
  const std::uint16_t packet_id = unsubscribe.packet_id;
  submit(std::move(ops), [this, connection, packet_id] {
    if (session_of(connection) == nullptr) return;
    Unsuback unsuback;
    unsuback.packet_id = packet_id;
    io_.send(connection, unsuback);
  });
}

void Broker::on_connection_lost(ConnectionId connection) {
  Session* session = session_of(connection);
  if (session != nullptr) detach(*session, true);
}

void Broker::detach(Session& session, bool publish_will) {
  connections_.erase(session.connection);
  session.connection = 0;
  session.ready = false;
  std::optional<Will> will = std::move(session.will);
  session.will.reset();
  const std::string client_id = session.client_id;
  std::vector<StoreOp> ops;
  if (!session.persistent) {
    end_session(client_id, ops);  // `session` is gone from here on
  }
  if (publish_will && will) {
    log_.debug("mq.will_published", {{"client_id", client_id}, {"topic", will->topic}});
    std::vector<std::string> targets;
    auto message = route(client_id, will->topic, std::move(will->payload), will->qos, will->retain,
                         ops, targets);
    submit(std::move(ops), [this, message, targets = std::move(targets)] {
      message->committed = true;
      pump_all(targets);
    });
  } else if (!ops.empty()) {
    submit(std::move(ops), nullptr);
  }
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
}

void Broker::drop_all_connections() {
  std::vector<std::string> clean;
  for (const auto& [connection, session] : connections_) {
    io_.close(connection);
    session->connection = 0;
    session->ready = false;
    session->will.reset();
    if (!session->persistent) clean.push_back(session->client_id);
  }
  connections_.clear();
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
