// Pins plugin_abi.h by its SHA-256, one hash per ABI version. Plugins in the field were compiled
// against these exact bytes: any edit must come with a version bump and a new entry here.
#include <emsnode/plugin_abi.h>

#include <openssl/evp.h>

#include <catch2/catch.hpp>

#include <cstddef>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

extern "C" std::size_t emsnode_abi_c_sizeof_host_api(void);
extern "C" std::size_t emsnode_abi_c_sizeof_plugin_api(void);
extern "C" std::size_t emsnode_abi_c_sizeof_db_value(void);
extern "C" std::size_t emsnode_abi_c_offsetof_db_value_bytes(void);
extern "C" std::size_t emsnode_abi_c_sizeof_store_info(void);
extern "C" std::size_t emsnode_abi_c_offsetof_store_info_sha256(void);

namespace {

// "<EMSNODE_ABI_MAJOR>.<EMSNODE_ABI_MINOR>" -> SHA-256 of plugin_abi.h at that version.
// Append only: an entry is never edited once the version has shipped.
const std::map<std::string, std::string> kPinnedHashes = {
    {"1.0", "cadc1f896665875bc4d4e8c577286bcc961d0b8cbaf43870a920ad35ab03b1cb"},
    {"1.1", "6731cdedbf8a2bfa67833dcfd6d508673934adaf16e412bbcce534500e0bc33e"},
    {"1.2", "259a9c760dd19757d3c948ad776ceffca8596703c6bf1ea0be747f312f54e919"},
    {"1.3", "b1c665f60f8947729f1aed9579de81cde1e8dd6d08cfe890ffdf09f60f2e9005"},
};

std::string read_bytes(const char* path) {
  std::ifstream file(path, std::ios::binary);
  REQUIRE(file);
  std::string bytes{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
  REQUIRE_FALSE(bytes.empty());
  return bytes;
}

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  REQUIRE(EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr) == 1);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xf];
  }
  return hex;
}

}  // namespace

TEST_CASE("the plugin ABI header is the one pinned for its version") {
  const std::string bytes = read_bytes(EMSNODE_ABI_HEADER);

  const std::string version =
      std::to_string(EMSNODE_ABI_MAJOR) + "." + std::to_string(EMSNODE_ABI_MINOR);
  const std::string actual = sha256_hex(bytes);
  const std::string new_entry = "{\"" + version + "\", \"" + actual + "\"}";
  const std::string table = std::string("kPinnedHashes in ") + __FILE__;
  const auto pinned = kPinnedHashes.find(version);
  if (pinned == kPinnedHashes.end()) {
    FAIL("plugin_abi.h declares ABI " + version + ", which has no pinned hash. If this is a " +
         "deliberate new version, add " + new_entry + " to " + table + ".");
  }
  if (pinned->second != actual) {
    FAIL("plugin_abi.h changed but still declares ABI " + version + ", which plugins in the " +
         "field were built against. Revert the edit, or bump the version: EMSNODE_ABI_MINOR " +
         "for an append-only change (a function at the end of a table, a field at the end of " +
         "a struct, a new enum value), EMSNODE_ABI_MAJOR for anything else. Then add the new " +
         "version's hash to " + table + " (it is " + actual + "); never edit an existing entry.");
  }
}

TEST_CASE("the ABI 1.0 header the compatibility tests build old plugins with is the shipped one") {
  // tests/host builds its 1.0 test plugins against this copy: it must be the exact bytes that
  // plugins in the field were compiled against.
  CHECK(sha256_hex(read_bytes(EMSNODE_ABI_1_0_HEADER)) == kPinnedHashes.at("1.0"));
}

TEST_CASE("the ABI 1.2 header the compatibility tests build the old echo with is the shipped one") {
  // tests/host builds the echo example of ABI 1.2 against this copy (with the 1.2 plugin.hpp).
  CHECK(sha256_hex(read_bytes(EMSNODE_ABI_1_2_HEADER)) == kPinnedHashes.at("1.2"));
}

TEST_CASE("the rest of the SDK 1.2 fixture is the bytes that shipped with ABI 1.2") {
  // The wrapper headers and the echo example as they were at ABI 1.2 (tests/sdk/abi_1_2,
  // tests/host/echo_1_2): tests/host builds them into the plugin a 1.2 user has in the field. A
  // formatter or an edit must not touch them, or the test no longer proves that such a plugin runs.
  const std::map<std::string, std::string> shipped = {
      {"sdk/abi_1_2/emsnode/plugin.hpp",
       "b3d6e02328667dbd396b9576e7d50b96864cf695c2141a8bbe9678e978fe327e"},
      {"sdk/abi_1_2/emsnode/listen_address.hpp",
       "b963d93982728a3ae2b8bc5dbad81b8820b488021c40f2527a269b3332d17914"},
      {"host/echo_1_2/echo_plugin.cpp",
       "3c728fe4dbed2ed431162d6b037389294d6391ec00e28af06c367c4d752a0bea"},
      {"host/echo_1_2/echo_server.cpp",
       "1e62477b5569dded3e12fa0350a82ddc410449ab29223212e1436dbc72958644"},
      {"host/echo_1_2/echo_server.hpp",
       "c33b3bb4a9c411026b3217228a9b11154be1d7b2e8deb4564249a97d183f8ea0"},
      {"host/echo_1_2/plugin.toml",
       "11433bd46db7d9bd8063cb824b633ee3c72d3b9f13e71563c0bd4541297c49f5"},
  };
  for (const auto& [file, hash] : shipped) {
    INFO(file);
    CHECK(sha256_hex(read_bytes((std::string(EMSNODE_TESTS_DIR) + "/" + file).c_str())) == hash);
  }
}

TEST_CASE("a C compiler and a C++ compiler lay the ABI tables out alike") {
  CHECK(emsnode_abi_c_sizeof_host_api() == sizeof(emsnode_host_api));
  CHECK(emsnode_abi_c_sizeof_plugin_api() == sizeof(emsnode_plugin_api));
  CHECK(emsnode_abi_c_sizeof_db_value() == sizeof(emsnode_db_value));
  CHECK(emsnode_abi_c_offsetof_db_value_bytes() == offsetof(emsnode_db_value, bytes));
  CHECK(emsnode_abi_c_sizeof_store_info() == sizeof(emsnode_store_info));
  CHECK(emsnode_abi_c_offsetof_store_info_sha256() == offsetof(emsnode_store_info, sha256));
}
