/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "mpq-lock-private.h"
#include "mpq-queue-redis-private.h"
#include "mpq-queue-state-private.h"

G_BEGIN_DECLS

/* Between mpq-queue-redis-thread.c (the library's thread of a queue on
 * Redis: its connections and its loop) and mpq-queue-redis-async.c (the
 * user's side: tasks, their results, dispatch). */

/* A message the thread took and holds on the server for this process,
 * until it is acknowledged (done with) or undone (back to the front). */
typedef struct
{
  char       *seq;        /* its number on the server */
  gint        recipient;  /* 0: for anyone */
  MpqMessage *message;    /* NULL when its line was malformed */
  GError     *error;      /* ... and why */
  gsize       length;     /* its line's bytes, counted in the inbox's */
} MpqRedisTaken;

/* Dispatch's inbox takes no more once its messages' lines hold this many
 * bytes (one message always fits, whatever its size): what a peer sends
 * to this process waits on the server, not in its memory. The count
 * window (MPQ_QUEUE_ADDRESSED_WINDOW) alone allowed 1,024 messages of
 * max-message-size each. */
#define MPQ_REDIS_INBOX_BYTES (8 * 1024 * 1024)

struct _MpqRedisThread
{
  gint             refs;            /* atomic: the backend, each result in flight */

  /* Set before the thread starts, read-only after: any thread. */
  MpqChannel      *channel;         /* the queue, unowned; emitted on in the user's thread */
  GMainContext    *context;         /* its maker's thread-default: where giving up closes it */
  char            *uri;
  char            *prefix;
  char             me[16];          /* this participant's id, as text */
  int              wake_fd;         /* eventfd: any thread writes, the thread reads */
  GThread         *thread;

  /* The library's thread only (made before it starts, freed after it
   * ended). */
  redisContext    *redis;           /* scripts */
  redisContext    *events;          /* SUBSCRIBEd to PREFIX "ev" while it waits */
  MpqRedisScripts  scripts;
  guint            subscribed;      /* the event channels listened to (MPQ_REDIS_EVENTS_*) */
  long long        seen_put_tick;   /* the last take that found nothing saw this put tick */
  gint64           next_renew;      /* monotonic µs: renew what we hold then */
  gint64           renewed_lease_us; /* the lease-time the last renewal gave */
  gint64           next_reclaim;    /* ... look for leases that ended then */
  gboolean         said_inbox_full; /* the last turn found dispatch's inbox full */

  /* Guarded by @lock. */
  MpqMutex         lock;
  GQueue           wants;           /* GTask (a reference), receive_async's, oldest first */
  GQueue           joins;           /* GTask (a reference), join_async's */
  GPtrArray       *acks;            /* char *seq: done with, to acknowledge */
  guint64          acks_queued;     /* how many were ever put in @acks */
  guint64          acks_done;       /* ... of them acknowledged on the server (@cond) */
  GPtrArray       *deferred;        /* char *seq: the user's thread took them for good */
  GPtrArray       *undos;           /* char *seq: handed out, not taken: to the front */
  GHashTable      *in_hand;         /* char *seq (owned) → itself: held on the server by us */
  GQueue           inbox;           /* MpqRedisTaken: dispatch's, not emitted yet */
  gsize            inbox_bytes;     /* its lines' bytes */
  MpqQueueSlots    slots;           /* dispatch's window, as a local queue's */
  gsize            max_message_size;
  guint            lease_ms;
  GSource         *deliver;         /* dispatch's wake source, in the context of start () */
  gboolean         quit;            /* close () asked the thread to end */
  gboolean         lost;            /* the thread gave the server up: the queue closes */
  gboolean         outage;          /* the thread has no connection now, and tries again */
  gboolean         probe;           /* the user's connection failed: the thread looks */
  MpqCond          cond;            /* outage or probe ended, or lost */

  /* The user's thread only (dispatch). */
  gboolean         delivering;      /* in deliver, maybe in a handler's main loop */
};

/* Any thread. */
MpqRedisThread *_mpq_redis_thread_ref       (MpqRedisThread *thread);
void            _mpq_redis_thread_unref     (MpqRedisThread *thread);
void            _mpq_redis_thread_wake      (MpqRedisThread *thread);
void            _mpq_redis_taken_free       (MpqRedisTaken  *taken);
/* With the lock: the head of dispatch's inbox, or NULL. Any thread. */
MpqRedisTaken  *_mpq_redis_inbox_pop_locked (MpqRedisThread *thread);
/* Any thread, with the lock: @seq is no longer in our hand; it goes to
 * @to (acks or undos). FALSE when it was not in our hand (the thread
 * ended and put it back already). */
gboolean        _mpq_redis_thread_settle_locked (MpqRedisThread *thread,
                                                 const char     *seq,
                                                 GPtrArray      *to);

/* mpq-queue-redis-lease.c, the library's thread: @script with @first
 * (at most 2) then @seqs as its arguments, in as many calls as it takes;
 * settle () with none first; keep_leases () renews what we hold and
 * reclaims what others held past their lease, when it is time to, and
 * then acknowledges what the user's thread left deferred (*@more: a
 * turn must settle them). */
gboolean        _mpq_redis_thread_run_for_seqs (MpqRedisThread  *thread,
                                                MpqRedisScript   script,
                                                guint            n_first,
                                                const char     **first,
                                                GPtrArray       *seqs,
                                                GError         **error);
gboolean        _mpq_redis_thread_settle       (MpqRedisThread  *thread,
                                                MpqRedisScript   script,
                                                GPtrArray       *seqs,
                                                GError         **error);
gboolean        _mpq_redis_thread_keep_leases  (MpqRedisThread  *thread,
                                                gboolean        *more,
                                                GError         **error);

/* mpq-queue-redis-events.c, the library's thread: the channels of the
 * queue's events it listens to while it waits: puts for anyone (when its
 * take may take them), puts for this participant, takes (a join). It
 * waits for one of @interested, or a wake-up, or the next lease's time. */
enum
{
  MPQ_REDIS_EVENTS_ANYONE = 1 << 0,
  MPQ_REDIS_EVENTS_MINE = 1 << 1,
  MPQ_REDIS_EVENTS_TOOK = 1 << 2,
};

gboolean        _mpq_redis_thread_wait_event   (MpqRedisThread  *thread,
                                                guint            interested,
                                                GError         **error);

/* mpq-queue-redis-outage.c, the library's thread: its connection failed
 * (@error, taken): it connects again with back-off; TRUE once it did,
 * FALSE when the thread must end (closed, or it gave up: see
 * docs/redis.md). */
gboolean        _mpq_redis_thread_reconnect    (MpqRedisThread  *thread,
                                                GError          *error);
/* ... the thread's connection works: ends a probe. */
void            _mpq_redis_thread_probed       (MpqRedisThread  *thread);

/* mpq-queue-redis-async.c, called by the thread without the lock: hands
 * @task its result (@taken, owned, or @error, owned, or TRUE for a join)
 * in its own main context. */
void            _mpq_redis_complete_later   (MpqRedisThread *thread,
                                             GTask          *task,
                                             MpqRedisTaken  *taken,
                                             GError         *error);

G_END_DECLS
