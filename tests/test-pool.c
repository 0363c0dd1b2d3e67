/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* MpqPool with real worker processes (mpq-pool-test-worker). No sleeps:
 * every wait is for an event; time-outs are only the pool's own. */
#include "pool-test-util.h"

/* Tasks and results ------------------------------------------------------- */

static void
test_submit_and_wait (void)
{
  g_autoptr(MpqPool) pool = new_pool (3);
  g_autoptr(GPtrArray) tasks = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GHashTable) pids = g_hash_table_new (NULL, NULL);

  for (gint64 i = 0; i < 300; i++)
    g_ptr_array_add (tasks, submit_int (pool, "square", i));
  for (guint i = 0; i < tasks->len; i++)
    {
      MpqTask *task = g_ptr_array_index (tasks, i);

      g_assert_cmpint (wait_int (task), ==, (gint64) i * i);
      g_assert_cmpuint (mpq_task_get_attempts (task), ==, 1);
      g_assert_cmpuint (mpq_task_get_id (task), ==, i + 1);
      g_hash_table_add (pids, GINT_TO_POINTER (mpq_task_get_worker_pid (task)));
    }
  g_assert_cmpuint (g_hash_table_size (pids), >=, 1);
  g_assert_cmpuint (g_hash_table_size (pids), <=, 3);
  shutdown_ok (pool);
}

static void
test_map_in_order (void)
{
  g_autoptr(MpqPool) pool = new_pool (4);
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) replies = NULL;
  g_autoptr(GError) error = NULL;

  for (gint i = 0; i < 500; i++)
    g_ptr_array_add (items, g_strdup_printf ("%d", i));
  g_ptr_array_add (items, NULL);
  replies = mpq_pool_map (pool, "square", (const char * const *) items->pdata, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (replies->len, ==, 500);
  for (guint i = 0; i < replies->len; i++)
    g_assert_cmpint (json_node_get_int (mpq_message_get_data (g_ptr_array_index (replies, i))),
                     ==, (gint64) i * i);
  shutdown_ok (pool);
}

static GPtrArray *
map_ints (MpqPool    *pool,
          const char *request,
          guint       n,
          GError    **error)
{
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; i < n; i++)
    g_ptr_array_add (items, g_strdup_printf ("%u", i));
  g_ptr_array_add (items, NULL);
  return mpq_pool_map (pool, request, (const char * const *) items->pdata, NULL, error);
}

static guint
count_task_ids (GPtrArray *replies)
{
  g_autoptr(GHashTable) ids = g_hash_table_new (NULL, NULL);

  for (guint i = 0; i < replies->len; i++)
    g_hash_table_add (ids, GINT_TO_POINTER (json_node_get_int (
      mpq_message_get_data (g_ptr_array_index (replies, i)))));
  return g_hash_table_size (ids);
}

/* Workers that take batches get a map's items as Pool.map chunks them: a
 * quarter of each worker's share a batch (1000 items, 2 workers: 8
 * batches of 125); not with a task-timeout (a time limit is per task). */
