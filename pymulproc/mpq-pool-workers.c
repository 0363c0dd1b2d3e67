/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "mpq-channel.h"
#include "mpq-error.h"
#include "mpq-message-private.h"
#include "mpq-pool-private.h"
#include "mpq-queue-private.h"
#include "mpq-protocol.h"
#include "mpq-source-private.h"

/* The pool's workers: spawning them, handing them tasks, reading their
 * answers (their deaths: mpq-pool-deaths.c). The pool's context only. */

static MpqPoolWorker *
lookup (MpqPool *pool,
        gint     pid)
{
  return g_hash_table_lookup (pool->workers, GINT_TO_POINTER (pid));
}

void
_mpq_pool_worker_free (MpqPoolWorker *worker)
{
  MpqPoolSlot *slot;

  while ((slot = g_queue_pop_head (&worker->window)) != NULL)
    {
      g_clear_object (&slot->task);
      g_free (slot);
    }
  _mpq_clear_source (&worker->timeout);
  _mpq_clear_source (&worker->kill);
  g_clear_object (&worker->cancellable);
  g_clear_object (&worker->process);
  g_free (worker);
}

/* Workers not leaving; @spawned_only: of those the pool spawned (what
 * n-workers counts), not those that joined. */
guint
_mpq_pool_count_live (MpqPool  *pool,
                      gboolean  spawned_only)
{
  GHashTableIter iter;
  MpqPoolWorker *worker;
  guint n = 0;

  g_hash_table_iter_init (&iter, pool->workers);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &worker))
    if (worker->state != MPQ_POOL_WORKER_LEAVING && !(spawned_only && worker->joined))
      n++;
  return n;
}

/* Spawning and exits --------------------------------------------------- */

/* Spawns one worker; it takes tasks once it said it is ready. */
gboolean
_mpq_pool_spawn_worker (MpqPool  *pool,
                        GError  **error)
{
  MpqPoolWorker *worker;
  GSubprocess *process;
  gint pid;

  /* The child's pid in the queue: its OS pid, or on a server's queue the
   * id reserved for it. */
  process = _mpq_queue_spawn_child (pool->queue, pool->launcher,
                                    (const char * const *) pool->argv, &pid, error);
  if (process == NULL)
    return FALSE;

  worker = g_new0 (MpqPoolWorker, 1);
  worker->pool = pool;
  worker->process = process;
  /* 0 once GLib reaped a worker that exited at once (seen on a busy
   * machine): it is known by a number of its own below 0, reported as
   * pid 0, and nothing it wrote is its (the queue read it for pid 0). */
  worker->pid = pid != 0 ? pid : -(gint) ++pool->n_unknown_pids;
  worker->cancellable = g_cancellable_new ();
  worker->state = MPQ_POOL_WORKER_STARTING;
  g_queue_init (&worker->window);
  g_hash_table_insert (pool->workers, GINT_TO_POINTER (worker->pid), worker);
  g_subprocess_wait_async (process, worker->cancellable, _mpq_pool_wait_cb, worker);
  return TRUE;
}

static gboolean
kill_cb (gpointer user_data)
{
  MpqPoolWorker *worker = user_data;

  g_clear_pointer (&worker->kill, g_source_unref);
  if (!worker->exited)
    g_subprocess_force_exit (worker->process);
  return G_SOURCE_REMOVE;
}

/* SIGTERM, then SIGKILL after MPQ_POOL_KILL_GRACE_MS; or SIGKILL
 * @at_once. It takes nothing more. */
void
_mpq_pool_kill_worker (MpqPool       *pool,
                       MpqPoolWorker *worker,
                       gboolean       at_once)
{
  if (worker->joined)
    {
      _mpq_pool_drop_joined (pool, worker);
      return;
    }
  worker->state = MPQ_POOL_WORKER_LEAVING;
  if (worker->exited)
    return;
  if (at_once)
    {
      _mpq_clear_source (&worker->kill);
      g_subprocess_force_exit (worker->process);
      return;
    }
  if (worker->kill != NULL)
    return;
  g_subprocess_send_signal (worker->process, SIGTERM);
  worker->kill = g_timeout_source_new (MPQ_POOL_KILL_GRACE_MS);
  g_source_set_callback (worker->kill, kill_cb, worker, NULL);
  g_source_set_static_name (worker->kill, "[mpq] pool worker kill");
  g_source_attach (worker->kill, pool->context);
}

