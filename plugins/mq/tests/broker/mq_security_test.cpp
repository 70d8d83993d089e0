// Security and operations of the mq plugin in a real node, with mosquitto_pub and mosquitto_sub:
// TLS with certificates made by the openssl command at test time (no private key is committed),
// passwords, users in the cluster database, password checks beside a busy I/O thread, client
// certificates, ACLs, the refusal of an open listener off loopback, the metrics page, and the
// bound on a slow consumer's queue.
#include <catch2/catch.hpp>

#include "mq_test_support.hpp"
#include "support/sanitizers.hpp"

#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace mq_test;  // NOLINT(google-build-using-namespace): the tests' vocabulary
using namespace std::chrono_literals;

namespace {

// A CA, a server certificate for 127.0.0.1 (subjectAltName IP), a client certificate with
// common name "device-7", and a second CA that signed neither.
void make_certificates(const TempDir& dir) {
  const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const std::string script =
      "set -e\n"
      "openssl req -x509 " +
      key +
      " -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca\n"
      "openssl req -x509 " +
      key +
      " -keyout other-ca.key -out other-ca.crt -days 2 "
      "-subj /CN=other-ca\n"
      "openssl req " +
      key +
      " -keyout server.key -out server.csr -subj /CN=127.0.0.1\n"
      "printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext\n"
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
      "-out server.crt -days 2 -extfile server.ext\n"
      "openssl req " +
      key +
      " -keyout client.key -out client.csr -subj /CN=device-7\n"
      "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
      "-out client.crt -days 2\n";
  dir.write("certs.sh", script);
  const Completed made =
      run({"/bin/sh", "-c", "cd '" + dir.path().string() + "' && sh certs.sh"}, dir.path(), 30s);
  INFO(made.err);
  REQUIRE(made.status == 0);
}

// One password file line, made as README.md tells an operator to.
std::string password_line(const TempDir& dir, const std::string& user,
                          const std::string& password) {
  const Completed made =
      run({kPython, "-c",
           "import hashlib, os, sys; salt = os.urandom(16); "
           "print(sys.argv[1] + ':$pbkdf2-sha512$1000$' + salt.hex() + '$' + "
           "hashlib.pbkdf2_hmac('sha512', sys.argv[2].encode(), salt, 1000).hex())",
           user, password},
          dir.path(), 10s);
  REQUIRE(made.status == 0);
  return made.out;
}

// A password file line whose hash costs about 0.3 s of this machine's core to check, measured
// now, under whatever else the machine is doing.
std::string slow_password_line(const TempDir& dir, const std::string& user,
                               const std::string& password) {
  const Completed made =
      run({kPython, "-c",
           "import hashlib, os, sys, time\n"
           "began = time.monotonic()\n"
           "hashlib.pbkdf2_hmac('sha512', b'probe', bytes(16), 100000)\n"
           "n = max(100000, min(5000000, int(30000 / (time.monotonic() - began))))\n"
           "salt = os.urandom(16)\n"
           "digest = hashlib.pbkdf2_hmac('sha512', sys.argv[2].encode(), salt, n)\n"
           "print(sys.argv[1] + ':$pbkdf2-sha512$' + str(n) + '$' + salt.hex() + '$' + "
           "digest.hex())\n",
           user, password},
          dir.path(), 60s);
  REQUIRE(made.status == 0);
  return made.out;
}

// emsnode-mq-passwd with `input` on its standard input, as an operator runs it.
Completed mq_passwd(const TempDir& dir, const std::string& input, std::vector<std::string> args) {
  const std::string script = "input=$1; shift; printf '%s' \"$input\" | \"$@\"";
  std::vector<std::string> argv = {"/bin/sh", "-c", script, "sh", input, MQ_PASSWD_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, dir.path(), 30s);
}

std::string tls_keys(const TempDir& dir) {
  return "tls_cert = \"" + (dir.path() / "server.crt").string() + "\"\ntls_key = \"" +
         (dir.path() / "server.key").string() + "\"\n";
}

std::string metrics_of(MqCluster& mq) {
  return mq.cluster().admin(0, "GET", "/metrics").body;
}

}  // namespace

