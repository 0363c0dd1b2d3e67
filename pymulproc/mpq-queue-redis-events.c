/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "mpq-error.h"
#include "mpq-queue-redis-thread-private.h"

/* What the library's thread of a queue on Redis waits for between its
 * turns: the queue's events it subscribed to (mpq-queue-redis-lua.c
 * publishes them), a wake-up from the user's thread, or the time to
 * renew or reclaim leases. The library's thread only. */

static char *
events_channel (MpqRedisThread *thread,
                guint           which)
{
  if (which == MPQ_REDIS_EVENTS_ANYONE)
    return g_strconcat (thread->prefix, "ev:a", NULL);
  if (which == MPQ_REDIS_EVENTS_MINE)
    return g_strconcat (thread->prefix, "ev:r", thread->me, NULL);
  return g_strconcat (thread->prefix, "ev:took", NULL);
}

/* SUBSCRIBE to the channels in @wanted not listened to yet and
 * UNSUBSCRIBE from the others, with their confirmations (events before an
 * UNSUBSCRIBE's are dropped: nobody waits for them). The library's
 * thread. */
static gboolean
set_subscribed (MpqRedisThread  *thread,
                guint            wanted,
                GError         **error)
{
  guint changes = 0;

  for (guint which = MPQ_REDIS_EVENTS_ANYONE; which <= MPQ_REDIS_EVENTS_TOOK; which <<= 1)
    if ((wanted & which) != (thread->subscribed & which))
      {
        g_autofree char *channel = events_channel (thread, which);
        const char *argv[2] = { (wanted & which) ? "SUBSCRIBE" : "UNSUBSCRIBE", channel };

        redisAppendCommandArgv (thread->events, G_N_ELEMENTS (argv), argv, NULL);
        changes++;
      }
  /* Each answers once; an event that comes between is dropped. */
  while (changes > 0)
    {
      void *reply = NULL;
      redisReply *r;

      if (redisGetReply (thread->events, &reply) != REDIS_OK)
        {
          g_set_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED, "Lost the Redis server: %s",
                       thread->events->errstr);
          return FALSE;
        }
      r = reply;
      if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
          r->element[0]->type == REDIS_REPLY_STRING &&
          (g_ascii_strcasecmp (r->element[0]->str, "subscribe") == 0 ||
           g_ascii_strcasecmp (r->element[0]->str, "unsubscribe") == 0))
        changes--;
      freeReplyObject (reply);
    }
  thread->subscribed = wanted;
  return TRUE;
}

/* Whether an event that matters was read already (hiredis buffers what
 * it read). A put's event names its tick: one no later than what a take
 * that found nothing saw is stale (its message was taken already). */
static gboolean
drain_events (MpqRedisThread *thread)
{
  gboolean any = FALSE;
  void *reply = NULL;

  while (redisGetReplyFromReader (thread->events, &reply) == REDIS_OK && reply != NULL)
    {
      redisReply *r = reply;
      guint64 tick;

      if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
          r->element[2]->type == REDIS_REPLY_STRING &&
          g_ascii_string_to_unsigned (r->element[2]->str, 10, 0, G_MAXINT64, &tick, NULL) &&
          (long long) tick <= thread->seen_put_tick)
        ;
      else
        any = TRUE;
      freeReplyObject (reply);
    }
  return any;
}

/* Waits for an event of the queue among @interested (MPQ_REDIS_EVENTS_*) or for a
 * wake-up from the user's thread. The library's thread. */
gboolean
_mpq_redis_thread_wait_event (MpqRedisThread  *thread,
                              guint            interested,
                              GError         **error)
{
  struct pollfd fds[2] = {
    { thread->wake_fd, POLLIN, 0 },
    { thread->events->fd, POLLIN, 0 },
  };
  gint64 wake_at = MIN (thread->next_renew, thread->next_reclaim);
  gint64 timeout_ms = MAX (wake_at - g_get_monotonic_time () + 999, 0) / 1000;
  guint64 count;

  if (interested != thread->subscribed)
    {
      guint added = interested & ~thread->subscribed;

      if (!set_subscribed (thread, interested, error))
        return FALSE;
      /* What happened before the subscription was not heard: look again. */
      if (added != 0)
        return TRUE;
    }
  if (thread->subscribed != 0 && drain_events (thread))
    return TRUE;

  while (poll (fds, thread->subscribed != 0 ? 2 : 1, (int) MIN (timeout_ms, G_MAXINT)) < 0 &&
         errno == EINTR)
    ;
  if (fds[0].revents != 0)
    while (read (thread->wake_fd, &count, sizeof count) < 0 && errno == EINTR)
      ;
  if (thread->subscribed != 0 && fds[1].revents != 0)
    {
      if (redisBufferRead (thread->events) != REDIS_OK)
        {
          g_set_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED, "Lost the Redis server: %s",
                       thread->events->errstr[0] != '\0' ? thread->events->errstr
                                                         : "connection closed");
          return FALSE;
        }
      drain_events (thread);
    }
  return TRUE;
}
