/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "mpq-queue-redis-private.h"

G_BEGIN_DECLS

/* Between the files of a queue on Redis's backend: mpq-queue-redis.c (the
 * vtable), mpq-queue-redis-run.c (running a script on the user's
 * connection, through an outage), mpq-queue-redis-peers.c (participants:
 * spawning, who is gone, forgetting one).
 *
 * Threads: only the queue's user's thread (one at a time, as for every
 * channel) touches a RedisBackend and its connection, so no field here
 * needs a lock; what it shares with the library's thread is in
 * MpqRedisThread, under that one's lock. */

typedef struct
{
  MpqQueueBackend  parent;

  redisContext    *redis;             /* NULL once closed, or while the server is lost */
  MpqRedisThread  *thread;            /* NULL once closed */
  gboolean         closed;
  MpqRedisScripts  scripts;
  char            *uri;
  char            *name;
  char            *prefix;            /* "mpq:{NAME}:" */
  gint             id;                /* this participant's, from the server */
  gint             owner;             /* the first creator's id, 0: unknown yet */
  guint            lease_ms;          /* lease-time */
  gsize            max_message_size;
} RedisBackend;

#define REDIS(backend) ((RedisBackend *) (backend))

/* mpq-queue-redis-run.c, the queue's user's thread. */
redisReply *_mpq_redis_backend_run        (RedisBackend    *self,
                                           MpqRedisScript   script,
                                           guint            n_args,
                                           const char     **args,
                                           const gssize    *lengths,
                                           gint64           deadline,
                                           GError         **error);
redisReply *_mpq_redis_backend_run_acking (RedisBackend    *self,
                                           MpqRedisScript   script,
                                           guint            n_args,
                                           const char     **args,
                                           const gssize    *lengths,
                                           gint64           deadline,
                                           GError         **error);
gboolean    _mpq_redis_backend_wait_tick  (RedisBackend    *self,
                                           const char      *which,
                                           const char      *also,
                                           long long        tick,
                                           gint64           deadline,
                                           GError         **error);

/* mpq-queue-redis-peers.c, the queue's user's thread: the vtable's
 * spawn, forget_pid, find_gone and get_parent_pid, and the goodbye of a
 * participant that closes. */
GSubprocess *_mpq_redis_backend_spawn      (MpqQueueBackend      *backend,
                                            GSubprocessLauncher  *launcher,
                                            const char * const   *argv,
                                            gint                 *pid,
                                            GError              **error);
void         _mpq_redis_backend_forget_pid (MpqQueueBackend      *backend,
                                            gint                  pid);
gboolean     _mpq_redis_backend_find_gone  (MpqQueueBackend      *backend,
                                            GArray               *ids,
                                            GError              **error);
gint         _mpq_redis_backend_get_parent_pid (MpqQueueBackend  *backend);
void         _mpq_redis_backend_bye        (RedisBackend         *self);

G_END_DECLS