TEST_CASE("a TLS listener serves clients that trust its CA and refuses the others") {
  require_clients();
  TempDir certs;
  make_certificates(certs);
  MqCluster mq(1, tls_keys(certs));
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  const std::string ca = (certs.path() / "ca.crt").string();

  auto sub = mq.start_sub({"--cafile", ca, "-t", "tls/#", "-q", "1", "-v", "-C", "1", "-W", "15"});
  REQUIRE(subscribed(*sub));
  const Completed ok = mq.pub({"--cafile", ca, "-t", "tls/x", "-q", "1", "-m", "private"});
  INFO(ok.err);
  CHECK(ok.status == 0);
  REQUIRE(sub->wait(15s) == 0);
  CHECK(sub->out().find("tls/x private") != std::string::npos);

  const Completed wrong_ca = mq.pub(
      {"--cafile", (certs.path() / "other-ca.crt").string(), "-t", "tls/x", "-q", "1", "-m", "no"});
  CHECK(wrong_ca.status != 0);
  const Completed plain = mq.pub({"-t", "tls/x", "-q", "1", "-m", "no"});
  CHECK(plain.status != 0);
  CHECK(eventually(
      [&] {
        return metrics_of(mq).find(
                   "emsnode_plugin_mq_tls_handshake_failures_total{plugin=\"mq\"} 2") !=
               std::string::npos;
      },
      5s));
}

TEST_CASE("a password file admits the right password and refuses a wrong one or none") {
  require_clients();
  TempDir files;
  const auto passwords =
      files.write("passwords", "# users\n" + password_line(files, "alice", "s3cret"));
  MqCluster mq(1, "password_file = \"" + passwords.string() + "\"\n");
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));

  const Completed good = mq.pub({"-u", "alice", "-P", "s3cret", "-t", "t", "-q", "1", "-m", "x"});
  INFO(good.err);
  CHECK(good.status == 0);
  const Completed bad = mq.pub({"-u", "alice", "-P", "guess", "-t", "t", "-q", "1", "-m", "x"});
  CHECK(bad.status != 0);
  CHECK_THAT(bad.err, Catch::Contains("bad user name or password", Catch::CaseSensitive::No));
  // A password file turns anonymous clients away unless allow_anonymous says otherwise.
  const Completed anonymous = mq.pub({"-t", "t", "-q", "1", "-m", "x"});
  CHECK(anonymous.status != 0);
  CHECK_THAT(anonymous.err, Catch::Contains("not authori", Catch::CaseSensitive::No));

  const std::string log = mq.cluster().log_of(0);
  CHECK_THAT(log, Catch::Contains("mq.connect_refused"));
  CHECK_THAT(log, !Catch::Contains("guess"));
}

TEST_CASE("users of the cluster database connect with their password until their row goes") {
  require_clients();
  MqCluster mq(1, "database_users = true\n");
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));  // its start created mq_users
  const Completed made = mq_passwd(mq.dir(), "c-pw\n", {"--sql", "carol"});
  INFO(made.err);
  REQUIRE(made.status == 0);
  const Completed inserted = mq.sql(made.out);
  INFO(inserted.out + inserted.err);
  REQUIRE(inserted.status == 0);

  const auto publish_as = [&](std::vector<std::string> who) {
    who.insert(who.end(), {"-t", "t", "-q", "1", "-m", "x"});
    return mq.pub(who);
  };
  const Completed good = publish_as({"-u", "carol", "-P", "c-pw"});
  INFO(good.err);
  CHECK(good.status == 0);
  const Completed bad = publish_as({"-u", "carol", "-P", "guess"});
  CHECK(bad.status != 0);
  CHECK_THAT(bad.err, Catch::Contains("bad user name or password", Catch::CaseSensitive::No));
  // Users in the database are authentication: anonymous clients are refused unless allowed.
  const Completed anonymous = publish_as({});
  CHECK(anonymous.status != 0);
  CHECK_THAT(anonymous.err, Catch::Contains("not authori", Catch::CaseSensitive::No));

  REQUIRE(mq.sql("DELETE FROM mq_users WHERE username = 'carol'").status == 0);
  const Completed removed = publish_as({"-u", "carol", "-P", "c-pw"});
  CHECK(removed.status != 0);
  CHECK_THAT(removed.err, Catch::Contains("bad user name or password", Catch::CaseSensitive::No));
  const std::string log = mq.cluster().log_of(0);
  CHECK_THAT(log, Catch::Contains("mq.connect_refused"));
  CHECK_THAT(log, !Catch::Contains("c-pw") && !Catch::Contains("guess"));
}

