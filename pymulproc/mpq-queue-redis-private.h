/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "mpq-queue-backend-private.h"

G_BEGIN_DECLS

/* A queue kept in Redis Streams (issue 14; docs/redis.md): every
 * participant, the one that made it with mpq_queue_new_for_uri () and the
 * ones that joined it, is a client of the server; there is no parent
 * process serving it. Without hiredis at build time (meson feature
 * `redis`), making one fails with G_IO_ERROR_NOT_SUPPORTED
 * (mpq-queue-redis-none.c). */

/* @creator: TRUE for mpq_queue_new_for_uri () (the queue's max-size and
 * owner are set if nobody set them yet), FALSE for a child joining
 * through MPQ_QUEUE_URI and MPQ_QUEUE_NAME. *@max_size: in, the one asked
 * for; out, the one in force (the first creator's). */
MpqQueueBackend *_mpq_queue_redis_backend_new (MpqChannel  *channel,
                                               const char  *uri,
                                               const char  *name,
                                               gboolean     creator,
                                               guint       *max_size,
                                               gsize        max_message_size,
                                               guint        lease_time_ms,
                                               GError     **error);

/* A child started by mpq_queue_spawn () on a queue on a server starts
 * with its parent's lease-time, given in this variable. */
#define MPQ_QUEUE_LEASE_TIME_ENV "MPQ_QUEUE_LEASE_TIME"

/* A child started by mpq_queue_spawn () on a queue on a server has the
 * participant id its parent reserved for it (the parent knows the child
 * by it), in this variable. */
#define MPQ_QUEUE_ID_ENV "MPQ_QUEUE_ID"

/* Sets *@lease_time_ms from MPQ_QUEUE_LEASE_TIME when it holds a valid
 * one. */
void _mpq_queue_redis_lease_time_from_env (guint *lease_time_ms);

#ifdef MPQ_HAVE_REDIS

#include <hiredis/hiredis.h>

/* mpq-queue-redis-lua.c: the queue's atomic operations, as Lua run by
 * the server. Every script takes KEYS[1] = PREFIX "meta" and ARGV[1] =
 * PREFIX ("mpq:{NAME}:": every key of a queue carries its name as the hash
 * tag, so a Redis Cluster keeps them in one slot), then its own ARGV. */
typedef enum
{
  /* HELLO: @id is the one mpq_queue_spawn () gave a child (NEW_ID), or
   * 0; another is given if it is not free. Registers the participant as
   * live for @lease_ms. */
  MPQ_REDIS_HELLO,         /* max_size, creator, id, lease_ms → {id, max_size, owner} */
  /* PUT, TAKE and TAKE_FOR_ME first acknowledge the seqs given after
   * their own arguments (what the caller took for good before). */
  MPQ_REDIS_PUT,           /* from, recipient, line, seq... → {1, seq} | {0, took_tick} */
  MPQ_REDIS_TAKE,          /* me, hold, max_len, lease_ms, seq... → {1, line, seq, recipient}
                            * | {0, put_tick} | {-1, len} */
  MPQ_REDIS_TAKE_FOR_ME,   /* me, hold, anyone too, max_len, lease_ms, seq... → as TAKE */
  MPQ_REDIS_TAKE_MANY,     /* me, max_len, lease_ms, n, n_anyone, bytes →
                            * {k, put_tick when all was taken | -1, line, seq,
                            * recipient, ... k times} | {0, put_tick} | {-1, len} */
  MPQ_REDIS_ACK,           /* seq... → 1 */
  MPQ_REDIS_PUT_BACK,      /* seq → 1 | 0 (to the end) */
  MPQ_REDIS_UNDO,          /* seq... → how many went back (to the front) */
  /* RENEW also keeps the participant live; 0 when it was not any more
   * (its lease ended, or it left): it must give up. */
  MPQ_REDIS_RENEW,         /* me, lease_ms, seq... → {how many were not ours any more, live} */
  MPQ_REDIS_RECLAIM,       /* → {how many went back, ms to the next lease's end | -1} */
  MPQ_REDIS_STATE,         /* → {waiting, held, took_tick} */
  MPQ_REDIS_OWNER,         /* → owner or 0 */
  MPQ_REDIS_IDS,           /* → the last participant id given (0: no such queue) */
  MPQ_REDIS_NEW_ID,        /* → an id for a child to come (HELLO's) */
  MPQ_REDIS_GONE,          /* id... → the ones that left or whose lease ended */
  MPQ_REDIS_BYE,           /* me → 1: this participant leaves */
  MPQ_REDIS_FORGET,        /* id → how many messages addressed to it were dropped */
  MPQ_REDIS_N_SCRIPTS
} MpqRedisScript;

/* Their text (mpq-queue-redis-lua.c). */
extern const char * const _mpq_redis_script_sources[MPQ_REDIS_N_SCRIPTS];

/* The SHA1s of the scripts the server has, per connection. */
typedef struct
{
  char *sha[MPQ_REDIS_N_SCRIPTS];
} MpqRedisScripts;

