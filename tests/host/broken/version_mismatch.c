/* Failure mode: the library's compiled-in version differs from its plugin.toml ("1.0.0"), as
 * after an upgrade that replaced the library but not the manifest (whose schema may be stale). */
#include "test_plugin.h"

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-version-mismatch", "1.1.0", tp_create, tp_start,
          tp_stop, tp_destroy)
