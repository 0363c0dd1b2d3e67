/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "mpq-error.h"
#include "mpq-queue-redis-thread-private.h"
#include "mpq-source-private.h"

/* What a queue on Redis does when it loses the server (docs/redis.md,
 * "Outages"): the library's thread connects again with back-off, from
 * 10 ms doubling to 1 s, and gives up once the server has been gone for
 * a lease-time (what it held may be others' by then), or at once if the
 * server came back without the queue (it lost its data). Giving up
 * closes the queue in its maker's context. Meanwhile a call of the
 * user's whose own connection failed waits for the thread as long as its
 * time-out allows, then connects again and goes on. */

#define BACK_OFF_FIRST_MS 10
#define BACK_OFF_MAX_MS   1000

/* The creator's context: the queue closes, unless its user closed it
 * first. */
static gboolean
give_up_cb (gpointer user_data)
{
  MpqRedisThread *thread = user_data;
  gboolean quit;

  _mpq_mutex_lock (&thread->lock);
  quit = thread->quit;
  _mpq_mutex_unlock (&thread->lock);
  if (!quit)
    mpq_channel_close (thread->channel);
  return G_SOURCE_REMOVE;
}

/* The library's thread: what waits fails with @error (taken), dispatch's
 * source runs, and the queue closes. */
static void
give_up (MpqRedisThread *thread,
         GError         *error)
{
  GQueue tasks = G_QUEUE_INIT;
  GTask *task;
  GSource *source;

  /* Before anyone hears it gave up: whoever sees a call fail for it
   * finds ::closed on its way. */
  source = g_idle_source_new ();
  g_source_set_callback (source, give_up_cb, _mpq_redis_thread_ref (thread),
                         (GDestroyNotify) _mpq_redis_thread_unref);
  g_source_set_static_name (source, "[mpq] redis queue gave up");
  g_source_attach (source, thread->context);
  g_source_unref (source);

  _mpq_mutex_lock (&thread->lock);
  thread->lost = TRUE;
  _mpq_cond_broadcast (&thread->cond);
  while ((task = g_queue_pop_head (&thread->wants)) != NULL)
    g_queue_push_tail (&tasks, task);
  while ((task = g_queue_pop_head (&thread->joins)) != NULL)
    g_queue_push_tail (&tasks, task);
  if (thread->deliver != NULL)
    g_source_set_ready_time (thread->deliver, 0);
  _mpq_mutex_unlock (&thread->lock);

  while ((task = g_queue_pop_head (&tasks)) != NULL)
    _mpq_redis_complete_later (thread, task, NULL, g_error_copy (error));
  g_error_free (error);
}

/* Both connections, to a server that still has the queue: TRUE; FALSE
 * with *@gone set when it came back without it. */
static gboolean
connect_again (MpqRedisThread *thread,
               gboolean       *gone)
{
  redisReply *reply;
  gint id = atoi (thread->me);

  thread->redis = _mpq_redis_connect (thread->uri, NULL);
  if (thread->redis != NULL)
    thread->events = _mpq_redis_connect (thread->uri, NULL);
  if (thread->events == NULL)
    return FALSE;

  /* A server still loading its data answers LOADING: not yet. */
  reply = _mpq_redis_run (thread->redis, &thread->scripts, MPQ_REDIS_IDS, thread->prefix, 0,
                          NULL, NULL, NULL);
  if (reply == NULL)
    return FALSE;
  *gone = reply->type != REDIS_REPLY_INTEGER || reply->integer < id;
  freeReplyObject (reply);
  return !*gone;
}

gboolean
_mpq_redis_thread_reconnect (MpqRedisThread *thread,
                             GError         *error)
{
  gint64 since = g_get_monotonic_time ();
  gint64 delay_ms = BACK_OFF_FIRST_MS;

  for (;;)
    {
      struct pollfd wake = { thread->wake_fd, POLLIN, 0 };
      gboolean quit, gone = FALSE;
      gint64 give_up_at, now;
      guint64 count;

      g_clear_pointer (&thread->redis, redisFree);
      g_clear_pointer (&thread->events, redisFree);
      thread->subscribed = 0;

      _mpq_mutex_lock (&thread->lock);
      /* A join waiting for our acknowledgements goes on to wait as its
       * own time-out says. */
      if (!thread->outage)
        _mpq_cond_broadcast (&thread->cond);
      thread->outage = TRUE;
      quit = thread->quit;
      give_up_at = since + (gint64) thread->lease_ms * 1000;
      _mpq_mutex_unlock (&thread->lock);
      if (quit)
        {
          g_error_free (error);
          return FALSE;
        }

      if (connect_again (thread, &gone))
        {
          _mpq_mutex_lock (&thread->lock);
          thread->outage = FALSE;
          _mpq_cond_broadcast (&thread->cond);
          _mpq_mutex_unlock (&thread->lock);
          /* Renew what we hold, and look at the others', at once. */
          thread->next_renew = 0;
          thread->next_reclaim = 0;
          g_error_free (error);
          return TRUE;
        }

      now = g_get_monotonic_time ();
      if (gone || now >= give_up_at)
        {
          if (gone)
            {
              g_clear_error (&error);
              g_set_error (&error, MPQ_ERROR, MPQ_ERROR_CLOSED,
                           "The Redis server came back without the queue %s", thread->prefix);
            }
          g_clear_pointer (&thread->redis, redisFree);
          g_clear_pointer (&thread->events, redisFree);
          give_up (thread, error);
          return FALSE;
        }

      /* The back-off, or a close () from the user's thread. */
      while (poll (&wake, 1, (int) MIN (delay_ms, (give_up_at - now + 999) / 1000)) < 0 &&
             errno == EINTR)
        ;
      if (wake.revents != 0)
        while (read (thread->wake_fd, &count, sizeof count) < 0 && errno == EINTR)
          ;
      delay_ms = MIN (delay_ms * 2, BACK_OFF_MAX_MS);
    }
}

void
_mpq_redis_thread_probed (MpqRedisThread *thread)
{
  _mpq_mutex_lock (&thread->lock);
  thread->probe = FALSE;
  _mpq_cond_broadcast (&thread->cond);
  _mpq_mutex_unlock (&thread->lock);
}

/* The user's thread. */
gboolean
_mpq_redis_thread_wait_server (MpqRedisThread  *thread,
                               gint64           deadline,
                               GError         **error)
{
  gboolean back = FALSE, lost;

  _mpq_mutex_lock (&thread->lock);
  thread->probe = TRUE;
  _mpq_mutex_unlock (&thread->lock);
  _mpq_redis_thread_wake (thread);

  _mpq_mutex_lock (&thread->lock);
  for (;;)
    {
      if (thread->lost)
        break;
      if (!thread->outage && !thread->probe)
        {
          back = TRUE;
          break;
        }
      if (deadline < 0)
        _mpq_cond_wait (&thread->cond, &thread->lock);
      else if (!_mpq_cond_wait_until (&thread->cond, &thread->lock, deadline))
        break;
    }
  lost = thread->lost;
  _mpq_mutex_unlock (&thread->lock);

  if (!back)
    g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_CLOSED,
                         lost ? "Gave up the Redis server: the queue is closed"
                              : "The Redis server is unreachable (the queue keeps trying)");
  return back;
}
