#include <catch2/catch.hpp>

#include "admin/render.hpp"
#include "admin_test_support.hpp"

namespace emsnode::admin {

using testing::sample_status;

TEST_CASE("the status JSON has every required key, in a stable order") {
  CHECK(status_json(sample_status()) ==
        R"({"node_id":"node-a","version":"0.1.0","role":"active","epoch":7,)"
        R"("not_active_reason":"","paused":false,"lease_holder":"node-a","lease_epoch":7,)"
        R"("lease_expires_in_ms":1800,"last_transition":{"from":"passive","to":"active",)"
        R"("reason":"acquired","epoch":7,"at":"2026-11-21T10:00:00.123Z"},"transitions":2,)"
        R"("nodes":[{"id":"node-a","address":"10.0.0.1:8013","admin_address":"127.0.0.1:8440",)"
        R"("version":"0.1.0","backup_dir":"/var/backup/a","role":"active","reason":"",)"
        R"("paused":false,"seen_ms_ago":120},{"id":"node-b","address":"10.0.0.2:8013",)"
        R"("admin_address":"127.0.0.1:8441","version":"0.1.0","backup_dir":"/var/backup/b",)"
        R"("role":"passive","reason":"lease_held","paused":true,"seen_ms_ago":2500}],)"
        R"("plugins":[{"id":"echo","version":"1.0.0","state":"running","health":"ok",)"
        R"("health_detail":"","last_error":"","restarts":0,"required":true,"facts":[]},{"id":"mq",)"
        R"("version":"2.1.0","state":"failed","health":"degraded","health_detail":"broker down",)"
        R"("last_error":"bind: address in use","restarts":3,"required":false,"facts":[]}]})");
}

TEST_CASE("a node that never changed role has a null last_transition") {
  StatusView status;
  status.node_id = "fresh";
  status.role = "starting";
  const std::string json = status_json(status);
  CHECK(json.find(R"("last_transition":null)") != std::string::npos);
  CHECK(json.find(R"("nodes":[],"plugins":[]})") != std::string::npos);
}

TEST_CASE("the status text summarises the node, the lease, the cluster and the plugins") {
  CHECK(status_text(sample_status()) ==
        "node    node-a (0.1.0)\n"
        "role    active, epoch 7\n"
        "paused  no\n"
        "lease   held by node-a, epoch 7, expires in 1.8s\n"
        "last    passive -> active (acquired), epoch 7, at 2026-11-21T10:00:00.123Z; "
        "2 transitions\n"
        "\n"
        "NODE    ROLE     ADDRESS        ADMIN           VERSION  BACKUP DIR     SEEN       NOTE\n"
        "node-a  active   10.0.0.1:8013  127.0.0.1:8440  0.1.0    /var/backup/a  120ms ago\n"
        "node-b  passive  10.0.0.2:8013  127.0.0.1:8441  0.1.0    /var/backup/b  2.5s ago   "
        "lease_held, paused\n"
        "\n"
        "PLUGIN  VERSION  STATE    HEALTH    DETAIL\n"
        "echo    1.0.0    running  ok\n"
        "mq      2.1.0    failed   degraded  broker down; last error: bind: address in use; "
        "restarted 3x; not required\n");
}

TEST_CASE("the status text of a passive node says why it is not active and who holds the lease") {
  StatusView status = sample_status();
  status.role = "passive";
  status.epoch = 0;
  status.not_active_reason = "lease_held";
  status.lease_holder = "node-b";
  status.lease_expires_in_ms = 0;
  const std::string text = status_text(status);
  CHECK(text.find("role    passive (lease_held)\n") != std::string::npos);
  CHECK(text.find("lease   free (last held by node-b, epoch 7)\n") != std::string::npos);
}

TEST_CASE("text renderings cannot forge lines or send terminal escapes") {
  CHECK(printable("a\nb\tc\\d") == R"(a\nb\tc\\d)");
  CHECK(printable("\x1b[2J") == R"(\x1b[2J)");
  CHECK(printable("\xc2\x9b"
                  "31m") == R"(\xc2\x9b31m)");  // C1 CSI, UTF-8 encoded
  CHECK(printable("caf\xc3\xa9 \xff") == "caf\xc3\xa9 \\xff");

  StatusView status = sample_status();
  status.node_id = "evil\nrole    active";
  status.plugins[0].last_error = "\x1b]0;pwned\x07";
  const std::string text = status_text(status);
  CHECK(text.find("node    evil\\nrole    active (0.1.0)\n") != std::string::npos);
  CHECK(text.find("\x1b") == std::string::npos);
}

TEST_CASE("the HTML page escapes every value and runs no script") {
  StatusView status = sample_status();
  status.node_id = "<script>alert(1)</script>";
  status.nodes[1].id = "\"><img src=x onerror=alert(2)>";
  status.plugins[1].last_error = "it's <b>bad</b> & worse";
  const std::string html = status_html(status);
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("<img") == std::string::npos);
  CHECK(html.find("&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
  CHECK(html.find("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;") != std::string::npos);
  CHECK(html.find("it&#39;s &lt;b&gt;bad&lt;/b&gt; &amp; worse") != std::string::npos);
  CHECK(html.find("<meta http-equiv=\"refresh\" content=\"2\">") != std::string::npos);
  CHECK(html.find("src=\"http") == std::string::npos);  // self-contained
  CHECK(html.find("href=") == std::string::npos);
}

// sample_status() with facts on its plugins: two on echo, one on mq.
StatusView status_with_facts() {
  StatusView status = sample_status();
  status.plugins[0].facts = {{"seats", "120 of 500", "info"},
                             {"license", "expires in 5 days", "warning"}};
  status.plugins[1].facts = {{"last backup", "failing since 03:00", "critical"}};
  return status;
}

TEST_CASE("the status JSON shows each plugin's facts under it, in order, with their severity") {
  const std::string json = status_json(status_with_facts());
  CHECK(json.find(R"("required":true,"facts":[{"name":"seats","value":"120 of 500",)"
                  R"("severity":"info"},{"name":"license","value":"expires in 5 days",)"
                  R"("severity":"warning"}]},{"id":"mq")") != std::string::npos);
  CHECK(json.find(R"("required":false,"facts":[{"name":"last backup",)"
                  R"("value":"failing since 03:00","severity":"critical"}]}]})") !=
        std::string::npos);
}

TEST_CASE(
    "the status text lists each plugin's facts under its line, marking those that need care") {
  const std::string text = status_text(status_with_facts());
  CHECK(text.substr(text.find("PLUGIN")) ==
        "PLUGIN  VERSION  STATE    HEALTH    DETAIL\n"
        "echo    1.0.0    running  ok\n"
        "  - seats: 120 of 500\n"
        "  ! license: expires in 5 days (warning)\n"
        "mq      2.1.0    failed   degraded  broker down; last error: bind: address in use; "
        "restarted 3x; not required\n"
        "  ! last backup: failing since 03:00 (critical)\n");
}

TEST_CASE("the status page shows each plugin's facts with a class per severity") {
  const std::string html = status_html(status_with_facts());
  CHECK(html.find("<li class=\"fact severity-info\"><span class=\"severity\">info</span> "
                  "<b>seats</b> 120 of 500</li>") != std::string::npos);
  CHECK(html.find("<li class=\"fact severity-warning\"><span class=\"severity\">warning</span> "
                  "<b>license</b> expires in 5 days</li>") != std::string::npos);
  CHECK(html.find("<li class=\"fact severity-critical\">") != std::string::npos);
  CHECK(html.find(".severity-critical .severity{") != std::string::npos);
}

TEST_CASE("facts are plugin text: escaped in JSON, text and HTML") {
  StatusView status = sample_status();
  status.plugins[0].facts = {{"<b>n\"</b>", "v\n\x1b[2J<script>", "warning\"><script>"}};
  const std::string json = status_json(status);
  CHECK(json.find(R"({"name":"<b>n\"</b>","value":"v\n\u001b[2J<script>",)") != std::string::npos);
  const std::string text = status_text(status);
  CHECK(text.find("  ! <b>n\"</b>: v\\n\\x1b[2J<script> (warning\"><script>)\n") !=
        std::string::npos);
  CHECK(text.find('\x1b') == std::string::npos);
  const std::string html = status_html(status);
  CHECK(html.find("<script") == std::string::npos);
  // An unknown severity becomes no class: shown, escaped, unstyled.
  CHECK(html.find("<li class=\"fact\"><span class=\"severity\">warning&quot;&gt;&lt;script&gt;"
                  "</span> <b>&lt;b&gt;n&quot;&lt;/b&gt;</b> v") != std::string::npos);
}

TEST_CASE("settings render as a JSON array and as a table") {
  const std::vector<Setting> settings = {
      {"fqdn", "ems.example.com", 1'700'000'000'000, "node-a", 3},
      {"banner", "line one\nline two", 1'700'000'060'500, "node-b", 4},
  };
  CHECK(settings_json(settings) ==
        R"([{"key":"fqdn","value":"ems.example.com","updated_at_ms":1700000000000,)"
        R"("updated_by":"node-a","epoch":3},{"key":"banner","value":"line one\nline two",)"
        R"("updated_at_ms":1700000060500,"updated_by":"node-b","epoch":4}])");
  CHECK(settings_text(settings) ==
        "KEY     VALUE               UPDATED                   BY      EPOCH\n"
        "fqdn    ems.example.com     2023-11-14T22:13:20.000Z  node-a  3\n"
        "banner  line one\\nline two  2023-11-14T22:14:20.500Z  node-b  4\n");
  CHECK(settings_json({}) == "[]");
  CHECK(settings_text({}) == "no cluster settings are set\n");
}

TEST_CASE("times are written as ISO 8601 UTC with milliseconds") {
  using namespace std::chrono;
  CHECK(iso8601_utc(system_clock::time_point(milliseconds(1'700'000'000'123))) ==
        "2023-11-14T22:13:20.123Z");
  CHECK(iso8601_utc(system_clock::time_point(milliseconds(-1))) == "1969-12-31T23:59:59.999Z");
}

}  // namespace emsnode::admin
