/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "mpq-queue.h"
#include "mpq-queue-redis-thread-private.h"

/* Leases on what a participant of a queue on Redis holds (docs/redis.md,
 * "Leases"): the scripts RENEW and RECLAIM (mpq-queue-redis-lua.c)
 * as the library's thread runs them, and what the user's thread tells it. */

/* Runs @script on the thread's connection with @first (@n_first of
 * them, at most 2) then @seqs as its arguments, as many calls as it
 * takes. The library's thread. */
gboolean
_mpq_redis_thread_run_for_seqs (MpqRedisThread  *thread,
                                MpqRedisScript   script,
                                guint            n_first,
                                const char     **first,
                                GPtrArray       *seqs,
                                GError         **error)
{
  const guint chunk = MPQ_REDIS_MAX_ARGS - 2;
  const char *args[MPQ_REDIS_MAX_ARGS];

  g_assert (n_first <= 2);
  for (guint i = 0; i < n_first; i++)
    args[i] = first[i];
  for (guint i = 0; i < seqs->len; i += chunk)
    {
      guint n = MIN (seqs->len - i, chunk);
      redisReply *reply;

      memcpy (args + n_first, seqs->pdata + i, n * sizeof (char *));
      reply = _mpq_redis_run (thread->redis, &thread->scripts, script, thread->prefix,
                              n_first + n, args, NULL, error);
      if (reply == NULL)
        return FALSE;
      freeReplyObject (reply);
    }
  return TRUE;
}

gboolean
_mpq_redis_thread_settle (MpqRedisThread  *thread,
                          MpqRedisScript   script,
                          GPtrArray       *seqs,
                          GError         **error)
{
  return _mpq_redis_thread_run_for_seqs (thread, script, 0, NULL, seqs, error);
}

/* Any thread, with the lock: the deferred ones go to @acks, counted. */
static guint
defer_to_acks_locked (MpqRedisThread *thread)
{
  guint n = thread->deferred->len;

  g_ptr_array_extend_and_steal (thread->acks, g_steal_pointer (&thread->deferred));
  thread->deferred = g_ptr_array_new_with_free_func (g_free);
  thread->acks_queued += n;
  return n;
}

/* Leases: what this process holds, and its own as a participant, are
 * renewed every quarter of the lease-time, so a late turn of a loaded machine does not lose it; what
 * any participant held past its lease goes back to the front when the
 * server says it ended, or at the latest a lease-time after the last
 * look (a lease taken meanwhile by another ends after that). The
 * library's thread. */
gboolean
_mpq_redis_thread_keep_leases (MpqRedisThread  *thread,
                               gboolean        *more,
                               GError         **error)
{
  gint64 now = g_get_monotonic_time ();
  gint64 lease_us;

  _mpq_mutex_lock (&thread->lock);
  lease_us = (gint64) thread->lease_ms * 1000;
  _mpq_mutex_unlock (&thread->lock);
  /* A message held by the user's thread (its lease is the shorter one
   * then) counts from now; a new lease-time is renewed with at once, so
   * that the participant's own lease (from its hello, with the default)
   * says it too: others watch it. */
  thread->next_renew = MIN (thread->next_renew, now + MAX (lease_us / 4, 1));
  if (lease_us != thread->renewed_lease_us)
    thread->next_renew = now;

  if (now >= thread->next_renew)
    {
      g_autoptr(GPtrArray) seqs = g_ptr_array_new_with_free_func (g_free);
      char lease[16];
      const char *first[2] = { thread->me, lease };
      GHashTableIter iter;
      gpointer key;

      _mpq_mutex_lock (&thread->lock);
      g_snprintf (lease, sizeof lease, "%u", thread->lease_ms);
      g_hash_table_iter_init (&iter, thread->in_hand);
      while (g_hash_table_iter_next (&iter, &key, NULL))
        g_ptr_array_add (seqs, g_strdup (key));
      _mpq_mutex_unlock (&thread->lock);

      /* With nothing in hand, it still renews the participant's own
       * lease: others watch it (docs/redis.md, "Who is gone"). */
      if (seqs->len == 0)
        {
          redisReply *reply = _mpq_redis_run (thread->redis, &thread->scripts, MPQ_REDIS_RENEW,
                                              thread->prefix, 2, first, NULL, error);

          if (reply == NULL)
            return FALSE;
          freeReplyObject (reply);
        }
      else if (!_mpq_redis_thread_run_for_seqs (thread, MPQ_REDIS_RENEW, 2, first, seqs, error))
        return FALSE;
      thread->next_renew = now + MAX (lease_us / 4, 1);
      thread->renewed_lease_us = lease_us;

      /* What the user's thread took and made no call since: acknowledged
       * well before its lease ends. */
      _mpq_mutex_lock (&thread->lock);
      *more = defer_to_acks_locked (thread) > 0;
      _mpq_mutex_unlock (&thread->lock);
    }

  if (now >= thread->next_reclaim)
    {
      redisReply *reply = _mpq_redis_run (thread->redis, &thread->scripts, MPQ_REDIS_RECLAIM,
                                          thread->prefix, 0, NULL, NULL, error);
      long long next_ms;

      if (reply == NULL)
        return FALSE;
      next_ms = _mpq_redis_reply_int (reply, 1);
      freeReplyObject (reply);
      thread->next_reclaim = now + (next_ms >= 0 ? MIN (next_ms * 1000 + 1000, lease_us)
                                                 : lease_us);
    }
  return TRUE;
}

