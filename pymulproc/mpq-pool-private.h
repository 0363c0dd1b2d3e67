/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "mpq-json-private.h"
#include "mpq-pool.h"
#include "mpq-queue.h"
#include "mpq-worker.h"

G_BEGIN_DECLS

/* A pool is an MpqQueue used as a routed transport: the parent hands each
 * task to one worker by address, so it always knows who holds what, and
 * it alone decides what a death, a time-out or a cancel means. Everything
 * here runs in the pool's context (the thread-default one when the pool
 * was made): one thread, no locks. The frames are in docs/protocol.md
 * ("Pools").
 *
 * - mpq-pool.c: the object, its properties, submit, broadcast, shutdown;
 * - mpq-pool-new.c: its constructors and GInitable;
 * - mpq-pool-workers.c: spawning workers and talking to them;
 * - mpq-pool-deaths.c: what a worker's death means, and its replacement;
 * - mpq-pool-joined.c: workers that joined a server's queue by themselves;
 * - mpq-pool-map.c: map, and waiting in the pool's context;
 * - mpq-task.c: MpqTask, a future;
 * - mpq-pool-frames.c: the frames, for the pool and for MpqWorker;
 * - mpq-worker.c, mpq-invocation.c: the worker's side. */

/* A map's items travel in batches of at most this many bytes of data
 * (and as many items as multiprocessing's Pool.map would put in one). */
#define MPQ_POOL_BATCH_BYTES (256 * 1024)

/* How many tasks a worker is handed ahead of its answers: about
 * MPQ_POOL_WINDOW_US of its work, from MPQ_POOL_WINDOW_MIN (one it works
 * on, one waiting, so that it never waits for the parent between two) to
 * MPQ_POOL_WINDOW_MAX (small tasks: a worker that runs dry sleeps, and
 * waking it costs more than the task). Long tasks get the minimum, so
 * none waits behind another while a worker is free. */
#define MPQ_POOL_WINDOW_MIN 2
#define MPQ_POOL_WINDOW_MAX 32
#define MPQ_POOL_WINDOW_US  (20 * 1000)

/* Workers that die before they answered anything, in a row: each waits
 * longer to be replaced (from MPQ_POOL_RESTART_DELAY_MS, doubling up to
 * MPQ_POOL_MAX_RESTART_DELAY_MS), and past MPQ_POOL_MAX_STARTUP_FAILURES,
 * with no worker ready, the pool is broken: its tasks fail. */
#define MPQ_POOL_MAX_STARTUP_FAILURES 5
#define MPQ_POOL_RESTART_DELAY_MS 50
#define MPQ_POOL_MAX_RESTART_DELAY_MS 5000

/* A worker killed for a task's time-out, or left at a shutdown's, gets
 * SIGTERM, then SIGKILL this much later. */
#define MPQ_POOL_KILL_GRACE_MS 1000

/* What the pool's own marker says: every message from this worker was
 * read (see mpq-pool-workers.c). */
#define MPQ_POOL_REQ_GONE "MPQ-POOL-GONE"

typedef enum
{
  MPQ_POOL_WORKER_STARTING,  /* spawned, not ready yet */
  MPQ_POOL_WORKER_READY,     /* takes tasks */
  MPQ_POOL_WORKER_LEAVING,   /* told to go, or killed: takes nothing */
} MpqPoolWorkerState;

/* A task handed to a worker, in the order handed: a worker answers them
 * in that order, so the oldest is the one it works on. */
typedef struct
{
  guint64  id;
  MpqTask *task;   /* NULL: cancelled, timed out, or a broadcast */
} MpqPoolSlot;

