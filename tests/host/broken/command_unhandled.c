/* Failure mode: plugin.toml declares a command that create leaves without a handler. The host
 * must refuse the plugin at create, naming the command. */
#include "test_plugin.h"

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-command-unhandled", "1.0.0", tp_create, tp_start,
          tp_stop, tp_destroy)
