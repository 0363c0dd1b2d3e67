/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-channel.h"
#include "mpq-error.h"
#include "mpq-pool-private.h"
#include "mpq-protocol.h"
#include "mpq-queue-private.h"
#include "mpq-source-private.h"

/**
 * MpqPool:
 *
 * A supervised pool of worker processes: what users of Python's
 * `multiprocessing.Pool` or `concurrent.futures` reach for, with workers
 * in any language.
 *
 * The pool spawns [property@Mpq.Pool:n-workers] workers running the same
 * command line; each serves tasks with an [class@Mpq.Worker] (C, Python or
 * GJS through introspection) or speaks the frames of `docs/protocol.md`
 * ("Pools") with only a JSON library. [method@Mpq.Pool.submit] returns an
 * [class@Mpq.Task] at once, whose reply comes later.
 *
 * - A worker that exits or crashes is replaced. Workers that die before
 *   they answered anything are replaced later each time (50 ms, doubling,
 *   up to 5 s); after five such deaths in a row with no worker ready, the
 *   pool is broken: its queued tasks fail with `MPQ_ERROR_WORKER_LOST`, and
 *   so does [method@Mpq.Pool.submit], until
 *   [property@Mpq.Pool:n-workers] is set again.
 * - A task whose worker died goes to another; when its workers died
 *   [property@Mpq.Pool:max-attempts] times with it, it fails with
 *   `MPQ_ERROR_WORKER_LOST` and is not tried again. A worker is handed a
 *   few tasks ahead (about 20 ms of its work: two for long tasks, up to
 *   32 for small ones); it works on them in order, and only the one it
 *   worked on counts its death.
 * - A task past [property@Mpq.Pool:task-timeout] fails with
 *   `MPQ_ERROR_TIMED_OUT`; its worker gets `SIGTERM`, `SIGKILL` one second
 *   later, and is replaced.
 *
 * The pool lives in the thread-default main context of the thread that
 * made it: its signals and its tasks' are emitted there, and its
 * synchronous calls ([method@Mpq.Task.wait], [method@Mpq.Pool.map],
 * [method@Mpq.Pool.shutdown]) run that context while they wait: call them
 * from that thread.
 *
 * Since: 1.2
 */

enum
{
  PROP_0,
  PROP_ARGV,
  PROP_LAUNCHER,
  PROP_QUEUE,
  PROP_N_WORKERS,
  PROP_MAX_ATTEMPTS,
  PROP_TASK_TIMEOUT,
  N_PROPS
};

enum
{
  SIGNAL_WORKER_STARTED,
  SIGNAL_WORKER_EXITED,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];


G_DEFINE_FINAL_TYPE_WITH_CODE (MpqPool, mpq_pool, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      _mpq_pool_initable_iface_init))

/* Tasks not ended when the pool goes: they fail with @error (taken). */
static void
fail_all_tasks (MpqPool *self,
                GError  *error)
{
  GHashTableIter iter;
  MpqPoolWorker *worker;
  MpqTask *task;

  while ((task = g_queue_pop_head (&self->pending)) != NULL)
    {
      _mpq_task_fail (task, g_error_copy (error));
      g_object_unref (task);
    }
  g_hash_table_iter_init (&iter, self->workers);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &worker))
    for (GList *l = worker->window.head; l != NULL; l = l->next)
      {
        MpqPoolSlot *slot = l->data;

        if (slot->task != NULL)
          _mpq_task_fail (slot->task, g_error_copy (error));
      }
  g_error_free (error);
}

static void
mpq_pool_dispose (GObject *object)
{
  MpqPool *self = MPQ_POOL (object);
  GHashTableIter iter;
  MpqPoolWorker *worker;

  self->closed = TRUE;
  if (self->workers != NULL)
    {
      fail_all_tasks (self, g_error_new_literal (MPQ_ERROR, MPQ_ERROR_CLOSED,
                                                 "The pool was disposed of"));
      /* No orphan: workers go with the pool. A wait still running frees
       * its worker when it comes back cancelled. */
      g_hash_table_iter_init (&iter, self->workers);
      while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &worker))
        {
          g_hash_table_iter_steal (&iter);
          if (worker->exited)
            {
              _mpq_pool_worker_free (worker);
              continue;
            }
          if (worker->joined)
            {
              /* Not ours to kill: told to go, and it sees the queue's
               * maker leave. */
              _mpq_pool_send_die (self, worker);
              _mpq_pool_worker_free (worker);
              continue;
            }
          g_subprocess_force_exit (worker->process);
          _mpq_clear_source (&worker->timeout);
          _mpq_clear_source (&worker->kill);
          worker->pool = NULL;
          g_cancellable_cancel (worker->cancellable);
        }
    }
  _mpq_clear_source (&self->restart);
  _mpq_clear_source (&self->shutdown_timer);
  _mpq_clear_source (&self->watch);
  if (self->queue != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->queue, self);
      mpq_channel_close (MPQ_CHANNEL (self->queue));
      g_clear_object (&self->queue);
    }

  G_OBJECT_CLASS (mpq_pool_parent_class)->dispose (object);
}

