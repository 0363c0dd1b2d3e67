/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "mpq-codec-private.h"
#include "mpq-lock-private.h"
#include "mpq-message.h"

G_BEGIN_DECLS

/* The parent's queue is built in four rooms, each in its own file:
 *
 * - the state (mpq-queue-state.c): the FIFO, the routes, what each peer
 *   may be handed (windows), credit and the join count. Everything here
 *   is guarded by MpqQueueServer.lock; no I/O. It hands messages to
 *   participants through the small MpqQueuePeerClass vtable. Its entries
 *   (mpq-queue-entry.c): a message's line, its MpqMessage, its payload's
 *   memfd, and the budgets they count against;
 * - one child's connection (mpq-queue-conn.c): its socket, frames and
 *   pending requests; the queue thread only;
 * - the thread (mpq-queue-thread.c): its main context, the kick source,
 *   start and stop, adopting and dropping children;
 * - the parent's own calls (mpq-queue-local.c): send, receive, join,
 *   is_empty and dispatch, in the caller's thread, as a peer too.
 */

typedef struct _MpqQueueServer  MpqQueueServer;
typedef struct _MpqQueuePeer    MpqQueuePeer;
typedef struct _MpqQueueEntry   MpqQueueEntry;
typedef struct _MpqQueueRoute   MpqQueueRoute;
typedef struct _MpqQueuePending MpqQueuePending;

/* What one child's puts may hold by descriptor in the queue (messages it
 * put, not yet taken): past either, its put is a protocol error. */
#define MPQ_QUEUE_MAX_FDS_PER_CHILD 64
#define MPQ_QUEUE_MAX_FD_BYTES_PER_CHILD ((gssize) 1 << 30)

/* The count against those bounds, shared by a child's connection and the
 * entries it put (which may outlive it): atomics, any thread. */
typedef struct
{
  gint   refs;
  gint   fds;
  gssize bytes;
} MpqQueueQuota;

/* A child whose answers pile up unread this far is not read from until it
 * catches up: memory per child stays bounded whatever it asks for. */
#define MPQ_QUEUE_OUT_HIGH_WATER (8 * 1024 * 1024)

/* The most requests (get, want, join) one child may have waiting; past
 * it the child is dropped. A library child has one per thread that
 * blocks plus one per receive_async in flight. */
#define MPQ_QUEUE_MAX_PENDING 1024

/* How much the queue thread decodes ahead for the parent (line bytes,
 * plus MPQ_QUEUE_AHEAD_COST per message): what that costs in memory
 * stays bounded however far behind the parent is. */
#define MPQ_QUEUE_AHEAD_BYTES (512 * 1024)
#define MPQ_QUEUE_AHEAD_COST 512

/* How much the parent's threads hand back to the queue thread to free
 * (lines of at most MPQ_QUEUE_SPENT_MAX_LINE bytes), before they free
 * entries themselves: see _mpq_queue_entry_give_back (). */
#define MPQ_QUEUE_SPENT_BYTES (1024 * 1024)
#define MPQ_QUEUE_SPENT_MAX_LINE 4096

/* The most messages one child may ask to have in hand through dispatch. */
#define MPQ_QUEUE_MAX_PREFETCH 65536

/* Messages addressed to a process are handed over up to this many ahead
 * of its handlers (a bound on memory only: nobody else could take them). */
#define MPQ_QUEUE_ADDRESSED_WINDOW 1024

/* What dispatch may still hand a process (see slots_window ()). Guarded
 * by the server's lock (a queue on Redis: its thread's lock). */
typedef struct
{
  gboolean started;
  guint    prefetch;
  guint    pushed;      /* handed by dispatch, not yet done */
  guint    pushed_any;  /* ... of them for anyone */
  gint64   busy_since;  /* since when it has had work for anyone in hand */
  gint64   work_us;     /* what one message takes its handlers, lately */
  guint    done;        /* messages done (0: nothing known yet) */
} MpqQueueSlots;

/* One message in the queue, or in someone's hand. The line is kept to be
 * forwarded to children as it is; the message, for the parent. */
struct _MpqQueueEntry
{
  GList          all_link;    /* in the FIFO, or in a peer's hand */
  GList          route_link;  /* in its route while in the FIFO */
  guint64        seq;
  gint           recipient;
  gint           origin;      /* pid of the process that put it */
  MpqQueueRoute *route;       /* while in the FIFO */
  guint32        tag;         /* while in a child's hand */
  gboolean       pushed;      /* handed by dispatch, not asked for */
  MpqMessage    *message;
  MpqLineShape   shape;       /* the line's, when the queue thread checked
                               * it: decoded without a second parse */
  int            fd;          /* the payload's memfd when the line says
                               * {"fd":N} (N in @fd_size), or -1 */
  gsize          fd_size;
  MpqQueueQuota *quota;       /* the putting child's, while @fd counts */
  MpqQueueServer *ahead;     /* while @message was decoded ahead by the
                               * queue thread: its server, to give back room */
  MpqQueueEntry *spent_next;  /* in MpqQueueServer.spent */
  gsize          length;
  char           line[];
};

