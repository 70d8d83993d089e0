// Failure mode: start lets a C++ exception cross the C ABI (a plugin written without the SDK's
// wrapper, which would catch it). The host must report it as a failed start, not terminate.
#include <stdexcept>

#include "test_plugin.h"

namespace {

emsnode_status start(void*) {
  throw std::runtime_error("database handshake failed");
}

const emsnode_plugin_api kApi = {sizeof(emsnode_plugin_api),
                                 EMSNODE_ABI_MAJOR,
                                 EMSNODE_ABI_MINOR,
                                 TP_STR("t-start-throws"),
                                 TP_STR("1.0.0"),
                                 tp_create,
                                 start,
                                 tp_stop,
                                 tp_destroy};

}  // namespace

extern "C" EMSNODE_PLUGIN_EXPORT const emsnode_plugin_api* emsnode_plugin_entry(uint16_t,
                                                                                uint16_t) {
  return &kApi;
}