static void
test_map_in_batches (void)
{
  Counts counts = { 0, };
  g_autoptr(MpqPool) pool = new_pool_full (2, NULL, NULL, &counts);
  g_autoptr(GPtrArray) replies = NULL;
  g_autoptr(GPtrArray) squares = NULL;
  g_autoptr(GError) error = NULL;

  run_until_counts (&counts, 2, 0);
  replies = map_ints (pool, "task-id", 1000, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (replies->len, ==, 1000);
  g_assert_cmpuint (count_task_ids (replies), ==, 8);

  squares = map_ints (pool, "square", 1000, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < squares->len; i++)
    {
      MpqMessage *reply = g_ptr_array_index (squares, i);

      g_assert_cmpint (json_node_get_int (mpq_message_get_data (reply)), ==, (gint64) i * i);
      g_assert_cmpstr (mpq_message_get_request (reply), ==, MPQ_REQ_FINISHED);
    }

  g_clear_pointer (&replies, g_ptr_array_unref);
  mpq_pool_set_task_timeout (pool, 60000);
  replies = map_ints (pool, "task-id", 100, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (count_task_ids (replies), ==, 100);
  shutdown_ok (pool);
}

/* A batch with an item that fails, or one that crashes its worker: the
 * map fails with that error. */
static void
test_map_batch_failures (void)
{
  Counts counts = { 0, };
  g_autoptr(MpqPool) pool = new_pool_full (2, NULL, NULL, &counts);
  g_autoptr(GPtrArray) replies = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqTask) after = NULL;

  run_until_counts (&counts, 2, 0);
  replies = map_ints (pool, "fail", 100, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_TASK_FAILED);
  g_assert_nonnull (strstr (error->message, "failing on purpose"));
  g_assert_null (replies);
  g_clear_error (&error);

  replies = map_ints (pool, "crash-on", 100, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_WORKER_LOST);
  g_assert_null (replies);
  g_assert_cmpuint (counts.exited_unexpected, ==, 3);

  /* The pool goes on. */
  after = submit_int (pool, "square", 5);
  g_assert_cmpint (wait_int (after), ==, 25);
  shutdown_ok (pool);
}

static void
test_map_fails_with_first_error (void)
{
  g_autoptr(MpqPool) pool = new_pool (2);
  const char *items[] = { "1", "2", "oops", NULL };
  g_autoptr(GPtrArray) replies = NULL;
  g_autoptr(GError) error = NULL;

  /* Not JSON: nothing starts. */
  replies = mpq_pool_map (pool, "square", items, NULL, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
  g_assert_null (replies);
  g_clear_error (&error);

  items[2] = "3";
  replies = mpq_pool_map (pool, "fail", items, NULL, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_TASK_FAILED);
  g_assert_nonnull (strstr (error->message, "failing on purpose"));
  g_assert_null (replies);
  shutdown_ok (pool);
}

static void
test_errors_come_home (void)
{
  g_autoptr(MpqPool) pool = new_pool (1);
  g_autoptr(MpqTask) failing = submit_int (pool, "fail", 7);
  g_autoptr(MpqTask) dropped = submit_int (pool, "drop", 0);
  g_autoptr(MpqTask) later = submit_int (pool, "later", 42);
  g_autoptr(MpqTask) after = submit_int (pool, "square", 5);

  wait_error (failing, MPQ_ERROR, MPQ_ERROR_TASK_FAILED, "failing on purpose: 7");
  g_assert_cmpint (mpq_task_get_state (failing), ==, MPQ_TASK_FAILED);
  wait_error (dropped, MPQ_ERROR, MPQ_ERROR_TASK_FAILED, "without answering");
  g_assert_cmpint (wait_int (later), ==, 42);
  g_assert_cmpint (wait_int (after), ==, 25);
  g_assert_cmpuint (mpq_task_get_attempts (failing), ==, 1);
  shutdown_ok (pool);
}

static void
test_bad_input_is_an_error (void)
{
  g_autoptr(MpqPool) pool = new_pool (1);
  const char *bad_json[] = { "{", "1,\"task\":2", "[1] 2", "\xff", "", NULL };
  g_autoptr(GError) error = NULL;
  MpqTask *task;

  task = mpq_pool_submit (pool, "", "1", &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
  g_assert_null (task);
  g_clear_error (&error);
  task = mpq_pool_submit (pool, NULL, "1", &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
  g_clear_error (&error);
  for (guint i = 0; bad_json[i] != NULL; i++)
    {
      task = mpq_pool_submit (pool, "echo", bad_json[i], &error);
      g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
      g_assert_null (task);
      g_clear_error (&error);
    }
  g_assert_cmpuint (mpq_pool_broadcast (pool, "", NULL, &error), ==, 0);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
  shutdown_ok (pool);
}

/* Requests the worker side treats specially are tasks all the same. */
static void
test_reserved_names_are_tasks (void)
{
  g_autoptr(MpqPool) pool = new_pool (1);
  const char *names[] = { MPQ_REQ_DIE, MPQ_REQ_CANCEL, MPQ_REQ_READY, MPQ_REQ_FINISHED, NULL };

  for (guint i = 0; names[i] != NULL; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqTask) task = mpq_pool_submit (pool, names[i], "null", &error);
      g_autoptr(MpqMessage) reply = mpq_task_wait (task, -1, &error);
      g_autofree char *json = NULL;

      g_assert_no_error (error);
      json = mpq_message_dup_data_json (reply);
      g_assert_cmpstr (json, ==, "\"unknown request\"");
    }
  shutdown_ok (pool);
}

static void
test_wait_timeout_returns_null (void)
{
  g_autoptr(MpqPool) pool = new_pool (1);
  g_autoptr(MpqTask) task = submit_int (pool, "until-cancel", 0);
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) reply = NULL;

  reply = mpq_task_wait (task, 0, &error);
  g_assert_no_error (error);
  g_assert_null (reply);
  reply = mpq_task_wait (task, 50, &error);
  g_assert_no_error (error);
  g_assert_null (reply);
  g_assert_cmpint (mpq_task_get_state (task), <, MPQ_TASK_DONE);
  mpq_task_cancel (task);
  wait_error (task, G_IO_ERROR, G_IO_ERROR_CANCELLED, NULL);
  shutdown_ok (pool);
}

static void
store_result_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static void
test_wait_async (void)
{
  g_autoptr(MpqPool) pool = new_pool (2);
  g_autoptr(MpqTask) task = submit_int (pool, "square", 9);
  g_autoptr(MpqTask) slow = submit_int (pool, "until-cancel", 0);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GAsyncResult) cancelled_result = NULL;
  g_autoptr(MpqMessage) reply = NULL;
  g_autoptr(GError) error = NULL;

  mpq_task_wait_async (task, NULL, store_result_cb, &result);
  mpq_task_wait_async (slow, cancellable, store_result_cb, &cancelled_result);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);
  reply = mpq_task_wait_finish (task, result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (json_node_get_int (mpq_message_get_data (reply)), ==, 81);

  /* Cancelling the wait leaves the task running. */
  g_cancellable_cancel (cancellable);
  while (cancelled_result == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_clear_object (&reply);
  reply = mpq_task_wait_finish (slow, cancelled_result, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpint (mpq_task_get_state (slow), ==, MPQ_TASK_RUNNING);
  mpq_task_cancel (slow);
  shutdown_ok (pool);
}

static void
on_progress (MpqTask    *task,
             MpqMessage *progress,
             Counts     *counts)
{
  gint64 value = json_node_get_int (mpq_message_get_data (progress));

  g_assert_cmpstr (mpq_message_get_request (progress), ==, MPQ_REQ_PROGRESS);
  g_assert_cmpint (mpq_task_get_state (task), ==, MPQ_TASK_RUNNING);
  g_array_append_val (counts->progress, value);
}

static void
test_progress_in_order (void)
{
  g_autoptr(MpqPool) pool = new_pool (2);
  Counts counts = { 0, };
  g_autoptr(MpqTask) task = NULL;

  counts.progress = g_array_new (FALSE, FALSE, sizeof (gint64));
  task = submit_int (pool, "progress", 200);
  g_signal_connect (task, "progress", G_CALLBACK (on_progress), &counts);
  g_assert_cmpint (wait_int (task), ==, 200);
  g_assert_cmpuint (counts.progress->len, ==, 200);
  for (guint i = 0; i < counts.progress->len; i++)
    g_assert_cmpint (g_array_index (counts.progress, gint64, i), ==, i + 1);
  g_array_unref (counts.progress);
  shutdown_ok (pool);
}

/* A pool dropped with work in flight finishes it: the task keeps it. */
static void
test_dropped_pool_finishes_its_work (void)
{
  MpqPool *pool = new_pool (1);
  g_autoptr(MpqTask) task = submit_int (pool, "square", 12);
  GWeakRef weak;

  g_weak_ref_init (&weak, pool);
  g_object_unref (pool);
  g_assert_cmpint (wait_int (task), ==, 144);
  /* Ended, the task let its pool go: the pool is gone, its worker killed. */
  pool = g_weak_ref_get (&weak);
  g_assert_null (pool);
  g_weak_ref_clear (&weak);
}

typedef struct
{
  MpqPool *pool;
  MpqTask *next;
} Reentry;

static void
change_pool_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  Reentry *reentry = user_data;
  g_autoptr(MpqMessage) reply = mpq_task_wait_finish (MPQ_TASK (source), result, NULL);

  g_assert_nonnull (reply);
  /* From inside the pool's own dispatch: shrink to nothing, submit, grow. */
  mpq_pool_set_n_workers (reentry->pool, 0);
  reentry->next = submit_int (reentry->pool, "square", 3);
  mpq_pool_set_n_workers (reentry->pool, 2);
}

static void
test_callbacks_may_change_the_pool (void)
{
  g_autoptr(MpqPool) pool = new_pool (1);
  g_autoptr(MpqTask) first = submit_int (pool, "square", 2);
  Reentry reentry = { pool, NULL };

  mpq_task_wait_async (first, NULL, change_pool_cb, &reentry);
  while (reentry.next == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint (wait_int (reentry.next), ==, 9);
  g_clear_object (&reentry.next);
  shutdown_ok (pool);
}

/* A pool on a local queue that spawns nobody could never be served (only
 * its own children can write to it): an error, not a pool. With a
 * command line, a given local queue serves as the pool's own would. */
static void
test_for_local_queue (void)
{
  g_autofree char *worker = g_test_build_filename (G_TEST_BUILT, "mpq-pool-test-worker", NULL);
  const char *argv[] = { worker, NULL };
  g_autoptr(MpqQueue) queue = mpq_queue_new (0, NULL);
  g_autoptr(MpqQueue) other = mpq_queue_new (0, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqPool) none = mpq_pool_new_for_queue (queue, NULL, 0, &error);
  g_autoptr(MpqPool) pool = NULL;
  g_autoptr(MpqTask) task = NULL;

  g_assert_null (none);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  pool = mpq_pool_new_for_queue (other, argv, 1, &error);
  g_assert_no_error (error);
  g_assert_true (mpq_pool_get_queue (pool) == other);
  task = submit_int (pool, "square", 6);
  g_assert_cmpint (wait_int (task), ==, 36);
  shutdown_ok (pool);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/Mpq/Pool/submit-and-wait", test_submit_and_wait);
  g_test_add_func ("/Mpq/Pool/for-local-queue", test_for_local_queue);
  g_test_add_func ("/Mpq/Pool/map-in-order", test_map_in_order);
  g_test_add_func ("/Mpq/Pool/map-fails-with-first-error", test_map_fails_with_first_error);
  g_test_add_func ("/Mpq/Pool/map-in-batches", test_map_in_batches);
  g_test_add_func ("/Mpq/Pool/map-batch-failures", test_map_batch_failures);
  g_test_add_func ("/Mpq/Pool/errors-come-home", test_errors_come_home);
  g_test_add_func ("/Mpq/Pool/bad-input-is-an-error", test_bad_input_is_an_error);
  g_test_add_func ("/Mpq/Pool/reserved-names-are-tasks", test_reserved_names_are_tasks);
  g_test_add_func ("/Mpq/Pool/wait-timeout-returns-null", test_wait_timeout_returns_null);
  g_test_add_func ("/Mpq/Pool/wait-async", test_wait_async);
  g_test_add_func ("/Mpq/Pool/progress-in-order", test_progress_in_order);
  g_test_add_func ("/Mpq/Pool/dropped-pool-finishes-its-work", test_dropped_pool_finishes_its_work);
  g_test_add_func ("/Mpq/Pool/callbacks-may-change-the-pool", test_callbacks_may_change_the_pool);
  test_pool_add_supervision_tests ();
  test_pool_add_map_tests ();
  test_pool_add_bytes_tests ();

  return g_test_run ();
}
