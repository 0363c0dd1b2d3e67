/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-enum-types.h"
#include "mpq-error.h"
#include "mpq-message-private.h"
#include "mpq-pool-private.h"

/**
 * MpqTask:
 *
 * One task submitted to an [class@Mpq.Pool]: a future for the worker's
 * reply.
 *
 * [method@Mpq.Pool.submit] returns it at once; the reply comes by
 * [method@Mpq.Task.wait], [method@Mpq.Task.wait_async] or
 * [property@Mpq.Task:state]. Progress the worker reports comes as
 * [signal@Mpq.Task::progress], in order, before the reply.
 *
 * A task is used from the thread of its pool's main context.
 *
 * Since: 1.2
 */

struct _MpqTask
{
  GObject       parent_instance;

  MpqPool      *pool;       /* a reference until the task is final */
  GMainContext *context;    /* the pool's */
  guint64       id;
  char         *request;
  char         *data_json;  /* freed once final */
  GBytes       *payload;    /* nullable; freed once final */
  MpqTaskState  state;
  guint         attempts;
  guint         deaths;
  gint          worker_pid;
  guint         n_items;    /* a map's batch of items, or 0 */
  gboolean      compact;    /* a batch's data is known to be compact JSON */
  MpqMessage   *reply;      /* DONE */
  gsize         results_at; /* a batch's: where its results are in @reply's data */
  gsize         results_length;
  GError       *error;      /* FAILED, CANCELLED */
  GQueue        waits;      /* GTask of wait_async */
};

enum
{
  PROP_0,
  PROP_ID,
  PROP_REQUEST,
  PROP_STATE,
  PROP_ATTEMPTS,
  PROP_WORKER_PID,
  N_PROPS
};

