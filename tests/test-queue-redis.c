/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* MpqQueue kept in Redis Streams (mpq_queue_new_for_uri), against a
 * redis-server of this test program's own (redis-test-util.c). Several
 * participants in one process are several connections, as processes on
 * several hosts would be; children are spawned through the library or
 * started with only the URI in their environment. No sleeps: a wait ends
 * on what the queue says. */
#include <signal.h>
#include <string.h>

#include "queue-redis-test-util.h"

/* Tests ----------------------------------------------------------------- */

static void
test_uri_errors (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqQueue) queue = NULL;
  g_autofree char *missing = g_strdup_printf ("%s.missing", redis_test_server_uri (server));

  queue = mpq_queue_new_for_uri ("amqp://localhost/", "q", 0, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_assert_null (queue);
  g_clear_error (&error);

  queue = mpq_queue_new_for_uri ("redis:///0", "q", 0, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  queue = mpq_queue_new_for_uri (redis_test_server_uri (server), "a{b}", 0, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  queue = mpq_queue_new_for_uri (missing, "q", 0, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_FAILED);
  g_assert_null (queue);
}

/* Ids come from the server, differ, and are what a send with sender 0
 * writes; the queue's parent is its first creator. */
static void
test_ids (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) a = open_queue (name, 0);
  g_autoptr(MpqQueue) b = open_queue (name, 0);
  g_autoptr(MpqMessage) message = NULL;
  g_autofree char *uri = NULL;
  g_autofree char *read_name = NULL;

  g_assert_cmpint (pid_of (a), >, 0);
  g_assert_cmpint (pid_of (b), >, pid_of (a));
  g_assert_cmpint (mpq_queue_get_parent_pid (a), ==, pid_of (a));
  g_assert_cmpint (mpq_queue_get_parent_pid (b), ==, pid_of (a));

  g_object_get (b, "uri", &uri, "name", &read_name, NULL);
  g_assert_cmpstr (uri, ==, redis_test_server_uri (server));
  g_assert_cmpstr (read_name, ==, name);

  send_value (a, MPQ_REQ_DO, 0, 1);
  message = take (b, -1);
  g_assert_cmpint (mpq_message_get_sender_pid (message), ==, pid_of (a));
}

/* Each producer's messages come out in the order it put them. */
static void
test_fifo (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) a = open_queue (name, 0);
  g_autoptr(MpqQueue) b = open_queue (name, 0);
  g_autoptr(MpqQueue) c = open_queue (name, 0);
  gint64 last_a = -1, last_b = -1;
  g_autoptr(GError) error = NULL;

  for (gint64 i = 0; i < 50; i++)
    {
      send_value (a, MPQ_REQ_DO, 0, i);
      send_value (b, MPQ_REQ_DO, 0, 1000 + i);
    }
  g_assert_false (mpq_queue_is_empty (c, &error));
  g_assert_no_error (error);

  for (guint i = 0; i < 100; i++)
    {
      g_autoptr(MpqMessage) message = take (c, 0);
      gint64 value;

      g_assert_nonnull (message);
      value = value_of (message);
      if (mpq_message_get_sender_pid (message) == pid_of (a))
        {
          g_assert_cmpint (value, ==, last_a + 1);
          last_a = value;
        }
      else
        {
          g_assert_cmpint (mpq_message_get_sender_pid (message), ==, pid_of (b));
          g_assert_cmpint (value, ==, last_b < 0 ? 1000 : last_b + 1);
          last_b = value;
        }
    }
  g_assert_cmpint (last_a, ==, 49);
  g_assert_cmpint (last_b, ==, 1049);
  g_assert_null (take (c, 0));
  g_assert_true (mpq_queue_is_empty (c, &error));
  g_assert_no_error (error);
}

/* receive_for_me: what is addressed to me and what others put for
 * anyone, oldest first; never another's, never my own for anyone. */
static void
test_routing (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) a = open_queue (name, 0);
  g_autoptr(MpqQueue) b = open_queue (name, 0);
  g_autoptr(MpqQueue) c = open_queue (name, 0);
  g_autoptr(MpqMessage) m1 = NULL;
  g_autoptr(MpqMessage) m2 = NULL;
  g_autoptr(MpqMessage) m3 = NULL;
  g_autoptr(MpqMessage) m4 = NULL;

  send_value (a, MPQ_REQ_DO, pid_of (b), 1);     /* for b */
  send_value (a, MPQ_REQ_DO, 0, 2);              /* for anyone, a's */
  send_value (c, MPQ_REQ_DO, pid_of (b), 3);     /* for b */

  /* a does not get its own for anyone, nor b's. */
  g_assert_null (take_for_me (a, 0));

  m1 = take_for_me (b, 0);
  g_assert_cmpint (value_of (m1), ==, 1);
  g_assert_cmpint (mpq_message_get_recipient_pid (m1), ==, pid_of (b));
  m2 = take_for_me (b, 0);
  g_assert_cmpint (value_of (m2), ==, 2);
  m3 = take_for_me (b, 0);
  g_assert_cmpint (value_of (m3), ==, 3);
  g_assert_null (take_for_me (b, 0));

  /* Addressed to oneself: routed to oneself. */
  send_value (c, MPQ_REQ_FINISHED, pid_of (c), 4);
  g_assert_null (take_for_me (a, 0));
  m4 = take_for_me (c, 0);
  g_assert_cmpint (value_of (m4), ==, 4);
}

