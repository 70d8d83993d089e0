/* Failure mode: built for a minor newer than the host's: it may call host services the host
 * does not have. Its plugin.toml says "1.0" (the SDK's cmake would refuse more). */
#include "test_plugin.h"

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR + 1, "t-abi-minor", "1.0.0", tp_create, tp_start,
          tp_stop, tp_destroy)