/* A connection for redis://HOST[:PORT][/DB] or redis+unix:///PATH (a
 * password as :PASSWORD@), blocking, close-on-exec. */
redisContext *_mpq_redis_connect   (const char     *uri,
                                    GError        **error);
gboolean      _mpq_redis_wait_tick (redisContext   *redis,
                                    const char     *prefix,
                                    const char     *which,
                                    const char     *also,
                                    long long       tick,
                                    gint64          deadline,
                                    GError        **error);

void        _mpq_redis_scripts_clear (MpqRedisScripts  *scripts);
/* Runs @script with @n_args arguments after the prefix (binary-safe
 * lengths in @lengths, or -1 for a C string). NULL with @error set
 * (MPQ_ERROR_CLOSED when the connection failed, MPQ_ERROR_FAILED when
 * the server said no). The caller frees the reply. The thread that owns
 * @redis. */
redisReply *_mpq_redis_run   (redisContext     *redis,
                              MpqRedisScripts  *scripts,
                              MpqRedisScript    script,
                              const char       *prefix,
                              guint             n_args,
                              const char      **args,
                              const gssize     *lengths,
                              GError          **error);

/* A message as a take gave its line: its origin (which the pool goes
 * by) is the sender it names, all a server can tell. */
MpqMessage *_mpq_redis_decode (const char  *line,
                               gsize        length,
                               GError     **error);

/* At most this many arguments after the prefix. */
#define MPQ_REDIS_MAX_ARGS 40

/* The integer at @i of an array reply (scripts return numbers as
 * integers, numbers read from keys as strings), 0 when there is none. */
long long   _mpq_redis_reply_int (redisReply *reply,
                                  gsize       i);

/* mpq-queue-redis-thread.c: the library's thread of a queue on Redis,
 * with its own connection; it serves receive_async, join_async and
 * dispatch, and never runs user code (it completes GTasks and makes
 * sources ready in the user's contexts). mpq-queue-redis-async.c is the
 * user's side of it. */
typedef struct _MpqRedisThread MpqRedisThread;

/* The queue's user's thread. */
MpqRedisThread *_mpq_redis_thread_new     (MpqChannel      *channel,
                                           const char      *uri,
                                           const char      *prefix,
                                           gint             id,
                                           gsize            max_message_size,
                                           GError         **error);
/* Ends the thread (what dispatch had not emitted goes back to the front
 * first); waiting tasks fail with MPQ_ERROR_CLOSED. Drops the caller's
 * reference. */
void            _mpq_redis_thread_close   (MpqRedisThread  *thread);
gboolean        _mpq_redis_thread_is_lost (MpqRedisThread  *thread);
/* The user's thread, once its own connection failed: waits until the
 * library's thread has the server again (TRUE), or gave it up, or
 * @deadline (monotonic µs, -1: none) passed (FALSE, @error set:
 * MPQ_ERROR_CLOSED). */
gboolean        _mpq_redis_thread_wait_server (MpqRedisThread  *thread,
                                               gint64           deadline,
                                               GError         **error);
void            _mpq_redis_thread_set_max_message_size (MpqRedisThread *thread,
                                                        gsize           size);
void            _mpq_redis_thread_set_lease_time (MpqRedisThread *thread,
                                                  guint           lease_time_ms);
/* A message the user's thread holds (a filter deciding): the thread
 * renews its lease until unhold. */
void            _mpq_redis_thread_hold    (MpqRedisThread  *thread,
                                           const char      *seq);
void            _mpq_redis_thread_unhold  (MpqRedisThread  *thread,
                                           const char      *seq);
/* A message the user's thread took for good: on the server it is held,
 * with a lease, until acknowledged; the user's next script does it
 * (steal_deferred), or the thread within a quarter of the lease-time, or
 * a join's flush. */
void            _mpq_redis_thread_done    (MpqRedisThread  *thread,
                                           const char      *seq);
/* Up to @max of those, for the user's next script (freed by the caller
 * once it ran; given back with return_deferred if it did not). */
GPtrArray      *_mpq_redis_thread_steal_deferred  (MpqRedisThread *thread,
                                                   guint           max);
void            _mpq_redis_thread_return_deferred (MpqRedisThread *thread,
                                                   GPtrArray      *seqs);
/* Waits until what the user's thread took so far was acknowledged (a
 * turn of the thread), unless the server is lost meanwhile. */
void            _mpq_redis_thread_flush_acks (MpqRedisThread *thread);
void            _mpq_redis_thread_want_async  (MpqRedisThread  *thread,
                                               GTask           *task);
MpqMessage     *_mpq_redis_thread_finish_want (GTask           *task,
                                               GError         **error);
void            _mpq_redis_thread_join_async  (MpqRedisThread  *thread,
                                               GTask           *task);
void            _mpq_redis_thread_start   (MpqRedisThread  *thread,
                                           guint            prefetch);
void            _mpq_redis_thread_stop    (MpqRedisThread  *thread);

#endif

G_END_DECLS
