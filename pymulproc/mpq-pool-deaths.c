/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>
#include <sys/wait.h>

#include "mpq-channel.h"
#include "mpq-error.h"
#include "mpq-pool-private.h"
#include "mpq-protocol.h"
#include "mpq-queue-private.h"
#include "mpq-source-private.h"

/* What a pool's worker's death means, and its replacement. The pool's
 * context only.
 *
 * A death is known from two sides that race: the process's exit (its
 * wait) and the last answers it wrote, which the queue's thread may not
 * have read yet. Once the exit is seen, the queue is made to read
 * everything the worker wrote (_mpq_queue_sync_children ()), and the
 * pool sends itself a marker through the queue: it comes after the
 * worker's last answer, and only then are the tasks it held judged (on a
 * server's queue, the marker comes after the worker's last answers by
 * the queue's order). So a worker that answers and
 * exits at once never has its task counted as a death. */

/* The worker's wait: the pool's context. */
void
_mpq_pool_wait_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  MpqPoolWorker *worker = user_data;
  g_autoptr(GError) error = NULL;

  if (!g_subprocess_wait_finish (G_SUBPROCESS (source), result, &error) ||
      worker->pool == NULL)
    {
      /* The pool went away first: the worker is ours to free. */
      _mpq_pool_worker_free (worker);
      return;
    }
  _mpq_pool_worker_exited (worker->pool, worker, g_subprocess_get_status (worker->process));
}

/* @worker exited (its wait, or the queue says a joined one is gone,
 * @wait_status -1): judged once what it wrote was read. */
void
_mpq_pool_worker_exited (MpqPool       *pool,
                         MpqPoolWorker *worker,
                         gint           wait_status)
{
  g_autofree char *marker = NULL;

  worker->exited = TRUE;
  worker->wait_status = wait_status;
  _mpq_clear_source (&worker->timeout);
  _mpq_clear_source (&worker->kill);
  g_debug ("Pool worker %d exited (wait status %d)", worker->pid, worker->wait_status);

  /* A pid unknown: nothing it wrote can be told apart, no marker to wait
   * for. */
  if (worker->pid <= 0)
    {
      _mpq_pool_worker_gone (pool, worker);
      return;
    }
  /* See the top of the file: what it wrote is read before the marker. */
  _mpq_queue_sync_children (pool->queue);
  marker = g_strdup_printf ("{\"pid\":%d}", worker->pid);
  if (!mpq_channel_send_json (MPQ_CHANNEL (pool->queue), MPQ_POOL_REQ_GONE,
                              pool->pid, pool->pid, marker, NULL))
    _mpq_pool_worker_gone (pool, worker);
}

/* Deaths ------------------------------------------------------------------- */

static char *
describe_status (gint wait_status)
{
  if (wait_status == -1)
    return g_strdup ("it left the queue, or its lease ended");
  if (WIFSIGNALED (wait_status))
    return g_strdup_printf ("killed by signal %d (%s)", WTERMSIG (wait_status),
                            g_strsignal (WTERMSIG (wait_status)));
  return g_strdup_printf ("exit status %d", WEXITSTATUS (wait_status));
}

/* Everything the worker wrote was read, and it exited: what it held goes
 * back in line, but the task it worked on (the oldest) counts a death. */