TEST_CASE("packets sent right behind a CONNECT are taken once its password is checked") {
  require_clients();
  TempDir files;
  const auto passwords = files.write("passwords", password_line(files, "alice", "s3cret"));
  MqCluster mq(1, "password_file = \"" + passwords.string() + "\"\n");
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  // CONNECT and a QoS 1 PUBLISH in one write: the PUBLISH arrives while the CONNECT's password
  // is checked, and must neither overtake it nor be lost.
  const std::string script =
      "import socket, struct, sys\n"
      "def text(s):\n"
      "    b = s.encode()\n"
      "    return struct.pack('!H', len(b)) + b\n"
      "def packet(kind, body):\n"
      "    return bytes([kind, len(body)]) + body\n"
      "connect = packet(0x10, text('MQTT') + bytes([4, 0xC2]) + struct.pack('!H', 30) +\n"
      "                 text('pipelined') + text('alice') + text('s3cret'))\n"
      "publish = packet(0x32, text('piped/x') + struct.pack('!H', 7) + b'behind')\n"
      "sock = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
      "sock.sendall(connect + publish)\n"
      "sock.settimeout(20)\n"
      "data = b''\n"
      "while len(data) < 8:\n"
      "    chunk = sock.recv(64)\n"
      "    if not chunk:\n"
      "        break\n"
      "    data += chunk\n"
      "print(data.hex())\n";
  const Completed sent = run({kPython, "-c", script, mq.port_text()}, mq.dir().path(), 30s);
  INFO(sent.err);
  REQUIRE(sent.status == 0);
  CHECK(sent.out == "2002000040020007\n");  // CONNACK accepted, then PUBACK of packet 7
}

TEST_CASE("a CONNECT beyond max_pending_auth is refused at once as server unavailable") {
  require_clients();
  TempDir files;
  const auto passwords = files.write("passwords", slow_password_line(files, "slow", "pw"));
  MqCluster mq(1, "password_file = \"" + passwords.string() + "\"\nmax_pending_auth = 1\n");
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  // Four CONNECTs sent within a moment: the first check takes some 0.3 s, and the others find
  // its one place taken.
  const std::string script =
      "import socket, struct, sys\n"
      "def text(s):\n"
      "    b = s.encode()\n"
      "    return struct.pack('!H', len(b)) + b\n"
      "def connect(i):\n"
      "    body = (text('MQTT') + bytes([4, 0xC2]) + struct.pack('!H', 30) +\n"
      "            text('busy-%d' % i) + text('slow') + text('pw'))\n"
      "    return bytes([0x10, len(body)]) + body\n"
      "socks = [socket.create_connection(('127.0.0.1', int(sys.argv[1]))) for _ in range(4)]\n"
      "for i, sock in enumerate(socks):\n"
      "    sock.sendall(connect(i))\n"
      "codes = []\n"
      "for sock in socks:\n"
      "    sock.settimeout(30)\n"
      "    connack = sock.recv(4)\n"
      "    codes.append(str(connack[3]) if len(connack) == 4 else 'none')\n"
      "print(' '.join(codes))\n";
  const Completed sent = run({kPython, "-c", script, mq.port_text()}, mq.dir().path(), 60s);
  INFO(sent.out + sent.err);
  REQUIRE(sent.status == 0);
  std::istringstream codes(sent.out);
  std::size_t accepted = 0;
  std::size_t busy = 0;
  for (std::string code; codes >> code;) {
    CHECK((code == "0" || code == "3"));
    (code == "0" ? accepted : busy) += 1;
  }
  CHECK(accepted >= 1);
  CHECK(busy >= 1);
  CHECK_THAT(metrics_of(mq),
             Catch::Contains("emsnode_plugin_mq_connects_refused_total{plugin=\"mq\","
                             "reason=\"busy\"} " +
                             std::to_string(busy)));
  CHECK_THAT(mq.cluster().log_of(0), Catch::Contains("max_pending_auth"));
}

