/* ThreadSanitizer builds only (EMSNODE_SANITIZE=thread): pthread_mutex_clocklock for gcc 12's
 * libtsan, which does not intercept it. libstdc++'s std::timed_mutex::try_lock_until on
 * steady_clock calls it, so ThreadSanitizer never sees that lock taken, reports "unlock of an
 * unlocked mutex" at the unlock, and misses the ordering the lock gives. This definition, linked
 * into every executable of such a build ahead of glibc's, takes the lock through
 * pthread_mutex_timedlock, which libtsan does intercept, with the deadline moved to
 * CLOCK_REALTIME: the same wait unless the wall clock jumps meanwhile. */
#define _GNU_SOURCE
#include <pthread.h>
#include <time.h>

int pthread_mutex_clocklock(pthread_mutex_t* mutex, clockid_t clock,
                            const struct timespec* deadline) {
  struct timespec now_on_clock;
  struct timespec now_realtime;
  clock_gettime(clock, &now_on_clock);
  clock_gettime(CLOCK_REALTIME, &now_realtime);
  long long ns = (long long)(deadline->tv_sec - now_on_clock.tv_sec) * 1000000000LL +
                 (deadline->tv_nsec - now_on_clock.tv_nsec) + now_realtime.tv_nsec;
  struct timespec realtime_deadline;
  realtime_deadline.tv_sec = now_realtime.tv_sec + ns / 1000000000LL;
  realtime_deadline.tv_nsec = ns % 1000000000LL;
  if (realtime_deadline.tv_nsec < 0) {
    realtime_deadline.tv_nsec += 1000000000LL;
    realtime_deadline.tv_sec -= 1;
  }
  return pthread_mutex_timedlock(mutex, &realtime_deadline);
}