typedef enum { MPQ_PENDING_GET, MPQ_PENDING_WANT, MPQ_PENDING_JOIN } MpqPendingKind;

/* A request that waits: a child's receive, routed receive or join; or the
 * parent's own blocking receive (answered in @served). Guarded by the
 * lock while queued in MpqQueueServer.gets. */
struct _MpqQueuePending
{
  MpqQueuePeer   *peer;
  MpqPendingKind  kind;
  gint64          id;
  GSource        *timer;   /* queue thread's context; children only */
  MpqQueueEntry  *served;
};

/* How the state hands messages to a participant. Called under the lock:
 * they must not block, nor call user code. */
typedef struct
{
  /* Routed delivery: @entry (the peer's now) goes to its oldest routed
   * receive, or is pushed by dispatch when none waits. */
  void (*assign)    (MpqQueuePeer    *peer,
                     MpqQueueEntry   *entry);
  /* pymulproc's receive @get is answered with @entry (the front). */
  void (*serve_get) (MpqQueuePeer    *peer,
                     MpqQueuePending *get,
                     MpqQueueEntry   *entry);
  /* After every serve: answer what waited on the join count or credit. */
  void (*settle)    (MpqQueuePeer    *peer);
} MpqQueuePeerClass;

/* A participant: a child's connection or the parent itself. Guarded by
 * the lock. */
struct _MpqQueuePeer
{
  const MpqQueuePeerClass *klass;
  gint                     pid;       /* messages addressed to it are routed here */
  MpqQueueSlots            slots;
  guint                    n_wants;   /* routed receives waiting */
  gboolean                 asked;     /* it received (any way) or started, ever */
  gboolean                 idle_said; /* MPQ_DEBUG: it was told that messages wait */
  guint64                  idle_mark; /* MPQ_DEBUG: 1 + the seq of the oldest message
                                       * routable to it at the last tick, or 0 */
};

struct _MpqQueueServer
{
  MpqMutex        lock;
  MpqCond         cond;          /* FIFO, room, join count or sync changed */
  guint         waiters;       /* threads waiting on @cond */

  /* The state: guarded by @lock. */
  guint         max_size;      /* 0: unbounded; constant */
  gsize         max_message_size;
  gint          pid;           /* the parent's; constant */
  gint          decoded_ahead; /* atomic: the cost of the messages the thread
                                * decoded for the parent, not yet taken */
  MpqQueueEntry *spent;        /* atomic: entries the parent's threads are done
                                * with, for the queue thread to free */
  gint          spent_bytes;   /* atomic: what @spent holds */
  GQueue        all;           /* MpqQueueEntry waiting, oldest first */
  GPtrArray    *anyone;        /* MpqQueueRoute for nobody, by origin */
  GHashTable   *by_pid;        /* recipient → MpqQueueRoute */
  guint64       next_seq;
  guint         unfinished;    /* put and not yet taken */
  guint         credit_out;    /* lent to children and not yet used */
  guint         credit_wanted; /* children waiting for credit */
  GQueue        gets;          /* MpqQueuePending receives, oldest first */
  GPtrArray    *peers;         /* MpqQueuePeer: children, then the parent last;
                                * changed by the queue thread only, under @lock */
  guint         turn;          /* where the next round of dispatch starts */
  gboolean      room_left;     /* after the last serve someone could take more */
  gboolean      batching;      /* applying what one read brought */
  gboolean      wake_pending;  /* ... and a waiter should hear of it */
  GQueue        completed;     /* GTask, result pairs, returned after unlock */

  /* The parent as a participant (mpq-queue-local.c): guarded by @lock. */
  MpqQueuePeer  local;
  GQueue        local_inbox;   /* MpqQueueEntry handed to its dispatch */
  GSource      *local_wake;
  GQueue        local_wants;   /* LocalWant (mpq-queue-local.c): receive_async's
                                * and receive_for_me's, oldest first */
  GQueue        local_joins;   /* GTask of join_async */

  /* The thread (mpq-queue-thread.c). */
  gint          refs;          /* atomic: the queue, and each result in flight */
  gboolean      closed;        /* @lock */
  gboolean      quit;          /* @lock */
  GThread      *thread;        /* constant while running */
  GMainContext *context;       /* constant */
  GSource      *kick;          /* constant until close */
  GSource      *debug_idle;    /* MPQ_DEBUG's idle check (mpq-debug-idle.c), or
                                * NULL; constant until close */
  GQueue        incoming;      /* @lock: children spawned, not yet adopted */
  GArray       *read_items;    /* the thread's: what one read of a child brought
                                * (mpq-queue-conn.c), one array for all, kept:
                                * no regrowth per read */
  gboolean      limits_changed; /* @lock: max_message_size changed */
  guint64       sync_requested; /* @lock: by the parent: read what was written */
  guint64       sync_done;      /* @lock */
};

