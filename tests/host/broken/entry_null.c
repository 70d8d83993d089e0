/* Failure mode: the entry point returns NULL, as a plugin that cannot work with the host's ABI
 * may. The host must refuse it rather than dereference the table. */
#include "test_plugin.h"

EMSNODE_PLUGIN_EXPORT const emsnode_plugin_api* emsnode_plugin_entry(uint16_t host_major,
                                                                     uint16_t host_minor) {
  (void)host_major;
  (void)host_minor;
  return NULL;
}
