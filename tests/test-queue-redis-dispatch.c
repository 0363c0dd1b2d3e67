/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A queue on Redis: dispatch, leases, and peers that write garbage into
 * its keys (test-queue-redis.c runs them). No sleeps: a wait ends on
 * what the queue says. */
#include <signal.h>
#include <string.h>

#include "queue-redis-test-util.h"

typedef struct
{
  GPtrArray *values;     /* gint64 as pointers, in the order emitted */
  guint      stop_at;    /* stop dispatch once this many came, or 0 */
  MpqQueue  *queue;
} Received;

static void
on_message (MpqChannel *channel,
            MpqMessage *message,
            Received   *received)
{
  g_ptr_array_add (received->values, GINT_TO_POINTER ((gint) value_of (message)));
  if (received->values->len == received->stop_at)
    mpq_channel_stop (channel);
}

/* Dispatch: message-received in the context of start ()'s caller, in
 * order; each is done with once its handlers returned, so a join of
 * another participant ends. Only DO's detail is heard by the DO handler. */
static void
test_dispatch (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) a = open_queue (name, 0);
  g_autoptr(MpqQueue) b = open_queue (name, 0);
  g_autoptr(GPtrArray) values = g_ptr_array_new ();
  Received received = { values, 0, a };
  g_autoptr(GAsyncResult) join = NULL;
  g_autoptr(GError) error = NULL;
  const guint n = 200;

  g_signal_connect (a, "message-received::" MPQ_REQ_DO, G_CALLBACK (on_message), &received);
  mpq_channel_start (MPQ_CHANNEL (a));
  for (guint i = 0; i < n; i++)
    send_value (b, MPQ_REQ_DO, 0, i);
  /* Addressed to a: dispatched too; a's own sends for anyone are not. */
  send_value (b, MPQ_REQ_DO, pid_of (a), n);
  send_value (a, MPQ_REQ_FINISHED, 0, -1);

  while (values->len < n + 1)
    g_main_context_iteration (NULL, TRUE);
  /* What is addressed to a is handed over ahead of the window, as a
   * local queue does: nobody else could take it. */
  g_assert_true (g_ptr_array_remove (values, GINT_TO_POINTER (n)));
  for (guint i = 0; i < n; i++)
    g_assert_cmpint (GPOINTER_TO_INT (values->pdata[i]), ==, i);

  /* a's FINISHED is for someone else: b takes it, then the join ends. */
  g_assert_cmpint (take_value (b, -1), ==, -1);
  mpq_queue_join_async (b, NULL, keep_result, &join);
  wait_result (&join);
  g_assert_true (mpq_queue_join_finish (b, join, &error));
  g_assert_no_error (error);
  mpq_channel_stop (MPQ_CHANNEL (a));
}

/* A stop in a handler: that message counts as handled, nothing more is
 * emitted, and what a had not emitted goes back to the front for b. */
static void
test_dispatch_stop (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) a = open_queue (name, 0);
  g_autoptr(MpqQueue) b = open_queue (name, 0);
  g_autoptr(GPtrArray) values = g_ptr_array_new ();
  Received received = { values, 1, a };
  g_autoptr(GError) error = NULL;

  g_signal_connect (a, "message-received", G_CALLBACK (on_message), &received);
  for (guint i = 0; i < 10; i++)
    send_value (b, MPQ_REQ_DO, 0, i);
  mpq_channel_start (MPQ_CHANNEL (a));
  while (values->len < 1)
    g_main_context_iteration (NULL, TRUE);
  /* Whatever the thread took ahead is back once the queue is closed. */
  mpq_channel_close (MPQ_CHANNEL (a));
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (values->len, ==, 1);
  for (guint i = 1; i < 10; i++)
    g_assert_cmpint (take_value (b, 0), ==, i);
  g_assert_true (mpq_queue_join (b, 0, &error));
  g_assert_no_error (error);
}

/* Dispatch in another process: a worker child (the same program as for a
 * local queue) answers each DO; the parent collects with receive_async. */
