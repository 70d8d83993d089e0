// The plugin host's refusal: one line naming the file and the reason, e.g.
//   /usr/lib/emsnode/plugins/mq/mq.so: built for ABI 2.0, this host speaks ABI 1.0 (...)
// The node does not start when it is thrown; `emsnode` prints what() and exits 2.
#pragma once

#include <stdexcept>

namespace emsnode::host {

class HostError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace emsnode::host
