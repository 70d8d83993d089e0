/* Failure mode: plugin.toml declares an export that create never hands over. Its users would
 * find nothing: create must fail, naming the API. */
#include "test_plugin.h"

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-export-forgotten", "1.0.0", tp_create, tp_start,
          tp_stop, tp_destroy)
