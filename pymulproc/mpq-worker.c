/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "mpq-channel.h"
#include "mpq-error.h"
#include "mpq-json-private.h"
#include "mpq-pool-private.h"
#include "mpq-protocol.h"
#include "mpq-queue-private.h"
#include "mpq-source-private.h"
#include "mpq-worker-private.h"

/**
 * MpqWorker:
 *
 * The worker's side of an [class@Mpq.Pool], in the shape of
 * `GDBusMethodInvocation`: each task is a [signal@Mpq.Worker::task] with
 * an [class@Mpq.Invocation] to answer, now or later.
 *
 * A worker works on one task at a time: the next `task` is emitted once
 * the invocation before it was answered (or dropped, which answers it
 * with an error). [method@Mpq.Worker.run] serves until the pool tells the
 * worker to die or the pool's process is gone; programs with their own
 * main loop call [method@Mpq.Worker.start] and hear of either through
 * [signal@Mpq.Worker::closed].
 *
 * A worker is used from one thread; its signals are emitted in the
 * thread-default main context of the thread that started it.
 *
 * Since: 1.2
 */

enum
{
  SIGNAL_TASK,
  SIGNAL_BATCH,
  SIGNAL_CLOSED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (MpqWorker, mpq_worker, G_TYPE_OBJECT)

static void
mpq_worker_dispose (GObject *object)
{
  MpqWorker *self = MPQ_WORKER (object);

  if (self->queue != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->queue, self);
      mpq_channel_flush (MPQ_CHANNEL (self->queue), MPQ_DEFAULT_SEND_TIMEOUT, NULL);
      mpq_channel_close (MPQ_CHANNEL (self->queue));
      g_clear_object (&self->queue);
    }
  _mpq_worker_clear_frames (self);
  g_clear_object (&self->current_cancellable);
  _mpq_clear_source (&self->next);
  _mpq_clear_source (&self->watch);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_clear_pointer (&self->format, g_free);

  G_OBJECT_CLASS (mpq_worker_parent_class)->dispose (object);
}

