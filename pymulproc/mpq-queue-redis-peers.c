/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-error.h"
#include "mpq-queue.h"
#include "mpq-queue-redis-backend-private.h"
#include "mpq-spawn-private.h"

/* The participants of a queue on Redis, as one of them sees the others:
 * the children it spawns (each with an id reserved for it, so that the
 * parent knows it before it says anything), who is gone (left, or past
 * its lease as a participant: docs/redis.md, "Who is gone"), forgetting
 * one gone for good, and the queue's owner. The queue's user's thread. */

/* The child finds the queue by the environment; it opens its own
 * connection, nothing is inherited. */
GSubprocess *
_mpq_redis_backend_spawn (MpqQueueBackend      *backend,
                          GSubprocessLauncher  *launcher,
                          const char * const   *argv,
                          gint                 *pid,
                          GError              **error)
{
  RedisBackend *self = (RedisBackend *) backend;
  g_autoptr(GSubprocessLauncher) own = NULL;
  g_autofree char *lease = NULL;
  g_autofree char *id = NULL;
  redisReply *reply;

  reply = _mpq_redis_backend_run (self, MPQ_REDIS_NEW_ID, 0, NULL, NULL, 0, error);
  if (reply == NULL)
    return NULL;
  *pid = reply->type == REDIS_REPLY_INTEGER ? (gint) reply->integer : 0;
  freeReplyObject (reply);
  id = g_strdup_printf ("%d", *pid);

  if (launcher == NULL)
    launcher = own = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_subprocess_launcher_setenv (launcher, MPQ_QUEUE_URI_ENV, self->uri, TRUE);
  g_subprocess_launcher_setenv (launcher, MPQ_QUEUE_NAME_ENV, self->name, TRUE);
  g_subprocess_launcher_setenv (launcher, MPQ_QUEUE_ID_ENV, id, TRUE);
  lease = g_strdup_printf ("%u", self->lease_ms);
  g_subprocess_launcher_setenv (launcher, MPQ_QUEUE_LEASE_TIME_ENV, lease, TRUE);
  g_subprocess_launcher_unsetenv (launcher, MPQ_CHANNEL_FD_ENV);
  g_subprocess_launcher_unsetenv (launcher, MPQ_CHANNEL_KIND_ENV);
  g_subprocess_launcher_unsetenv (launcher, MPQ_CHANNEL_FDS_ENV);
  return g_subprocess_launcher_spawnv (launcher, argv, error);
}

/* @pid is gone for good: what waits for it is dropped. At once or not
 * at all (the server away): a later FORGET of the same id does it. */
void
_mpq_redis_backend_forget_pid (MpqQueueBackend *backend,
                               gint             pid)
{
  RedisBackend *self = (RedisBackend *) backend;
  g_autoptr(GError) error = NULL;
  char id[16];
  const char *args[1] = { id };
  redisReply *reply;

  g_snprintf (id, sizeof id, "%d", pid);
  reply = _mpq_redis_backend_run (self, MPQ_REDIS_FORGET, 1, args, NULL, 0, &error);
  if (reply == NULL)
    {
      g_debug ("Redis queue: could not forget participant %d: %s", pid, error->message);
      return;
    }
  g_debug ("Redis queue: forgot participant %d (%lld messages for it)", pid,
           reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0);
  freeReplyObject (reply);
}

gboolean
_mpq_redis_backend_find_gone (MpqQueueBackend  *backend,
                              GArray           *ids,
                              GError          **error)
{
  RedisBackend *self = (RedisBackend *) backend;
  g_autoptr(GArray) gone = g_array_new (FALSE, FALSE, sizeof (gint));

  for (guint i = 0; i < ids->len; i += MPQ_REDIS_MAX_ARGS)
    {
      guint n = MIN (ids->len - i, MPQ_REDIS_MAX_ARGS);
      char text[MPQ_REDIS_MAX_ARGS][16];
      const char *args[MPQ_REDIS_MAX_ARGS];
      redisReply *reply;

      for (guint j = 0; j < n; j++)
        {
          g_snprintf (text[j], sizeof text[j], "%d", g_array_index (ids, gint, i + j));
          args[j] = text[j];
        }
      /* Now or not: the caller asks again later. */
      reply = _mpq_redis_backend_run (self, MPQ_REDIS_GONE, n, args, NULL, 0, error);
      if (reply == NULL)
        return FALSE;
      for (gsize j = 0; reply->type == REDIS_REPLY_ARRAY && j < reply->elements; j++)
        {
          gint id = (gint) _mpq_redis_reply_int (reply, j);

          g_array_append_val (gone, id);
        }
      freeReplyObject (reply);
    }
  g_array_set_size (ids, 0);
  g_array_append_vals (ids, gone->data, gone->len);
  return TRUE;
}

/* A participant that closes says so, so that those who watch it (its
 * pool, its workers) need not wait for its lease to end. Not through an
 * outage: the lease ends all the same. */
void
_mpq_redis_backend_bye (RedisBackend *self)
{
  char me[16];
  const char *args[1] = { me };
  redisReply *reply;

  if (self->redis == NULL)
    return;
  g_snprintf (me, sizeof me, "%d", self->id);
  /* run () refuses a closed queue: this one is closing. */
  reply = _mpq_redis_run (self->redis, &self->scripts, MPQ_REDIS_BYE, self->prefix, 1, args,
                          NULL, NULL);
  if (reply != NULL)
    freeReplyObject (reply);
}

gint
_mpq_redis_backend_get_parent_pid (MpqQueueBackend *backend)
{
  RedisBackend *self = (RedisBackend *) backend;

  /* A child that joined before its creator said who owns the queue. */
  if (self->owner == 0 && !self->closed)
    {
      redisReply *reply = _mpq_redis_backend_run (self, MPQ_REDIS_OWNER, 0, NULL, NULL, 0, NULL);

      if (reply != NULL)
        {
          self->owner = reply->type == REDIS_REPLY_INTEGER ? (gint) reply->integer : 0;
          freeReplyObject (reply);
        }
    }
  return self->owner;
}
