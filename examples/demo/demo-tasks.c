/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* mpq-demo: the tasks. [0, limit) is split into counting tasks (and one
 * poison task with --poison-task); each goes to the pool with the fewest
 * unfinished tasks per worker, as an MpqTask whose `progress` signal feeds
 * the progress line and whose mpq_task_wait_async() brings the result
 * home. A pool that ends a task gets the next one, so faster pools do
 * more. */

#include "demo.h"

char *
demo_task_describe (DemoTask *task)
{
  if (task->poison)
    return g_strdup ("the poison task");
  return g_strdup_printf ("task %u", task->index);
}

/* Splits [0, limit) into tasks of nearly equal size; the poison task, if
 * asked for, comes after them. */
void
demo_tasks_make (Demo *demo)
{
  gint i;

  for (i = 0; i < demo->n_tasks; i++)
    {
      DemoTask *task = g_new0 (DemoTask, 1);

      task->demo = demo;
      task->index = i;
      task->lo = (guint64) demo->limit * i / demo->n_tasks;
      task->hi = (guint64) demo->limit * (i + 1) / demo->n_tasks;
      g_ptr_array_add (demo->tasks, task);
    }

  if (demo->poison_task)
    {
      DemoTask *task = g_new0 (DemoTask, 1);

      task->demo = demo;
      task->index = demo->n_tasks;
      task->poison = TRUE;
      g_ptr_array_add (demo->tasks, task);
      demo->poison = task;
    }
}

void
demo_task_free (DemoTask *task)
{
  if (task->task != NULL)
    g_signal_handlers_disconnect_by_data (task->task, task);
  g_clear_object (&task->task);
  g_clear_error (&task->error);
  g_free (task);
}

/* The poison task goes first, while there is work to go on with; then the
 * counting tasks in order. */
static DemoTask *
next_to_submit (Demo *demo)
{
  if (demo->poison != NULL && demo->poison->pool == NULL)
    return demo->poison;
  if (demo->next_task < (guint) demo->n_tasks)
    return g_ptr_array_index (demo->tasks, demo->next_task);
  return NULL;
}

/* The pool with the fewest unfinished tasks per worker, among those that
 * have room: one task in hand and one waiting per worker. */
static DemoPool *
pick_pool (Demo *demo)
{
  DemoPool *best = NULL;
  Lang lang;

  for (lang = 0; lang < N_LANGS; lang++)
    {
      DemoPool *dpool = &demo->pools[lang];

      if (dpool->pool == NULL || dpool->refused
          || dpool->unfinished >= DEMO_TASKS_PER_WORKER * dpool->n_workers)
        continue;
      if (best == NULL || dpool->unfinished * best->n_workers < best->unfinished * dpool->n_workers)
        best = dpool;
    }

  return best;
}

guint64
demo_numbers_in_flight (Demo *demo)
{
  guint64 numbers = 0;
  guint i;

  for (i = 0; i < demo->tasks->len; i++)
    {
      DemoTask *task = g_ptr_array_index (demo->tasks, i);

      if (task->pool != NULL && !task->ended)
        numbers += task->progress;
    }

  return numbers;
}

/* Reads a non-negative integer member. */
static gboolean
get_uint_member (JsonNode   *data,
                 const char *name,
                 guint64    *value)
{
  JsonObject *object = data != NULL && JSON_NODE_HOLDS_OBJECT (data)
                     ? json_node_get_object (data) : NULL;
  JsonNode *node = object != NULL ? json_object_get_member (object, name) : NULL;

  if (node == NULL || json_node_get_value_type (node) != G_TYPE_INT64
      || json_node_get_int (node) < 0)
    return FALSE;

  *value = (guint64) json_node_get_int (node);
  return TRUE;
}

/* A worker reported progress {"done", "primes"} on @task. */
static void
on_progress (MpqTask    *mpq_task,
             MpqMessage *message,
             gpointer    user_data)
{
  DemoTask *task = user_data;
  Demo *demo = task->demo;
  DemoWorker *w = demo_worker_for_pid (demo, mpq_task_get_worker_pid (mpq_task));
  guint64 done;

  if (!get_uint_member (mpq_message_get_data (message), "done", &done)
      || done > task->hi - task->lo)
    {
      g_autofree char *text = mpq_message_dup_data_json (message);
      g_autofree char *what = demo_task_describe (task);

      demo_note (demo, "progress %s on %s is not {\"done\": a count of its numbers}",
                 text, what);
      demo->failed = TRUE;
      return;
    }

  task->progress = done;
  if (w != NULL)
    {
      w->current = task;
      demo_maybe_kill (demo, w, task);
    }
  demo_progress_update (demo, FALSE);
}

/* Books the answer {"primes", "us"} to a counting task. */
static void
take_answer (DemoTask   *task,
             DemoWorker *w,
             MpqMessage *reply)
{
  Demo *demo = task->demo;
  JsonNode *data = mpq_message_get_data (reply);
  guint64 primes, us = 0;

  if (w == NULL
      || !get_uint_member (data, "primes", &primes)
      || primes > task->hi - task->lo
      || (json_object_has_member (json_node_get_object (data), "us")
          && !get_uint_member (data, "us", &us)))
    {
      g_autofree char *text = mpq_message_dup_data_json (reply);

      demo_note (demo, "task %u was answered %s by pid %d: not a count of its primes",
                 task->index, text, mpq_task_get_worker_pid (task->task));
      demo->failed = TRUE;
      return;
    }

  task->primes = primes;
  task->done_by = w;
  w->tasks_done++;
  w->numbers += task->hi - task->lo;
  w->primes += primes;
  w->busy_us += us;
  w->pool->tasks_done++;
  demo->tasks_done++;
  demo->numbers_done += task->hi - task->lo;
}