static void
test_dispatch_worker (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) queue = open_queue (name, 0);
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-queue-test-child", NULL);
  const char *argv[] = { path, "worker", NULL };
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) seen = g_hash_table_new (NULL, NULL);
  gint worker = 0;
  const guint n = 50;

  child = mpq_queue_spawn (queue, argv, &error);
  g_assert_no_error (error);
  for (guint i = 1; i <= n; i++)
    send_value (queue, MPQ_REQ_DO, 0, i);

  while (g_hash_table_size (seen) < n)
    {
      g_autoptr(GAsyncResult) result = NULL;
      g_autoptr(MpqMessage) message = NULL;

      mpq_channel_receive_async (MPQ_CHANNEL (queue), NULL, keep_result, &result);
      wait_result (&result);
      message = finish_receive (queue, result);
      worker = mpq_message_get_sender_pid (message);
      if (g_strcmp0 (mpq_message_get_request (message), MPQ_REQ_FINISHED) == 0)
        g_hash_table_add (seen, GINT_TO_POINTER ((gint) value_of (message)));
    }
  stop_worker (queue, worker, child);
}

/* Leases ------------------------------------------------------------------ */

/* A worker SIGKILLed with a task in hand: once its lease ended, the task
 * goes back to the front and another worker does it. Nothing waits on a
 * clock: the parent waits for the death, then for the answer. */
static void
test_killed_worker_task_redone (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) queue = open_queue (name, 0);
  g_autoptr(GSubprocess) killed = NULL;
  g_autoptr(GSubprocess) worker = NULL;
  g_autoptr(MpqMessage) answer = NULL;
  g_autoptr(GError) error = NULL;

  mpq_queue_set_lease_time (queue, 300);
  g_assert_cmpuint (mpq_queue_get_lease_time (queue), ==, 300);
  killed = spawn_child (queue, G_SUBPROCESS_FLAGS_NONE, "die-in-handler");
  send_task (queue, 1);
  g_subprocess_wait (killed, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_signaled (killed));
  g_assert_cmpint (g_subprocess_get_term_sig (killed), ==, SIGKILL);

  /* Still in the dead one's hand until its lease ends. */
  g_assert_false (mpq_queue_join (queue, 0, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT);
  g_clear_error (&error);

  worker = spawn_child (queue, G_SUBPROCESS_FLAGS_NONE, "worker");
  for (;;)
    {
      g_autoptr(MpqMessage) message = take_for_me (queue, -1);

      /* The worker says it is ready first. */
      if (g_strcmp0 (mpq_message_get_request (message), MPQ_REQ_FINISHED) == 0)
        {
          answer = g_steal_pointer (&message);
          break;
        }
    }
  g_assert_cmpint (answer_value (answer), ==, 1);
  stop_worker (queue, mpq_message_get_sender_pid (answer), worker);
}