static void
mpq_worker_class_init (MpqWorkerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = mpq_worker_dispose;

  /**
   * MpqWorker::task:
   * @self: the worker
   * @invocation: the task: answer it with
   *   [method@Mpq.Invocation.return_json] or
   *   [method@Mpq.Invocation.return_error], now or later (keep a
   *   reference)
   *
   * The pool handed this worker a task (or a broadcast, whose answer the
   * pool drops). An invocation dropped unanswered fails its task.
   *
   * Since: 1.2
   */
  signals[SIGNAL_TASK] =
    g_signal_new ("task", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, MPQ_TYPE_INVOCATION);
  /**
   * MpqWorker::batch:
   * @self: the worker
   * @invocation: a batch of a map's tasks: its data is the JSON array of
   *   their data, all with its request
   *
   * The pool handed this worker a batch of an [method@Mpq.Pool.map]'s
   * tasks. Only emitted when a handler is connected: otherwise each item
   * is a [signal@Mpq.Worker::task] of its own. Connect to it when a task
   * costs less than a signal and an object: the handler answers the whole
   * batch with [method@Mpq.Invocation.return_json] and an array of as
   * many results, in order (anything else is refused with
   * `MPQ_ERROR_PROTOCOL` and the invocation stays to answer), or with
   * [method@Mpq.Invocation.return_error], which fails the map.
   * [method@Mpq.Invocation.get_n_items] says how many items it holds.
   *
   * Since: 1.2
   */
  signals[SIGNAL_BATCH] =
    g_signal_new ("batch", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, MPQ_TYPE_INVOCATION);
  /**
   * MpqWorker::closed:
   * @self: the worker
   *
   * The pool told the worker to die, or its process is gone: no task
   * comes any more. Emitted once.
   *
   * Since: 1.2
   */
  signals[SIGNAL_CLOSED] =
    g_signal_new ("closed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
mpq_worker_init (MpqWorker *self)
{
  g_queue_init (&self->frames);
}

/* Emitted by mpq-worker-tasks.c. */
void
_mpq_worker_emit_task (MpqWorker     *self,
                       MpqInvocation *invocation)
{
  g_signal_emit (self, signals[SIGNAL_TASK], 0, invocation);
}

/* Whether someone takes a map's batches whole. */
gboolean
_mpq_worker_takes_batches (MpqWorker *self)
{
  return g_signal_has_handler_pending (self, signals[SIGNAL_BATCH], 0, TRUE);
}

void
_mpq_worker_emit_batch (MpqWorker     *self,
                        MpqInvocation *invocation)
{
  g_signal_emit (self, signals[SIGNAL_BATCH], 0, invocation);
}

void
_mpq_worker_close (MpqWorker *self)
{
  if (self->closed)
    return;
  self->closed = TRUE;
  g_signal_emit (self, signals[SIGNAL_CLOSED], 0);
}

static void
message_received_cb (MpqChannel *channel,
                     MpqMessage *message,
                     gpointer    user_data)
{
  _mpq_worker_on_message (MPQ_WORKER (user_data), message);
}

static void
queue_closed_cb (MpqChannel *channel,
                 gpointer    user_data)
{
  _mpq_worker_close (MPQ_WORKER (user_data));
}

/* On a server's queue nothing ends when the pool's process does: the
 * worker asks the queue whether its pool left, or its lease ended
 * (docs/redis.md), every quarter of the lease-time and at least every
 * second, and leaves as a local worker does when its socket ends. */
#define MPQ_WORKER_WATCH_MAX_MS 1000

static gboolean
watch_pool_cb (gpointer user_data)
{
  MpqWorker *self = user_data;
  g_autoptr(GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint));
  g_autoptr(GError) error = NULL;

  g_array_append_val (ids, self->parent_pid);
  if (!_mpq_queue_find_gone (self->queue, ids, &error))
    {
      /* A closed queue says so by itself; the server away is not the
       * pool gone. */
      g_debug ("Worker: cannot tell whether the pool is there: %s", error->message);
      return G_SOURCE_CONTINUE;
    }
  if (ids->len == 0)
    return G_SOURCE_CONTINUE;
  g_debug ("Worker: the pool (%d) left the queue", self->parent_pid);
  g_clear_pointer (&self->watch, g_source_unref);
  _mpq_worker_close (self);
  return G_SOURCE_REMOVE;
}

static void
watch_pool (MpqWorker *self)
{
  guint interval = CLAMP (mpq_queue_get_lease_time (self->queue) / 4, 1, MPQ_WORKER_WATCH_MAX_MS);

  if (self->watch != NULL || !_mpq_queue_tells_gone (self->queue) || self->parent_pid <= 0)
    return;
  self->watch = g_timeout_source_new (interval);
  g_source_set_callback (self->watch, watch_pool_cb, self, NULL);
  g_source_set_static_name (self->watch, "[mpq] worker watches its pool");
  g_source_attach (self->watch, self->context);
}

/**
 * mpq_worker_new_for_child:
 * @error: return location for a #GError
 *
 * Opens, in a worker an [class@Mpq.Pool] spawned, its end of the pool.
 * Then [method@Mpq.Worker.run] (or [method@Mpq.Worker.start]) serves.
 *
 * Returns: (transfer full): the worker, or %NULL with @error set to
 *   `MPQ_ERROR_NOT_A_CHILD` when no pool spawned this process
 *
 * Since: 1.2
 */
MpqWorker *
mpq_worker_new_for_child (GError **error)
{
  g_autoptr(MpqWorker) self = NULL;
  const char *flag = g_getenv (MPQ_POOL_WORKER_ENV);

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (g_strcmp0 (flag, "1") != 0)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD,
                           "This process was not spawned by a pool (no "
                           MPQ_POOL_WORKER_ENV "=1)");
      return NULL;
    }
  self = g_object_new (MPQ_TYPE_WORKER, NULL);
  self->queue = mpq_queue_new_for_child (error);
  if (self->queue == NULL)
    return NULL;
  self->pid = mpq_channel_get_pid (MPQ_CHANNEL (self->queue));
  self->parent_pid = mpq_queue_get_parent_pid (self->queue);
  /* A local pool is this process's parent; a wrapper between them, or a
   * pool elsewhere, is not watched (a pool on a server: watch_pool ()). */
  if (!_mpq_queue_tells_gone (self->queue) && getppid () == self->parent_pid)
    self->os_parent = self->parent_pid;
  return g_steal_pointer (&self);
}

/**
 * mpq_worker_start:
 * @self: a worker
 *
 * Tells the pool the worker is ready, and emits
 * [signal@Mpq.Worker::task] for each task, in the thread-default main
 * context, until [method@Mpq.Worker.stop].
 *
 * Since: 1.2
 */
