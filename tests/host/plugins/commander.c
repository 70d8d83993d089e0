/* A well-behaved plugin with control commands: `echo-args` answers with every argument it was
 * given (each type read through command_arg), `active` answers only while started, and `fail`
 * returns the status its `status` argument names, with a reason, so the tests see each mapping
 * from the handler's status to the caller's. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "test_plugin.h"

static emsnode_status echo_args(void* user_data, emsnode_command_call* call) {
  const tp_host* host = (const tp_host*)user_data;
  const emsnode_host_api* api = host->api;
  emsnode_db_value name, times, loud, wait, ratio, token, missing;
  if (api->command_arg(call, tp_str("name"), &name) != EMSNODE_OK ||
      api->command_arg(call, tp_str("times"), &times) != EMSNODE_OK ||
      api->command_arg(call, tp_str("loud"), &loud) != EMSNODE_OK ||
      api->command_arg(call, tp_str("wait"), &wait) != EMSNODE_OK) {
    api->command_fail(call, tp_str("an argument with a default is missing"));
    return EMSNODE_ERROR;
  }
  /* Optional, without a default: NOT_FOUND unless given. */
  const int has_ratio = api->command_arg(call, tp_str("ratio"), &ratio) == EMSNODE_OK;
  const int has_token = api->command_arg(call, tp_str("token"), &token) == EMSNODE_OK;
  if (api->command_arg(call, tp_str("undeclared"), &missing) != EMSNODE_NOT_FOUND) {
    api->command_fail(call, tp_str("an undeclared argument was found"));
    return EMSNODE_ERROR;
  }
  char reply[1024];
  snprintf(reply, sizeof reply,
           "{\"name\":\"%.*s\",\"times\":%" PRId64 ",\"loud\":%" PRId64 ",\"wait_ms\":%" PRId64
           ",\"ratio\":%g,\"token\":\"%.*s\"}",
           (int)name.bytes.len, name.bytes.ptr, times.integer, loud.integer, wait.integer,
           has_ratio ? ratio.floating : -1.0, has_token ? (int)token.bytes.len : 0,
           has_token ? token.bytes.ptr : "");
  if (api->command_reply(call, tp_str("not json")) != EMSNODE_ERROR) {
    api->command_fail(call, tp_str("the host accepted an answer that is not JSON"));
    return EMSNODE_ERROR;
  }
  return api->command_reply(call, tp_str(reply));
}

static emsnode_status active(void* user_data, emsnode_command_call* call) {
  (void)user_data;
  (void)call; /* no answer: the caller gets {} */
  return EMSNODE_OK;
}

static emsnode_status fail(void* user_data, emsnode_command_call* call) {
  const tp_host* host = (const tp_host*)user_data;
  emsnode_db_value status;
  host->api->command_arg(call, tp_str("status"), &status);
  char reason[64];
  snprintf(reason, sizeof reason, "failed with status %.*s", (int)status.bytes.len,
           status.bytes.ptr);
  if (strncmp(status.bytes.ptr, "silent", status.bytes.len) != 0) {
    host->api->command_fail(call, tp_str(reason));
  }
  if (strncmp(status.bytes.ptr, "invalid", status.bytes.len) == 0) return EMSNODE_INVALID;
  if (strncmp(status.bytes.ptr, "not_found", status.bytes.len) == 0) return EMSNODE_NOT_FOUND;
  if (strncmp(status.bytes.ptr, "fenced", status.bytes.len) == 0) return EMSNODE_FENCED;
  return EMSNODE_ERROR;
}

static emsnode_status create(const emsnode_host_api* api, emsnode_host_ctx* ctx, void** instance) {
  if (tp_create(api, ctx, instance) != EMSNODE_OK) return EMSNODE_ERROR;
  tp_host* host = (tp_host*)*instance;
  if (api->command_handle(ctx, tp_str("echo-args"), echo_args, host) != EMSNODE_OK ||
      api->command_handle(ctx, tp_str("active"), active, host) != EMSNODE_OK ||
      api->command_handle(ctx, tp_str("fail"), fail, host) != EMSNODE_OK) {
    free(host);
    return tp_fail((tp_host){api, ctx}, "command_handle refused a declared command");
  }
  /* Refused: a second handler, and a command plugin.toml does not declare. */
  if (api->command_handle(ctx, tp_str("fail"), fail, host) != EMSNODE_ERROR ||
      api->command_handle(ctx, tp_str("undeclared"), fail, host) != EMSNODE_ERROR) {
    free(host);
    return tp_fail((tp_host){api, ctx}, "command_handle accepted a duplicate or undeclared name");
  }
  return EMSNODE_OK;
}

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-commander", "1.0.0", create, tp_start, tp_stop,
          tp_destroy)
