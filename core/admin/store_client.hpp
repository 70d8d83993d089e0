// `emsnode store put|get|stat|ls|rm|migrate`: the CLI side of the admin endpoint's file store
// routes. Everything goes through the running node, so that writes carry the active node's
// epoch; files stream both ways, so that memory stays flat whatever their size:
//
//   StoreStreams streams{std::cin, std::cout, std::cerr, isatty(2) ? &std::cerr : nullptr};
//   return store_verb(target, {"put", "installers/agent.msi", "agent.msi"}, streams);
//
// A put sends `Expect: 100-continue`, so that a refusal (not the active node, a bad key, no token)
// comes before the body is sent, and it listens for the node's answer while it sends, so that a
// failure in the middle (the store full) is reported as the node gave it. A get verifies the
// content against the node's X-Emsnode-Sha256 and writes a file through a temporary file beside
// it, renamed into place only once verified: a corrupt or cut transfer never leaves a file.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "admin/admin_client.hpp"

namespace emsnode::admin {

// Where a verb's bytes come from and go to.
struct StoreStreams {
  std::istream& in;                  // the content of `put KEY -`
  std::ostream& out;                 // answers, and the content of `get KEY -`
  std::ostream& err;                 // errors
  std::ostream* progress = nullptr;  // a terminal to draw progress on; null draws nothing
};

// `args`: {"put", KEY, FILE|-}, {"get", KEY, FILE|-}, {"stat", KEY}, {"ls"}, {"ls", PREFIX},
// {"rm", KEY} or {"migrate", "blob"|"share"}. Returns 0 on success; 1 when the node refused or
// failed, or could not be reached (the reason on `err`); 2 for a usage error.
int store_verb(const Target& target, const std::vector<std::string>& args, StoreStreams& streams);

// `emsnode store put KEY FILE|-`: 0 when the node stored it, 1 when FILE cannot be read or the
// node refused or failed (its message on `err`).
int store_put(const Target& target, const std::string& key, const std::string& file,
              StoreStreams& streams);
// `emsnode store get KEY FILE|-`: 0 when the content arrived whole and matched its SHA-256, else
// 1. With `-` the bytes reach `out` before the check completes; only the status tells.
int store_get(const Target& target, const std::string& key, const std::string& file,
              StoreStreams& streams);

// A transfer's progress line on a terminal: bytes, percent of the total when known, and rate,
// redrawn at most 10 times a second. Transfers of up to kMinBytes draw nothing.
class Progress {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::uint64_t kMinBytes = 4 * 1024 * 1024;

  // `terminal` null: draws nothing. `total`: nullopt when unknown (standard input).
  Progress(std::ostream* terminal, std::string label, std::optional<std::uint64_t> total,
           std::function<Clock::time_point()> now = &Clock::now);
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // `bytes` more went through.
  void advance(std::uint64_t bytes);
  // Draws the final state and ends the line, if anything was drawn.
  void finish();

 private:
  bool worth_drawing() const;
  void draw();

  std::ostream* terminal_;
  const std::string label_;
  const std::optional<std::uint64_t> total_;
  const std::function<Clock::time_point()> now_;
  const Clock::time_point started_;
  Clock::time_point drawn_at_;
  std::uint64_t done_ = 0;
  std::size_t drawn_width_ = 0;  // 0: nothing drawn yet
};

}  // namespace emsnode::admin
