/* Compiles plugin_abi.h as strict C99 (the contract says C99), and reports the tables' sizes (and
 * the layout of emsnode_db_value, which crosses in arrays, and of emsnode_store_info) so
 * abi_pin_test.cpp can compare them with the C++ compiler's. */
#include <emsnode/plugin_abi.h>

size_t emsnode_abi_c_sizeof_host_api(void) {
  return sizeof(emsnode_host_api);
}
size_t emsnode_abi_c_sizeof_plugin_api(void) {
  return sizeof(emsnode_plugin_api);
}
size_t emsnode_abi_c_sizeof_db_value(void) {
  return sizeof(emsnode_db_value);
}
size_t emsnode_abi_c_offsetof_db_value_bytes(void) {
  return offsetof(emsnode_db_value, bytes);
}
size_t emsnode_abi_c_sizeof_store_info(void) {
  return sizeof(emsnode_store_info);
}
size_t emsnode_abi_c_offsetof_store_info_sha256(void) {
  return offsetof(emsnode_store_info, sha256);
}
