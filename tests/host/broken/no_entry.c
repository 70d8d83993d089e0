/* Failure mode: no emsnode_plugin_entry. The entry point is misspelt, as a plugin built without
 * the SDK might have it; the host must refuse the library by name, without running its code. */
#include "test_plugin.h"

static const emsnode_plugin_api kApi = {sizeof(emsnode_plugin_api),
                                        EMSNODE_ABI_MAJOR,
                                        EMSNODE_ABI_MINOR,
                                        TP_STR("t-no-entry"),
                                        TP_STR("1.0.0"),
                                        tp_create,
                                        tp_start,
                                        tp_stop,
                                        tp_destroy};

EMSNODE_PLUGIN_EXPORT const emsnode_plugin_api* emsnode_plugin_entry_v1(uint16_t host_major,
                                                                        uint16_t host_minor) {
  (void)host_major;
  (void)host_minor;
  return &kApi;
}