/* A worker that did something no worker does: it is killed, and what it
 * held is judged when it is gone. */
static void
reject_worker (MpqPool       *pool,
               MpqPoolWorker *worker,
               const char    *what)
{
  g_message ("Killing pool worker %d: %s", worker->pid, what);
  _mpq_pool_kill_worker (pool, worker, TRUE);
}

/* DIE, once, to a worker not gone yet; one that cannot be told is
 * killed. */
void
_mpq_pool_send_die (MpqPool       *pool,
                    MpqPoolWorker *worker)
{
  if (worker->die_sent || worker->exited)
    return;
  worker->die_sent = TRUE;
  if (!mpq_channel_send_json (MPQ_CHANNEL (pool->queue), MPQ_REQ_DIE, pool->pid,
                              worker->pid, NULL, NULL))
    _mpq_pool_kill_worker (pool, worker, TRUE);
}

/* Shrink and shutdown: the worker takes nothing more, and is told to die
 * once it answered what it holds. */
void
_mpq_pool_tell_to_go (MpqPool       *pool,
                      MpqPoolWorker *worker)
{
  worker->told_to_go = TRUE;
  worker->state = MPQ_POOL_WORKER_LEAVING;
  if (g_queue_is_empty (&worker->window))
    _mpq_pool_send_die (pool, worker);
}

/* Time-outs -------------------------------------------------------------- */

static gboolean
timeout_cb (gpointer user_data)
{
  MpqPoolWorker *worker = user_data;
  MpqPool *pool = worker->pool;
  MpqPoolSlot *slot = g_queue_peek_head (&worker->window);
  g_autoptr(MpqPool) hold = g_object_ref (pool);
  g_autoptr(MpqTask) task = slot != NULL ? g_steal_pointer (&slot->task) : NULL;

  g_clear_pointer (&worker->timeout, g_source_unref);
  g_message ("Killing pool worker %d: its task ran past task-timeout", worker->pid);
  _mpq_pool_kill_worker (pool, worker, FALSE);
  /* Last: the task's waiters may run code that changes the pool. */
  if (task != NULL)
    _mpq_task_fail (task, g_error_new (MPQ_ERROR, MPQ_ERROR_TIMED_OUT,
                                       "The task ran past the pool's task-timeout (%d ms)",
                                       pool->task_timeout));
  _mpq_pool_check_shutdown (pool);
  return G_SOURCE_REMOVE;
}

/* The head of the window is what the worker works on now: its time
 * counts from here. */
static void
start_head_timeout (MpqPool       *pool,
                    MpqPoolWorker *worker)
{
  worker->head_since = g_get_monotonic_time ();
  _mpq_clear_source (&worker->timeout);
  if (pool->task_timeout < 0 || g_queue_is_empty (&worker->window) ||
      worker->exited || worker->kill != NULL)
    return;
  worker->timeout = g_timeout_source_new (pool->task_timeout);
  g_source_set_callback (worker->timeout, timeout_cb, worker, NULL);
  g_source_set_static_name (worker->timeout, "[mpq] pool task-timeout");
  g_source_attach (worker->timeout, pool->context);
}

/* Handing tasks out ------------------------------------------------------ */

/* A task's frame: {"task": id, "data": x}, or a batch's {"task": id,
 * "batch": [x, ...]}; @payload (nullable) goes with it. */
static gboolean
send_task (MpqPool       *pool,
           MpqPoolWorker *worker,
           guint64        id,
           const char    *request,
           gboolean       batch,
           const char    *data_json,
           gboolean       compact,
           GBytes        *payload,
           GError       **error)
{
  g_autofree char *frame = _mpq_pool_frame_task (id, batch ? "batch" : "data", data_json);

  return _mpq_pool_send_frame (pool->queue, request, pool->pid, worker->pid, frame,
                               compact, payload, error);
}

/* Adds @task (nullable: a broadcast) to @worker's window. */
static void
push_slot (MpqPool       *pool,
           MpqPoolWorker *worker,
           guint64        id,
           MpqTask       *task)
{
  MpqPoolSlot *slot = g_new0 (MpqPoolSlot, 1);

  slot->id = id;
  slot->task = task != NULL ? g_object_ref (task) : NULL;
  g_queue_push_tail (&worker->window, slot);
  if (worker->window.length == 1)
    start_head_timeout (pool, worker);
}

