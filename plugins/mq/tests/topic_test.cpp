// Topic names, filters, shared subscriptions and the subscription index.
#include "topic.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace emsnode::plugins::mq {
namespace {

SubscriptionEntry at_qos(QoS qos, std::uint32_t identifier = 0) {
  SubscriptionEntry entry;
  entry.options.max_qos = qos;
  entry.subscription_identifier = identifier;
  return entry;
}

std::set<std::string> client_ids(const MatchResult& result) {
  std::set<std::string> ids;
  for (const ClientMatch& match : result.clients) ids.emplace(match.client_id);
  return ids;
}

TEST_CASE("topic names are non-empty and free of wildcards") {
  for (const char* name :
       {"a", "/", "a/b", "/finance", "sport/tennis/player1", "a//b", "$SYS/x", " ", "a b/c"}) {
    INFO(name);
    CHECK(is_valid_topic_name(name));
  }
  for (const char* name : {"", "+", "#", "a/+", "a/#", "a+", "sport/tennis#"}) {
    INFO(name);
    CHECK_FALSE(is_valid_topic_name(name));
  }
  CHECK(is_valid_topic_name(std::string(65535, 'a')));
  CHECK_FALSE(is_valid_topic_name(std::string(65536, 'a')));
}

TEST_CASE("topic filters hold + alone in a level and # alone in the last level") {
  for (const char* filter : {"#", "+", "a/#", "a/+", "+/+", "/+", "+/", "+/tennis/#",
                             "sport/+/player1", "a//b", "/", "$SYS/#"}) {
    INFO(filter);
    CHECK(is_valid_topic_filter(filter));
  }
  for (const char* filter :
       {"", "a#", "a/#/b", "#/", "a/b#", "sport+", "a/+b", "++", "##", "sport/tennis#"}) {
    INFO(filter);
    CHECK_FALSE(is_valid_topic_filter(filter));
  }
}

TEST_CASE("shared subscriptions name a group and a valid filter") {
  const std::optional<SharedFilter> shared = parse_shared_subscription("$share/workers/jobs/+");
  REQUIRE(shared);
  CHECK(shared->group == "workers");
  CHECK(shared->filter == "jobs/+");
  CHECK(parse_shared_subscription("$share/g/#")->filter == "#");
  CHECK(parse_shared_subscription("$share/g//")->filter == "/");
  for (const char* filter : {"$share/", "$share/g", "$share/g/", "$share//a", "$share/g+/a",
                             "$share/g#/a", "$share/g/a#"}) {
    INFO(filter);
    CHECK_FALSE(parse_shared_subscription(filter));
    CHECK_FALSE(is_valid_subscription_filter(filter));
  }
  CHECK_FALSE(parse_shared_subscription("$shared/g/a"));
  CHECK(is_valid_subscription_filter("$share/g/a"));
  CHECK(is_valid_subscription_filter("$shared/g/a"));  // an ordinary filter
  CHECK_FALSE(is_shared_subscription("$SYS/#"));
}

TEST_CASE("filters match names as the standard's examples say") {
  struct Row {
    const char* filter;
    const char* name;
    bool matches;
  };
  const std::vector<Row> table = {
      {"sport/tennis/player1/#", "sport/tennis/player1", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
      {"sport/#", "sport", true},
      {"#", "sport/tennis", true},
      {"#", "/", true},
      {"sport/tennis/+", "sport/tennis/player1", true},
      {"sport/tennis/+", "sport/tennis/player2", true},
      {"sport/tennis/+", "sport/tennis/player1/ranking", false},
      {"sport/+", "sport", false},
      {"sport/+", "sport/", true},
      {"+/+", "/finance", true},
      {"/+", "/finance", true},
      {"+", "/finance", false},
      {"+", "finance", true},
      {"+/tennis/#", "sport/tennis/player1", true},
      {"sport/+/player1", "sport/tennis/player1", true},
      {"a/b", "a/b", true},
      {"a/b", "a/b/", false},
      {"a/b", "A/b", false},
      {"a//b", "a//b", true},
      {"a/+/b", "a//b", true},
      // Names starting with '$' are not matched by a leading wildcard.
      {"#", "$SYS/monitor/Clients", false},
      {"+/monitor/Clients", "$SYS/monitor/Clients", false},
      {"$SYS/#", "$SYS/monitor/Clients", true},
      {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
      {"+", "$SYS", false},
      {"$SYS", "$SYS", true},
      {"a/#", "a/$SYS", true},
  };
  for (const Row& row : table) {
    INFO(row.filter << " against " << row.name);
    CHECK(topic_matches(row.filter, row.name) == row.matches);
  }
}

TEST_CASE("the index finds the clients of the standard's matching examples") {
  SubscriptionIndex index;
  index.add("player1-fan", "sport/tennis/player1/#", at_qos(QoS::kAtMostOnce));
  index.add("tennis-fan", "sport/tennis/+", at_qos(QoS::kAtMostOnce));
  index.add("sport-fan", "sport/#", at_qos(QoS::kAtMostOnce));
  index.add("everything", "#", at_qos(QoS::kAtMostOnce));
  index.add("monitor", "$SYS/monitor/+", at_qos(QoS::kAtMostOnce));
  index.add("wild-monitor", "+/monitor/Clients", at_qos(QoS::kAtMostOnce));

  CHECK(client_ids(index.match("sport/tennis/player1")) ==
        std::set<std::string>{"player1-fan", "tennis-fan", "sport-fan", "everything"});
  CHECK(client_ids(index.match("sport/tennis/player1/ranking")) ==
        std::set<std::string>{"player1-fan", "sport-fan", "everything"});
  CHECK(client_ids(index.match("sport")) == std::set<std::string>{"sport-fan", "everything"});
  CHECK(client_ids(index.match("$SYS/monitor/Clients")) == std::set<std::string>{"monitor"});
  CHECK(client_ids(index.match("x/monitor/Clients")) ==
        std::set<std::string>{"wild-monitor", "everything"});
  CHECK(index.match("$other").clients.empty());
}

TEST_CASE("the index finds exactly the subscriptions whose filters match") {
  // Random filters and names over a small alphabet, checked against topic_matches.
  std::mt19937 random(20240521);
  const std::vector<std::string> levels = {"a", "b", "", "$x", "+", "#"};
  const auto make = [&](bool filter) {
    std::string text;
    const int count = 1 + static_cast<int>(random() % 4);
    for (int i = 0; i < count; ++i) {
      std::string level = levels[random() % levels.size()];
      if (!filter && (level == "+" || level == "#")) level = "c";
      if (level == "#" && i + 1 < count) level = "+";
      if (level == "$x" && i > 0) level = "b";
      text += (i == 0 ? "" : "/") + level;
    }
    return text.empty() ? std::string("a") : text;
  };
  SubscriptionIndex index;
  std::vector<std::pair<std::string, std::string>> subscriptions;
  for (int i = 0; i < 300; ++i) {
    const std::string client = "c" + std::to_string(random() % 40);
    const std::string filter = make(true);
    REQUIRE(is_valid_topic_filter(filter));
    if (!index.add(client, filter, at_qos(QoS::kAtLeastOnce))) {
      subscriptions.emplace_back(client, filter);
    }
  }
  CHECK(index.size() == subscriptions.size());
  for (int i = 0; i < 300; ++i) {
    const std::string name = make(false);
    REQUIRE(is_valid_topic_name(name));
    std::set<std::pair<std::string, std::string>> expected;
    for (const auto& [client, filter] : subscriptions) {
      if (topic_matches(filter, name)) expected.emplace(client, filter);
    }
    std::set<std::pair<std::string, std::string>> found;
    for (const ClientMatch& match : index.match(name).clients) {
      for (const MatchedSubscription& s : match.subscriptions) {
        CHECK(found.emplace(std::string(match.client_id), std::string(s.filter)).second);
      }
    }
    INFO(name);
    CHECK(found == expected);
  }
}

TEST_CASE("overlapping subscriptions give a client one match at the highest QoS") {
  SubscriptionIndex index;
  index.add("c", "a/#", at_qos(QoS::kAtMostOnce));
  index.add("c", "a/+", at_qos(QoS::kExactlyOnce));
  index.add("c", "a/b", at_qos(QoS::kAtLeastOnce));
  const MatchResult result = index.match("a/b");
  REQUIRE(result.clients.size() == 1);
  CHECK(result.clients[0].max_qos == QoS::kExactlyOnce);
  CHECK(result.clients[0].subscriptions.size() == 3);
}

TEST_CASE("each matching 5.0 subscription keeps its options and identifier") {
  SubscriptionIndex index;
  SubscriptionEntry first = at_qos(QoS::kAtLeastOnce, 7);
  first.options.retain_as_published = true;
  first.options.retain_handling = RetainHandling::kDoNotSend;
  index.add("c", "a/+", first);
  index.add("c", "a/#", at_qos(QoS::kAtMostOnce, 9));
  index.add("c", "#", at_qos(QoS::kAtMostOnce));  // without an identifier
  const MatchResult result = index.match("a/b");
  REQUIRE(result.clients.size() == 1);
  const ClientMatch& match = result.clients[0];
  REQUIRE(match.subscriptions.size() == 3);
  std::vector<std::uint32_t> ids = match.subscription_identifiers();
  std::sort(ids.begin(), ids.end());
  CHECK(ids == std::vector<std::uint32_t>{7, 9});
  const auto plus = std::find_if(match.subscriptions.begin(), match.subscriptions.end(),
                                 [](const MatchedSubscription& s) { return s.filter == "a/+"; });
  REQUIRE(plus != match.subscriptions.end());
  CHECK(plus->entry == first);
}

TEST_CASE("no local keeps a client's own messages from its subscription") {
  SubscriptionIndex index;
  SubscriptionEntry no_local = at_qos(QoS::kAtMostOnce);
  no_local.options.no_local = true;
  index.add("publisher", "chat/#", no_local);
  index.add("publisher", "chat/room", at_qos(QoS::kAtMostOnce));
  index.add("other", "chat/#", no_local);
  const MatchResult result = index.match("chat/room", "publisher");
  CHECK(client_ids(result) == std::set<std::string>{"publisher", "other"});
  for (const ClientMatch& match : result.clients) {
    if (match.client_id == "publisher") {
      REQUIRE(match.subscriptions.size() == 1);
      CHECK(match.subscriptions[0].filter == "chat/room");
    }
  }
  CHECK(client_ids(index.match("chat/x", "publisher")) == std::set<std::string>{"other"});
}

TEST_CASE("a shared subscription matches once per group with all its members") {
  SubscriptionIndex index;
  index.add("w1", "$share/workers/jobs/+", at_qos(QoS::kAtLeastOnce));
  index.add("w2", "$share/workers/jobs/+", at_qos(QoS::kAtMostOnce, 4));
  index.add("w3", "$share/auditors/jobs/#", at_qos(QoS::kAtMostOnce));
  index.add("w1", "$share/workers/jobs/#", at_qos(QoS::kAtMostOnce));
  index.add("plain", "jobs/+", at_qos(QoS::kAtMostOnce));
  const MatchResult result = index.match("jobs/1");
  CHECK(client_ids(result) == std::set<std::string>{"plain"});
  REQUIRE(result.shared.size() == 3);
  std::set<std::pair<std::string, std::string>> groups;
  for (const SharedMatch& shared : result.shared) {
    groups.emplace(shared.group, shared.filter);
    if (shared.group == "workers" && shared.filter == "jobs/+") {
      REQUIRE(shared.members.size() == 2);
      CHECK(shared.members[1].client_id == "w2");
      CHECK(shared.members[1].entry.subscription_identifier == 4);
    }
  }
  // The same group name with two filters is two shared subscriptions.
  CHECK(groups == std::set<std::pair<std::string, std::string>>{
                      {"workers", "jobs/+"}, {"workers", "jobs/#"}, {"auditors", "jobs/#"}});
  CHECK(index.match("other").shared.empty());
}

TEST_CASE("a shared subscription to # does not receive $ topics") {
  SubscriptionIndex index;
  index.add("w", "$share/g/#", at_qos(QoS::kAtMostOnce));
  CHECK(index.match("$SYS/load").shared.empty());
  CHECK(index.match("load").shared.size() == 1);
}

TEST_CASE("subscribing again to a filter replaces the subscription and says so") {
  SubscriptionIndex index;
  CHECK_FALSE(index.add("c", "a/b", at_qos(QoS::kAtMostOnce)));
  CHECK(index.add("c", "a/b", at_qos(QoS::kExactlyOnce, 3)));
  CHECK(index.size() == 1);
  CHECK(index.find("c", "a/b") == at_qos(QoS::kExactlyOnce, 3));
  CHECK_FALSE(index.add("c", "$share/g/a/b", at_qos(QoS::kAtMostOnce)));
  CHECK(index.add("c", "$share/g/a/b", at_qos(QoS::kAtMostOnce)));
  CHECK(index.size() == 2);
}

TEST_CASE("unsubscribing removes only that subscription") {
  SubscriptionIndex index;
  index.add("c", "a/b", at_qos(QoS::kAtMostOnce));
  index.add("c", "a/+", at_qos(QoS::kAtMostOnce));
  index.add("d", "a/b", at_qos(QoS::kAtMostOnce));
  index.add("d", "$share/g/a/b", at_qos(QoS::kAtMostOnce));
  CHECK(index.remove("c", "a/b"));
  CHECK_FALSE(index.remove("c", "a/b"));  // UNSUBACK: no subscription existed
  CHECK_FALSE(index.remove("c", "x/y"));
  CHECK_FALSE(index.remove("c", "a/#"));
  CHECK(index.size() == 3);
  const MatchResult result = index.match("a/b");
  CHECK(client_ids(result) == std::set<std::string>{"c", "d"});
  CHECK(index.find("c", "a/+"));
  CHECK_FALSE(index.find("c", "a/b"));
  CHECK(index.remove("d", "$share/g/a/b"));
  CHECK(index.match("a/b").shared.empty());
  CHECK(index.filters_of("c") == std::vector<std::string>{"a/+"});
}

TEST_CASE("removing a client removes all its subscriptions and nothing else") {
  SubscriptionIndex index;
  index.add("gone", "a/#", at_qos(QoS::kAtMostOnce));
  index.add("gone", "b", at_qos(QoS::kAtMostOnce));
  index.add("gone", "$share/g/a/+", at_qos(QoS::kAtMostOnce));
  index.add("stays", "a/+", at_qos(QoS::kAtMostOnce));
  CHECK(index.remove_client("gone") == 3);
  CHECK(index.remove_client("gone") == 0);
  CHECK(index.size() == 1);
  CHECK(client_ids(index.match("a/x")) == std::set<std::string>{"stays"});
  CHECK(index.match("a/x").shared.empty());
  CHECK(index.match("b").clients.empty());
  CHECK(index.filters_of("gone").empty());
  // Emptied and refilled, the index still works: pruned nodes are rebuilt.
  index.remove_client("stays");
  CHECK(index.size() == 0);
  index.add("new", "a/+", at_qos(QoS::kAtMostOnce));
  CHECK(client_ids(index.match("a/x")) == std::set<std::string>{"new"});
}

TEST_CASE("a topic that is not a valid name matches no subscription") {
  SubscriptionIndex index;
  index.add("c", "a/+", at_qos(QoS::kAtMostOnce));
  index.add("c", "#", at_qos(QoS::kAtMostOnce));
  for (const char* topic : {"", "a/+", "a/#"}) {
    INFO(topic);
    CHECK(index.match(topic).clients.empty());
  }
}

TEST_CASE("the index refuses invalid filters") {
  SubscriptionIndex index;
  for (const char* filter : {"", "a/#/b", "a+", "$share/g", "$share//a", "$share/g/a#"}) {
    INFO(filter);
    CHECK_THROWS_AS(index.add("c", filter, at_qos(QoS::kAtMostOnce)), std::invalid_argument);
  }
  CHECK(index.size() == 0);
}

}  // namespace
}  // namespace emsnode::plugins::mq