static void
on_task_ended (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  DemoTask *task = user_data;
  Demo *demo = task->demo;
  MpqTask *mpq_task = MPQ_TASK (source);
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) reply = mpq_task_wait_finish (mpq_task, result, &error);
  DemoWorker *w = demo_worker_for_pid (demo, mpq_task_get_worker_pid (mpq_task));
  g_autofree char *what = demo_task_describe (task);

  task->ended = TRUE;
  task->attempts = mpq_task_get_attempts (mpq_task);
  task->pool->unfinished--;
  demo->tasks_ended++;
  if (w != NULL && w->current == task)
    w->current = NULL;

  if (task->poison)
    {
      /* demo-main.c judges how it failed. */
      if (reply != NULL)
        {
          demo_note (demo, "the poison task was answered: its workers should have crashed");
          demo->failed = TRUE;
        }
      task->error = g_steal_pointer (&error);
    }
  else if (reply == NULL)
    {
      /* After Ctrl-C, tasks are cancelled; after a second one, they fail
       * with the pool's shutdown. */
      if (!demo->interrupted
          || !(g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED)
               || g_error_matches (error, MPQ_ERROR, MPQ_ERROR_CLOSED)))
        {
          demo_note (demo, "%s failed: %s", what, error->message);
          demo->failed = TRUE;
        }
      task->error = g_steal_pointer (&error);
    }
  else
    take_answer (task, w, reply);

  demo_tasks_submit_more (demo);
  demo_progress_update (demo, demo->tasks_done == (guint) demo->n_tasks);
  demo_check_end (demo);
}

static gboolean
submit (Demo      *demo,
        DemoTask  *task,
        DemoPool  *dpool)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *data = NULL;

  if (!task->poison)
    data = g_strdup_printf ("{\"lo\":%" G_GUINT64_FORMAT ",\"hi\":%" G_GUINT64_FORMAT "}",
                            task->lo, task->hi);
  task->task = mpq_pool_submit (dpool->pool, task->poison ? DEMO_REQ_CRASH : DEMO_REQ_COUNT,
                                data, &error);
  if (task->task == NULL)
    {
      /* A pool whose workers keep dying at start-up refuses tasks: the
       * others take them. */
      demo_note (demo, "the %s pool refuses tasks: %s", demo_lang_names[dpool->lang].name,
                 error->message);
      dpool->refused = TRUE;
      demo->failed = TRUE;
      return FALSE;
    }

  task->pool = dpool;
  dpool->unfinished++;
  if (!task->poison)
    demo->next_task++;
  g_signal_connect (task->task, "progress", G_CALLBACK (on_progress), task);
  mpq_task_wait_async (task->task, NULL, on_task_ended, task);
  return TRUE;
}

/* Gives the pools tasks while they have room for them. */
void
demo_tasks_submit_more (Demo *demo)
{
  DemoTask *task;
  DemoPool *dpool;

  while (!demo->stopping && (task = next_to_submit (demo)) != NULL
         && (dpool = pick_pool (demo)) != NULL)
    submit (demo, task, dpool);
}

/* Ctrl-C: what no worker reported progress on is cancelled: the tasks in
 * line, and those waiting in a worker's hands (one just begun goes too:
 * its answer will be dropped). */
void
demo_tasks_cancel_unstarted (Demo *demo)
{
  guint i;

  for (i = 0; i < demo->tasks->len; i++)
    {
      DemoTask *task = g_ptr_array_index (demo->tasks, i);

      if (task->task != NULL && !task->ended && task->progress == 0)
        mpq_task_cancel (task->task);
    }
}

static gboolean
any_pool_usable (Demo *demo)
{
  Lang lang;

  for (lang = 0; lang < N_LANGS; lang++)
    if (demo->pools[lang].pool != NULL && !demo->pools[lang].refused)
      return TRUE;

  return FALSE;
}

/* Once no task is left to hand out or to wait for, the pools shut down. */
void
demo_check_end (Demo *demo)
{
  guint submitted = 0;
  guint i;

  if (demo->stopping)
    return;

  for (i = 0; i < demo->tasks->len; i++)
    if (((DemoTask *) g_ptr_array_index (demo->tasks, i))->pool != NULL)
      submitted++;

  if (demo->tasks_ended < submitted)
    return;
  if (next_to_submit (demo) != NULL && any_pool_usable (demo))
    return;

  if (next_to_submit (demo) != NULL)
    demo_note (demo, "no pool takes tasks any more: %u of %d tasks were not handed out",
               demo->n_tasks - demo->next_task, demo->n_tasks);
  demo->work_ended = g_get_monotonic_time ();
  demo_progress_update (demo, TRUE);
  demo_pools_shutdown (demo, DEMO_SHUTDOWN_TIMEOUT_MS);
}
