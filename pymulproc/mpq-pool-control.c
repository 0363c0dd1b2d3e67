/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-error.h"
#include "mpq-pool-private.h"
#include "mpq-source-private.h"

/* The pool's knobs and its end: properties, worker pids, shutdown. The
 * pool's context only. */

static GParamSpec *
find_property (MpqPool    *self,
               const char *name)
{
  return g_object_class_find_property (G_OBJECT_GET_CLASS (self), name);
}

/**
 * mpq_pool_get_n_workers:
 * @self: a pool
 *
 * How many workers the pool keeps.
 *
 * Returns: how many workers the pool keeps
 *
 * Since: 1.2
 */
guint
mpq_pool_get_n_workers (MpqPool *self)
{
  g_return_val_if_fail (MPQ_IS_POOL (self), 0);
  return self->n_workers;
}

/**
 * mpq_pool_set_n_workers:
 * @self: a pool
 * @n_workers: how many workers to keep
 *
 * Grows or shrinks the pool (see [property@Mpq.Pool:n-workers]). It also
 * mends a pool broken by workers that die at start-up: it tries again.
 *
 * Since: 1.2
 */
void
mpq_pool_set_n_workers (MpqPool *self,
                        guint    n_workers)
{
  g_return_if_fail (MPQ_IS_POOL (self));
  /* A pool made without a command line spawns nobody. */
  g_return_if_fail (self->context == NULL || self->argv != NULL || n_workers == 0);

  if (self->n_workers == n_workers && self->broken == NULL)
    return;
  self->n_workers = n_workers;
  if (self->context != NULL)
    {
      g_clear_error (&self->broken);
      self->startup_failures = 0;
      _mpq_clear_source (&self->restart);
      _mpq_pool_adjust_workers (self);
    }
  g_object_notify_by_pspec (G_OBJECT (self), find_property (self, "n-workers"));
}

/**
 * mpq_pool_get_queue: (get-property queue)
 * @self: a pool
 *
 * The queue the pool talks to its workers through.
 *
 * Returns: (transfer none): [property@Mpq.Pool:queue], or %NULL before
 *   the pool was initialized
 *
 * Since: 1.2
 */
MpqQueue *
mpq_pool_get_queue (MpqPool *self)
{
  g_return_val_if_fail (MPQ_IS_POOL (self), NULL);

  return self->queue;
}

/**
 * mpq_pool_get_worker_format:
 * @self: a pool
 *
 * The format of payloads the pool's workers read, as the last worker to
 * say it was ready named it ([method@Mpq.Worker.set_format]; a pool's
 * workers run one program). A pool's user and its workers agree on what
 * the name means: the Python override's `map ()` sends a map's items
 * pickled, in payloads, when its workers say `"python-pickle"`.
 *
 * Returns: (nullable): the format, or %NULL when no worker named one or
 *   none said it was ready yet
 *
 * Since: 1.2
 */
const char *
mpq_pool_get_worker_format (MpqPool *self)
{
  g_return_val_if_fail (MPQ_IS_POOL (self), NULL);

  return self->worker_format;
}

/**
 * mpq_pool_get_max_attempts:
 * @self: a pool
 *
 * How many deaths of its workers a task survives.
 *
 * Returns: [property@Mpq.Pool:max-attempts]
 *
 * Since: 1.2
 */
guint
mpq_pool_get_max_attempts (MpqPool *self)
{
  g_return_val_if_fail (MPQ_IS_POOL (self), 0);
  return self->max_attempts;
}

/**
 * mpq_pool_set_max_attempts:
 * @self: a pool
 * @max_attempts: at least 1
 *
 * Sets [property@Mpq.Pool:max-attempts], for deaths from now on.
 *
 * Since: 1.2
 */
void
mpq_pool_set_max_attempts (MpqPool *self,
                           guint    max_attempts)
{
  g_return_if_fail (MPQ_IS_POOL (self));
  g_return_if_fail (max_attempts >= 1);

  if (self->max_attempts == max_attempts)
    return;
  self->max_attempts = max_attempts;
  g_object_notify_by_pspec (G_OBJECT (self), find_property (self, "max-attempts"));
}

