// Failure mode: an active-only command handler lets a C++ exception cross the C ABI (a plugin
// written without the SDK's wrapper, which would catch it). The host must answer the call as a
// failure, not terminate.
#include <stdexcept>

#include "test_plugin.h"

namespace {

emsnode_status explode(void*, emsnode_command_call*) {
  throw std::runtime_error("the handler crashed");
}

emsnode_status create(const emsnode_host_api* api, emsnode_host_ctx* ctx, void** instance) {
  if (tp_create(api, ctx, instance) != EMSNODE_OK) return EMSNODE_ERROR;
  return api->command_handle(ctx, TP_STR("explode"), explode, *instance);
}

const emsnode_plugin_api kApi = {sizeof(emsnode_plugin_api),
                                 EMSNODE_ABI_MAJOR,
                                 EMSNODE_ABI_MINOR,
                                 TP_STR("t-command-throws"),
                                 TP_STR("1.0.0"),
                                 create,
                                 tp_start,
                                 tp_stop,
                                 tp_destroy};

}  // namespace

extern "C" EMSNODE_PLUGIN_EXPORT const emsnode_plugin_api* emsnode_plugin_entry(uint16_t,
                                                                                uint16_t) {
  return &kApi;
}
