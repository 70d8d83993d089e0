/* Failure mode: uses a newer minor of an API than its exporter offers (seats.v1.2 against
 * t-api-exporter's seats.v1.1). The host refuses it from the manifests; none of this code runs. */
#include "test_plugin.h"

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-uses-newer", "1.0.0", tp_create, tp_start,
          tp_stop, tp_destroy)
