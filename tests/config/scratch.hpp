// Test fixtures that touch the machine: a private folder and environment variables, both
// restored when the test ends so tests stay independent.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>

#include <catch2/catch.hpp>

#include "config/schema.hpp"

namespace emsnode::config::testing {

class ScratchDir {
 public:
  ScratchDir() {
    std::random_device random;
    path_ = std::filesystem::temp_directory_path() /
            ("emsnode-config-test-" + std::to_string(random()) + std::to_string(random()));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ignored_on_purpose;  // a leftover temp folder must not fail a test
    std::filesystem::remove_all(path_, ignored_on_purpose);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  std::filesystem::path write(const std::string& name, std::string_view text) const {
    const auto file = path_ / name;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << text;
    return file;
  }
  // As write, readable by its owner only, as the node asks of a secret file.
  std::filesystem::path write_secret(const std::string& name, std::string_view text) const {
    const auto file = write(name, text);
    std::filesystem::permissions(
        file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    return file;
  }

 private:
  std::filesystem::path path_;
};

class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::optional<std::string>& value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    assign(value);
  }
  ~ScopedEnv() { assign(old_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  void assign(const std::optional<std::string>& value) {
    if (value) {
      ::setenv(name_.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }

  std::string name_;
  std::optional<std::string> old_;
};

// The ConfigError that `action` throws; fails the test when it throws none.
template <typename Action>
ConfigError config_error(Action&& action) {
  try {
    action();
  } catch (const ConfigError& error) {
    return error;
  }
  FAIL("expected a ConfigError, but none was thrown");
  throw std::logic_error("unreachable: FAIL throws");
}

}  // namespace emsnode::config::testing
