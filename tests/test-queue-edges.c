/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The queue at its edges (issue 10): objects a binding makes without
 * GInitable, and the one max-message-size rule carried to children. The
 * children are tests/mpq-queue-test-child. */
#include <stdlib.h>
#include <string.h>

#include <pymulproc/pymulproc.h>

static GSubprocess *
spawn_child (MpqQueue   *queue,
             const char *mode,
             const char *arg)
{
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-queue-test-child", NULL);
  g_autoptr(GSubprocessLauncher) launcher =
    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_PIPE);
  const char *argv[] = { path, mode, arg, NULL };
  g_autoptr(GError) error = NULL;
  GSubprocess *child = mpq_queue_spawn_with_launcher (queue, launcher, argv, &error);

  g_assert_no_error (error);
  g_assert_nonnull (child);
  return child;
}

/* Waits for @child; returns its exit status and what it wrote on stderr. */
static int
wait_child (GSubprocess  *child,
            char        **err_text)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_communicate_utf8 (child, NULL, NULL, NULL, err_text, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (child));
  return g_subprocess_get_exit_status (child);
}

/* receive_batch_json in the parent: what it addressed to itself comes
 * in one JSON array, in order, at most max at a time; its own tasks for
 * anyone stay where they are; an empty poll is [] and a closed queue an
 * error. */
