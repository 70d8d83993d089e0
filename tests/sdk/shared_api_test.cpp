// Shared APIs and status facts through the C++ wrapper (ABI 1.3), driven by the fake host: a
// plugin that exports a typed table, one that uses it with its needed members checked, the
// fake's mirror of the node's refusals, and a host older than 1.3.
#include <emsnode/plugin.hpp>
#include <emsnode/testing/fake_host.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace {

namespace sdk = emsnode::sdk;
using emsnode::sdk::testing::FakeHost;

// A shared API as a plugin author would publish it in a header of its own: license.v1, whose
// minor 1 appended expires_at.
struct LicenseV1 {
  std::uint32_t struct_size;
  std::int64_t (*seats)();
  std::int64_t (*expires_at)();  // since license.v1.1
};

std::int64_t five_hundred() {
  return 500;
}
std::int64_t new_year() {
  return 1'798'761'600'000;
}

constexpr LicenseV1 kLicense = {sizeof(LicenseV1), &five_hundred, &new_year};
// The table of an exporter at license.v1.0, built before expires_at was appended.
constexpr LicenseV1 kLicenseV1_0 = {offsetof(LicenseV1, expires_at), &five_hundred, nullptr};

class LicensePlugin : public sdk::Plugin {
 public:
  explicit LicensePlugin(sdk::Host& host) : Plugin(host) {
    host.export_api("license.v1", 1, &kLicense);
    host.status_fact("seats", "500 granted");
  }
  void start() override {}
  void stop(std::chrono::milliseconds) override {}
};
constexpr emsnode_plugin_api kLicensePlugin =
    sdk::make_plugin_api<LicensePlugin>("license", "1.0.0");

class SilentExporter : public sdk::Plugin {
 public:
  explicit SilentExporter(sdk::Host& host) : Plugin(host) {}
  void start() override {}
  void stop(std::chrono::milliseconds) override {}
};
constexpr emsnode_plugin_api kSilentExporter =
    sdk::make_plugin_api<SilentExporter>("silent", "1.0.0");

class TelemetryPlugin : public sdk::Plugin {
 public:
  explicit TelemetryPlugin(sdk::Host& host)
      : Plugin(host),
        license_(host.use_api<LicenseV1>("license.v1", &LicenseV1::seats, &LicenseV1::expires_at)) {
    host.status_fact("seats", "0 of " + std::to_string(license_.seats()));
  }
  void start() override { host().status_fact("license", "expires soon", sdk::Severity::warning); }
  void stop(std::chrono::milliseconds) override { host().remove_status_fact("license"); }

 private:
  const LicenseV1& license_;
};
constexpr emsnode_plugin_api kTelemetryPlugin =
    sdk::make_plugin_api<TelemetryPlugin>("telemetry", "1.0.0");

}  // namespace

TEST_CASE("a plugin's exported table is read back, typed, from the fake host") {
  FakeHost fake;
  fake.declare_export("license.v1", 1);
  REQUIRE(fake.create(&kLicensePlugin) == EMSNODE_OK);
  const auto exported = fake.exported_api("license.v1");
  REQUIRE(exported);
  CHECK(exported->minor == 1);
  CHECK(exported->as<LicenseV1>().seats() == 500);
  CHECK_FALSE(fake.exported_api("license.v2"));
  REQUIRE(fake.fact("seats"));
  CHECK(fake.fact("seats")->value == "500 granted");
}

TEST_CASE("an export at another minor than declared fails create with the host's reason") {
  FakeHost fake;
  fake.declare_export("license.v1", 2);
  CHECK(fake.create(&kLicensePlugin) == EMSNODE_ERROR);
  CHECK(fake.last_error() ==
        "the host refused to export 'license.v1': api_export: license.v1 at minor 1, but "
        "plugin.toml declares license.v1.2");
}

TEST_CASE("a declared export that create leaves unexported fails create, as on the node") {
  FakeHost fake;
  fake.declare_export("queue.v3", 0);
  CHECK(fake.create(&kSilentExporter) == EMSNODE_ERROR);
  CHECK(fake.last_error() ==
        "plugin.toml declares exports queue.v3, which create did not hand over with api_export");
}

TEST_CASE("export_api outside create is refused") {
  FakeHost fake;
  sdk::Host host(fake.api(), fake.ctx());
  CHECK_THROWS_WITH(host.export_api("license.v1", 1, &kLicense),
                    "the host refused to export 'license.v1': api_export: called outside create "
                    "(export every API in create)");
  fake.set_creating(true);
  host.export_api("license.v1", 1, &kLicense);
  CHECK_THROWS_WITH(host.export_api("license.v1", 1, &kLicense),
                    "the host refused to export 'license.v1': api_export: license.v1 is already "
                    "exported");
}

