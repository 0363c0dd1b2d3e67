/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* MpqPool over a queue kept in Redis (mpq_pool_new_for_queue ()), against
 * a redis-server of this test program's own (redis-test-util.c): workers
 * it spawns, and workers that join by the URI alone, as workers on other
 * hosts do (separate process trees that share only the URI). No sleeps:
 * every wait ends on what the pool or a process says. */
#include <signal.h>
#include <sys/wait.h>

#include "pool-test-util.h"
#include "redis-test-util.h"

static RedisTestServer *server;

static MpqQueue *
open_queue (const char *name)
{
  return redis_test_open_queue (server, name, 0);
}

static char *
worker_path (void)
{
  return g_test_build_filename (G_TEST_BUILT, "mpq-pool-test-worker", NULL);
}

static MpqPool *
pool_for_queue (MpqQueue *queue,
                gboolean  spawn,
                guint     n_workers,
                Counts   *counts)
{
  g_autofree char *worker = worker_path ();
  const char *argv[] = { worker, "--batches", NULL };
  g_autoptr(GError) error = NULL;
  MpqPool *pool = mpq_pool_new_for_queue (queue, spawn ? argv : NULL, n_workers, &error);

  g_assert_no_error (error);
  g_assert_true (MPQ_IS_POOL (pool));
  counts_connect (pool, counts);
  return pool;
}

/* A worker started by hand with only the queue's URI and name, as on
 * another host; @lease_ms its lease-time (0: the default), @log_dir for
 * its log (nullable). */
static GSubprocess *
join_worker (const char *name,
             guint       lease_ms,
             const char *log_dir)
{
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_autofree char *worker = worker_path ();
  g_autoptr(GError) error = NULL;
  GSubprocess *process;

  g_subprocess_launcher_setenv (launcher, MPQ_QUEUE_URI_ENV, redis_test_server_uri (server),
                                TRUE);
  g_subprocess_launcher_setenv (launcher, MPQ_QUEUE_NAME_ENV, name, TRUE);
  g_subprocess_launcher_setenv (launcher, MPQ_POOL_WORKER_ENV, "1", TRUE);
  g_subprocess_launcher_unsetenv (launcher, MPQ_CHANNEL_FD_ENV);
  g_subprocess_launcher_unsetenv (launcher, "MPQ_QUEUE_ID");
  if (lease_ms > 0)
    {
      g_autofree char *lease = g_strdup_printf ("%u", lease_ms);

      g_subprocess_launcher_setenv (launcher, "MPQ_QUEUE_LEASE_TIME", lease, TRUE);
    }
  else
    g_subprocess_launcher_unsetenv (launcher, "MPQ_QUEUE_LEASE_TIME");
  if (log_dir != NULL)
    g_subprocess_launcher_setenv (launcher, "MPQ_TEST_LOG_DIR", log_dir, TRUE);
  process = g_subprocess_launcher_spawn (launcher, &error, worker, NULL);
  g_assert_no_error (error);
  return process;
}

static void
wait_exit_0 (GSubprocess *process)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (g_subprocess_wait_check (process, NULL, &error));
  g_assert_no_error (error);
}

static gint
queue_pid (MpqQueue *queue)
{
  return mpq_channel_get_pid (MPQ_CHANNEL (queue));
}

/* Tests ------------------------------------------------------------------ */

/* Workers the pool spawns join the server's queue with the id it
 * reserved for them: tasks and a map are served, the pids the pool
 * gives are those ids, and a shutdown ends them. */
static void
test_spawned_workers (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) queue = open_queue (name);
  Counts counts = { 0 };
  g_autoptr(MpqPool) pool = pool_for_queue (queue, TRUE, 2, &counts);
  g_autoptr(GError) error = NULL;
  g_autofree char *results = NULL;
  GHashTable *pids = g_hash_table_new (NULL, NULL);

  g_assert_true (mpq_pool_get_queue (pool) == queue);
  /* Both ready before any task: one worker could otherwise serve them
   * all before the other says READY (seen under valgrind), and shutdown
   * would end it unstarted. */
  run_until_counts (&counts, 2, 0);
  for (gint64 i = 1; i <= 20; i++)
    {
      g_autoptr(MpqTask) task = submit_int (pool, "square", i);

      g_assert_cmpint (wait_int (task), ==, i * i);
      /* A participant id: small, never the OS pid of anyone here. */
      g_assert_cmpint (mpq_task_get_worker_pid (task), >, queue_pid (queue));
      g_assert_cmpint (mpq_task_get_worker_pid (task), <, 100);
      g_hash_table_add (pids, GINT_TO_POINTER (mpq_task_get_worker_pid (task)));
    }
  g_assert_cmpuint (g_hash_table_size (pids), <=, 2);
  g_hash_table_unref (pids);

  results = mpq_pool_map_json (pool, "square", "[1,2,3,4,5,6,7,8,9,10]", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (results, ==, "[1,4,9,16,25,36,49,64,81,100]");

  shutdown_ok (pool);
  g_assert_cmpuint (counts.started, ==, 2);
  g_assert_cmpuint (counts.exited_expected, ==, 2);
  g_assert_cmpuint (counts.exited_unexpected, ==, 0);
}