static void
mpq_pool_finalize (GObject *object)
{
  MpqPool *self = MPQ_POOL (object);

  g_assert (g_queue_is_empty (&self->shutdown_waits));
  g_clear_pointer (&self->workers, g_hash_table_unref);
  g_clear_pointer (&self->splits, g_hash_table_unref);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_clear_object (&self->launcher);
  g_strfreev (self->argv);
  g_free (self->worker_format);
  g_clear_error (&self->broken);
  g_clear_error (&self->shutdown_error);

  G_OBJECT_CLASS (mpq_pool_parent_class)->finalize (object);
}

static void
mpq_pool_get_property (GObject    *object,
                       guint       prop_id,
                       GValue     *value,
                       GParamSpec *pspec)
{
  MpqPool *self = MPQ_POOL (object);

  switch (prop_id)
    {
    case PROP_ARGV:
      g_value_set_boxed (value, self->argv);
      break;
    case PROP_LAUNCHER:
      g_value_set_object (value, self->launcher);
      break;
    case PROP_QUEUE:
      g_value_set_object (value, self->queue);
      break;
    case PROP_N_WORKERS:
      g_value_set_uint (value, self->n_workers);
      break;
    case PROP_MAX_ATTEMPTS:
      g_value_set_uint (value, self->max_attempts);
      break;
    case PROP_TASK_TIMEOUT:
      g_value_set_int (value, self->task_timeout);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
mpq_pool_set_property (GObject      *object,
                       guint         prop_id,
                       const GValue *value,
                       GParamSpec   *pspec)
{
  MpqPool *self = MPQ_POOL (object);

  switch (prop_id)
    {
    case PROP_ARGV:
      self->argv = g_value_dup_boxed (value);
      break;
    case PROP_LAUNCHER:
      self->launcher = g_value_dup_object (value);
      break;
    case PROP_QUEUE:
      self->queue = g_value_dup_object (value);
      break;
    case PROP_N_WORKERS:
      mpq_pool_set_n_workers (self, g_value_get_uint (value));
      break;
    case PROP_MAX_ATTEMPTS:
      mpq_pool_set_max_attempts (self, g_value_get_uint (value));
      break;
    case PROP_TASK_TIMEOUT:
      mpq_pool_set_task_timeout (self, g_value_get_int (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
mpq_pool_class_init (MpqPoolClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = mpq_pool_dispose;
  object_class->finalize = mpq_pool_finalize;
  object_class->get_property = mpq_pool_get_property;
  object_class->set_property = mpq_pool_set_property;

  /**
   * MpqPool:argv:
   *
   * The workers' command line.
   *
   * Since: 1.2
   */
  properties[PROP_ARGV] =
    g_param_spec_boxed ("argv", NULL, NULL, G_TYPE_STRV,
                        G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /**
   * MpqPool:launcher:
   *
   * What spawns the workers (their environment, working directory,
   * standard streams), or %NULL for the defaults. The pool sets
   * `MPQ_POOL_WORKER=1` on it.
   *
   * Since: 1.2
   */
  properties[PROP_LAUNCHER] =
    g_param_spec_object ("launcher", NULL, NULL, G_TYPE_SUBPROCESS_LAUNCHER,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /**
   * MpqPool:queue:
   *
   * The queue the pool talks to its workers through: its own local queue,
   * or the one given to [ctor@Mpq.Pool.new_for_queue] (a queue on Redis,
   * for workers on other hosts). The pool takes it over: it receives what
   * is addressed to the pool, and closes it when it is disposed of.
   *
   * Since: 1.2
   */
  properties[PROP_QUEUE] =
    g_param_spec_object ("queue", NULL, NULL, MPQ_TYPE_QUEUE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /**
   * MpqPool:n-workers:
   *
   * How many workers the pool keeps. Raising it spawns more at once;
   * lowering it retires idle workers first, then those starting, then
   * busy ones once they answered what they hold. 0 at construction means
   * one per processor.
   *
   * Since: 1.2
   */
  properties[PROP_N_WORKERS] =
    g_param_spec_uint ("n-workers", NULL, NULL, 0, 1024, 0,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS |
                       G_PARAM_EXPLICIT_NOTIFY);
  /**
   * MpqPool:max-attempts:
   *
   * How many times a task's worker may die with it before it fails with
   * `MPQ_ERROR_WORKER_LOST` (1: at the first death).
   *
   * Since: 1.2
   */
  properties[PROP_MAX_ATTEMPTS] =
    g_param_spec_uint ("max-attempts", NULL, NULL, 1, G_MAXUINT,
                       MPQ_POOL_DEFAULT_MAX_ATTEMPTS,
                       G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  /**
   * MpqPool:task-timeout:
   *
   * How long, in milliseconds, a worker may work on one task (from the
   * moment it starts on it: when it was handed it, or answered the one
   * before), or -1 for ever. Past it the task fails with
   * `MPQ_ERROR_TIMED_OUT` and is not tried again, and its worker is killed
   * and replaced.
   *
   * Since: 1.2
   */
  properties[PROP_TASK_TIMEOUT] =
    g_param_spec_int ("task-timeout", NULL, NULL, -1, G_MAXINT, -1,
                      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * MpqPool::worker-started:
   * @self: the pool
   * @pid: the worker's pid
   *
   * A worker said it is ready for tasks.
   *
   * Since: 1.2
   */
  signals[SIGNAL_WORKER_STARTED] =
    g_signal_new ("worker-started", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_INT);
  /**
   * MpqPool::worker-exited:
   * @self: the pool
   * @pid: the worker's pid (0 for one that exited before the pool could
   *   read its pid)
   * @wait_status: its status as `waitpid ()` gives it
   * @expected: %TRUE when the pool told it to go (shrinking, shutdown)
   *
   * A worker exited, and the pool read everything it wrote.
   *
   * Since: 1.2
   */
  signals[SIGNAL_WORKER_EXITED] =
    g_signal_new ("worker-exited", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 3, G_TYPE_INT, G_TYPE_INT, G_TYPE_BOOLEAN);
}

static void
mpq_pool_init (MpqPool *self)
{
  self->max_attempts = MPQ_POOL_DEFAULT_MAX_ATTEMPTS;
  self->task_timeout = -1;
  self->workers = g_hash_table_new (NULL, NULL);
  self->batches = TRUE;
  self->splits = g_hash_table_new_full (NULL, NULL, NULL, g_object_unref);
  g_queue_init (&self->pending);
  g_queue_init (&self->shutdown_waits);
}

/* Whether the pool takes tasks; says why not. */
static gboolean
check_usable (MpqPool  *self,
              GError  **error)
{
  if (self->context == NULL || self->queue == NULL)
    g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_FAILED,
                         "The pool was not initialized: make it with mpq_pool_new ()");
  else if (self->closed || self->shutting_down)
    g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_CLOSED, "The pool was shut down");
  else if (self->broken != NULL)
    g_propagate_error (error, g_error_copy (self->broken));
  else
    return TRUE;
  return FALSE;
}

static gboolean
check_request (const char  *request,
               const char  *data_json,
               GError     **error)
{
  if (request == NULL || *request == '\0')
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                           "A task needs a request (a non-empty string)");
      return FALSE;
    }
  return _mpq_pool_check_json (data_json, error);
}

/* Queues a task of @data_json (copied) with @payload (nullable). */
static MpqTask *
submit (MpqPool     *self,
        const char  *request,
        const char  *data_json,
        GBytes      *payload,
        GError     **error)
{
  MpqTask *task;

  if (!check_usable (self, error) || !check_request (request, data_json, error))
    return NULL;
  task = _mpq_task_new (self, ++self->next_id, request, g_strdup (data_json));
  if (payload != NULL)
    _mpq_task_set_payload (task, payload);
  g_queue_push_tail (&self->pending, g_object_ref (task));
  _mpq_pool_schedule (self);
  return task;
}

/**
 * mpq_pool_submit:
 * @self: a pool
 * @request: what the worker is asked to do, e.g. [const@Mpq.REQ_DO]
 * @data_json: (nullable): the task's data as JSON text, or %NULL for null
 * @error: return location for a #GError
 *
 * Queues one task and returns its handle at once.
 *
 * Returns: (transfer full): the task, or %NULL with @error set:
 *   `MPQ_ERROR_PROTOCOL` for an empty request or data that is not JSON,
 *   `MPQ_ERROR_CLOSED` after [method@Mpq.Pool.shutdown],
 *   `MPQ_ERROR_WORKER_LOST` while the pool is broken
 *
 * Since: 1.2
 */
MpqTask *
mpq_pool_submit (MpqPool     *self,
                 const char  *request,
                 const char  *data_json,
                 GError     **error)
{
  g_return_val_if_fail (MPQ_IS_POOL (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return submit (self, request, data_json, NULL, error);
}

/**
 * mpq_pool_submit_bytes:
 * @self: a pool
 * @request: what the worker is asked to do
 * @data_json: (nullable): the task's data as JSON text, or %NULL for null
 * @payload: binary data to go with the task: an image, a buffer
 * @error: return location for a #GError
 *
 * Queues one task that carries @payload beside its data, as
 * [method@Mpq.Channel.send_bytes] does: the worker reads it with
 * [method@Mpq.Invocation.get_bytes], and may answer with bytes of its own
 * ([method@Mpq.Invocation.return_bytes]), which the reply's
 * [method@Mpq.Message.get_bytes] gives. A task handed to another worker
 * after a death goes with the same payload. Large payloads travel as
 * sealed memory files, not through the line.
 *
 * Returns: (transfer full): the task, or %NULL with @error set as
 *   [method@Mpq.Pool.submit] says
 *
 * Since: 1.2
 */
MpqTask *
mpq_pool_submit_bytes (MpqPool     *self,
                       const char  *request,
                       const char  *data_json,
                       GBytes      *payload,
                       GError     **error)
{
  g_return_val_if_fail (MPQ_IS_POOL (self), NULL);
  g_return_val_if_fail (payload != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return submit (self, request, data_json, payload, error);
}

/* A batch of @n_items of a map (their data in @items_json, taken: an
 * array the map made of checked values, @compact when known to be): for
 * workers that take batches. */
MpqTask *
_mpq_pool_submit_batch (MpqPool     *self,
                        const char  *request,
                        char        *items_json,
                        guint        n_items,
                        gboolean     compact,
                        GError     **error)
{
  MpqTask *task;

  if (!check_usable (self, error) || !check_request (request, NULL, error))
    {
      g_free (items_json);
      return NULL;
    }
  task = _mpq_task_new (self, ++self->next_id, request, items_json);
  _mpq_task_set_batch (task, n_items, compact);
  g_queue_push_tail (&self->pending, g_object_ref (task));
  _mpq_pool_schedule (self);
  return task;
}

/**
 * mpq_pool_broadcast:
 * @self: a pool
 * @request: the request
 * @data_json: (nullable): the data as JSON text, or %NULL for null
 * @error: return location for a #GError
 *
 * Gives one copy to every worker ready now (a change of configuration,
 * say), as a task its worker's [signal@Mpq.Worker::task] sees after what
 * it holds. Answers are dropped; workers started later do not get it.
 *
 * Returns: how many workers it was sent to, or 0 with @error set as
 *   [method@Mpq.Pool.submit] says
 *
 * Since: 1.2
 */
guint
mpq_pool_broadcast (MpqPool     *self,
                    const char  *request,
                    const char  *data_json,
                    GError     **error)
{
  g_return_val_if_fail (MPQ_IS_POOL (self), 0);
  g_return_val_if_fail (error == NULL || *error == NULL, 0);

  if (!check_usable (self, error) || !check_request (request, data_json, error))
    return 0;
  return _mpq_pool_broadcast_to_ready (self, request, data_json);
}

/* A task cancelled by its owner: out of line, or its worker told. */
void
_mpq_pool_cancel_task (MpqPool *self,
                       MpqTask *task)
{
  GHashTableIter iter;
  MpqPoolWorker *worker;
  GCancellable *split = g_hash_table_lookup (self->splits, task);

  if (g_queue_remove (&self->pending, task))
    {
      g_object_unref (task);
      return;
    }
  if (split != NULL)
    {
      g_cancellable_cancel (split);
      return;
    }
  g_hash_table_iter_init (&iter, self->workers);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &worker))
    for (GList *l = worker->window.head; l != NULL; l = l->next)
      {
        MpqPoolSlot *slot = l->data;
        g_autofree char *frame = NULL;

        if (slot->task != task)
          continue;
        /* The slot stays until the worker answers: it is still busy. */
        g_clear_object (&slot->task);
        frame = _mpq_pool_frame_error (slot->id, NULL);
        if (!mpq_channel_send_json (MPQ_CHANNEL (self->queue), MPQ_REQ_CANCEL, self->pid,
                                    worker->pid, frame, NULL))
          _mpq_pool_kill_worker (self, worker, TRUE);
        _mpq_pool_check_shutdown (self);
        return;
      }
}

void
_mpq_pool_emit_worker_started (MpqPool *self,
                               gint     pid)
{
  g_signal_emit (self, signals[SIGNAL_WORKER_STARTED], 0, pid);
}

void
_mpq_pool_emit_worker_exited (MpqPool  *self,
                              gint      pid,
                              gint      wait_status,
                              gboolean  expected)
{
  g_signal_emit (self, signals[SIGNAL_WORKER_EXITED], 0, pid, wait_status, expected);
}
