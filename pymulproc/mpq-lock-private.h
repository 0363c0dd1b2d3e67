/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

/* The locks the library's threads share. They are GMutex and GCond,
 * except in a ThreadSanitizer build (-Db_sanitize=thread): GLib 2.74's
 * GMutex and GCond are futexes driven by atomics compiled outside the
 * sanitizer, so it would see no order between threads at all and report
 * every field they guard. There they are pthread mutexes and condition
 * variables, which ThreadSanitizer understands. All-zero memory is an
 * unlocked mutex and a fresh condition either way, so static ones need
 * no initialiser. */

#if defined(__SANITIZE_THREAD__)
# define MPQ_LOCK_PTHREAD 1
#elif defined(__has_feature)
# if __has_feature(thread_sanitizer)
#  define MPQ_LOCK_PTHREAD 1
# endif
#endif

#ifdef MPQ_LOCK_PTHREAD

#include <errno.h>
#include <pthread.h>
#include <time.h>

typedef pthread_mutex_t MpqMutex;
typedef pthread_cond_t  MpqCond;

static inline void _mpq_mutex_init  (MpqMutex *m) { pthread_mutex_init (m, NULL); }
static inline void _mpq_mutex_clear (MpqMutex *m) { pthread_mutex_destroy (m); }
static inline void _mpq_mutex_lock  (MpqMutex *m) { pthread_mutex_lock (m); }
static inline void _mpq_mutex_unlock (MpqMutex *m) { pthread_mutex_unlock (m); }
static inline void _mpq_cond_init   (MpqCond *c) { pthread_cond_init (c, NULL); }
static inline void _mpq_cond_clear  (MpqCond *c) { pthread_cond_destroy (c); }
static inline void _mpq_cond_wait   (MpqCond *c, MpqMutex *m) { pthread_cond_wait (c, m); }
static inline void _mpq_cond_signal (MpqCond *c) { pthread_cond_signal (c); }
static inline void _mpq_cond_broadcast (MpqCond *c) { pthread_cond_broadcast (c); }

/* @end_time is on the monotonic clock, as for g_cond_wait_until (). */
static inline gboolean
_mpq_cond_wait_until (MpqCond  *c,
                      MpqMutex *m,
                      gint64    end_time)
{
  gint64 left = end_time - g_get_monotonic_time ();
  struct timespec ts;

  if (left <= 0)
    return FALSE;
  clock_gettime (CLOCK_REALTIME, &ts);
  left += ts.tv_nsec / 1000;
  ts.tv_sec += left / G_USEC_PER_SEC;
  ts.tv_nsec = (left % G_USEC_PER_SEC) * 1000;
  return pthread_cond_timedwait (c, m, &ts) != ETIMEDOUT;
}

#else

typedef GMutex MpqMutex;
typedef GCond  MpqCond;

#define _mpq_mutex_init       g_mutex_init
#define _mpq_mutex_clear      g_mutex_clear
#define _mpq_mutex_lock       g_mutex_lock
#define _mpq_mutex_unlock     g_mutex_unlock
#define _mpq_cond_init        g_cond_init
#define _mpq_cond_clear       g_cond_clear
#define _mpq_cond_wait        g_cond_wait
#define _mpq_cond_signal      g_cond_signal
#define _mpq_cond_broadcast   g_cond_broadcast
#define _mpq_cond_wait_until  g_cond_wait_until

#endif
