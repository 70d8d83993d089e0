/* Failure mode: uses an API that no enabled plugin exports. The host refuses it from the
 * manifests, before any plugin is created; none of this code runs. */
#include "test_plugin.h"

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-uses-missing", "1.0.0", tp_create, tp_start,
          tp_stop, tp_destroy)