TEST_CASE("a subscriber keeps receiving while twenty clients' passwords are checked") {
  require_clients();
  TempDir files;
  const auto passwords = files.write("passwords", slow_password_line(files, "slow", "pw"));
  MqCluster mq(1, "password_file = \"" + passwords.string() + "\"\nallow_anonymous = true\n");
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  const std::string out = (mq.dir().path() / "ticks").string();
  auto ticks = mq.start_client(
      {"ticks", "--topic", "ticks", "--out", out, "--interval", "0.01", "--duration", "150"});
  REQUIRE(eventually([&] { return std::filesystem::exists(out + ".ready"); }, 20s));

  const auto began = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<Process>> logins;
  for (int i = 0; i < 20; ++i) {
    logins.push_back(std::make_unique<Process>(
        std::vector<std::string>{kMosquittoPub, "-h", "127.0.0.1", "-p", mq.port_text(), "-i",
                                 "login-" + std::to_string(i), "-u", "slow", "-P", "pw", "-t",
                                 "logins", "-q", "1", "-m", "in"},
        mq.dir().path()));
  }
  for (auto& login : logins) {
    INFO(login->err());
    CHECK(login->wait(120s) == std::optional<int>(0));
  }
  const auto logging_in = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - began)
                              .count();
  mq.dir().write("ticks.stop", "");
  REQUIRE(ticks->wait(20s) == std::optional<int>(0));

  const std::string report = read_file(out);  // "received N max_gap_ms G"
  std::istringstream fields(report);
  std::string word;
  std::size_t received = 0;
  long max_gap_ms = 0;
  fields >> word >> received >> word >> max_gap_ms;
  INFO(report << "20 logins took " << logging_in << " ms");
  // Twenty checks of about 0.3 s each, one after the other on the authenticator's thread.
  REQUIRE(logging_in >= 20 * 100);
  CHECK(received > 50);
  // A check on the I/O thread would silence every client for the whole check, some
  // logging_in / 20 under the machine's load of the moment: half of that cannot pass.
  CHECK_WALL_CLOCK(max_gap_ms < logging_in / 40);
}

TEST_CASE("a required client certificate is verified and its common name is the user name") {
  require_clients();
  TempDir files;
  make_certificates(files);
  const auto acl = files.write("acl", "user device-7\ntopic readwrite devices/7/#\n");
  MqCluster mq(1, tls_keys(files) + "tls_ca = \"" + (files.path() / "ca.crt").string() +
                      "\"\nrequire_client_cert = true\nuse_identity_as_username = true\n"
                      "acl_file = \"" +
                      acl.string() + "\"\n");
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  const std::vector<std::string> tls = {"--cafile", (files.path() / "ca.crt").string()};
  std::vector<std::string> with_cert = tls;
  with_cert.insert(with_cert.end(), {"--cert", (files.path() / "client.crt").string(), "--key",
                                     (files.path() / "client.key").string()});

  auto sub_args = with_cert;
  sub_args.insert(sub_args.end(),
                  {"-i", "reader", "-t", "devices/7/#", "-q", "1", "-v", "-C", "1", "-W", "15"});
  auto sub = mq.start_sub(sub_args);
  REQUIRE(subscribed(*sub));
  auto pub_args = with_cert;
  pub_args.insert(pub_args.end(), {"-t", "devices/7/temp", "-q", "1", "-m", "21"});
  const Completed ok = mq.pub(pub_args);
  INFO(ok.err);
  CHECK(ok.status == 0);
  REQUIRE(sub->wait(15s) == 0);
  CHECK(sub->out().find("devices/7/temp 21") != std::string::npos);

  auto no_cert = tls;
  no_cert.insert(no_cert.end(), {"-t", "devices/7/temp", "-q", "1", "-m", "x"});
  CHECK(mq.pub(no_cert).status != 0);
}