/* How many tasks @worker may hold: see MPQ_POOL_WINDOW_US. */
static guint
window_of (MpqPoolWorker *worker)
{
  if (worker->work_us <= 0)
    return MPQ_POOL_WINDOW_MIN;
  return CLAMP (MPQ_POOL_WINDOW_US / worker->work_us, MPQ_POOL_WINDOW_MIN, MPQ_POOL_WINDOW_MAX);
}

/* The ready worker with the fewest tasks in hand below its window (one
 * that takes batches, for a batch). */
static MpqPoolWorker *
least_busy (MpqPool  *pool,
            gboolean  batch)
{
  GHashTableIter iter;
  MpqPoolWorker *worker;
  MpqPoolWorker *best = NULL;

  g_hash_table_iter_init (&iter, pool->workers);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &worker))
    if (worker->state == MPQ_POOL_WORKER_READY &&
        (worker->batches || !batch) &&
        worker->window.length < window_of (worker) &&
        (best == NULL || worker->window.length < best->window.length))
      best = worker;
  return best;
}

/* Hands queued tasks to ready workers, as far as their windows go. */
void
_mpq_pool_schedule (MpqPool *pool)
{
  MpqPoolWorker *worker;

  while (!g_queue_is_empty (&pool->pending))
    {
      gboolean batch = _mpq_task_get_batch (g_queue_peek_head (&pool->pending)) > 0;
      g_autoptr(MpqTask) task = NULL;
      GError *error = NULL;

      if (batch && !pool->batches)
        {
          /* A batch made before the workers said they do not take them:
           * its items go as tasks of their own. */
          task = g_queue_pop_head (&pool->pending);
          _mpq_pool_split_batch (pool, task);
          continue;
        }
      if ((worker = least_busy (pool, batch)) == NULL)
        break;
      task = g_queue_pop_head (&pool->pending);

      if (!send_task (pool, worker, mpq_task_get_id (task), mpq_task_get_request (task),
                      _mpq_task_get_batch (task) > 0, _mpq_task_peek_data_json (task),
                      _mpq_task_is_compact (task), _mpq_task_peek_payload (task), &error))
        {
          _mpq_task_fail (task, error);
          continue;
        }
      push_slot (pool, worker, mpq_task_get_id (task), task);
      _mpq_task_set_running (task, worker->pid);
    }
}

/* A broadcast: one slot per ready worker, its answer dropped. */
guint
_mpq_pool_broadcast_to_ready (MpqPool     *pool,
                              const char  *request,
                              const char  *data_json)
{
  GHashTableIter iter;
  MpqPoolWorker *worker;
  guint n = 0;

  g_hash_table_iter_init (&iter, pool->workers);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &worker))
    {
      guint64 id;

      if (worker->state != MPQ_POOL_WORKER_READY)
        continue;
      id = ++pool->next_id;
      if (send_task (pool, worker, id, request, FALSE, data_json, FALSE, NULL, NULL))
        {
          push_slot (pool, worker, id, NULL);
          n++;
        }
    }
  return n;
}

/* Spawns or retires workers to match n-workers, unless a restart waits. */
void
_mpq_pool_adjust_workers (MpqPool *pool)
{
  guint live = _mpq_pool_count_live (pool, TRUE);

  if (pool->shutting_down || pool->closed)
    return;

  while (live < pool->n_workers && pool->restart == NULL && pool->broken == NULL)
    {
      g_autoptr(GError) error = NULL;

      if (!_mpq_pool_spawn_worker (pool, &error))
        {
          g_message ("A pool worker could not be spawned: %s", error->message);
          _mpq_pool_startup_failed (pool, error->message);
          return;
        }
      live++;
    }

  /* Shrinking: idle workers first, then those starting, then busy ones
   * (which leave once they answered what they hold). */
  for (guint pass = 0; pass < 3 && live > pool->n_workers; pass++)
    {
      GHashTableIter iter;
      MpqPoolWorker *worker;

      g_hash_table_iter_init (&iter, pool->workers);
      while (live > pool->n_workers &&
             g_hash_table_iter_next (&iter, NULL, (gpointer *) &worker))
        {
          gboolean pick;

          if (worker->state == MPQ_POOL_WORKER_LEAVING || worker->joined)
            continue;
          if (pass == 0)
            pick = worker->state == MPQ_POOL_WORKER_READY && g_queue_is_empty (&worker->window);
          else if (pass == 1)
            pick = worker->state == MPQ_POOL_WORKER_STARTING;
          else
            pick = TRUE;
          if (pick)
            {
              _mpq_pool_tell_to_go (pool, worker);
              live--;
            }
        }
    }
}