static gboolean
set_flag (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* A handler that holds its task for several leases is not robbed: its
 * process's thread renews the lease. Another participant waits for the
 * task all along (receive_async) and never gets it. */
static void
test_slow_handler_keeps_its_task (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) queue = open_queue (name, 0);
  g_autoptr(MpqQueue) other = open_queue (name, 0);
  g_autoptr(GSubprocess) worker = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GAsyncResult) robbed = NULL;
  g_autoptr(MpqMessage) answer = NULL;
  g_autoptr(GDataInputStream) lines = NULL;
  g_autofree char *holding = NULL;
  g_autoptr(GError) error = NULL;
  gboolean over = FALSE;
  const guint lease = 1000;

  mpq_queue_set_lease_time (queue, lease);
  worker = spawn_child (queue, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                        "block-worker");
  send_task (queue, 1);
  lines = g_data_input_stream_new (g_subprocess_get_stdout_pipe (worker));
  holding = g_data_input_stream_read_line (lines, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (holding, ==, "holding 1");

  /* Five leases: the one the worker took ended four times over unless it
   * was renewed, and every participant's thread looks for those. */
  mpq_channel_receive_async (MPQ_CHANNEL (other), cancellable, keep_result, &robbed);
  g_timeout_add (5 * lease, set_flag, &over);
  while (!over && robbed == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_null (robbed);

  /* Let it go on: its answer comes, and the task was done once. */
  g_output_stream_close (g_subprocess_get_stdin_pipe (worker), NULL, &error);
  g_assert_no_error (error);
  while (answer == NULL)
    {
      g_autoptr(MpqMessage) message = take_for_me (queue, -1);

      if (g_strcmp0 (mpq_message_get_request (message), MPQ_REQ_FINISHED) == 0)
        answer = g_steal_pointer (&message);
    }
  g_assert_cmpint (answer_value (answer), ==, 1);
  g_cancellable_cancel (cancellable);
  wait_result (&robbed);
  g_assert_null (mpq_channel_receive_finish (MPQ_CHANNEL (other), robbed, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  stop_worker (queue, mpq_message_get_sender_pid (answer), worker);
}

/* Hostile peers ----------------------------------------------------------- */

#ifdef MPQ_TEST_REDIS_SERVER
/* Anything a peer writes into the queue's keys is an error for that
 * message, never a crash nor a stuck queue: entries without a line, a
 * line that is not a message, a message in hand that is not one, and a
 * lease that ended on it. */
static void
test_hostile_entries (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) a = open_queue (name, 0);
  g_autoptr(MpqQueue) b = open_queue (name, 0);
  g_autofree char *p = g_strdup_printf ("mpq:{%s}:", name);
  g_autoptr(GAsyncResult) want = NULL;
  g_autoptr(MpqMessage) message = NULL;
  g_autoptr(GError) error = NULL;

  /* Numbers 1000 and 1001, ahead of the counter: after what b puts. */
  redis_test_server_run (server, "XADD %sa999 0-1000 x y", p);
  redis_test_server_run (server, "XADD %sa999 0-1001 m %s f nobody", p, "[\"DO\",1,null,");
  redis_test_server_run (server, "ZADD %sfront 1000 a999", p);
  redis_test_server_run (server, "ZADD %safront 1000 a999", p);
  redis_test_server_run (server, "HSET %smeta seq 2000", p);
  redis_test_server_run (server, "HINCRBY %smeta waiting 2", p);
  send_value (b, MPQ_REQ_DO, 0, 1);

  g_assert_null (mpq_channel_receive (MPQ_CHANNEL (a), 0, NULL, NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
  g_clear_error (&error);
  mpq_channel_receive_async (MPQ_CHANNEL (a), NULL, keep_result, &want);
  wait_result (&want);
  g_assert_null (mpq_channel_receive_finish (MPQ_CHANNEL (a), want, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
  g_clear_error (&error);
  g_assert_cmpint (take_value (a, 0), ==, 1);

  /* In "hand", not a message, with a lease that ended: dropped when the
   * leases are looked at (at the latest a lease-time later), and join
   * ends; a message in hand whose lease ended comes back. */
  redis_test_server_run (server, "HSET %sheld 5 garbage", p);
  redis_test_server_run (server, "ZADD %slease 1 5", p);
  redis_test_server_run (server, "HSET %sheld 6 %s", p, "1 2 0 [\"DO\",1,null,6]");
  redis_test_server_run (server, "ZADD %slease 1 6", p);
  mpq_queue_set_lease_time (b, 300);
  message = take (b, -1);
  g_assert_nonnull (message);
  g_assert_cmpint (value_of (message), ==, 6);
  /* The garbage may be dropped by a later look at the leases than the
   * one that gave 6 back (another participant's thread, on a busy
   * machine): join waits for it. The bound only turns a hang into a
   * failure. */
  g_assert_true (mpq_queue_join (b, 100 * 300, &error));
  g_assert_no_error (error);
}
#endif

void
test_queue_redis_add_dispatch_tests (void)
{
  g_test_add_func ("/Mpq/QueueRedis/dispatch", test_dispatch);
  g_test_add_func ("/Mpq/QueueRedis/dispatch-stop", test_dispatch_stop);
  g_test_add_func ("/Mpq/QueueRedis/dispatch-worker", test_dispatch_worker);
  g_test_add_func ("/Mpq/QueueRedis/killed-worker-task-redone", test_killed_worker_task_redone);
  g_test_add_func ("/Mpq/QueueRedis/slow-handler-keeps-its-task",
                   test_slow_handler_keeps_its_task);
#ifdef MPQ_TEST_REDIS_SERVER
  g_test_add_func ("/Mpq/QueueRedis/hostile-entries", test_hostile_entries);
#endif
}