typedef struct
{
  MpqPool            *pool;         /* not a reference */
  gint                pid;
  GSubprocess        *process;
  GCancellable       *cancellable;  /* of the wait */
  MpqPoolWorkerState  state;
  gboolean            told_to_go;   /* shrink or shutdown: an expected exit */
  gboolean            die_sent;
  gboolean            answered;     /* it answered a task once */
  gboolean            exited;       /* waited for; @wait_status is known */
  gboolean            batches;      /* said it takes a map's items in batches */
  gboolean            joined;       /* not spawned: it joined the server's queue
                                     * (mpq-pool-joined.c); no @process */
  gboolean            dropped;      /* joined, "killed": gone at the next look */
  gint                wait_status;
  GQueue              window;       /* MpqPoolSlot, oldest first */
  gint64              head_since;   /* when the oldest became the oldest */
  gint64              work_us;      /* what a task takes it, lately; 0: unknown */
  GSource            *timeout;      /* the head's task-timeout */
  GSource            *kill;         /* SIGKILL after SIGTERM */
} MpqPoolWorker;

struct _MpqPool
{
  GObject              parent_instance;

  GMainContext        *context;
  MpqQueue            *queue;
  gint                 pid;
  GSubprocessLauncher *launcher;
  char               **argv;
  guint                n_workers;     /* wanted */
  guint                max_attempts;
  gint                 task_timeout;  /* ms, -1: none */
  char                *token;         /* in our own markers */

  GHashTable          *workers;       /* pid → MpqPoolWorker */
  GQueue               pending;       /* MpqTask (a reference), oldest first */
  guint64              next_id;
  guint                n_unknown_pids; /* workers gone before their pid was read */
  guint                startup_failures;
  gboolean             batches;       /* the last worker ready takes batches
                                       * (TRUE before any: a pool's workers run
                                       * one program, and the helpers do) */
  char                *worker_format; /* the payload format the last worker
                                       * ready reads, or NULL */
  GHashTable          *splits;        /* MpqTask (a batch whose items went as
                                       * tasks) → GCancellable of that map */
  GSource             *restart;
  GSource             *watch;         /* asks who of the joined workers is gone */
  GError              *broken;        /* workers die at start-up */

  gboolean             shutting_down;
  gboolean             closed;
  GSource             *shutdown_timer;
  GError              *shutdown_error;
  GQueue               shutdown_waits; /* GTask */
};

/* mpq-pool-workers.c */
gboolean  _mpq_pool_spawn_worker     (MpqPool       *pool,
                                      GError       **error);
void      _mpq_pool_on_message       (MpqPool       *pool,
                                      MpqMessage    *message);
void      _mpq_pool_schedule         (MpqPool       *pool);
void      _mpq_pool_adjust_workers   (MpqPool       *pool);
void      _mpq_pool_tell_to_go       (MpqPool       *pool,
                                      MpqPoolWorker *worker);
void      _mpq_pool_send_die         (MpqPool       *pool,
                                      MpqPoolWorker *worker);
void      _mpq_pool_kill_worker      (MpqPool       *pool,
                                      MpqPoolWorker *worker,
                                      gboolean       at_once);
void      _mpq_pool_worker_free      (MpqPoolWorker *worker);
guint     _mpq_pool_count_live       (MpqPool       *pool,
                                      gboolean       spawned_only);
guint     _mpq_pool_broadcast_to_ready (MpqPool     *pool,
                                        const char  *request,
                                        const char  *data_json);
void      _mpq_pool_startup_failed   (MpqPool       *pool,
                                      const char    *what);
MpqTask  *_mpq_pool_submit_batch     (MpqPool       *pool,
                                      const char    *request,
                                      char          *items_json,
                                      guint          n_items,
                                      gboolean       compact,
                                      GError       **error);

/* mpq-pool-deaths.c */
void      _mpq_pool_wait_cb          (GObject       *source,
                                      GAsyncResult  *result,
                                      gpointer       user_data);
void      _mpq_pool_worker_exited    (MpqPool       *pool,
                                      MpqPoolWorker *worker,
                                      gint           wait_status);
void      _mpq_pool_worker_gone      (MpqPool       *pool,
                                      MpqPoolWorker *worker);

/* mpq-pool-joined.c */
MpqPoolWorker *_mpq_pool_join_worker (MpqPool       *pool,
                                      gint           pid);
void      _mpq_pool_drop_joined      (MpqPool       *pool,
                                      MpqPoolWorker *worker);

/* mpq-pool-new.c */
void      _mpq_pool_initable_iface_init (GInitableIface *iface);