/* What workers say --------------------------------------------------------- */

static void
on_ready (MpqPool       *pool,
          MpqPoolWorker *worker,
          MpqMessage    *message)
{
  g_auto(MpqPoolFrame) frame = { 0 };

  if (worker->state != MPQ_POOL_WORKER_STARTING)
    {
      if (worker->state == MPQ_POOL_WORKER_READY)
        reject_worker (pool, worker, "it said it was ready twice");
      return;
    }
  worker->state = MPQ_POOL_WORKER_READY;
  _mpq_pool_frame_read (&frame, message);
  worker->batches = _mpq_pool_frame_is_true (&frame, MPQ_POOL_MEMBER_BATCH);
  pool->batches = worker->batches;
  g_free (pool->worker_format);
  pool->worker_format = _mpq_pool_frame_dup_string (&frame, MPQ_POOL_MEMBER_FORMAT);
  _mpq_pool_emit_worker_started (pool, worker->pid);
  _mpq_pool_schedule (pool);
}

static MpqPoolSlot *
find_slot (MpqPoolWorker *worker,
           guint64        id,
           GList        **link)
{
  for (GList *l = worker->window.head; l != NULL; l = l->next)
    {
      MpqPoolSlot *slot = l->data;

      if (slot->id == id)
        {
          *link = l;
          return slot;
        }
    }
  return NULL;
}

static void
on_answer (MpqPool       *pool,
           MpqPoolWorker *worker,
           MpqMessage    *message,
           gboolean       finished)
{
  g_auto(MpqPoolFrame) frame = { 0 };
  g_autoptr(MpqTask) task = NULL;
  g_autoptr(MpqMessage) reply = NULL;
  gboolean batch_done = FALSE;
  gsize results_at = 0;
  GError *failure = NULL;
  MpqPoolSlot *slot;
  gboolean was_head;
  guint64 id;
  guint n_results;
  GList *link;

  if (!_mpq_pool_frame_read (&frame, message) ||
      !_mpq_pool_frame_get_id (&frame, MPQ_POOL_MEMBER_TASK, &id))
    {
      reject_worker (pool, worker, "an answer without a task id");
      return;
    }
  slot = find_slot (worker, id, &link);
  if (slot == NULL)
    {
      reject_worker (pool, worker, "an answer to a task it did not hold");
      return;
    }
  was_head = link == worker->window.head;
  if (was_head)
    {
      /* What its tasks take it, from start to answer, lately. */
      gint64 took = MAX (g_get_monotonic_time () - worker->head_since, 1);

      worker->work_us = worker->work_us == 0 ? took : (7 * worker->work_us + took) / 8;
    }
  task = g_steal_pointer (&slot->task);
  g_queue_delete_link (&worker->window, link);
  g_free (slot);
  worker->answered = TRUE;
  pool->startup_failures = 0;

  if (task != NULL && finished && _mpq_task_get_batch (task) > 0)
    {
      if (!_mpq_pool_frame_count (&frame, MPQ_POOL_MEMBER_RESULTS, &n_results) ||
          n_results != _mpq_task_get_batch (task))
        {
          /* Put back: the worker is killed, and the batch judged with it. */
          slot = g_new0 (MpqPoolSlot, 1);
          slot->id = id;
          slot->task = g_steal_pointer (&task);
          g_queue_push_head (&worker->window, slot);
          reject_worker (pool, worker, "a batch answered with the wrong number of results");
          return;
        }
      /* Kept as it came: a map takes the results' text where it stands
       * (a copy only of a frame this process wrote). */
      batch_done = TRUE;
      if (_mpq_pool_frame_offset (&frame, MPQ_POOL_MEMBER_RESULTS, &results_at))
        reply = g_object_ref (message);
      else
        reply = _mpq_pool_frame_message (&frame, MPQ_POOL_MEMBER_RESULTS, MPQ_REQ_FINISHED);
    }
  else if (task != NULL && finished)
    {
      reply = _mpq_pool_frame_message (&frame, MPQ_POOL_MEMBER_RESULT, MPQ_REQ_FINISHED);
      if (mpq_message_get_bytes (message) != NULL)
        _mpq_message_set_payload (reply, mpq_message_get_bytes (message));
    }
  else if (task != NULL)
    {
      g_autofree char *what = _mpq_pool_frame_dup_string (&frame, MPQ_POOL_MEMBER_ERROR);

      failure = g_error_new_literal (MPQ_ERROR, MPQ_ERROR_TASK_FAILED,
                                     what != NULL ? what : "The task failed");
    }

  if (was_head)
    start_head_timeout (pool, worker);
  if (worker->told_to_go && g_queue_is_empty (&worker->window))
    _mpq_pool_send_die (pool, worker);
  _mpq_pool_schedule (pool);

  /* Last: the task's waiters may run code that changes the pool, this
   * worker included. */
  if (batch_done)
    _mpq_task_complete_batch (task, reply, results_at, frame.length[MPQ_POOL_MEMBER_RESULTS]);
  else if (reply != NULL)
    _mpq_task_complete (task, reply);
  else if (failure != NULL)
    _mpq_task_fail (task, failure);
  _mpq_pool_check_shutdown (pool);
}