void
_mpq_pool_worker_gone (MpqPool       *pool,
                       MpqPoolWorker *worker)
{
  g_autoptr(MpqPool) hold = g_object_ref (pool);
  g_autofree char *status = describe_status (worker->wait_status);
  gboolean expected = worker->told_to_go;
  gint wait_status = worker->wait_status;
  gint pid = worker->pid;
  gboolean startup_failure;
  GList *back = NULL;
  GList *lost = NULL;
  MpqPoolSlot *slot;
  gboolean head = TRUE;

  g_hash_table_steal (pool->workers, GINT_TO_POINTER (pid));
  /* What was sent to it and never read (a task, CANCEL, DIE) must not
   * wait for a process that will never come, nor for one that gets its
   * pid later. */
  if (pid > 0)
    _mpq_queue_forget_pid (pool->queue, pid);
  /* A joined worker the pool dropped may be alive: it still hears that
   * it must go. */
  if (worker->dropped)
    mpq_channel_send_json (MPQ_CHANNEL (pool->queue), MPQ_REQ_DIE, pool->pid, pid, NULL, NULL);
  startup_failure = !worker->answered && g_queue_is_empty (&worker->window) && !expected;

  while ((slot = g_queue_pop_head (&worker->window)) != NULL)
    {
      MpqTask *task = g_steal_pointer (&slot->task);
      gboolean counts = head;

      head = FALSE;
      g_free (slot);
      if (task == NULL || _mpq_task_is_final (task))
        g_clear_object (&task);
      else if (counts && _mpq_task_add_death (task) >= pool->max_attempts)
        lost = g_list_prepend (lost, task);
      else
        back = g_list_prepend (back, task);
    }
  _mpq_pool_worker_free (worker);

  /* Back to the front, in the order they were handed. */
  for (GList *l = back; l != NULL; l = l->next)
    {
      _mpq_task_set_queued (l->data);
      g_queue_push_head (&pool->pending, l->data);
    }
  g_list_free (back);

  if (startup_failure)
    _mpq_pool_startup_failed (pool, status);
  _mpq_pool_adjust_workers (pool);

  /* Last, with the pool consistent: signals and the tasks' waiters run
   * code that may change it. */
  for (GList *l = lost; l != NULL; l = l->next)
    _mpq_task_fail (l->data, g_error_new (MPQ_ERROR, MPQ_ERROR_WORKER_LOST,
                                          "The task's worker died %u times (the last: %s)",
                                          pool->max_attempts, status));
  g_list_free_full (lost, g_object_unref);
  /* Every task it held is back in line (not handed on yet: its
   * worker-pid still says who died with it) or failed. */
  _mpq_pool_emit_worker_exited (pool, MAX (pid, 0), wait_status, expected);
  _mpq_pool_schedule (pool);
  _mpq_pool_check_shutdown (pool);
}

static gboolean
any_ready (MpqPool *pool)
{
  GHashTableIter iter;
  MpqPoolWorker *worker;

  g_hash_table_iter_init (&iter, pool->workers);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &worker))
    if (worker->state == MPQ_POOL_WORKER_READY)
      return TRUE;
  return FALSE;
}

static gboolean
restart_cb (gpointer user_data)
{
  MpqPool *pool = user_data;

  g_clear_pointer (&pool->restart, g_source_unref);
  _mpq_pool_adjust_workers (pool);
  return G_SOURCE_REMOVE;
}

/* A worker died before it answered anything (or could not be spawned):
 * its replacement waits longer each time in a row, and past
 * MPQ_POOL_MAX_STARTUP_FAILURES with no worker ready the pool is broken:
 * its queued tasks fail, and so does submit, until n-workers is set. */
void
_mpq_pool_startup_failed (MpqPool    *pool,
                          const char *what)
{
  guint delay;

  pool->startup_failures++;
  if (pool->startup_failures >= MPQ_POOL_MAX_STARTUP_FAILURES && !any_ready (pool))
    {
      MpqTask *task;

      g_clear_error (&pool->broken);
      pool->broken = g_error_new (MPQ_ERROR, MPQ_ERROR_WORKER_LOST,
                                  "The pool's workers died at start-up %u times in a row "
                                  "(the last: %s)", pool->startup_failures, what);
      g_message ("%s", pool->broken->message);
      _mpq_clear_source (&pool->restart);
      while ((task = g_queue_pop_head (&pool->pending)) != NULL)
        {
          _mpq_task_fail (task, g_error_copy (pool->broken));
          g_object_unref (task);
        }
      return;
    }
  if (pool->restart != NULL)
    return;
  delay = MIN ((guint) MPQ_POOL_RESTART_DELAY_MS << MIN (pool->startup_failures - 1, 10),
               (guint) MPQ_POOL_MAX_RESTART_DELAY_MS);
  pool->restart = g_timeout_source_new (delay);
  g_source_set_callback (pool->restart, restart_cb, pool, NULL);
  g_source_set_static_name (pool->restart, "[mpq] pool restart");
  g_source_attach (pool->restart, pool->context);
}
