/* The shared API the host tests' exporters hand over and their users take: a table laid out as
 * plugin_abi.h's SHARED APIS asks (its own struct_size first, grown only at the end). */
#ifndef EMSNODE_TESTS_HOST_SEATS_API_H
#define EMSNODE_TESTS_HOST_SEATS_API_H

#include <stdint.h>

typedef struct tp_seats_v1 {
  uint32_t struct_size;
  /* The seats the license grants. THREAD: any; works whether or not the exporter is started. */
  int64_t (*seats)(void);
  /* since 1.1: whether the exporter is started now. THREAD: any. */
  int (*started)(void);
} tp_seats_v1;

#endif
