/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* MpqPool's supervision: deaths, poison tasks, time-outs, cancel,
 * broadcast, growing and shrinking, shutdown. Real workers; no sleeps. */
#include "pool-test-util.h"

#include <signal.h>
#include <sys/wait.h>

static guint poison_deaths;

static void
poison_state_cb (MpqPool  *pool,
                 gint      pid,
                 gint      wait_status,
                 gboolean  expected,
                 MpqTask  *poison)
{
  /* When worker-exited is emitted, what the worker held was judged: the
   * poison is failed at its third death, not before. */
  if (expected)
    return;
  /* Not handed on yet: it still names the worker that died with it. */
  g_assert_cmpint (mpq_task_get_worker_pid (poison), ==, pid);
  if (++poison_deaths < 3)
    g_assert_cmpint (mpq_task_get_state (poison), ==, MPQ_TASK_QUEUED);
  else
    g_assert_cmpint (mpq_task_get_state (poison), ==, MPQ_TASK_FAILED);
}

/* A segfault on one task: the others finish; that one fails WORKER_LOST
 * after max-attempts deaths, each of a different worker. */
static void
test_poison_task (void)
{
  Counts counts = { 0, };
  g_autoptr(MpqPool) pool = new_pool_full (3, NULL, NULL, &counts);
  g_autoptr(GPtrArray) tasks = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;

  for (gint64 i = 0; i < 40; i++)
    g_ptr_array_add (tasks, submit_int (pool, "crash-on", i));
  poison_deaths = 0;
  g_signal_connect (pool, "worker-exited", G_CALLBACK (poison_state_cb),
                    g_ptr_array_index (tasks, 13));
  for (guint i = 0; i < tasks->len; i++)
    {
      MpqTask *task = g_ptr_array_index (tasks, i);

      if (i == 13)
        {
          wait_error (task, MPQ_ERROR, MPQ_ERROR_WORKER_LOST, "died 3 times");
          g_assert_cmpuint (mpq_task_get_attempts (task), ==, 3);
          g_assert_cmpint (mpq_task_get_state (task), ==, MPQ_TASK_FAILED);
        }
      else
        g_assert_cmpint (wait_int (task), ==, (gint64) i * i);
    }
  g_assert_cmpuint (counts.exited_unexpected, ==, 3);
  shutdown_ok (pool);
  g_assert_cmpuint (counts.exited_expected, ==, 3);
}

static void
test_max_attempts_one (void)
{
  g_autoptr(MpqPool) pool = new_pool (1);
  g_autoptr(MpqTask) poison = NULL;
  g_autoptr(MpqTask) next = NULL;

  mpq_pool_set_max_attempts (pool, 1);
  poison = submit_int (pool, "crash-on", 13);
  next = submit_int (pool, "square", 4);
  wait_error (poison, MPQ_ERROR, MPQ_ERROR_WORKER_LOST, "died 1 times");
  g_assert_cmpuint (mpq_task_get_attempts (poison), ==, 1);
  /* Handed with it, but not what the worker worked on: no death counted. */
  g_assert_cmpint (wait_int (next), ==, 16);
  shutdown_ok (pool);
}

/* A worker that answers and exits at once: its answer counts, not its
 * death, however the exit and the answer race. Each task goes to a fresh
 * worker (the one before is waited for: a task handed to a worker that
 * is exiting would count its death, rightly). */
static void
test_answer_then_exit_is_not_a_death (void)
{
  Counts counts = { 0, };
  g_autoptr(MpqPool) pool = new_pool_full (1, NULL, NULL, &counts);

  mpq_pool_set_max_attempts (pool, 1);
  for (guint i = 0; i < 20; i++)
    {
      g_autoptr(MpqTask) task = NULL;

      run_until_counts (&counts, i + 1, i);
      task = submit_int (pool, "exit-after", i);
      g_assert_cmpint (wait_int (task), ==, i);
      g_assert_cmpuint (mpq_task_get_attempts (task), ==, 1);
      run_until_counts (&counts, i + 1, i + 1);
    }
  shutdown_ok (pool);
  g_assert_cmpuint (counts.exited_unexpected, ==, 20);
}

/* Killed from outside while it works: the task is done by another. */
static void
test_killed_worker_task_redone (void)
{
  Counts counts = { 0, };
  g_autoptr(MpqPool) pool = new_pool_full (2, NULL, NULL, &counts);
  g_autoptr(MpqTask) task = submit_until_cancel (pool);
  g_autoptr(MpqTask) check = NULL;
  gint first;

  first = mpq_task_get_worker_pid (task);
  g_assert_cmpint (kill (first, SIGKILL), ==, 0);
  while (mpq_task_get_attempts (task) < 2)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint (mpq_task_get_worker_pid (task), !=, first);
  g_assert_cmpint (mpq_task_get_state (task), ==, MPQ_TASK_RUNNING);
  mpq_task_cancel (task);
  check = submit_int (pool, "square", 3);
  g_assert_cmpint (wait_int (check), ==, 9);
  g_assert_cmpuint (counts.exited_unexpected, ==, 1);
  shutdown_ok (pool);
}