void
mpq_worker_start (MpqWorker *self)
{
  g_return_if_fail (MPQ_IS_WORKER (self));

  if (self->queue == NULL || self->started)
    return;
  self->started = TRUE;
  if (self->context == NULL)
    self->context = g_main_context_ref_thread_default ();
  g_signal_connect (self->queue, "message-received", G_CALLBACK (message_received_cb), self);
  g_signal_connect (self->queue, "closed", G_CALLBACK (queue_closed_cb), self);
  mpq_channel_start (MPQ_CHANNEL (self->queue));
  watch_pool (self);
  if (!self->ready_sent)
    {
      self->ready_sent = TRUE;
      /* It takes a map's items in batches (docs/protocol.md). */
      GString *ready = g_string_new ("{\"batch\":true");

      if (self->format != NULL)
        {
          g_string_append (ready, ",\"format\":");
          _mpq_json_write_string (ready, self->format);
        }
      g_string_append_c (ready, '}');
      if (!_mpq_worker_send (self, MPQ_REQ_READY, ready->str, NULL))
        _mpq_worker_close (self);
      g_string_free (ready, TRUE);
    }
  _mpq_worker_run_next (self);
}

/**
 * mpq_worker_set_format:
 * @self: a worker
 * @format: (nullable): the name of a format of payloads this worker
 *   reads, or %NULL for none
 *
 * Says, in the worker's `READY`, that it reads task payloads in @format,
 * a name its pool's user and it agree on; the pool's
 * [method@Mpq.Pool.get_worker_format] gives it. Python's
 * `Mpq.serve_worker ()` says `"python-pickle"`. Called before the worker starts: the
 * pool hears it only once.
 *
 * Since: 1.2
 */
void
mpq_worker_set_format (MpqWorker  *self,
                       const char *format)
{
  g_return_if_fail (MPQ_IS_WORKER (self));
  g_return_if_fail (format == NULL || g_utf8_validate (format, -1, NULL));
  g_return_if_fail (!self->ready_sent);

  g_free (self->format);
  self->format = g_strdup (format);
}

/**
 * mpq_worker_stop:
 * @self: a worker
 *
 * Stops emitting [signal@Mpq.Worker::task]; tasks handed meanwhile wait
 * for the next [method@Mpq.Worker.start].
 *
 * Since: 1.2
 */
void
mpq_worker_stop (MpqWorker *self)
{
  g_return_if_fail (MPQ_IS_WORKER (self));

  if (self->queue == NULL || !self->started)
    return;
  self->started = FALSE;
  mpq_channel_stop (MPQ_CHANNEL (self->queue));
  g_signal_handlers_disconnect_by_data (self->queue, self);
  _mpq_clear_source (&self->next);
}

static gboolean
is_closed (gpointer data)
{
  return MPQ_WORKER (data)->closed;
}

/**
 * mpq_worker_run:
 * @self: a worker
 * @error: return location for a #GError
 *
 * Serves tasks, iterating the thread-default main context, until the pool
 * tells the worker to die or the pool's process is gone; then sends what
 * is left to send.
 *
 * Returns: %TRUE when told to die, %FALSE with @error set otherwise
 *   (`MPQ_ERROR_CLOSED` when the pool is gone, `MPQ_ERROR_NOT_A_CHILD`
 *   for a worker not made by [ctor@Mpq.Worker.new_for_child])
 *
 * Since: 1.2
 */
gboolean
mpq_worker_run (MpqWorker  *self,
                GError    **error)
{
  GMainContext *context = g_main_context_ref_thread_default ();
  gboolean ok;

  g_return_val_if_fail (MPQ_IS_WORKER (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (self->queue == NULL)
    {
      g_main_context_unref (context);
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD,
                           "The worker was not made by mpq_worker_new_for_child ()");
      return FALSE;
    }
  g_object_ref (self);
  mpq_worker_start (self);
  ok = _mpq_pool_iterate_until (context, is_closed, self, -1, error);
  mpq_worker_stop (self);
  g_main_context_unref (context);
  if (ok && !mpq_channel_flush (MPQ_CHANNEL (self->queue), MPQ_DEFAULT_SEND_TIMEOUT, NULL))
    g_debug ("Worker: what was left to send could not be sent");
  if (ok && !self->told_to_die)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_CLOSED, "The pool is gone");
      ok = FALSE;
    }
  g_object_unref (self);
  return ok;
}

/**
 * mpq_worker_get_pid:
 * @self: a worker
 *
 * This worker's pid.
 *
 * Returns: this worker's pid, as the pool knows it (0 for a worker not
 *   made by [ctor@Mpq.Worker.new_for_child])
 *
 * Since: 1.2
 */
gint
mpq_worker_get_pid (MpqWorker *self)
{
  g_return_val_if_fail (MPQ_IS_WORKER (self), 0);
  return self->pid;
}
