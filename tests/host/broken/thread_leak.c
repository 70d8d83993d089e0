/* Failure mode: start starts a thread that stop never joins. Only the conformance checker can
 * see this (it counts the process's threads); the thread ends by itself after 10s. */
#include <pthread.h>

#include "test_plugin.h"

static void* linger(void* arg) {
  (void)arg;
  tp_sleep_ms(10000);
  return NULL;
}

static emsnode_status start(void* instance) {
  pthread_t thread;
  if (pthread_create(&thread, NULL, linger, NULL) != 0) {
    return tp_fail(*(tp_host*)instance, "pthread_create failed");
  }
  pthread_detach(thread);
  return EMSNODE_OK;
}

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-thread-leak", "1.0.0", tp_create, start, tp_stop,
          tp_destroy)