/* Past task-timeout: TIMED_OUT, the worker killed and replaced, the pool
 * goes on. */
static void
test_task_timeout (void)
{
  Counts counts = { 0, };
  g_autoptr(MpqPool) pool = new_pool_full (1, NULL, NULL, &counts);
  g_autoptr(MpqTask) hung = NULL;
  g_autoptr(MpqTask) after = NULL;

  mpq_pool_set_task_timeout (pool, 200);
  hung = submit_int (pool, "hang", 0);
  after = submit_int (pool, "square", 6);
  wait_error (hung, MPQ_ERROR, MPQ_ERROR_TIMED_OUT, "task-timeout");
  g_assert_cmpuint (mpq_task_get_attempts (hung), ==, 1);
  g_assert_cmpint (wait_int (after), ==, 36);
  g_assert_cmpuint (counts.exited_unexpected, ==, 1);
  g_assert_cmpuint (counts.started, ==, 2);
  shutdown_ok (pool);
}

static char *
read_log (const char *dir,
          gint        pid)
{
  g_autofree char *path = g_strdup_printf ("%s/%d", dir, pid);
  char *text = NULL;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return g_strdup ("");
  return text;
}

/* Cancel: a queued task never reaches a worker; a running one's
 * invocation is cancelled and its answer dropped. */
static void
test_cancel (void)
{
  g_autofree char *dir = g_dir_make_tmp ("mpq-pool-XXXXXX", NULL);
  g_autoptr(MpqPool) pool = new_pool_full (1, NULL, dir, NULL);
  g_autoptr(MpqTask) running = submit_until_cancel (pool);
  g_autoptr(MpqTask) waiting = submit_int (pool, "echo", 1);
  g_autoptr(MpqTask) queued = submit_int (pool, "echo", 2);
  g_autoptr(MpqTask) after = NULL;
  g_autofree char *log = NULL;
  gint pid;

  pid = mpq_task_get_worker_pid (running);
  /* The window is two: "waiting" sits at the worker, "queued" here. */
  g_assert_cmpint (mpq_task_get_state (waiting), ==, MPQ_TASK_RUNNING);
  g_assert_cmpint (mpq_task_get_state (queued), ==, MPQ_TASK_QUEUED);

  mpq_task_cancel (queued);
  mpq_task_cancel (waiting);
  mpq_task_cancel (running);
  g_assert_cmpint (mpq_task_get_state (running), ==, MPQ_TASK_CANCELLED);
  wait_error (running, G_IO_ERROR, G_IO_ERROR_CANCELLED, NULL);
  wait_error (waiting, G_IO_ERROR, G_IO_ERROR_CANCELLED, NULL);
  wait_error (queued, G_IO_ERROR, G_IO_ERROR_CANCELLED, NULL);
  mpq_task_cancel (queued);   /* ended: nothing happens */

  after = submit_int (pool, "square", 7);
  g_assert_cmpint (wait_int (after), ==, 49);
  g_assert_cmpint (mpq_task_get_worker_pid (after), ==, pid);
  shutdown_ok (pool);

  log = read_log (dir, pid);
  g_assert_cmpstr (log, ==, "until-cancel\ncancelled\nsquare\n");
  remove_dir (dir);
}

/* Broadcast reaches each ready worker once, and only those. */
static void
test_broadcast (void)
{
  g_autofree char *dir = g_dir_make_tmp ("mpq-pool-XXXXXX", NULL);
  Counts counts = { 0, };
  g_autoptr(MpqPool) pool = new_pool_full (3, NULL, dir, &counts);
  g_autoptr(GArray) pids = NULL;
  g_autoptr(GError) error = NULL;

  run_until_counts (&counts, 3, 0);
  g_assert_cmpuint (mpq_pool_broadcast (pool, "config", "{\"level\":2}", &error), ==, 3);
  g_assert_no_error (error);
  pids = mpq_pool_dup_worker_pids (pool);
  g_assert_cmpuint (pids->len, ==, 3);
  shutdown_ok (pool);
  for (guint i = 0; i < pids->len; i++)
    {
      g_autofree char *log = read_log (dir, g_array_index (pids, gint, i));

      g_assert_cmpstr (log, ==, "config\n");
    }
  remove_dir (dir);
}