/**
 * mpq_pool_get_task_timeout:
 * @self: a pool
 *
 * How long a worker may work on one task.
 *
 * Returns: [property@Mpq.Pool:task-timeout], in milliseconds
 *
 * Since: 1.2
 */
gint
mpq_pool_get_task_timeout (MpqPool *self)
{
  g_return_val_if_fail (MPQ_IS_POOL (self), -1);
  return self->task_timeout;
}

/**
 * mpq_pool_set_task_timeout:
 * @self: a pool
 * @task_timeout_ms: milliseconds, or -1 for none
 *
 * Sets [property@Mpq.Pool:task-timeout], for tasks started from now on.
 *
 * Since: 1.2
 */
void
mpq_pool_set_task_timeout (MpqPool *self,
                           gint     task_timeout_ms)
{
  g_return_if_fail (MPQ_IS_POOL (self));
  g_return_if_fail (task_timeout_ms >= -1);

  if (self->task_timeout == task_timeout_ms)
    return;
  self->task_timeout = task_timeout_ms;
  g_object_notify_by_pspec (G_OBJECT (self), find_property (self, "task-timeout"));
}

/**
 * mpq_pool_dup_worker_pids:
 * @self: a pool
 *
 * The pids of the pool's workers now, ready or not, leaving or not.
 *
 * Returns: (transfer full) (element-type gint): the pids
 *
 * Since: 1.2
 */
GArray *
mpq_pool_dup_worker_pids (MpqPool *self)
{
  GArray *pids = g_array_new (FALSE, FALSE, sizeof (gint));
  GHashTableIter iter;
  gpointer key;

  g_return_val_if_fail (MPQ_IS_POOL (self), pids);

  g_hash_table_iter_init (&iter, self->workers);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    {
      gint pid = GPOINTER_TO_INT (key);

      g_array_append_val (pids, pid);
    }
  return pids;
}

/* Shutdown -------------------------------------------------------------- */

static gboolean
holds_tasks (MpqPool *self)
{
  GHashTableIter iter;
  MpqPoolWorker *worker;

  if (!g_queue_is_empty (&self->pending))
    return TRUE;
  g_hash_table_iter_init (&iter, self->workers);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &worker))
    for (GList *l = worker->window.head; l != NULL; l = l->next)
      if (((MpqPoolSlot *) l->data)->task != NULL)
        return TRUE;
  return FALSE;
}

/* After anything that may end a shutdown: once no task is left, every
 * worker is told to go; once every worker is gone, the shutdown ends. */
void
_mpq_pool_check_shutdown (MpqPool *self)
{
  GHashTableIter iter;
  MpqPoolWorker *worker;
  GTask *wait;

  if (!self->shutting_down || self->closed)
    return;
  if (!holds_tasks (self))
    {
      g_hash_table_iter_init (&iter, self->workers);
      while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &worker))
        if (!worker->told_to_go)
          _mpq_pool_tell_to_go (self, worker);
    }
  if (g_hash_table_size (self->workers) > 0)
    return;

  self->closed = TRUE;
  _mpq_clear_source (&self->shutdown_timer);
  _mpq_clear_source (&self->restart);
  while ((wait = g_queue_pop_head (&self->shutdown_waits)) != NULL)
    {
      if (self->shutdown_error != NULL)
        g_task_return_error (wait, g_error_copy (self->shutdown_error));
      else
        g_task_return_boolean (wait, TRUE);
      g_object_unref (wait);
    }
}

static gboolean
shutdown_timeout_cb (gpointer user_data)
{
  MpqPool *self = user_data;
  GHashTableIter iter;
  MpqPoolWorker *worker;
  MpqTask *task;

  g_clear_pointer (&self->shutdown_timer, g_source_unref);
  if (self->shutdown_error == NULL)
    self->shutdown_error = g_error_new_literal (MPQ_ERROR, MPQ_ERROR_TIMED_OUT,
                                                "The pool's workers did not finish in time: "
                                                "they were killed");
  while ((task = g_queue_pop_head (&self->pending)) != NULL)
    {
      _mpq_task_fail (task, g_error_new_literal (MPQ_ERROR, MPQ_ERROR_CLOSED,
                                                 "The pool shut down before the task ended"));
      g_object_unref (task);
    }
  g_hash_table_iter_init (&iter, self->workers);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &worker))
    {
      for (GList *l = worker->window.head; l != NULL; l = l->next)
        {
          MpqPoolSlot *slot = l->data;
          g_autoptr(MpqTask) held = g_steal_pointer (&slot->task);

          if (held != NULL)
            _mpq_task_fail (held, g_error_new_literal (MPQ_ERROR, MPQ_ERROR_CLOSED,
                                                       "The pool shut down before the task "
                                                       "ended"));
        }
      worker->told_to_go = TRUE;
      _mpq_pool_kill_worker (self, worker, TRUE);
    }
  _mpq_pool_check_shutdown (self);
  return G_SOURCE_REMOVE;
}