/* A spawned worker that dies is judged by its wait, as on a local queue:
 * the poison task fails after max-attempts deaths, each worker is
 * replaced (with an id of its own), and the pool goes on. */
static void
test_spawned_worker_deaths (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) queue = open_queue (name);
  Counts counts = { 0 };
  g_autoptr(MpqPool) pool = pool_for_queue (queue, TRUE, 1, &counts);
  g_autoptr(MpqTask) poison = NULL;
  g_autoptr(MpqTask) after = NULL;

  mpq_pool_set_max_attempts (pool, 2);
  poison = submit_int (pool, "crash-on", 13);
  wait_error (poison, MPQ_ERROR, MPQ_ERROR_WORKER_LOST, "died 2 times");
  g_assert_cmpuint (mpq_task_get_attempts (poison), ==, 2);
  after = submit_int (pool, "square", 5);
  g_assert_cmpint (wait_int (after), ==, 25);
  shutdown_ok (pool);
  g_assert_cmpuint (counts.exited_unexpected, ==, 2);
  g_assert_cmpuint (counts.started, ==, 3);
}

/* A pool that spawns nobody: two workers join by the URI alone. Both
 * are started, share the tasks, and leave when the pool shuts down,
 * which sees them go. */
static void
test_joined_workers (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) queue = open_queue (name);
  Counts counts = { 0 };
  g_autoptr(MpqPool) pool = pool_for_queue (queue, FALSE, 0, &counts);
  g_autoptr(GSubprocess) a = NULL;
  g_autoptr(GSubprocess) b = NULL;
  g_autoptr(GPtrArray) tasks = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;
  g_autofree char *results = NULL;

  g_assert_cmpuint (mpq_pool_get_n_workers (pool), ==, 0);
  /* Queued before anyone serves. */
  for (gint64 i = 1; i <= 40; i++)
    g_ptr_array_add (tasks, submit_int (pool, "square", i));
  a = join_worker (name, 0, NULL);
  b = join_worker (name, 0, NULL);
  run_until_counts (&counts, 2, 0);
  for (guint i = 0; i < tasks->len; i++)
    g_assert_cmpint (wait_int (tasks->pdata[i]), ==, (gint64) (i + 1) * (i + 1));
  results = mpq_pool_map_json (pool, "square", "[3,4]", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (results, ==, "[9,16]");

  shutdown_ok (pool);
  g_assert_cmpuint (counts.exited_expected, ==, 2);
  g_assert_cmpuint (counts.exited_unexpected, ==, 0);
  wait_exit_0 (a);
  wait_exit_0 (b);
}

static void
exited_status_cb (MpqPool  *pool,
                  gint      pid,
                  gint      wait_status,
                  gboolean  expected,
                  gint     *status)
{
  *status = wait_status;
}

static void
started_pid_cb (MpqPool *pool,
                gint     pid,
                gint    *started_pid)
{
  *started_pid = pid;
}

static void
progress_cb (MpqTask    *task,
             MpqMessage *progress,
             guint      *n)
{
  (*n)++;
}

/* A joined worker SIGKILLed with a task in hand: once its lease ended,
 * the pool takes it for dead (wait status -1), and the task is done by
 * another that joins later; it counts one death. */
static void
test_joined_worker_killed (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) queue = open_queue (name);
  g_autofree char *log_dir = g_dir_make_tmp ("mpq-pool-redis-XXXXXX", NULL);
  g_autofree char *hung = g_build_filename (log_dir, "hung", NULL);
  Counts counts = { 0 };
  g_autoptr(MpqPool) pool = pool_for_queue (queue, FALSE, 0, &counts);
  g_autoptr(GSubprocess) doomed = NULL;
  g_autoptr(GSubprocess) other = NULL;
  g_autoptr(MpqTask) task = NULL;
  gint status = 0;
  guint started = 0;

  g_signal_connect (pool, "worker-exited", G_CALLBACK (exited_status_cb), &status);
  /* Its death is seen after its lease: short, but not so short that a
   * loaded machine's late renewal looks like one. */
  doomed = join_worker (name, 2000, log_dir);
  run_until_counts (&counts, 1, 0);
  task = submit_int (pool, "hang-once", 7);
  g_signal_connect (task, "progress", G_CALLBACK (progress_cb), &started);
  while (started == 0)
    g_main_context_iteration (NULL, TRUE);
  g_assert_true (g_file_test (hung, G_FILE_TEST_EXISTS));

  g_subprocess_force_exit (doomed);
  other = join_worker (name, 0, log_dir);
  g_assert_cmpint (wait_int (task), ==, 7);
  g_assert_cmpuint (mpq_task_get_attempts (task), ==, 2);
  run_until_counts (&counts, 2, 1);
  g_assert_cmpuint (counts.exited_unexpected, ==, 1);
  g_assert_cmpint (status, ==, -1);

  shutdown_ok (pool);
  wait_exit_0 (other);
  remove_dir (log_dir);
}