enum
{
  SIGNAL_PROGRESS,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (MpqTask, mpq_task, G_TYPE_OBJECT)

static void
mpq_task_finalize (GObject *object)
{
  MpqTask *self = MPQ_TASK (object);

  g_assert (g_queue_is_empty (&self->waits));
  g_clear_object (&self->pool);
  g_main_context_unref (self->context);
  g_free (self->request);
  g_free (self->data_json);
  g_clear_pointer (&self->payload, g_bytes_unref);
  g_clear_object (&self->reply);
  g_clear_error (&self->error);

  G_OBJECT_CLASS (mpq_task_parent_class)->finalize (object);
}

static void
mpq_task_get_property (GObject    *object,
                       guint       prop_id,
                       GValue     *value,
                       GParamSpec *pspec)
{
  MpqTask *self = MPQ_TASK (object);

  switch (prop_id)
    {
    case PROP_ID:
      g_value_set_uint64 (value, self->id);
      break;
    case PROP_REQUEST:
      g_value_set_string (value, self->request);
      break;
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    case PROP_ATTEMPTS:
      g_value_set_uint (value, self->attempts);
      break;
    case PROP_WORKER_PID:
      g_value_set_int (value, self->worker_pid);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
mpq_task_class_init (MpqTaskClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = mpq_task_finalize;
  object_class->get_property = mpq_task_get_property;

  /**
   * MpqTask:id:
   *
   * The task's number in its pool, from 1; what its frames carry.
   *
   * Since: 1.2
   */
  properties[PROP_ID] =
    g_param_spec_uint64 ("id", NULL, NULL, 0, G_MAXUINT64, 0,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  /**
   * MpqTask:request:
   *
   * The request the task was submitted with.
   *
   * Since: 1.2
   */
  properties[PROP_REQUEST] =
    g_param_spec_string ("request", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  /**
   * MpqTask:state:
   *
   * Where the task stands.
   *
   * Since: 1.2
   */
  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL, MPQ_TYPE_TASK_STATE, MPQ_TASK_QUEUED,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  /**
   * MpqTask:attempts:
   *
   * How many times the task was handed to a worker.
   *
   * Since: 1.2
   */
  properties[PROP_ATTEMPTS] =
    g_param_spec_uint ("attempts", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  /**
   * MpqTask:worker-pid:
   *
   * The pid of the worker the task was last handed to, or 0.
   *
   * Since: 1.2
   */
  properties[PROP_WORKER_PID] =
    g_param_spec_int ("worker-pid", NULL, NULL, 0, G_MAXINT, 0,
                      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * MpqTask::progress:
   * @self: the task
   * @message: the progress: request `PROGRESS`, data what the worker sent
   *
   * The worker reported progress with
   * [method@Mpq.Invocation.send_progress_json]. Emitted in the order the
   * worker sent it, and never after the task ended.
   *
   * Since: 1.2
   */
  signals[SIGNAL_PROGRESS] =
    g_signal_new ("progress", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, MPQ_TYPE_MESSAGE);
}

static void
mpq_task_init (MpqTask *self)
{
  g_queue_init (&self->waits);
}

/* Pool side ----------------------------------------------------------- */

/* A task of @pool, its data @data_json (taken; nullable: null). */
MpqTask *
_mpq_task_new (MpqPool    *pool,
               guint64     id,
               const char *request,
               char       *data_json)
{
  MpqTask *self = g_object_new (MPQ_TYPE_TASK, NULL);

  /* Until it ends, a task keeps its pool: a pool dropped with work in
   * flight finishes that work. */
  self->pool = g_object_ref (pool);
  self->context = g_main_context_ref (pool->context);
  self->id = id;
  self->request = g_strdup (request);
  self->data_json = data_json;
  return self;
}

/* A batch of @n_items of a map: its data is their array, and its reply's
 * data the array of their results (see mpq-pool-map.c). */
void
_mpq_task_set_batch (MpqTask  *task,
                     guint     n_items,
                     gboolean  compact)
{
  task->n_items = n_items;
  task->compact = compact;
}

guint
_mpq_task_get_batch (MpqTask *task)
{
  return task->n_items;
}

gboolean
_mpq_task_is_compact (MpqTask *task)
{
  return task->compact;
}

const char *
_mpq_task_peek_data_json (MpqTask *task)
{
  return task->data_json;
}

/* The bytes that go with the task's data, each time it is handed out. */
void
_mpq_task_set_payload (MpqTask *task,
                       GBytes  *payload)
{
  g_assert (task->payload == NULL);
  task->payload = g_bytes_ref (payload);
}

GBytes *
_mpq_task_peek_payload (MpqTask *task)
{
  return task->payload;
}

gboolean
_mpq_task_is_final (MpqTask *task)
{
  return task->state >= MPQ_TASK_DONE;
}

static void
set_state (MpqTask      *task,
           MpqTaskState  state)
{
  if (task->state == state)
    return;
  task->state = state;
  g_object_notify_by_pspec (G_OBJECT (task), properties[PROP_STATE]);
}

void
_mpq_task_set_running (MpqTask *task,
                       gint     worker_pid)
{
  g_object_freeze_notify (G_OBJECT (task));
  task->attempts++;
  g_object_notify_by_pspec (G_OBJECT (task), properties[PROP_ATTEMPTS]);
  if (task->worker_pid != worker_pid)
    {
      task->worker_pid = worker_pid;
      g_object_notify_by_pspec (G_OBJECT (task), properties[PROP_WORKER_PID]);
    }
  set_state (task, MPQ_TASK_RUNNING);
  g_object_thaw_notify (G_OBJECT (task));
}

void
_mpq_task_set_queued (MpqTask *task)
{
  set_state (task, MPQ_TASK_QUEUED);
}

guint
_mpq_task_add_death (MpqTask *task)
{
  return ++task->deaths;
}

static void
return_to (GTask   *wait,
           MpqTask *task)
{
  if (task->reply != NULL)
    g_task_return_pointer (wait, g_object_ref (task->reply), g_object_unref);
  else
    g_task_return_error (wait, g_error_copy (task->error));
}

/* The task is final: its waiters hear of it, and it lets its pool go. */
static void
end (MpqTask      *task,
     MpqTaskState  state)
{
  g_autoptr(MpqTask) hold = g_object_ref (task);
  GTask *wait;

  g_clear_pointer (&task->data_json, g_free);
  g_clear_pointer (&task->payload, g_bytes_unref);
  set_state (task, state);
  while ((wait = g_queue_pop_head (&task->waits)) != NULL)
    {
      return_to (wait, task);
      g_object_unref (wait);
    }
  g_clear_object (&task->pool);
}

void
_mpq_task_complete (MpqTask    *task,
                    MpqMessage *reply)
{
  g_return_if_fail (!_mpq_task_is_final (task));
  task->reply = g_object_ref (reply);
  end (task, MPQ_TASK_DONE);
}

/* A batch ended: its results are the @length bytes at @offset in
 * @reply's data text (the worker's frame, kept as it came: a batch's
 * results are not copied out of it). */
void
_mpq_task_complete_batch (MpqTask    *task,
                          MpqMessage *reply,
                          gsize       offset,
                          gsize       length)
{
  g_assert (task->n_items > 0);
  task->results_at = offset;
  task->results_length = length;
  _mpq_task_complete (task, reply);
}

/* A DONE batch's results: the JSON array's text (not nul-terminated). */
const char *
_mpq_task_peek_results (MpqTask *task,
                        gsize   *length)
{
  gsize data_length;
  const char *data = _mpq_message_peek_data_text (task->reply, &data_length);

  g_assert (task->n_items > 0 && task->state == MPQ_TASK_DONE && data != NULL);
  g_assert (task->results_at + task->results_length <= data_length);
  *length = task->results_length;
  return data + task->results_at;
}

/* Takes @error; G_IO_ERROR_CANCELLED makes it CANCELLED. */
void
_mpq_task_fail (MpqTask *task,
                GError  *error)
{
  gboolean cancelled = g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  if (_mpq_task_is_final (task))
    {
      g_error_free (error);
      return;
    }
  task->error = error;
  end (task, cancelled ? MPQ_TASK_CANCELLED : MPQ_TASK_FAILED);
}

void
_mpq_task_progress (MpqTask    *task,
                    MpqMessage *progress)
{
  if (!_mpq_task_is_final (task))
    g_signal_emit (task, signals[SIGNAL_PROGRESS], 0, progress);
}

/* Public API ---------------------------------------------------------- */

static gboolean
task_is_final_cb (gpointer data)
{
  return _mpq_task_is_final (data);
}

/**
 * mpq_task_wait:
 * @self: a task
 * @timeout_ms: how long to wait, in milliseconds; 0 not at all, -1 for
 *   ever
 * @error: return location for a #GError
 *
 * Waits for the task's reply, running the pool's main context meanwhile
 * (call it from the thread that runs it; signals and other callbacks of
 * that context may run in the meantime).
 *
 * When @timeout_ms passes first, returns %NULL without an error: the task
 * goes on, and [property@Mpq.Task:state] says where it is.
 *
 * Returns: (transfer full) (nullable): the worker's reply (request
 *   `FINISHED`, data the result), or %NULL with @error set:
 *   `MPQ_ERROR_TASK_FAILED` (the worker's text), `MPQ_ERROR_WORKER_LOST`,
 *   `MPQ_ERROR_TIMED_OUT` (the task ran past
 *   [property@Mpq.Pool:task-timeout]), `MPQ_ERROR_CLOSED` (the pool shut
 *   down first) or `G_IO_ERROR_CANCELLED`; or %NULL without one when
 *   @timeout_ms passed
 *
 * Since: 1.2
 */
MpqMessage *
mpq_task_wait (MpqTask  *self,
               gint      timeout_ms,
               GError  **error)
{
  g_return_val_if_fail (MPQ_IS_TASK (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!_mpq_task_is_final (self))
    {
      g_autoptr(MpqTask) hold = g_object_ref (self);

      if (!_mpq_pool_iterate_until (self->context, task_is_final_cb, self,
                                    timeout_ms, error))
        return NULL;
    }
  if (!_mpq_task_is_final (self))
    return NULL;
  if (self->reply != NULL)
    return g_object_ref (self->reply);
  g_propagate_error (error, g_error_copy (self->error));
  return NULL;
}

static gboolean
wait_cancelled (GCancellable *cancellable,
                gpointer      user_data);

/**
 * mpq_task_wait_async:
 * @self: a task
 * @cancellable: (nullable): cancels the wait, not the task (for that,
 *   [method@Mpq.Task.cancel])
 * @callback: (scope async): called when the task ended
 * @user_data: data for @callback
 *
 * Waits for the task's reply; @callback runs in the thread-default main
 * context of the caller. From GJS, `Gio._promisify` makes this a promise.
 *
 * Since: 1.2
 */
void
mpq_task_wait_async (MpqTask             *self,
                     GCancellable        *cancellable,
                     GAsyncReadyCallback  callback,
                     gpointer             user_data)
{
  g_autoptr(GTask) wait = NULL;

  g_return_if_fail (MPQ_IS_TASK (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  wait = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (wait, mpq_task_wait_async);
  if (_mpq_task_is_final (self))
    {
      return_to (wait, self);
      return;
    }
  g_queue_push_tail (&self->waits, g_object_ref (wait));
  if (cancellable != NULL)
    {
      GSource *source = g_cancellable_source_new (cancellable);

      g_task_attach_source (wait, source, (GSourceFunc) (void (*) (void)) wait_cancelled);
      g_source_unref (source);
    }
}

/* The task's context: only the wait ends. */
static gboolean
wait_cancelled (GCancellable *cancellable,
                gpointer      user_data)
{
  GTask *wait = user_data;
  MpqTask *self = g_task_get_source_object (wait);

  if (g_queue_remove (&self->waits, wait))
    {
      g_task_return_error_if_cancelled (wait);
      g_object_unref (wait);
    }
  return G_SOURCE_REMOVE;
}

/**
 * mpq_task_wait_finish:
 * @self: a task
 * @result: the result given to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@Mpq.Task.wait_async].
 *
 * Returns: (transfer full): the worker's reply, or %NULL with @error set
 *   as [method@Mpq.Task.wait] says
 *
 * Since: 1.2
 */
MpqMessage *
mpq_task_wait_finish (MpqTask       *self,
                      GAsyncResult  *result,
                      GError       **error)
{
  g_return_val_if_fail (MPQ_IS_TASK (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * mpq_task_cancel:
 * @self: a task
 *
 * Cancels the task: a queued task is never handed to a worker; a running
 * one's worker is told to stop (the
 * [method@Mpq.Invocation.get_cancellable] of its invocation is cancelled)
 * and its late answer is dropped. The task ends `CANCELLED` at once; its
 * waiters get `G_IO_ERROR_CANCELLED`. Nothing happens to a task that
 * ended.
 *
 * Since: 1.2
 */
void
mpq_task_cancel (MpqTask *self)
{
  g_return_if_fail (MPQ_IS_TASK (self));

  if (_mpq_task_is_final (self))
    return;
  _mpq_pool_cancel_task (self->pool, self);
  _mpq_task_fail (self, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                             "The task was cancelled"));
}

/**
 * mpq_task_get_id:
 * @self: a task
 *
 * The task's number in its pool.
 *
 * Returns: the task's number in its pool
 *
 * Since: 1.2
 */
guint64
mpq_task_get_id (MpqTask *self)
{
  g_return_val_if_fail (MPQ_IS_TASK (self), 0);
  return self->id;
}

/**
 * mpq_task_get_request:
 * @self: a task
 *
 * The task's request.
 *
 * Returns: the request the task was submitted with
 *
 * Since: 1.2
 */
const char *
mpq_task_get_request (MpqTask *self)
{
  g_return_val_if_fail (MPQ_IS_TASK (self), NULL);
  return self->request;
}

/**
 * mpq_task_get_state:
 * @self: a task
 *
 * Where the task stands.
 *
 * Returns: where the task stands
 *
 * Since: 1.2
 */
MpqTaskState
mpq_task_get_state (MpqTask *self)
{
  g_return_val_if_fail (MPQ_IS_TASK (self), MPQ_TASK_FAILED);
  return self->state;
}

/**
 * mpq_task_get_attempts:
 * @self: a task
 *
 * How many times the task was handed to a worker.
 *
 * Returns: how many times the task was handed to a worker
 *
 * Since: 1.2
 */
guint
mpq_task_get_attempts (MpqTask *self)
{
  g_return_val_if_fail (MPQ_IS_TASK (self), 0);
  return self->attempts;
}

/**
 * mpq_task_get_worker_pid:
 * @self: a task
 *
 * The worker the task was last handed to.
 *
 * Returns: the pid of the worker the task was last handed to, or 0
 *
 * Since: 1.2
 */
gint
mpq_task_get_worker_pid (MpqTask *self)
{
  g_return_val_if_fail (MPQ_IS_TASK (self), 0);
  return self->worker_pid;
}
