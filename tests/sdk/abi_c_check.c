/* Compiles plugin_abi.h as strict C99 (the contract says C99), and reports the tables' sizes so
 * abi_pin_test.cpp can compare them with the C++ compiler's. */
#include <emsnode/plugin_abi.h>

size_t emsnode_abi_c_sizeof_host_api(void) {
  return sizeof(emsnode_host_api);
}
size_t emsnode_abi_c_sizeof_plugin_api(void) {
  return sizeof(emsnode_plugin_api);
}
