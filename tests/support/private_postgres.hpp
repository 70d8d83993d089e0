// A PostgreSQL server of one test's own (tests/support/postgres_fixture.sh), for the tests that
// stop and start the server under a running node or Database: the run's shared server must stay
// up for every other test. Destroyed (stopped, data removed) with the object.
#pragma once

#include <string>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace emsnode::testing {

class PrivatePostgres {
 public:
  // `fixture`: the path of postgres_fixture.sh. Throws when the server cannot start: with the
  // skip marker (support/test_postgres.hpp) and the fixture's reason when PostgreSQL cannot run
  // here at all ("unavailable: ..."), as a failure when it can but did not start.
  explicit PrivatePostgres(std::string fixture) : fixture_(std::move(fixture)) {
    const Completed started = script("start");
    url_ = read_file(state_.path() / "url");
    while (!url_.empty() && url_.back() == '\n') url_.pop_back();
    if (url_.rfind("unavailable:", 0) == 0) {
      throw std::runtime_error("EMSNODE_SKIP: PostgreSQL private server " + url_);
    }
    if (started.status != 0 || url_.rfind("postgresql://", 0) != 0) {
      throw std::runtime_error("PostgreSQL private server did not start: " + url_ + started.err);
    }
  }
  ~PrivatePostgres() {
    try {
      script("destroy");
    } catch (const std::exception& error) {
      std::fprintf(stderr, "PrivatePostgres: %s\n", error.what());
    }
  }
  PrivatePostgres(const PrivatePostgres&) = delete;
  PrivatePostgres& operator=(const PrivatePostgres&) = delete;

  // The maintenance database, as the superuser (trusted on loopback).
  const std::string& url() const { return url_; }
  // Stops the server at once, as a crash would; start() brings it back on the same port.
  void stop() { check(script("stop-server"), "stop-server"); }
  void start() { check(script("start-server"), "start-server"); }

 private:
  Completed script(const std::string& command) {
    return run({"/bin/bash", fixture_, command, state_.path().string()}, state_.path(),
               std::chrono::seconds(90));
  }
  static void check(const Completed& done, const std::string& what) {
    if (done.status != 0) throw std::runtime_error("postgres_fixture.sh " + what + ": " + done.err);
  }

  std::string fixture_;
  TempDir state_;
  std::string url_;
};

}  // namespace emsnode::testing
