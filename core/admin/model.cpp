#include "admin/model.hpp"

#include <cstdio>
#include <ctime>
#include <string>

namespace emsnode::admin {

std::string iso8601_utc(std::chrono::system_clock::time_point at) {
  using namespace std::chrono;
  // floor, not duration_cast: an instant before 1970 still names the second it is in.
  const auto ms = floor<milliseconds>(at.time_since_epoch());
  const auto s = floor<seconds>(ms);
  const std::time_t seconds_since_epoch = static_cast<std::time_t>(s.count());
  std::tm utc{};
  gmtime_r(&seconds_since_epoch, &utc);
  char text[48];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + n, sizeof text - n, ".%03dZ", static_cast<int>((ms - s).count()));
  return text;
}

}  // namespace emsnode::admin