/* A worker whose pool is gone without a word (its queue closed, as when
 * its process dies and its lease ends) leaves by itself. */
static void
test_worker_leaves_when_pool_gone (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) queue = open_queue (name);
  g_autoptr(GSubprocess) worker = NULL;
  g_autoptr(MpqMessage) ready = NULL;
  g_autoptr(GError) error = NULL;

  /* A short lease: it looks for its pool every quarter of it. */
  worker = join_worker (name, 400, NULL);
  ready = mpq_channel_receive_for_me (MPQ_CHANNEL (queue), -1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (mpq_message_get_request (ready), ==, MPQ_REQ_READY);
  mpq_channel_close (MPQ_CHANNEL (queue));
  /* mpq_worker_run () fails MPQ_ERROR_CLOSED ("The pool is gone"), and
   * the test worker exits 1, as it does when a local pool's socket ends. */
  g_assert_true (g_subprocess_wait (worker, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (worker));
  g_assert_cmpint (g_subprocess_get_exit_status (worker), ==, 1);
}

/* A participant that says READY for ids nobody holds is not heard; one
 * that says it in its own name and then answers a task it does not hold
 * is dropped (told to go, reported gone), and costs nobody else. */
static void
test_hostile_joined (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) queue = open_queue (name);
  g_autoptr(MpqQueue) hostile = open_queue (name);
  Counts counts = { 0 };
  g_autoptr(MpqPool) pool = pool_for_queue (queue, FALSE, 0, &counts);
  g_autoptr(GSubprocess) honest = NULL;
  g_autoptr(MpqTask) task = NULL;
  g_autoptr(MpqMessage) die = NULL;
  g_autoptr(GError) error = NULL;
  gint status = 0;
  gint started_pid = 0;

  g_signal_connect (pool, "worker-exited", G_CALLBACK (exited_status_cb), &status);
  /* READY in the names of ids nobody holds: ignored (no task is handed
   * to nobody), then in its own. */
  for (gint fake = 1000; fake < 1010; fake++)
    {
      mpq_channel_send_json (MPQ_CHANNEL (hostile), MPQ_REQ_READY, fake, queue_pid (queue),
                             NULL, &error);
      g_assert_no_error (error);
    }
  mpq_channel_send_json (MPQ_CHANNEL (hostile), MPQ_REQ_READY, 0, queue_pid (queue), NULL,
                         &error);
  g_assert_no_error (error);
  /* The fakes came first: by the time it started, they were judged. */
  g_signal_connect (pool, "worker-started", G_CALLBACK (started_pid_cb), &started_pid);
  while (started_pid == 0)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint (started_pid, ==, queue_pid (hostile));
  g_assert_cmpuint (counts.started, ==, 1);
  mpq_channel_send_json (MPQ_CHANNEL (hostile), MPQ_REQ_FINISHED, 0, queue_pid (queue),
                         "{\"task\":999,\"result\":1}", &error);
  g_assert_no_error (error);
  run_until_counts (&counts, 1, 1);
  g_assert_cmpuint (counts.exited_unexpected, ==, 1);
  g_assert_cmpint (status, ==, -1);
  die = mpq_channel_receive_for_me (MPQ_CHANNEL (hostile), -1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (mpq_message_get_request (die), ==, MPQ_REQ_DIE);

  honest = join_worker (name, 0, NULL);
  task = submit_int (pool, "square", 9);
  g_assert_cmpint (wait_int (task), ==, 81);
  shutdown_ok (pool);
  wait_exit_0 (honest);
}

int
main (int   argc,
      char *argv[])
{
  if (!redis_test_init (&argc, &argv))
    return 77;

  g_test_add_func ("/Mpq/PoolRedis/spawned-workers", test_spawned_workers);
  g_test_add_func ("/Mpq/PoolRedis/spawned-worker-deaths", test_spawned_worker_deaths);
  g_test_add_func ("/Mpq/PoolRedis/joined-workers", test_joined_workers);
  g_test_add_func ("/Mpq/PoolRedis/joined-worker-killed", test_joined_worker_killed);
  g_test_add_func ("/Mpq/PoolRedis/worker-leaves-when-pool-gone",
                   test_worker_leaves_when_pool_gone);
  g_test_add_func ("/Mpq/PoolRedis/hostile-joined", test_hostile_joined);

  return redis_test_run (&server);
}
