/* Failure mode: built for another ABI major (2.0). Its plugin.toml still says "1.0", because the
 * SDK's cmake refuses a foreign ABI in the manifest; the host must catch the library itself. */
#include "test_plugin.h"

TP_PLUGIN(EMSNODE_ABI_MAJOR + 1, 0, "t-abi-major", "1.0.0", tp_create, tp_start, tp_stop,
          tp_destroy)