/* The user's thread: the lease of what is taken from now on, and the
 * next renewal of what is held. */
void
_mpq_redis_thread_set_lease_time (MpqRedisThread *thread,
                                  guint           lease_time_ms)
{
  _mpq_mutex_lock (&thread->lock);
  thread->lease_ms = lease_time_ms;
  _mpq_mutex_unlock (&thread->lock);
  _mpq_redis_thread_wake (thread);
}

/* The user's thread. */
void
_mpq_redis_thread_hold (MpqRedisThread *thread,
                        const char     *seq)
{
  _mpq_mutex_lock (&thread->lock);
  g_hash_table_add (thread->in_hand, g_strdup (seq));
  _mpq_mutex_unlock (&thread->lock);
  _mpq_redis_thread_wake (thread);
}

/* The user's thread. */
void
_mpq_redis_thread_done (MpqRedisThread *thread,
                        const char     *seq)
{
  _mpq_mutex_lock (&thread->lock);
  g_ptr_array_add (thread->deferred, g_strdup (seq));
  _mpq_mutex_unlock (&thread->lock);
}

/* The user's thread. */
GPtrArray *
_mpq_redis_thread_steal_deferred (MpqRedisThread *thread,
                                  guint           max)
{
  GPtrArray *seqs = g_ptr_array_new_with_free_func (g_free);

  _mpq_mutex_lock (&thread->lock);
  while (thread->deferred->len > 0 && seqs->len < max)
    g_ptr_array_add (seqs, g_ptr_array_steal_index_fast (thread->deferred,
                                                         thread->deferred->len - 1));
  _mpq_mutex_unlock (&thread->lock);
  return seqs;
}

/* The user's thread. */
void
_mpq_redis_thread_return_deferred (MpqRedisThread *thread,
                                   GPtrArray      *seqs)
{
  _mpq_mutex_lock (&thread->lock);
  g_ptr_array_extend_and_steal (thread->deferred, seqs);
  _mpq_mutex_unlock (&thread->lock);
}

/* The user's thread. */
void
_mpq_redis_thread_flush_acks (MpqRedisThread *thread)
{
  guint64 target;

  /* Dispatch wakes the thread once per batch: a join from a handler
   * must not wait for the batch's end. */
  _mpq_redis_thread_wake (thread);
  _mpq_mutex_lock (&thread->lock);
  defer_to_acks_locked (thread);
  target = thread->acks_queued;
  while (thread->acks_done < target && !thread->lost && !thread->outage && !thread->quit)
    _mpq_cond_wait (&thread->cond, &thread->lock);
  _mpq_mutex_unlock (&thread->lock);
}

/* The user's thread. */
void
_mpq_redis_thread_unhold (MpqRedisThread *thread,
                          const char     *seq)
{
  _mpq_mutex_lock (&thread->lock);
  g_hash_table_remove (thread->in_hand, seq);
  _mpq_mutex_unlock (&thread->lock);
}

void
_mpq_queue_redis_lease_time_from_env (guint *lease_time_ms)
{
  const char *text = g_getenv (MPQ_QUEUE_LEASE_TIME_ENV);
  guint64 value;

  if (text != NULL && g_ascii_string_to_unsigned (text, 10, 1, G_MAXINT, &value, NULL))
    *lease_time_ms = (guint) value;
}
