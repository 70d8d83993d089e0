// A broker under test without sockets or a database: the packets it sends are recorded per
// connection, and its durable writes wait in a committer that the test commits by hand into an
// in-memory model of the mq_ tables. Loading that model into a new broker plays a failover.
#pragma once

#include "broker.hpp"

#include <emsnode/plugin.hpp>
#include <emsnode/testing/fake_host.hpp>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace emsnode::plugins::mq::testing {

/// What the mq_ tables hold, kept as SessionStore's SQL keeps it.
class MemoryStore {
 public:
  void apply(const StoreOp& store_op) {
    std::visit(
        [&](const auto& o) {
          using T = std::decay_t<decltype(o)>;
          if constexpr (std::is_same_v<T, op::SaveSession>) {
            sessions[o.client_id] = o;
          } else if constexpr (std::is_same_v<T, op::DeleteSession>) {
            sessions.erase(o.client_id);
            std::set<std::uint64_t> referenced;
            for (auto it = queue.begin(); it != queue.end();) {
              if (it->first.first == o.client_id) {
                referenced.insert(it->second.message_id);
                it = queue.erase(it);
              } else {
                ++it;
              }
            }
            for (auto it = subscriptions.begin(); it != subscriptions.end();) {
              it = it->first.first == o.client_id ? subscriptions.erase(it) : std::next(it);
            }
            for (auto it = inbound.begin(); it != inbound.end();) {
              it = it->first == o.client_id ? inbound.erase(it) : std::next(it);
            }
            for (std::uint64_t id : referenced) collect(id);
          } else if constexpr (std::is_same_v<T, op::SaveSubscription>) {
            subscriptions[{o.client_id, o.filter}] = o.options;
          } else if constexpr (std::is_same_v<T, op::DeleteSubscription>) {
            subscriptions.erase({o.client_id, o.filter});
          } else if constexpr (std::is_same_v<T, op::SaveMessage>) {
            messages.emplace(o.message->id, *o.message);
          } else if constexpr (std::is_same_v<T, op::Enqueue>) {
            StoredQueueEntry entry;
            entry.seq = o.seq;
            entry.message_id = o.message_id;
            entry.qos = o.qos;
            entry.packet_id = o.packet_id;
            entry.retain = o.retain;
            queue.emplace(std::make_pair(o.client_id, o.seq), entry);
          } else if constexpr (std::is_same_v<T, op::Dequeue>) {
            queue.erase({o.client_id, o.seq});
            collect(o.message_id);
          } else if constexpr (std::is_same_v<T, op::MarkReleased>) {
            auto found = queue.find({o.client_id, o.seq});
            if (found != queue.end()) found->second.released = true;
          } else if constexpr (std::is_same_v<T, op::SetRetained>) {
            auto previous = retained.find(o.topic);
            const std::uint64_t old = previous == retained.end() ? 0 : previous->second;
            retained[o.topic] = o.message_id;
            if (old != 0 && old != o.message_id) collect(old);
          } else if constexpr (std::is_same_v<T, op::ClearRetained>) {
            auto previous = retained.find(o.topic);
            if (previous != retained.end()) {
              const std::uint64_t old = previous->second;
              retained.erase(previous);
              collect(old);
            }
          } else if constexpr (std::is_same_v<T, op::AddInbound>) {
            inbound.insert({o.client_id, o.packet_id});
          } else if constexpr (std::is_same_v<T, op::RemoveInbound>) {
            inbound.erase({o.client_id, o.packet_id});
          } else if constexpr (std::is_same_v<T, op::SaveWill>) {
            wills[o.client_id] = o;
          } else if constexpr (std::is_same_v<T, op::DeleteWill>) {
            wills.erase(o.client_id);
          }
        },
        store_op);
  }

  /// What a new active loads: fresh message objects, as a database read gives.
  DurableState load() const {
    DurableState state;
    for (const auto& [id, message] : messages) {
      auto copy = std::make_shared<Message>(message);
      copy->committed = true;
      copy->saved = true;
      state.messages.emplace(id, copy);
    }
    std::map<std::string, StoredSession> by_client;
    for (const auto& [client_id, saved] : sessions) {
      StoredSession& session = by_client[client_id];
      session.client_id = client_id;
      session.expiry_interval = saved.expiry_interval;
      session.expires_at = saved.expires_at;
    }
    for (const auto& [key, options] : subscriptions) {
      by_client[key.first].subscriptions.emplace_back(key.second, options);
    }
    for (const auto& [key, entry] : queue) by_client[key.first].queue.push_back(entry);
    for (const auto& [client_id, packet_id] : inbound) {
      by_client[client_id].inbound.push_back(packet_id);
    }
    for (auto& [client_id, session] : by_client) state.sessions.push_back(session);
    for (const auto& [topic, id] : retained) state.retained.emplace_back(topic, id);
    for (const auto& [client_id, saved] : wills) {
      state.wills.push_back(StoredWill{client_id, saved.will, saved.publish_at});
    }
    return state;
  }

  std::map<std::string, op::SaveSession> sessions;
  std::map<std::pair<std::string, std::string>, SubscriptionOptions> subscriptions;
  std::map<std::string, op::SaveWill> wills;
  std::map<std::uint64_t, Message> messages;
  std::map<std::pair<std::string, std::uint64_t>, StoredQueueEntry> queue;
  std::set<std::pair<std::string, std::uint16_t>> inbound;
  std::map<std::string, std::uint64_t> retained;