/* mpq-pool.c */
void      _mpq_pool_check_shutdown   (MpqPool       *pool);
void      _mpq_pool_cancel_task      (MpqPool       *pool,
                                      MpqTask       *task);
void      _mpq_pool_emit_worker_started (MpqPool    *pool,
                                         gint        pid);
void      _mpq_pool_emit_worker_exited  (MpqPool    *pool,
                                         gint        pid,
                                         gint        wait_status,
                                         gboolean    expected);

/* mpq-pool-map.c: iterates @context until @done (@data) or @timeout_ms
 * passed; FALSE with @error only when this thread cannot run @context. */
typedef void (*MpqPoolStartFn) (gpointer             data,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data);

GAsyncResult *_mpq_pool_call_sync    (GMainContext  *context,
                                      MpqPoolStartFn start,
                                      gpointer       data,
                                      GError       **error);
gboolean  _mpq_pool_acquire          (GMainContext  *context,
                                      GError       **error);
gboolean  _mpq_pool_iterate_until    (GMainContext  *context,
                                      GSourceFunc    done,
                                      gpointer       data,
                                      gint           timeout_ms,
                                      GError       **error);

/* mpq-task.c: the pool's side of a task. */
MpqTask  *_mpq_task_new              (MpqPool       *pool,
                                      guint64        id,
                                      const char    *request,
                                      char          *data_json);
const char *_mpq_task_peek_data_json (MpqTask       *task);
void      _mpq_task_set_payload      (MpqTask       *task,
                                      GBytes        *payload);
GBytes   *_mpq_task_peek_payload     (MpqTask       *task);
void      _mpq_task_set_batch        (MpqTask       *task,
                                      guint          n_items,
                                      gboolean       compact);
guint     _mpq_task_get_batch        (MpqTask       *task);
gboolean  _mpq_task_is_compact       (MpqTask       *task);
gboolean  _mpq_task_is_final         (MpqTask       *task);
void      _mpq_task_set_running      (MpqTask       *task,
                                      gint           worker_pid);
void      _mpq_task_set_queued       (MpqTask       *task);
guint     _mpq_task_add_death        (MpqTask       *task);
void      _mpq_task_complete         (MpqTask       *task,
                                      MpqMessage    *reply);
void      _mpq_task_complete_batch   (MpqTask       *task,
                                      MpqMessage    *reply,
                                      gsize          offset,
                                      gsize          length);
const char *_mpq_task_peek_results   (MpqTask       *task,
                                      gsize         *length);
void      _mpq_task_fail             (MpqTask       *task,
                                      GError        *error);
void      _mpq_task_progress         (MpqTask       *task,
                                      MpqMessage    *progress);

/* mpq-pool-frames.c: the frames of docs/protocol.md "Pools". */
gboolean  _mpq_pool_check_json       (const char    *data_json,
                                      GError       **error);
char     *_mpq_pool_frame_task       (guint64        id,
                                      const char    *field,
                                      const char    *value_json);
char     *_mpq_pool_frame_error      (guint64        id,
                                      const char    *text);

/* A frame read where it stands in its message's JSON text, without
 * building it: where the value of each member it knows is (the last, if
 * one is given twice, as a JsonObject keeps it). Unknown members are
 * skipped. Spans point into the message's text, or @owned. */
typedef enum
{
  MPQ_POOL_MEMBER_TASK,
  MPQ_POOL_MEMBER_DATA,
  MPQ_POOL_MEMBER_BATCH,
  MPQ_POOL_MEMBER_RESULT,
  MPQ_POOL_MEMBER_RESULTS,
  MPQ_POOL_MEMBER_ERROR,
  MPQ_POOL_MEMBER_PROGRESS,
  MPQ_POOL_MEMBER_PID,
  MPQ_POOL_MEMBER_FORMAT,
  MPQ_POOL_N_MEMBERS
} MpqPoolMember;

