/* Failure mode: create refuses (say, a certificate file is missing). The node must not start,
 * and the refusal must carry the plugin's own reason. */
#include "test_plugin.h"

static emsnode_status create(const emsnode_host_api* api, emsnode_host_ctx* ctx, void** instance) {
  (void)instance;
  tp_host host = {api, ctx};
  return tp_fail(host, "certificate /etc/emsnode/missing.pem does not exist");
}

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-create-fails", "1.0.0", create, tp_start,
          tp_stop, tp_destroy)