TEST_CASE("a user takes the typed table of a provided API and shows facts across its lifecycle") {
  FakeHost fake;
  fake.provide_api("license.v1", 1, &kLicense);
  REQUIRE(fake.create(&kTelemetryPlugin) == EMSNODE_OK);
  REQUIRE(fake.facts().size() == 1);
  CHECK(fake.facts()[0].value == "0 of 500");
  REQUIRE(fake.start() == EMSNODE_OK);
  REQUIRE(fake.fact("license"));
  CHECK(fake.fact("license")->severity == EMSNODE_SEVERITY_WARNING);
  REQUIRE(fake.stop() == EMSNODE_OK);
  CHECK_FALSE(fake.fact("license"));
  CHECK(fake.facts().size() == 1);
}

TEST_CASE("a user of an exporter too old for the members it needs fails create naming the API") {
  FakeHost fake;
  fake.provide_api("license.v1", 0, &kLicenseV1_0);
  CHECK(fake.create(&kTelemetryPlugin) == EMSNODE_ERROR);
  CHECK(fake.last_error() ==
        "shared API 'license.v1' at minor 0 lacks a function this plugin needs (its table has " +
            std::to_string(offsetof(LicenseV1, expires_at)) +
            " bytes): ask plugin.toml for a newer minor");
}

TEST_CASE("a user of an API nobody provides fails create with the fake's reason") {
  FakeHost fake;
  CHECK(fake.create(&kTelemetryPlugin) == EMSNODE_ERROR);
  CHECK(fake.last_error() ==
        "the host refused shared API 'license.v1': api_use: the fake host provides no shared API "
        "\"license.v1\"; provide one with FakeHost::provide_api");
}

TEST_CASE("api_minor says at which minor the exporter serves") {
  FakeHost fake;
  fake.provide_api("license.v1", 3, &kLicense);
  sdk::Host host(fake.api(), fake.ctx());
  CHECK(host.api_minor("license.v1") == 3);
  CHECK(&host.use_api<LicenseV1>("license.v1") == &kLicense);
}

TEST_CASE("status facts keep their order and the node's bounds in the fake host") {
  FakeHost fake;
  sdk::Host host(fake.api(), fake.ctx());
  host.status_fact("a", "1");
  host.status_fact("b", "2", sdk::Severity::critical);
  host.status_fact("a", "3", sdk::Severity::warning);
  REQUIRE(fake.facts().size() == 2);
  CHECK(fake.facts()[0].name == "a");
  CHECK(fake.facts()[0].value == "3");
  CHECK(fake.facts()[0].severity == EMSNODE_SEVERITY_WARNING);
  CHECK(fake.facts()[1].severity == EMSNODE_SEVERITY_CRITICAL);
  CHECK_THROWS_WITH(host.status_fact("", "x"),
                    "the host refused status fact '': status_fact: a fact's name is 1 to 64 "
                    "bytes, not 0");
  CHECK_THROWS_WITH(host.status_fact("a", std::string(257, 'x')),
                    "the host refused status fact 'a': status_fact: the value of fact \"a\" is "
                    "over the 256 bytes allowed");
  CHECK_THROWS_WITH(host.status_fact("a", "two\nlines"),
                    "the host refused status fact 'a': status_fact: fact \"a\" is not UTF-8 "
                    "without control characters");
  CHECK_THROWS(host.status_fact("a", "\xc2\x9b"));      // C1 CSI
  CHECK_THROWS(host.status_fact("a", "\xed\xa0\x80"));  // a surrogate
  host.status_fact("état", "vérifié ✓");
  for (int i = 0; i < 29; ++i) host.status_fact("f" + std::to_string(i), "v");
  CHECK_THROWS_WITH(host.status_fact("one more", "v"),
                    "the host refused status fact 'one more': status_fact: a plugin has at most "
                    "32 facts; remove one (set it to \"\") before adding \"one more\"");
  host.remove_status_fact("b");
  host.status_fact("one more", "v");
  CHECK(fake.facts().back().name == "one more");
  CHECK(fake.facts()[0].value == "3");  // refusals left the panel as it was
}

TEST_CASE("on a host older than ABI 1.3 shared APIs and facts say the service is missing") {
  FakeHost fake;
  emsnode_host_api old = *fake.api();
  old.struct_size = offsetof(emsnode_host_api, command_handle);
  sdk::Host host(&old, fake.ctx());
  CHECK_FALSE(host.supports(&emsnode_host_api::status_fact));
  CHECK_THROWS_AS(host.status_fact("a", "1"), sdk::UnsupportedError);
  CHECK_THROWS_AS(host.use_api<LicenseV1>("license.v1"), sdk::UnsupportedError);
  CHECK_THROWS_AS(host.export_api("license.v1", 1, &kLicense), sdk::UnsupportedError);
}