static void
on_progress (MpqPool       *pool,
             MpqPoolWorker *worker,
             MpqMessage    *message)
{
  g_auto(MpqPoolFrame) frame = { 0 };
  g_autoptr(MpqMessage) progress = NULL;
  MpqPoolSlot *slot;
  guint64 id;
  GList *link;

  if (!_mpq_pool_frame_read (&frame, message) ||
      !_mpq_pool_frame_get_id (&frame, MPQ_POOL_MEMBER_TASK, &id) ||
      (slot = find_slot (worker, id, &link)) == NULL)
    {
      reject_worker (pool, worker, "progress of a task it did not hold");
      return;
    }
  if (slot->task == NULL)
    return;
  progress = _mpq_pool_frame_message (&frame, MPQ_POOL_MEMBER_PROGRESS, MPQ_REQ_PROGRESS);
  _mpq_task_progress (slot->task, progress);
}

/* The queue's dispatch, for everything addressed to the parent. */
void
_mpq_pool_on_message (MpqPool    *pool,
                      MpqMessage *message)
{
  const char *request = mpq_message_get_request (message);
  gint origin = _mpq_message_get_origin (message);
  MpqPoolWorker *worker;

  if (origin == pool->pid)
    {
      g_auto(MpqPoolFrame) frame = { 0 };
      guint64 pid;

      if (g_str_equal (request, MPQ_POOL_REQ_GONE) && _mpq_pool_frame_read (&frame, message) &&
          _mpq_pool_frame_get_id (&frame, MPQ_POOL_MEMBER_PID, &pid) && pid <= G_MAXINT &&
          (worker = lookup (pool, (gint) pid)) != NULL)
        _mpq_pool_worker_gone (pool, worker);
      return;
    }

  /* The queue says which child's socket a message came from: a worker
   * cannot answer for another by writing its pid. */
  worker = lookup (pool, origin);
  if (worker == NULL && g_str_equal (request, MPQ_REQ_READY))
    worker = _mpq_pool_join_worker (pool, origin);
  if (worker == NULL)
    {
      g_debug ("Pool: dropping %s from %d, not a worker", request, origin);
      return;
    }
  if (origin != mpq_message_get_sender_pid (message))
    {
      reject_worker (pool, worker, "a message in another's name");
      return;
    }

  if (g_str_equal (request, MPQ_REQ_FINISHED))
    on_answer (pool, worker, message, TRUE);
  else if (g_str_equal (request, MPQ_REQ_FAILED))
    on_answer (pool, worker, message, FALSE);
  else if (g_str_equal (request, MPQ_REQ_PROGRESS))
    on_progress (pool, worker, message);
  else if (g_str_equal (request, MPQ_REQ_READY))
    on_ready (pool, worker, message);
  else
    reject_worker (pool, worker, "a request no worker sends");
}