 private:
  void collect(std::uint64_t id) {
    for (const auto& [key, entry] : queue) {
      if (entry.message_id == id) return;
    }
    for (const auto& [topic, retained_id] : retained) {
      if (retained_id == id) return;
    }
    messages.erase(id);
  }
};

/// Holds submitted batches until commit(); "lose" drops them, as a fenced node does.
class ManualCommitter final : public Committer {
 public:
  explicit ManualCommitter(MemoryStore& store) : store_(store) {}

  void submit(std::vector<StoreOp> ops, std::function<void()> done) override {
    pending_.emplace_back(std::move(ops), std::move(done));
  }

  /// Commits everything pending, in order, including what the completions submit; returns the
  /// number of batches committed.
  std::size_t commit() {
    std::size_t batches = 0;
    while (!pending_.empty()) {
      auto [ops, done] = std::move(pending_.front());
      pending_.erase(pending_.begin());
      for (const StoreOp& o : ops) store_.apply(o);
      ++batches;
      done();
    }
    return batches;
  }

  void lose() { pending_.clear(); }
  std::size_t pending() const { return pending_.size(); }

 private:
  MemoryStore& store_;
  std::vector<std::pair<std::vector<StoreOp>, std::function<void()>>> pending_;
};

/// Records what the broker sends and closes.
class RecordingIo final : public BrokerIo {
 public:
  void send(ConnectionId connection, const Packet& packet) override {
    sent[connection].push_back(packet);
  }
  void close(ConnectionId connection) override { closed.insert(connection); }
  void resume(ConnectionId connection) override { resumed.push_back(connection); }
  std::size_t backlog(ConnectionId connection) const override {
    auto found = backlogs.find(connection);
    return found == backlogs.end() ? 0 : found->second;
  }

  /// The packets of type T sent to the connection, taken out of the record.
  template <typename T>
  std::vector<T> take(ConnectionId connection) {
    std::vector<T> found;
    auto& packets = sent[connection];
    for (auto it = packets.begin(); it != packets.end();) {
      if (auto* p = std::get_if<T>(&*it)) {
        found.push_back(*p);
        it = packets.erase(it);
      } else {
        ++it;
      }
    }
    return found;
  }

  std::map<ConnectionId, std::vector<Packet>> sent;
  std::set<ConnectionId> closed;
  std::vector<ConnectionId> resumed;
  std::map<ConnectionId, std::size_t> backlogs;
};

/// A broker with its fake host, committer, store and transport.
class BrokerFixture {
 public:
  explicit BrokerFixture(BrokerOptions options = {}, MemoryStore* shared_store = nullptr)
      : store_(shared_store != nullptr ? shared_store : &own_store_),
        committer(*store_),
        host_(fake_.api(), fake_.ctx()),
        metrics_(host_),
        broker(options, committer, io, host_.log(), metrics_) {
    broker.load(store_->load());
  }

  MemoryStore& store() { return *store_; }
  sdk::testing::FakeHost& fake() { return fake_; }

  /// CONNECT, committed; returns the CONNACK.
  Connack connect(ConnectionId connection, const std::string& client_id, bool clean = true,
                  std::optional<Will> will = std::nullopt) {
    Connect connect;
    connect.version = ProtocolVersion::kV311;
    connect.clean_start = clean;
    connect.client_id = client_id;
    connect.keep_alive = 60;
    connect.will = std::move(will);
    broker.on_packet(connection, connect);
    committer.commit();
    auto connacks = io.take<Connack>(connection);
    return connacks.empty() ? Connack{false, 0xFF, {}} : connacks.back();
  }

  Suback subscribe(ConnectionId connection, const std::string& filter, QoS qos,
                   std::uint16_t packet_id = 1) {
    Subscribe subscribe;
    subscribe.packet_id = packet_id;
    TopicSubscription wanted;
    wanted.filter = filter;
    wanted.options.max_qos = qos;
    subscribe.subscriptions.push_back(wanted);
    broker.on_packet(connection, subscribe);
    committer.commit();
    auto subacks = io.take<Suback>(connection);
    return subacks.empty() ? Suback{} : subacks.back();
  }

  /// PUBLISH, not committed.
  void publish(ConnectionId connection, const std::string& topic, const std::string& payload,
               QoS qos, std::uint16_t packet_id = 0, bool retain = false, bool dup = false) {
    Publish publish;
    publish.topic = topic;
    publish.payload.assign(payload.begin(), payload.end());
    publish.qos = qos;
    publish.packet_id = packet_id;
    publish.retain = retain;
    publish.dup = dup;
    broker.on_packet(connection, publish);
  }

  template <typename AckPacket>
  void acknowledge(ConnectionId connection, std::uint16_t packet_id) {
    AckPacket packet;
    packet.packet_id = packet_id;
    broker.on_packet(connection, packet);
  }

  /// The payloads of the PUBLISH packets sent to the connection, taken out of the record.
  std::vector<std::string> payloads(ConnectionId connection) {
    std::vector<std::string> out;
    for (const Publish& p : io.take<Publish>(connection)) {
      out.emplace_back(p.payload.begin(), p.payload.end());
    }
    return out;
  }

 private:
  MemoryStore own_store_;
  MemoryStore* store_;

 public:
  ManualCommitter committer;
  RecordingIo io;

 private:
  sdk::testing::FakeHost fake_;
  sdk::Host host_;
  BrokerMetrics metrics_;

 public:
  Broker broker;
};

}  // namespace emsnode::plugins::mq::testing
