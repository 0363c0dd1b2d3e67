/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-error.h"
#include "mpq-queue-redis-backend-private.h"

/* Running a queue's script on the user's connection of a queue on Redis
 * (mpq-queue-redis.c), through an outage. The queue's user's thread. */

/* Our connection failed: once the library's thread has the server again
 * (mpq-queue-redis-outage.c), within @deadline, connect again. Before
 * the thread exists (the hello), there is nothing to wait for. The
 * queue's user's thread. */
static gboolean
recover (RedisBackend  *self,
         gint64         deadline,
         GError       **error)
{
  g_clear_pointer (&self->redis, redisFree);
  if (self->thread == NULL)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_CLOSED, "Lost the Redis server");
      return FALSE;
    }
  for (;;)
    {
      if (!_mpq_redis_thread_wait_server (self->thread, deadline, error))
        return FALSE;
      self->redis = _mpq_redis_connect (self->uri, NULL);
      if (self->redis != NULL)
        return TRUE;
    }
}

/* Runs @script with its arguments; through an outage, as long as
 * @deadline (monotonic µs; -1: none) allows (a script cut off by it may
 * have run: it runs again). The queue's user's thread. */
redisReply *
_mpq_redis_backend_run (RedisBackend    *self,
                        MpqRedisScript   script,
                        guint            n_args,
                        const char     **args,
                        const gssize    *lengths,
                        gint64           deadline,
                        GError         **error)
{
  GError *local_error = NULL;
  redisReply *reply = NULL;

  if (self->closed)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_CLOSED, "The queue is closed");
      return NULL;
    }
  while (local_error == NULL)
    {
      if (self->redis == NULL && !recover (self, deadline, &local_error))
        break;
      reply = _mpq_redis_run (self->redis, &self->scripts, script, self->prefix, n_args, args,
                              lengths, &local_error);
      if (reply == NULL && g_error_matches (local_error, MPQ_ERROR, MPQ_ERROR_CLOSED))
        {
          g_clear_error (&local_error);
          g_clear_pointer (&self->redis, redisFree);
        }
      else
        break;
    }
  if (reply != NULL && reply->type != REDIS_REPLY_ARRAY && reply->type != REDIS_REPLY_INTEGER)
    {
      g_set_error (&local_error, MPQ_ERROR, MPQ_ERROR_FAILED, "Redis: unexpected reply type %d",
                   reply->type);
      g_clear_pointer (&reply, freeReplyObject);
    }
  if (local_error != NULL)
    g_propagate_error (error, local_error);
  return reply;
}

/* run () with @n_args of @script's own arguments, then the messages this
 * process took for good before, which the script acknowledges first: no
 * round trip of their own. Given back to the thread if it did not run. */
redisReply *
_mpq_redis_backend_run_acking (RedisBackend    *self,
                               MpqRedisScript   script,
                               guint            n_args,
                               const char     **args,
                               const gssize    *lengths,
                               gint64           deadline,
                               GError         **error)
{
  g_autoptr(GPtrArray) seqs = NULL;
  const char *all[MPQ_REDIS_MAX_ARGS];
  gssize all_lengths[MPQ_REDIS_MAX_ARGS];
  redisReply *reply;

  if (self->thread == NULL)
    return _mpq_redis_backend_run (self, script, n_args, args, lengths, deadline, error);

  seqs = _mpq_redis_thread_steal_deferred (self->thread, MPQ_REDIS_MAX_ARGS - n_args);
  for (guint i = 0; i < n_args; i++)
    {
      all[i] = args[i];
      all_lengths[i] = lengths != NULL ? lengths[i] : -1;
    }
  for (guint i = 0; i < seqs->len; i++)
    {
      all[n_args + i] = seqs->pdata[i];
      all_lengths[n_args + i] = -1;
    }
  reply = _mpq_redis_backend_run (self, script, n_args + seqs->len, all, all_lengths, deadline,
                                  error);
  if (reply == NULL)
    _mpq_redis_thread_return_deferred (self->thread, g_steal_pointer (&seqs));
  return reply;
}

/* Waits until the tick stream @which (or @also) moves past @tick, or @deadline
 * passes (see _mpq_redis_wait_tick ()); after an outage it says "moved":
 * the caller looks again. The queue's user's thread. */
gboolean
_mpq_redis_backend_wait_tick (RedisBackend  *self,
                              const char    *which,
                              const char    *also,
                              long long      tick,
                              gint64         deadline,
                              GError       **error)
{
  GError *local_error = NULL;
  gboolean moved;

  if (self->redis == NULL)
    return recover (self, deadline, error);
  moved = _mpq_redis_wait_tick (self->redis, self->prefix, which, also, tick, deadline,
                                &local_error);
  if (g_error_matches (local_error, MPQ_ERROR, MPQ_ERROR_CLOSED))
    {
      g_clear_error (&local_error);
      return recover (self, deadline, error);
    }
  if (local_error != NULL)
    g_propagate_error (error, local_error);
  return moved;
}