static void
test_receive_batch_json (void)
{
  g_autoptr(MpqQueue) queue = mpq_queue_new (0, NULL);
  MpqChannel *channel = MPQ_CHANNEL (queue);
  gint me = mpq_channel_get_pid (channel);
  g_autoptr(GError) error = NULL;
  g_autofree char *expected = NULL;
  g_autofree char *first = NULL;
  g_autofree char *rest = NULL;
  g_autofree char *none = NULL;
  char *closed;

  g_assert_true (mpq_channel_send_json (channel, MPQ_REQ_DO, 0, 0, "0", &error));
  for (gint i = 1; i <= 5; i++)
    {
      g_autofree char *data = g_strdup_printf ("{\"i\":%d}", i);

      g_assert_true (mpq_channel_send_json (channel, "SELF", 0, me, data, &error));
    }
  g_assert_no_error (error);

  first = mpq_channel_receive_batch_json (channel, 2, -1, &error);
  g_assert_no_error (error);
  expected = g_strdup_printf ("[[\"SELF\",%d,%d,{\"i\":1}],[\"SELF\",%d,%d,{\"i\":2}]]",
                              me, me, me, me);
  g_assert_cmpstr (first, ==, expected);
  rest = mpq_channel_receive_batch_json (channel, 0, 0, &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (rest, "{\"i\":3}]"));
  g_assert_nonnull (strstr (rest, "{\"i\":5}]]"));
  none = mpq_channel_receive_batch_json (channel, 10, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (none, ==, "[]");
  g_assert_false (mpq_queue_is_empty (queue, &error));   /* its DO stays */

  mpq_channel_close (channel);
  closed = mpq_channel_receive_batch_json (channel, 10, 0, &error);
  g_assert_null (closed);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
}

/* Mpq.Queue() from a binding that does not call g_initable_init (PyGObject
 * 3.42): a whole parent queue, made at the first call. */
static void
test_whole_parent (void)
{
  g_autoptr(MpqQueue) queue = g_object_new (MPQ_TYPE_QUEUE, NULL);
  g_autoptr(MpqMessage) message = NULL;
  g_autoptr(GError) error = NULL;

  message = mpq_channel_receive (MPQ_CHANNEL (queue), 0, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (message);

  g_assert_true (mpq_channel_send_json (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0, "7", &error));
  g_assert_no_error (error);
  message = mpq_channel_receive (MPQ_CHANNEL (queue), 0, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (message);
  g_assert_cmpstr (mpq_message_get_request (message), ==, MPQ_REQ_DO);
  g_assert_true (mpq_queue_join (queue, 0, &error));
  g_assert_no_error (error);

  /* g_initable_init after the first call: the same queue, no error. */
  g_assert_true (g_initable_init (G_INITABLE (queue), NULL, &error));
  g_assert_no_error (error);
}

/* A child's end made by hand in a process that is no queue child: every
 * call fails with NOT_A_CHILD, and so does g_initable_init. */
static void
test_whole_child_outside (void)
{
  g_autoptr(MpqQueue) queue = NULL;
  g_autoptr(MpqMessage) message = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) child = NULL;
  const char *argv[] = { "/bin/true", NULL };

  queue = g_object_new (MPQ_TYPE_QUEUE, "role", MPQ_ROLE_CHILD, NULL);

  message = mpq_channel_receive (MPQ_CHANNEL (queue), 0, NULL, NULL, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD);
  g_assert_null (message);
  g_clear_error (&error);

  g_assert_false (mpq_channel_send_json (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0, "1", &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD);
  g_clear_error (&error);

  g_assert_false (mpq_queue_is_empty (queue, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD);
  g_clear_error (&error);

  child = mpq_queue_spawn (queue, argv, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD);
  g_assert_null (child);
  g_clear_error (&error);

  g_assert_false (g_initable_init (G_INITABLE (queue), NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD);

  /* start and close on it are harmless. */
  mpq_channel_start (MPQ_CHANNEL (queue));
  mpq_channel_close (MPQ_CHANNEL (queue));
  g_assert_cmpint (mpq_queue_get_parent_pid (queue), ==, 0);
}

/* The parent's limit reaches its children in the hello: a child's send
 * over it fails in the child with TOO_LARGE, and the child is not
 * dropped for it; raised again, the next child's send goes through. */
static void
test_limit_in_hello (void)
{
  g_autoptr(MpqQueue) queue = mpq_queue_new (0, NULL);
  g_autoptr(GSubprocess) small = NULL;
  g_autoptr(GSubprocess) large = NULL;
  g_autoptr(MpqMessage) message = NULL;
  g_autofree char *err_text = NULL;
  g_autoptr(GError) error = NULL;

  mpq_channel_set_max_message_size (MPQ_CHANNEL (queue), 100);
  small = spawn_child (queue, "text", "200");
  g_assert_cmpint (wait_child (small, &err_text), ==, 1);
  g_assert_nonnull (strstr (err_text, "longer than 100"));
  g_assert_true (mpq_queue_is_empty (queue, &error));
  g_assert_no_error (error);

  mpq_channel_set_max_message_size (MPQ_CHANNEL (queue), MPQ_DEFAULT_MAX_MESSAGE_SIZE);
  large = spawn_child (queue, "text", "200");
  g_clear_pointer (&err_text, g_free);
  g_assert_cmpint (wait_child (large, &err_text), ==, 0);
  message = mpq_channel_receive (MPQ_CHANNEL (queue), -1, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (message);
  g_assert_cmpint (strlen (json_node_get_string (mpq_message_get_data (message))), ==, 200);
}

/* Children spawned while others send and the queue's thread reads them
 * (issue 10 item 7: the thread walked its children while spawning added
 * to them): every message arrives, each child's in its order. Run under
 * ThreadSanitizer by tools/tsan.sh. */
static void
test_spawn_while_sending (void)
{
  g_autoptr(MpqQueue) queue = mpq_queue_new (0, NULL);
  g_autoptr(GPtrArray) children = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GHashTable) next = g_hash_table_new (NULL, NULL);
  const guint n_children = 8;
  const gint64 n_each = 500;
  g_autofree char *count = g_strdup_printf ("%" G_GINT64_FORMAT, n_each);

  for (guint i = 0; i < n_children; i++)
    g_ptr_array_add (children, spawn_child (queue, "send", count));

  for (gint64 got = 0; got < n_children * n_each; got++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqMessage) message = mpq_channel_receive (MPQ_CHANNEL (queue), -1, NULL, NULL,
                                                           &error);
      gpointer sender;
      gint64 expected;
      JsonObject *data;

      g_assert_no_error (error);
      g_assert_nonnull (message);
      sender = GINT_TO_POINTER (mpq_message_get_sender_pid (message));
      expected = GPOINTER_TO_INT (g_hash_table_lookup (next, sender));
      data = json_node_get_object (mpq_message_get_data (message));
      g_assert_cmpint (json_object_get_int_member (data, "value"), ==, expected);
      g_hash_table_insert (next, sender, GINT_TO_POINTER (expected + 1));
    }

  g_assert_cmpuint (g_hash_table_size (next), ==, n_children);
  for (guint i = 0; i < children->len; i++)
    {
      g_autofree char *err_text = NULL;

      g_assert_cmpint (wait_child (g_ptr_array_index (children, i), &err_text), ==, 0);
    }
}

/* FULL means the queue holds max-size messages (issue 10 item 4): a child
 * that never waits for room (put-attempts 0) still puts into a bounded
 * queue with room. It asks for credit and waits for the server's answer,
 * which comes at once: credit, or "full". Before, it failed with FULL
 * without asking; under load, a slow answer did the same. */
static void
test_full_only_when_full (void)
{
  g_autoptr(MpqQueue) queue = mpq_queue_new (5, NULL);
  g_autoptr(MpqQueue) small = mpq_queue_new (2, NULL);
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(GSubprocess) filler = NULL;
  g_autofree char *err_text = NULL;
  g_autofree char *filler_err = NULL;

  child = spawn_child (queue, "put-no-wait", "3");
  g_assert_cmpint (wait_child (child, &err_text), ==, 0);
  for (gint64 i = 0; i < 3; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqMessage) message = mpq_channel_receive (MPQ_CHANNEL (queue), -1, NULL, NULL,
                                                           &error);

      g_assert_no_error (error);
      g_assert_cmpint (json_object_get_int_member (json_node_get_object (
                         mpq_message_get_data (message)), "value"), ==, i);
    }

  /* And into a queue that is full, the same child gets FULL once the
   * server said so, without waiting (it must not wait for credit). */
  filler = spawn_child (small, "put-no-wait", "3");
  g_assert_cmpint (wait_child (filler, &filler_err), ==, 1);
  g_assert_nonnull (strstr (filler_err, "full"));
  for (gint64 i = 0; i < 2; i++)
    {
      g_autoptr(MpqMessage) message = mpq_channel_receive (MPQ_CHANNEL (small), 0, NULL, NULL,
                                                           NULL);

      g_assert_nonnull (message);
    }
}

static void
keep_result (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

/* Payloads through the queue's thread (issue 11), from the parent to two
 * children and back: by descriptor past a line limit of 4 KiB (the
 * thread keeps each memfd with its message and passes it on), inline
 * when small, every byte as sent. Two children take from the same FIFO
 * while the parent puts, which is what ThreadSanitizer should watch. */
static void
test_payloads_through_children (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqQueue) queue = mpq_queue_new (0, &error);
  g_autoptr(GPtrArray) sent = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GSubprocess) first = NULL;
  g_autoptr(GSubprocess) second = NULL;
  g_autofree char *err_text = NULL;
  guint found = 0;

  g_assert_no_error (error);
  mpq_channel_set_max_message_size (MPQ_CHANNEL (queue), 4096);
  first = spawn_child (queue, "echo-bytes", "4");
  second = spawn_child (queue, "echo-bytes", "4");

  for (guint i = 0; i < 8; i++)
    {
      gsize size = i % 2 == 0 ? 100 + i : (1 << 20) * (i + 1) + i;
      guint8 *data = g_malloc (size);
      g_autoptr(JsonNode) index = json_node_init_int (json_node_alloc (), i);
      g_autoptr(MpqMessage) message = NULL;

      for (gsize k = 0; k < size; k++)
        data[k] = (guint8) (k * 13 + i);
      g_ptr_array_add (sent, g_bytes_new_take (data, size));
      message = mpq_message_new_with_bytes (MPQ_REQ_DO, 0, 0, index, sent->pdata[i]);
      g_assert_true (mpq_channel_send_message (MPQ_CHANNEL (queue), message, &error));
      g_assert_no_error (error);
    }

  /* The answers, routed to us (receive_async: never our own tasks): each
   * payload back whole. */
  while (found < 8)
    {
      g_autoptr(MpqMessage) answer = NULL;
      g_autoptr(GAsyncResult) result = NULL;
      gint64 i;

      mpq_channel_receive_async (MPQ_CHANNEL (queue), NULL, keep_result, &result);
      while (result == NULL)
        g_main_context_iteration (NULL, TRUE);
      answer = mpq_channel_receive_finish (MPQ_CHANNEL (queue), result, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (mpq_message_get_request (answer), ==, MPQ_REQ_FINISHED);
      i = json_node_get_int (mpq_message_get_data (answer));
      g_assert_true (g_bytes_equal (mpq_message_get_bytes (answer), sent->pdata[i]));
      found++;
    }

  g_assert_cmpint (wait_child (first, &err_text), ==, 0);
  g_clear_pointer (&err_text, g_free);
  g_assert_cmpint (wait_child (second, &err_text), ==, 0);
  g_assert_true (mpq_queue_join (queue, 0, &error));
}

/* A child that dies with lines the queue's thread has not read yet, while
 * the thread has more to write to it: the write fails, and what the child
 * wrote before it died is read all the same (a pool's crashed worker had
 * its last answers lost so, and a death counted against a task it had
 * answered). The child's first handler blocks until told to go on: the
 * 18 MiB addressed to it, pushed by dispatch and unread, make the thread
 * stop reading it (more than 8 MiB waits to be written), so its 200
 * messages are unread when its death makes the next write fail. Before,
 * they were lost, and the receives below waited for ever. */
static void
test_dead_childs_unread_lines (void)
{
  g_autoptr(MpqQueue) queue = mpq_queue_new (0, NULL);
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-queue-test-child", NULL);
  g_autoptr(GSubprocessLauncher) launcher =
    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  const char *argv[] = { path, "send-in-handler-then-crash", "200", NULL };
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) big = g_string_new ("\"");
  gint pid;

  child = mpq_queue_spawn_with_launcher (queue, launcher, argv, &error);
  g_assert_no_error (error);
  pid = atoi (g_subprocess_get_identifier (child));
  for (guint i = 0; i < 900 * 1024; i++)
    g_string_append_c (big, 'x');
  g_string_append_c (big, '"');
  for (guint i = 0; i < 20; i++)
    {
      mpq_channel_send_json (MPQ_CHANNEL (queue), "FOR-THE-CHILD", 0, pid, big->str, &error);
      g_assert_no_error (error);
    }

  g_assert_true (g_output_stream_write_all (g_subprocess_get_stdin_pipe (child), "go\n", 3,
                                            NULL, NULL, &error));
  g_assert_no_error (error);
  g_subprocess_wait (child, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_signaled (child));

  /* What it had in hand of its 18 MiB went back to the front: passed. */
  for (gint64 i = 0; i < 200;)
    {
      g_autoptr(MpqMessage) message = mpq_channel_receive (MPQ_CHANNEL (queue), -1, NULL, NULL,
                                                           &error);

      g_assert_no_error (error);
      if (g_str_equal (mpq_message_get_request (message), "FOR-THE-CHILD"))
        continue;
      g_assert_cmpint (mpq_message_get_sender_pid (message), ==, pid);
      g_assert_cmpint (json_object_get_int_member (json_node_get_object (
                         mpq_message_get_data (message)), "value"), ==, i++);
    }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/Mpq/Queue/whole-parent", test_whole_parent);
  g_test_add_func ("/Mpq/Queue/whole-child-outside", test_whole_child_outside);
  g_test_add_func ("/Mpq/Queue/limit-in-hello", test_limit_in_hello);
  g_test_add_func ("/Mpq/Queue/spawn-while-sending", test_spawn_while_sending);
  g_test_add_func ("/Mpq/Queue/full-only-when-full", test_full_only_when_full);
  g_test_add_func ("/Mpq/Queue/payloads-through-children", test_payloads_through_children);
  g_test_add_func ("/Mpq/Queue/receive-batch-json", test_receive_batch_json);
  g_test_add_func ("/Mpq/Queue/dead-childs-unread-lines", test_dead_childs_unread_lines);

  return g_test_run ();
}