/* A filter's no puts the message back at the end; join waits for it. */
static gboolean
reject_one (MpqMessage *message,
            gpointer    user_data)
{
  return value_of (message) != 1;
}

static void
test_filter_puts_back (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) a = open_queue (name, 0);
  g_autoptr(MpqMessage) m2 = NULL;
  g_autoptr(MpqMessage) m1 = NULL;
  g_autoptr(GError) error = NULL;

  send_value (a, MPQ_REQ_DO, 0, 1);
  send_value (a, MPQ_REQ_DO, 0, 2);

  g_assert_null (mpq_channel_receive (MPQ_CHANNEL (a), 0, reject_one, NULL, &error));
  g_assert_no_error (error);
  g_assert_false (mpq_queue_join (a, 0, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT);
  g_clear_error (&error);

  m2 = mpq_channel_receive (MPQ_CHANNEL (a), 0, reject_one, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (value_of (m2), ==, 2);
  m1 = take (a, 0);
  g_assert_cmpint (value_of (m1), ==, 1);
  g_assert_true (mpq_queue_join (a, 0, &error));
  g_assert_no_error (error);
}

/* A bounded queue: full at max_size waiting messages; room freed lets
 * the next send in. */
static void
test_bounded_send_full (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) a = open_queue (name, 2);
  g_autoptr(MpqQueue) b = open_queue (name, 0);
  g_autoptr(MpqMessage) message = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) data = json_node_init_int (json_node_alloc (), 3);

  /* The first creator's max-size holds for everyone. */
  g_assert_cmpuint (mpq_queue_get_max_size (b), ==, 2);

  send_value (a, MPQ_REQ_DO, 0, 1);
  send_value (b, MPQ_REQ_DO, 0, 2);

  mpq_queue_set_put_timeout (a, 0);
  g_assert_false (mpq_channel_send (MPQ_CHANNEL (a), MPQ_REQ_DO, 0, 0, data, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_FULL);
  g_clear_error (&error);

  /* Waiting attempts that nobody makes room for fail too. */
  mpq_queue_set_put_timeout (b, 1);
  mpq_queue_set_put_attempts (b, 3);
  g_assert_false (mpq_channel_send (MPQ_CHANNEL (b), MPQ_REQ_DO, 0, 0, data, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_FULL);
  g_clear_error (&error);

  message = take (b, 0);
  g_assert_cmpint (value_of (message), ==, 1);
  g_assert_true (mpq_channel_send (MPQ_CHANNEL (a), MPQ_REQ_DO, 0, 0, data, &error));
  g_assert_no_error (error);
}

static void
test_too_large (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) a = open_queue (name, 0);
  g_autoptr(MpqQueue) b = open_queue (name, 0);
  g_autoptr(MpqMessage) message = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *big = g_strnfill (200, 'x');
  g_autoptr(JsonNode) data = json_node_init_string (json_node_alloc (), big);

  g_assert_true (mpq_channel_send (MPQ_CHANNEL (a), MPQ_REQ_DO, 0, 0, data, &error));
  g_assert_no_error (error);

  /* Too large for b: it stays for someone whose limit is higher. */
  g_object_set (b, "max-message-size", (guint64) 100, NULL);
  g_assert_null (mpq_channel_receive (MPQ_CHANNEL (b), 0, NULL, NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE);
  g_clear_error (&error);
  g_assert_false (mpq_channel_send (MPQ_CHANNEL (b), MPQ_REQ_DO, 0, 0, data, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE);
  g_clear_error (&error);

  message = take (a, 0);
  g_assert_cmpstr (json_node_get_string (mpq_message_get_data (message)), ==, big);
}

/* receive_async gets the next message for this participant from the
 * library's thread; join_async ends once it was taken, in our context. */
static void
test_receive_async (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) a = open_queue (name, 0);
  g_autoptr(MpqQueue) b = open_queue (name, 0);
  g_autoptr(GAsyncResult) want = NULL;
  g_autoptr(GAsyncResult) join = NULL;
  g_autoptr(MpqMessage) message = NULL;
  g_autoptr(GError) error = NULL;

  mpq_channel_receive_async (MPQ_CHANNEL (a), NULL, keep_result, &want);
  send_value (b, MPQ_REQ_DO, 0, 7);
  wait_result (&want);

  /* In a's hand until finish: b's join waits for it. */
  mpq_queue_join_async (b, NULL, keep_result, &join);
  g_assert_false (mpq_queue_join (b, 0, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT);
  g_clear_error (&error);

  message = finish_receive (a, want);
  g_assert_cmpint (value_of (message), ==, 7);
  g_assert_cmpint (mpq_message_get_sender_pid (message), ==, pid_of (b));
  wait_result (&join);
  g_assert_true (mpq_queue_join_finish (b, join, &error));
  g_assert_no_error (error);
}

/* A cancelled receive_async fails CANCELLED and takes nothing; one whose
 * result is dropped unfinished puts its message back at the front. */
static void
test_receive_async_cancel_and_drop (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) a = open_queue (name, 0);
  g_autoptr(MpqQueue) b = open_queue (name, 0);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GAsyncResult) cancelled = NULL;
  GAsyncResult *dropped = NULL;
  g_autoptr(GError) error = NULL;

  mpq_channel_receive_async (MPQ_CHANNEL (a), cancellable, keep_result, &cancelled);
  g_cancellable_cancel (cancellable);
  wait_result (&cancelled);
  g_assert_null (mpq_channel_receive_finish (MPQ_CHANNEL (a), cancelled, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  send_value (b, MPQ_REQ_DO, 0, 1);
  send_value (b, MPQ_REQ_DO, 0, 2);
  mpq_channel_receive_async (MPQ_CHANNEL (a), NULL, keep_result, &dropped);
  wait_result (&dropped);
  g_assert_cmpint (take_value (b, 0), ==, 2);
  send_value (b, MPQ_REQ_DO, 0, 3);

  /* Dropped unfinished, then the queue closed: once close returned, the
   * message is back, before 3. */
  g_object_unref (dropped);
  mpq_channel_close (MPQ_CHANNEL (a));
  g_assert_cmpint (take_value (b, 0), ==, 1);
  g_assert_cmpint (take_value (b, 0), ==, 3);
  g_assert_true (mpq_queue_join (b, 0, &error));
  g_assert_no_error (error);
}

/* A result not finished when the queue closes went back: its finish says
 * CLOSED, and another takes the message. */
static void
test_receive_async_closed_before_finish (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) a = open_queue (name, 0);
  g_autoptr(MpqQueue) b = open_queue (name, 0);
  g_autoptr(GAsyncResult) want = NULL;
  g_autoptr(GError) error = NULL;

  send_value (b, MPQ_REQ_DO, 0, 5);
  mpq_channel_receive_async (MPQ_CHANNEL (a), NULL, keep_result, &want);
  wait_result (&want);
  mpq_channel_close (MPQ_CHANNEL (a));
  g_assert_null (mpq_channel_receive_finish (MPQ_CHANNEL (a), want, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_assert_cmpint (take_value (b, 0), ==, 5);
}

/* close: later calls fail with CLOSED, ::closed comes from an idle. */
static void
test_close (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) a = open_queue (name, 0);
  g_autoptr(GError) error = NULL;
  guint closed = 0;

  g_signal_connect (a, "closed", G_CALLBACK (on_closed), &closed);
  mpq_channel_close (MPQ_CHANNEL (a));
  mpq_channel_close (MPQ_CHANNEL (a));
  g_assert_cmpuint (closed, ==, 0);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (closed, ==, 1);

  g_assert_null (mpq_channel_receive (MPQ_CHANNEL (a), 0, NULL, NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
}

/* A child spawned through the library joins with new_for_child and
 * serves tasks with receive_for_me; join waits until the tasks and the
 * answers were all taken. */
static void
test_spawned_child (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) queue = open_queue (name, 0);
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-queue-test-child", NULL);
  const char *argv[] = { path, "for-me-worker", NULL };
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(GError) error = NULL;
  gint worker = 0;
  const guint n = 20;

  child = mpq_queue_spawn (queue, argv, &error);
  g_assert_no_error (error);

  for (guint i = 1; i <= n; i++)
    {
      g_autofree char *data = g_strdup_printf ("{\"value\":%u}", i);

      mpq_channel_send_json (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0, data, &error);
      g_assert_no_error (error);
    }

  for (guint i = 1; i <= n; i++)
    {
      g_autoptr(MpqMessage) answer = take_for_me (queue, -1);

      g_assert_cmpstr (mpq_message_get_request (answer), ==, MPQ_REQ_FINISHED);
      g_assert_cmpint (json_object_get_int_member (json_node_get_object (
                         mpq_message_get_data (answer)), "value"), ==, i);
      g_assert_cmpint (mpq_message_get_recipient_pid (answer), ==, pid_of (queue));
      if (worker == 0)
        worker = mpq_message_get_sender_pid (answer);
      /* The child's queue-wide id, not its process id. */
      g_assert_cmpint (mpq_message_get_sender_pid (answer), ==, worker);
      g_assert_cmpint (worker, !=, pid_of (queue));
    }

  stop_worker (queue, worker, child);
}

/* A send waiting for room and a join end when another process takes:
 * its take's tick wakes them (whether they already waited or not). */
static void
test_waits_end_on_others_takes (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) queue = open_queue (name, 1);
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-queue-test-child", NULL);
  const char *argv[] = { path, "take", "2", NULL };
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(GError) error = NULL;

  send_value (queue, MPQ_REQ_DO, 0, 1);
  child = mpq_queue_spawn (queue, argv, &error);
  g_assert_no_error (error);

  /* Full until the child takes the first: one attempt that waits for
   * as long as a test may take. */
  mpq_queue_set_put_timeout (queue, G_MAXINT);
  mpq_queue_set_put_attempts (queue, 1);
  send_value (queue, MPQ_REQ_DO, 0, 2);

  g_assert_true (mpq_queue_join (queue, -1, &error));
  g_assert_no_error (error);
  assert_exits_zero (child);
  g_assert_true (mpq_queue_is_empty (queue, &error));
  g_assert_no_error (error);
}

/* Another "host": a process started without the library, that shares
 * only the URI and the name, sends to the queue's parent. */
static void
test_shared_uri_only (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) queue = open_queue (name, 0);
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-queue-test-child", NULL);
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(GError) error = NULL;

  g_subprocess_launcher_setenv (launcher, MPQ_QUEUE_URI_ENV, redis_test_server_uri (server),
                                TRUE);
  g_subprocess_launcher_setenv (launcher, MPQ_QUEUE_NAME_ENV, name, TRUE);
  g_subprocess_launcher_unsetenv (launcher, MPQ_CHANNEL_FD_ENV);
  child = g_subprocess_launcher_spawn (launcher, &error, path, "send", "5", "parent", NULL);
  g_assert_no_error (error);

  for (gint64 i = 0; i < 5; i++)
    {
      g_autoptr(MpqMessage) message = take_for_me (queue, -1);
      JsonNode *data = mpq_message_get_data (message);

      g_assert_cmpint (json_object_get_int_member (json_node_get_object (data), "value"), ==, i);
      g_assert_cmpint (mpq_message_get_recipient_pid (message), ==, pid_of (queue));
    }
  assert_exits_zero (child);
  g_assert_true (mpq_queue_is_empty (queue, &error));
  g_assert_no_error (error);
}

int
main (int   argc,
      char *argv[])
{
  if (!redis_test_init (&argc, &argv))
    return 77;

  g_test_add_func ("/Mpq/QueueRedis/uri-errors", test_uri_errors);
  g_test_add_func ("/Mpq/QueueRedis/ids", test_ids);
  g_test_add_func ("/Mpq/QueueRedis/fifo", test_fifo);
  g_test_add_func ("/Mpq/QueueRedis/routing", test_routing);
  g_test_add_func ("/Mpq/QueueRedis/filter-puts-back", test_filter_puts_back);
  g_test_add_func ("/Mpq/QueueRedis/bounded-send-full", test_bounded_send_full);
  g_test_add_func ("/Mpq/QueueRedis/too-large", test_too_large);
  g_test_add_func ("/Mpq/QueueRedis/receive-async", test_receive_async);
  g_test_add_func ("/Mpq/QueueRedis/receive-async-cancel-and-drop",
                   test_receive_async_cancel_and_drop);
  g_test_add_func ("/Mpq/QueueRedis/receive-async-closed-before-finish",
                   test_receive_async_closed_before_finish);
  test_queue_redis_add_dispatch_tests ();
  g_test_add_func ("/Mpq/QueueRedis/close", test_close);
  test_queue_redis_add_outage_tests ();
  g_test_add_func ("/Mpq/QueueRedis/spawned-child", test_spawned_child);
  g_test_add_func ("/Mpq/QueueRedis/waits-end-on-others-takes",
                   test_waits_end_on_others_takes);
  g_test_add_func ("/Mpq/QueueRedis/shared-uri-only", test_shared_uri_only);

  return redis_test_run (&server);
}
