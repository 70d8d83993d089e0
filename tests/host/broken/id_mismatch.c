/* Failure mode: the library's compiled-in id differs from its plugin.toml ("t-id-mismatch"),
 * as when a library is dropped into another plugin's folder. */
#include "test_plugin.h"

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-someone-else", "1.0.0", tp_create, tp_start,
          tp_stop, tp_destroy)