static void
test_grow_and_shrink (void)
{
  Counts counts = { 0, };
  g_autoptr(MpqPool) pool = new_pool_full (1, NULL, NULL, &counts);
  g_autoptr(MpqTask) busy = NULL;
  g_autoptr(MpqTask) check = NULL;
  g_autoptr(GArray) pids = NULL;

  run_until_counts (&counts, 1, 0);
  mpq_pool_set_n_workers (pool, 4);
  g_assert_cmpuint (mpq_pool_get_n_workers (pool), ==, 4);
  run_until_counts (&counts, 4, 0);

  /* One busy worker: shrinking to one retires the three idle ones. */
  busy = submit_until_cancel (pool);
  mpq_pool_set_n_workers (pool, 1);
  run_until_counts (&counts, 4, 3);
  g_assert_cmpuint (counts.exited_expected, ==, 3);
  g_assert_cmpint (mpq_task_get_state (busy), ==, MPQ_TASK_RUNNING);
  pids = mpq_pool_dup_worker_pids (pool);
  g_assert_cmpuint (pids->len, ==, 1);
  g_assert_cmpint (g_array_index (pids, gint, 0), ==, mpq_task_get_worker_pid (busy));
  mpq_task_cancel (busy);
  check = submit_int (pool, "square", 8);
  g_assert_cmpint (wait_int (check), ==, 64);
  shutdown_ok (pool);
  g_assert_cmpuint (counts.exited_unexpected, ==, 0);
}

static void
test_shutdown_lets_tasks_finish (void)
{
  Counts counts = { 0, };
  g_autoptr(MpqPool) pool = new_pool_full (2, NULL, NULL, &counts);
  g_autoptr(GPtrArray) tasks = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;
  MpqTask *refused;

  for (gint64 i = 0; i < 30; i++)
    g_ptr_array_add (tasks, submit_int (pool, "sleep", 2));
  shutdown_ok (pool);
  for (guint i = 0; i < tasks->len; i++)
    g_assert_cmpint (mpq_task_get_state (g_ptr_array_index (tasks, i)), ==, MPQ_TASK_DONE);
  g_assert_cmpuint (counts.exited_expected, ==, 2);
  g_assert_cmpuint (counts.exited_unexpected, ==, 0);

  refused = mpq_pool_submit (pool, "square", "1", &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_assert_null (refused);
  /* A second shutdown says the same. */
  shutdown_ok (pool);
}

static void
test_shutdown_timeout_kills (void)
{
  Counts counts = { 0, };
  g_autoptr(MpqPool) pool = new_pool_full (1, NULL, NULL, &counts);
  g_autoptr(MpqTask) hung = submit_int (pool, "hang", 0);
  g_autoptr(GError) error = NULL;

  while (mpq_task_get_state (hung) != MPQ_TASK_RUNNING)
    g_main_context_iteration (NULL, TRUE);
  g_assert_false (mpq_pool_shutdown (pool, 100, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT);
  wait_error (hung, MPQ_ERROR, MPQ_ERROR_CLOSED, NULL);
  g_assert_cmpuint (counts.exited_expected, ==, 1);
  g_autoptr(GArray) pids = mpq_pool_dup_worker_pids (pool);
  g_assert_cmpuint (pids->len, ==, 0);
}

/* Workers that die at start-up: replaced later each time, then the pool
 * is broken and says so, until n-workers is set again. */
static void
test_death_at_start_breaks_the_pool (void)
{
  Counts counts = { 0, };
  g_autoptr(MpqPool) pool = new_pool_full (1, "--die-at-start", NULL, &counts);
  g_autoptr(MpqTask) task = submit_int (pool, "square", 2);
  g_autoptr(GError) error = NULL;
  MpqTask *refused;

  wait_error (task, MPQ_ERROR, MPQ_ERROR_WORKER_LOST, "start-up 5 times");
  g_assert_cmpuint (counts.started, ==, 0);
  g_assert_cmpuint (counts.exited_unexpected, ==, 5);
  refused = mpq_pool_submit (pool, "square", "1", &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_WORKER_LOST);
  g_assert_null (refused);
  g_clear_error (&error);
  g_assert_true (mpq_pool_shutdown (pool, -1, &error));
  g_assert_no_error (error);
}

void
test_pool_add_supervision_tests (void)
{
  g_test_add_func ("/Mpq/Pool/poison-task", test_poison_task);
  g_test_add_func ("/Mpq/Pool/max-attempts-one", test_max_attempts_one);
  g_test_add_func ("/Mpq/Pool/answer-then-exit-is-not-a-death",
                   test_answer_then_exit_is_not_a_death);
  g_test_add_func ("/Mpq/Pool/killed-worker-task-redone", test_killed_worker_task_redone);
  g_test_add_func ("/Mpq/Pool/task-timeout", test_task_timeout);
  g_test_add_func ("/Mpq/Pool/cancel", test_cancel);
  g_test_add_func ("/Mpq/Pool/broadcast", test_broadcast);
  g_test_add_func ("/Mpq/Pool/grow-and-shrink", test_grow_and_shrink);
  g_test_add_func ("/Mpq/Pool/shutdown-lets-tasks-finish", test_shutdown_lets_tasks_finish);
  g_test_add_func ("/Mpq/Pool/shutdown-timeout-kills", test_shutdown_timeout_kills);
  g_test_add_func ("/Mpq/Pool/death-at-start-breaks-the-pool",
                   test_death_at_start_breaks_the_pool);
}