TEST_CASE("ACL rules with %c and %u decide who may subscribe and whose messages are delivered") {
  require_clients();
  TempDir files;
  const auto passwords = files.write(
      "passwords", password_line(files, "alice", "a-pw") + password_line(files, "bob", "b-pw"));
  const auto acl = files.write("acl",
                               "pattern read clients/%c/#\n"
                               "pattern write users/%u/#\n"
                               "user bob\n"
                               "topic read users/#\n");
  MqCluster mq(
      1, "password_file = \"" + passwords.string() + "\"\nacl_file = \"" + acl.string() + "\"\n");
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  const std::vector<std::string> alice = {"-u", "alice", "-P", "a-pw"};
  const auto as = [](std::vector<std::string> who, std::vector<std::string> args) {
    who.insert(who.end(), args.begin(), args.end());
    return who;
  };

  auto bob = mq.start_sub(
      as({"-u", "bob", "-P", "b-pw"}, {"-t", "users/#", "-q", "1", "-v", "-C", "1", "-W", "15"}));
  REQUIRE(subscribed(*bob));
  // alice may not write under bob's name: acknowledged all the same, and never delivered.
  CHECK(mq.pub(as(alice, {"-t", "users/bob/x", "-q", "1", "-m", "forged"})).status == 0);
  CHECK(mq.pub(as(alice, {"-t", "users/alice/x", "-q", "1", "-m", "genuine"})).status == 0);
  REQUIRE(bob->wait(15s) == 0);
  CHECK(bob->out().find("users/alice/x genuine") != std::string::npos);
  CHECK(bob->out().find("forged") == std::string::npos);

  // %c: a client reads its own branch only.
  const Completed own = mq.sub(as(alice, {"-d", "-i", "dev1", "-t", "clients/dev1/#", "-W", "1"}));
  CHECK_THAT(own.out, Catch::Contains("received SUBACK"));
  CHECK_THAT(own.out, !Catch::Contains("128"));
  const Completed other =
      mq.sub(as(alice, {"-d", "-i", "dev1", "-t", "clients/dev2/#", "-W", "1"}));
  CHECK_THAT(other.out + other.err, Catch::Contains("128") || Catch::Contains("denied"));
}

TEST_CASE("emsnode check refuses a listener off loopback without TLS and authentication",
          "[sqlite]") {
  TempDir dir;
  make_certificates(dir);
  const auto passwords = dir.write("passwords", password_line(dir, "alice", "pw"));
  const auto check = [&](const std::string& mq) {
    const auto conf = dir.write("node.toml",
                                "[node]\nid = \"n1\"\ndata_dir = \"state\"\n"
                                "[plugins.mq]\nlisten = \"0.0.0.0:18013\"\n" +
                                    mq);
    return run({kEmsnode, "check", "--conf", conf.string()}, dir.path());
  };
  const std::string users = "password_file = \"" + passwords.string() + "\"\n";

  const Completed open = check("");
  CHECK(open.status != 0);
  CHECK_THAT(open.out + open.err, Catch::Contains("'listen'") && Catch::Contains("TLS") &&
                                      Catch::Contains("insecure = true"));
  const Completed no_tls = check(users);
  CHECK(no_tls.status != 0);
  CHECK_THAT(no_tls.out + no_tls.err, Catch::Contains("TLS (tls_cert, tls_key)"));
  const Completed anonymous = check(tls_keys(dir) + users + "allow_anonymous = true\n");
  CHECK(anonymous.status != 0);
  CHECK_THAT(anonymous.out + anonymous.err, Catch::Contains("authentication"));

  const Completed secured = check(tls_keys(dir) + users);
  INFO(secured.out + secured.err);
  CHECK(secured.status == 0);
  // Users in the cluster database are authentication too.
  CHECK(check(tls_keys(dir) + "database_users = true\n").status == 0);
  CHECK(check("insecure = true\n").status == 0);

  const Completed bad_key =
      check("tls_cert = \"" + (dir.path() / "server.crt").string() + "\"\ntls_key = \"" +
            (dir.path() / "client.key").string() + "\"\n" + users);
  CHECK(bad_key.status != 0);
  CHECK_THAT(bad_key.out + bad_key.err,
             Catch::Contains("'tls_key'") && Catch::Contains("client.key"));
}