typedef struct
{
  MpqMessage *message;                       /* a reference */
  char       *owned;                         /* the text, when the message had none */
  const char *value[MPQ_POOL_N_MEMBERS];     /* NULL: not there */
  gsize       length[MPQ_POOL_N_MEMBERS];
  gboolean    is_array[MPQ_POOL_N_MEMBERS];
  guint       n_elements[MPQ_POOL_N_MEMBERS]; /* an array's */
} MpqPoolFrame;

gboolean    _mpq_pool_frame_read       (MpqPoolFrame  *frame,
                                        MpqMessage    *message);
void        _mpq_pool_frame_clear      (MpqPoolFrame  *frame);
gboolean    _mpq_pool_frame_offset     (MpqPoolFrame  *frame,
                                        MpqPoolMember  member,
                                        gsize         *offset);
gboolean    _mpq_pool_frame_get_id     (MpqPoolFrame  *frame,
                                        MpqPoolMember  member,
                                        guint64       *id);
gboolean    _mpq_pool_frame_is_true    (MpqPoolFrame  *frame,
                                        MpqPoolMember  member);
char       *_mpq_pool_frame_dup_string (MpqPoolFrame  *frame,
                                        MpqPoolMember  member);
gboolean    _mpq_pool_frame_count      (MpqPoolFrame  *frame,
                                        MpqPoolMember  member,
                                        guint         *n_elements);
char       *_mpq_pool_frame_dup_text   (MpqPoolFrame  *frame,
                                        MpqPoolMember  member,
                                        gsize         *length);
gboolean    _mpq_pool_json_is_null     (const char    *json,
                                        gsize          length);
MpqMessage *_mpq_pool_message_of_json  (const char    *request,
                                        gint           sender,
                                        gint           recipient,
                                        const char    *json,
                                        gsize          length);
MpqMessage *_mpq_pool_frame_message    (MpqPoolFrame  *frame,
                                        MpqPoolMember  member,
                                        const char    *request);
/* One item of a map, or one element of a JSON array: a span of text. */
typedef struct
{
  const char *text;
  gsize       length;
} MpqPoolItem;

gboolean    _mpq_pool_read_array       (const char    *text,
                                        gsize          length,
                                        GArray        *spans,
                                        guint         *n_elements,
                                        gboolean      *compact,
                                        GError       **error);
typedef struct
{
  const MpqPoolItem *spans;    /* NULL: the elements of @reader's array */
  guint              n_items;
  guint              next;
  MpqJsonReader      reader;
} MpqPoolItems;

void        _mpq_pool_items_init_spans (MpqPoolItems      *items,
                                        const MpqPoolItem *spans,
                                        guint              n_items);
void        _mpq_pool_items_init_text  (MpqPoolItems      *items,
                                        const char        *text,
                                        gsize              length,
                                        guint              n_items);
gboolean    _mpq_pool_items_next       (MpqPoolItems      *items,
                                        MpqPoolItem       *item);
void        _mpq_pool_items_clear      (MpqPoolItems      *items);
void        _mpq_pool_append_compact   (GString           *out,
                                        const char        *text,
                                        gsize              length);
gboolean    _mpq_pool_check_results    (const char    *results_json,
                                        guint          n_items,
                                        gboolean      *compact,
                                        GError       **error);
gboolean    _mpq_pool_send_frame       (MpqQueue      *queue,
                                        const char    *request,
                                        gint           sender,
                                        gint           recipient,
                                        const char    *frame,
                                        gboolean       compact,
                                        GBytes        *payload,
                                        GError       **error);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (MpqPoolFrame, _mpq_pool_frame_clear)
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (MpqPoolItems, _mpq_pool_items_clear)

/* mpq-pool-map.c: the map of map_async () and map_json_async (). */
GAsyncResult *_mpq_pool_map_sync     (MpqPool            *self,
                                      const char         *request,
                                      const char * const *data_json,
                                      const char         *items_json,
                                      GCancellable       *cancellable,
                                      GError            **error);
void        _mpq_pool_split_batch      (MpqPool           *self,
                                        MpqTask           *batch);
void        _mpq_pool_run_map          (MpqPool           *self,
                                        GTask             *map,
                                        const char        *request,
                                        MpqPoolItems      *items,
                                        gboolean           compact,
                                        gboolean           as_text);

G_END_DECLS