/**
 * mpq_pool_shutdown_async:
 * @self: a pool
 * @timeout_ms: how long the tasks left may take, in milliseconds, or -1
 * @cancellable: (nullable): a cancellable
 * @callback: (scope async): called once every worker is gone
 * @user_data: data for @callback
 *
 * Takes no more tasks ([method@Mpq.Pool.submit] fails with
 * `MPQ_ERROR_CLOSED`), lets those submitted end, then tells each worker
 * to die and reaps it. Past @timeout_ms, the tasks left fail with
 * `MPQ_ERROR_CLOSED`, the workers are killed, and the shutdown fails with
 * `MPQ_ERROR_TIMED_OUT` once they are reaped.
 *
 * Since: 1.2
 */
void
mpq_pool_shutdown_async (MpqPool             *self,
                         gint                 timeout_ms,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  GTask *wait;

  g_return_if_fail (MPQ_IS_POOL (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  wait = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (wait, mpq_pool_shutdown_async);
  if (self->context == NULL)
    {
      g_task_return_boolean (wait, TRUE);
      g_object_unref (wait);
      return;
    }
  g_queue_push_tail (&self->shutdown_waits, wait);
  if (self->closed)
    {
      /* Over already: said the same way as the first time. */
      self->closed = FALSE;
      _mpq_pool_check_shutdown (self);
      return;
    }
  self->shutting_down = TRUE;
  if (timeout_ms >= 0 && self->shutdown_timer == NULL)
    {
      self->shutdown_timer = g_timeout_source_new (timeout_ms);
      g_source_set_callback (self->shutdown_timer, shutdown_timeout_cb, self, NULL);
      g_source_set_static_name (self->shutdown_timer, "[mpq] pool shutdown");
      g_source_attach (self->shutdown_timer, self->context);
    }
  _mpq_pool_check_shutdown (self);
}

/**
 * mpq_pool_shutdown_finish:
 * @self: a pool
 * @result: the result given to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@Mpq.Pool.shutdown_async].
 *
 * Returns: %TRUE once every worker is gone, %FALSE with @error set
 *
 * Since: 1.2
 */
gboolean
mpq_pool_shutdown_finish (MpqPool       *self,
                          GAsyncResult  *result,
                          GError       **error)
{
  g_return_val_if_fail (MPQ_IS_POOL (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

typedef struct
{
  MpqPool *pool;
  gint     timeout_ms;
} ShutdownCall;

static void
start_shutdown (gpointer             data,
                GAsyncReadyCallback  callback,
                gpointer             user_data)
{
  ShutdownCall *call = data;

  mpq_pool_shutdown_async (call->pool, call->timeout_ms, NULL, callback, user_data);
}

/**
 * mpq_pool_shutdown:
 * @self: a pool
 * @timeout_ms: how long the tasks left may take, in milliseconds, or -1
 * @error: return location for a #GError
 *
 * [method@Mpq.Pool.shutdown_async], waiting in the pool's main context:
 * call it from the thread that runs it.
 *
 * Returns: %TRUE once every worker is gone, %FALSE with @error set
 *
 * Since: 1.2
 */
gboolean
mpq_pool_shutdown (MpqPool  *self,
                   gint      timeout_ms,
                   GError  **error)
{
  ShutdownCall call = { self, timeout_ms };
  g_autoptr(GAsyncResult) result = NULL;

  g_return_val_if_fail (MPQ_IS_POOL (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  result = _mpq_pool_call_sync (self->context != NULL ? self->context : g_main_context_default (),
                                start_shutdown, &call, error);
  return result != NULL && mpq_pool_shutdown_finish (self, result, error);
}