/* Entries (mpq-queue-entry.c) and the state (mpq-queue-state.c): any
 * thread, with the lock held (_locked), or owning the entry (entry_*). */
MpqQueueEntry *_mpq_queue_entry_new          (const char     *line,
                                              gsize           length,
                                              MpqMessage     *message,
                                              gint            recipient,
                                              gint            origin);
MpqMessage    *_mpq_queue_entry_take_message (MpqQueueEntry  *entry);
void           _mpq_queue_entry_give_back    (MpqQueueServer *server,
                                              MpqQueueEntry  *entry);
void           _mpq_queue_free_spent         (MpqQueueServer *server);
void           _mpq_queue_entry_write_inline (MpqQueueEntry  *entry,
                                              GString        *out);
void           _mpq_queue_entry_set_fd       (MpqQueueEntry  *entry,
                                              int             fd,
                                              gsize           size,
                                              MpqQueueQuota  *quota);

MpqQueueQuota *_mpq_queue_quota_new          (void);
void           _mpq_queue_quota_unref        (MpqQueueQuota  *quota);
gboolean       _mpq_queue_quota_take         (MpqQueueQuota  *quota,
                                              gsize           size);
gboolean       _mpq_queue_reserve_ahead      (MpqQueueServer *server,
                                              gsize           length);
void           _mpq_queue_release_ahead      (MpqQueueServer *server,
                                              gsize           length);
void           _mpq_queue_entry_set_ahead    (MpqQueueEntry  *entry,
                                              MpqQueueServer *server);
void           _mpq_queue_entry_free         (MpqQueueEntry  *entry);
MpqQueueEntry *_mpq_queue_pop_entry_head     (GQueue         *queue);
MpqQueueEntry *_mpq_queue_pop_entry_tail     (GQueue         *queue);

void           _mpq_queue_slots_take         (MpqQueueSlots  *slots,
                                              gint            recipient);
void           _mpq_queue_slots_release      (MpqQueueSlots  *slots,
                                              gint            recipient);
void           _mpq_queue_slots_done         (MpqQueueSlots  *slots,
                                              gint64          work_us);
gboolean       _mpq_queue_slots_have_room    (MpqQueueSlots  *slots,
                                              gboolean        anyone);
void           _mpq_queue_slots_room         (MpqQueueSlots  *slots,
                                              guint          *addressed,
                                              guint          *anyone);

void           _mpq_queue_state_init         (MpqQueueServer *server,
                                              guint           max_size);
void           _mpq_queue_state_clear        (MpqQueueServer *server);
void           _mpq_queue_wake_waiters_locked (MpqQueueServer *server);
gboolean       _mpq_queue_wait_locked        (MpqQueueServer *server,
                                              gint64          deadline);
void           _mpq_queue_kick_locked        (MpqQueueServer *server);
void           _mpq_queue_push_tail_locked   (MpqQueueServer *server,
                                              MpqQueueEntry  *entry);
void           _mpq_queue_push_head_locked   (MpqQueueServer *server,
                                              MpqQueueEntry  *entry);
MpqQueueEntry *_mpq_queue_pop_front_locked   (MpqQueueServer *server);
MpqQueueEntry *_mpq_queue_pick_locked        (MpqQueueServer *server,
                                              MpqQueuePeer   *peer);
MpqQueueEntry *_mpq_queue_take_for_locked    (MpqQueueServer *server,
                                              MpqQueuePeer   *peer);
MpqQueueEntry *_mpq_queue_peek_for_locked    (MpqQueueServer *server,
                                              MpqQueuePeer   *peer);
guint          _mpq_queue_drop_for_locked    (MpqQueueServer *server,
                                              gint            pid);
void           _mpq_queue_put_locked         (MpqQueueServer *server,
                                              MpqQueueEntry  *entry);
void           _mpq_queue_taken_locked       (MpqQueueServer *server,
                                              MpqQueueEntry  *entry);
void           _mpq_queue_finished_locked    (MpqQueueServer *server);
gboolean       _mpq_queue_is_full_locked     (MpqQueueServer *server);
guint          _mpq_queue_credit_grant_locked (MpqQueueServer *server);
void           _mpq_queue_return_held_locked (MpqQueueServer *server,
                                              GQueue         *held,
                                              gboolean        pushed_only);
void           _mpq_queue_serve_locked       (MpqQueueServer *server);
void           _mpq_queue_complete_later_locked (MpqQueueServer *server,
                                                 GTask          *task,
                                                 MpqQueueEntry  *entry);
void           _mpq_queue_unlock_and_complete (MpqQueueServer *server);

/* The thread: mpq-queue-thread.c */
gboolean       _mpq_queue_thread_start       (MpqQueueServer *server,
                                              GError        **error);
void           _mpq_queue_thread_stop        (MpqQueueServer *server);
void           _mpq_queue_sync_locked        (MpqQueueServer *server);

/* The parent as a peer: mpq-queue-local.c */
void           _mpq_queue_local_init         (MpqQueueServer *server);
void           _mpq_queue_local_clear        (MpqQueueServer *server);

G_END_DECLS