TEST_CASE("the node's metrics page shows the broker's connections, messages, drops and commits") {
  require_clients();
  MqCluster mq(1);
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  REQUIRE(mq.pub({"-t", "m", "-q", "1", "-m", "counted"}).status == 0);
  const std::string page = metrics_of(mq);
  for (const char* series :
       {"emsnode_plugin_mq_connections_open", "emsnode_plugin_mq_connections_total",
        "emsnode_plugin_mq_connections_rejected_total", "emsnode_plugin_mq_messages_in_total",
        "emsnode_plugin_mq_messages_out_total", "emsnode_plugin_mq_bytes_received_total",
        "emsnode_plugin_mq_bytes_sent_total", "emsnode_plugin_mq_dropped_messages_total",
        "emsnode_plugin_mq_queued_messages", "emsnode_plugin_mq_commit_batch_operations",
        "emsnode_plugin_mq_commit_seconds", "emsnode_plugin_mq_connects_refused_total"}) {
    INFO(series);
    CHECK(page.find(series) != std::string::npos);
  }
  CHECK(page.find("emsnode_plugin_mq_messages_in_total{plugin=\"mq\",qos=\"1\"} 1") !=
        std::string::npos);
}

TEST_CASE("a slow consumer's queue is bounded in bytes and the policy is logged") {
  require_clients();
  MqCluster mq(1, "max_queued_bytes = 2048\n");
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  REQUIRE(mq.sub({"-t", "slow/#", "-q", "1", "-c", "-i", "slow", "-E"}).status == 0);
  // 606 bytes each (topic and payload): three fit in 2048, the other three are dropped.
  for (int i = 0; i < 6; ++i) {
    REQUIRE(mq.pub({"-t", "slow/x", "-q", "1", "-m", std::to_string(i) + std::string(599, '.')})
                .status == 0);
  }
  const Completed back = mq.sub({"-t", "slow/#", "-q", "1", "-c", "-i", "slow", "-W", "3"});
  const auto received = lines_of(back.out);
  CHECK(received.size() == 3);
  const std::string log = mq.cluster().log_of(0);
  CHECK_THAT(log, Catch::Contains("mq.queue_full") && Catch::Contains("drop_new"));
  CHECK(metrics_of(mq).find(
            "emsnode_plugin_mq_dropped_messages_total{plugin=\"mq\",reason=\"queue_full\"} 3") !=
        std::string::npos);
}

TEST_CASE("TLS clients that reset their connections do not take the node down") {
  require_clients();
  TempDir certs;
  make_certificates(certs);
  MqCluster mq(1, tls_keys(certs));
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  // Handshake, then close with a reset: the node's close_notify then meets a dead socket,
  // which must be an error for that connection only (not SIGPIPE for the process).
  const std::string script =
      "import socket, ssl, struct, sys\n"
      "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
      "for _ in range(20):\n"
      "    s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[2]))),\n"
      "                        server_hostname='127.0.0.1')\n"
      "    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n"
      "    s.close()\n";
  const Completed resets =
      run({kPython, "-c", script, (certs.path() / "ca.crt").string(), mq.port_text()},
          mq.dir().path(), 30s);
  INFO(resets.err);
  CHECK(resets.status == 0);
  const Completed after =
      mq.pub({"--cafile", (certs.path() / "ca.crt").string(), "-t", "t", "-q", "1", "-m", "x"});
  CHECK(after.status == 0);
  CHECK(mq.cluster().running(0));
}

TEST_CASE("large messages cross a TLS listener intact in both directions") {
  require_clients();
  TempDir certs;
  make_certificates(certs);
  MqCluster mq(1, tls_keys(certs));
  mq.cluster().start(0);
  REQUIRE(mq.await_serving(0));
  const std::string ca = (certs.path() / "ca.crt").string();
  // Larger than one TLS record and one read of the node: written and read in many pieces.
  std::string payload;
  for (int i = 0; payload.size() < 700 * 1024; ++i) payload += std::to_string(i) + ",";
  const auto file = certs.write("payload", payload);

  auto sub = mq.start_sub({"--cafile", ca, "-t", "big", "-q", "1", "-C", "3", "-W", "20"});
  REQUIRE(subscribed(*sub));
  for (int i = 0; i < 3; ++i) {
    const Completed pub = mq.pub({"--cafile", ca, "-t", "big", "-q", "1", "-f", file.string()});
    INFO(pub.err);
    REQUIRE(pub.status == 0);
  }
  REQUIRE(sub->wait(20s) == 0);
  const std::string out = sub->out();  // -d: the packets, then each payload on its own line
  std::size_t copies = 0;
  for (auto at = out.find(payload); at != std::string::npos; at = out.find(payload, at + 1)) {
    ++copies;
  }
  CHECK(copies == 3);
}
