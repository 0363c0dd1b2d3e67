/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Handlers that run a main loop of their own (a dialog, a sync call that
 * iterates the context): they are not handed the next message inside
 * it, the loop sleeps rather than spins on the channel's socket, and a
 * receive_async made there is answered there. Pipes in this process; a
 * queue worker is tests/mpq-queue-test-child. */
#include <stdlib.h>
#include <string.h>

#include <pymulproc/pymulproc.h>

static gint64
data_value (MpqMessage *message)
{
  return json_object_get_int_member (json_node_get_object (mpq_message_get_data (message)), "value");
}

static void
send_value (MpqChannel *channel,
            gint        recipient,
            gint64      value)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *data = g_strdup_printf ("{\"value\":%" G_GINT64_FORMAT "}", value);

  g_assert_true (mpq_channel_send_json (channel, MPQ_REQ_DO, 0, recipient, data, &error));
  g_assert_no_error (error);
  g_assert_true (mpq_channel_flush (channel, -1, &error));
}

static gboolean
set_flag_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

static void
got_message_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  MpqMessage **slot = user_data;

  *slot = mpq_channel_receive_finish (MPQ_CHANNEL (source), result, &error);
  g_assert_no_error (error);
}

/* Iterates the thread-default context until *@slot is set; returns how
 * many iterations it took. */
static guint
iterate_until_received (MpqMessage **slot)
{
  guint iterations = 0;

  while (*slot == NULL)
    {
      g_main_context_iteration (NULL, TRUE);
      iterations++;
    }
  return iterations;
}

typedef struct
{
  MpqPipe  *peer;
  guint     depth;
  gboolean  reentered;
  GArray   *handled;     /* gint64: the values ::message-received gave */
  GArray   *received;    /* gint64: the values receive_async gave */
  guint     max_iterations;
  guint     closed;      /* ::closed emissions */
} Nested;

/* Notes a message a handler was given; TRUE for the first, in whose
 * handler the test runs a main loop. */
static gboolean
handle (Nested     *nested,
        MpqMessage *message)
{
  gint64 value = data_value (message);

  nested->reentered |= nested->depth > 0;
  g_array_append_val (nested->handled, value);
  return nested->handled->len == 1;
}

static void
closed_cb (MpqChannel *channel,
           gpointer    user_data)
{
  ((Nested *) user_data)->closed++;
}

/* A pair whose parent end runs @handler for what its child end sends:
 * the values 1 to @n_first first, then iterates until @n_handled were
 * handled (and, @until_closed, ::closed came, and nothing more is
 * pending). No handler was given one inside another. */
static void
run_pipe (GCallback  handler,
          Nested    *nested,
          gint64     n_first,
          guint      n_handled,
          gboolean   until_closed)
{
  g_autoptr(MpqPipe) parent = NULL;
  g_autoptr(MpqPipe) child = NULL;

  g_assert_true (mpq_pipe_new_pair (&parent, &child, NULL));
  nested->peer = child;
  nested->handled = g_array_new (FALSE, FALSE, sizeof (gint64));
  nested->received = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_signal_connect (parent, "message-received", handler, nested);
  g_signal_connect (parent, "closed", G_CALLBACK (closed_cb), nested);

  for (gint64 i = 1; i <= n_first; i++)
    send_value (MPQ_CHANNEL (child), 0, i);
  mpq_channel_start (MPQ_CHANNEL (parent));
  while (nested->handled->len < n_handled || (until_closed && nested->closed == 0))
    g_main_context_iteration (NULL, TRUE);
  while (until_closed && g_main_context_iteration (NULL, FALSE))
    ;

  g_assert_false (nested->reentered);
  mpq_channel_stop (MPQ_CHANNEL (parent));
  g_signal_handlers_disconnect_by_data (parent, nested);
}

static void
nested_clear (Nested *nested)
{
  g_array_unref (nested->handled);
  g_array_unref (nested->received);
}

static void
receive_in_handler (MpqChannel *channel,
                    MpqMessage *message,
                    gpointer    user_data)
{
  Nested *nested = user_data;

  if (!handle (nested, message))
    return;

  nested->depth++;
  /* 2 was sent with 1, so it may be read already; 3 is sent now. */
  for (gint64 next = 2; next <= 3; next++)
    {
      g_autoptr(MpqMessage) got = NULL;
      gint64 got_value;

      if (next == 3)
        send_value (MPQ_CHANNEL (nested->peer), 0, 3);
      mpq_channel_receive_async (channel, NULL, got_message_cb, &got);
      nested->max_iterations = MAX (nested->max_iterations, iterate_until_received (&got));
      got_value = data_value (got);
      g_array_append_val (nested->received, got_value);
    }
  send_value (MPQ_CHANNEL (nested->peer), 0, 4);
  nested->depth--;
}

/* A receive_async in a handler's own main loop is answered there, with
 * the next messages in order, whether they were read already or still on
 * the socket; the handler is not handed any inside it, and the next one
 * after it returns. */
static void
test_pipe_receive_async_in_handler (void)
{
  Nested nested = { 0, };

  run_pipe (G_CALLBACK (receive_in_handler), &nested, 2, 2, FALSE);

  g_assert_cmpuint (nested.received->len, ==, 2);
  g_assert_cmpint (g_array_index (nested.received, gint64, 0), ==, 2);
  g_assert_cmpint (g_array_index (nested.received, gint64, 1), ==, 3);
  g_assert_cmpint (g_array_index (nested.handled, gint64, 0), ==, 1);
  g_assert_cmpint (g_array_index (nested.handled, gint64, 1), ==, 4);
  /* It slept while it waited: a few wake-ups, not a spin. */
  g_assert_cmpuint (nested.max_iterations, <=, 20);
  nested_clear (&nested);
}

#define BURST 200

static void
sleep_in_handler (MpqChannel *channel,
                  MpqMessage *message,
                  gpointer    user_data)
{
  Nested *nested = user_data;
  gboolean done = FALSE;

  if (!handle (nested, message))
    return;

  nested->depth++;
  for (gint64 i = 2; i <= BURST; i++)
    send_value (MPQ_CHANNEL (nested->peer), 0, i);
  g_timeout_add (20, set_flag_cb, &done);
  while (!done)
    {
      g_main_context_iteration (NULL, TRUE);
      nested->max_iterations++;
    }
  nested->depth--;
}

/* A burst while a handler sits in its own main loop for 20 ms: the pipe
 * reads what it can hold and then leaves its socket alone, so the loop
 * sleeps; every message comes after the handler returns, in order. */
static void
test_pipe_burst_while_nested (void)
{
  Nested nested = { 0, };

  run_pipe (G_CALLBACK (sleep_in_handler), &nested, 1, BURST, FALSE);

  for (guint i = 0; i < BURST; i++)
    g_assert_cmpint (g_array_index (nested.handled, gint64, i), ==, i + 1);
  g_assert_cmpuint (nested.max_iterations, <=, 20);
  nested_clear (&nested);
}

static void
got_error_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  GError **slot = user_data;
  g_autoptr(MpqMessage) message = mpq_channel_receive_finish (MPQ_CHANNEL (source), result, slot);

  g_assert_null (message);
  g_assert_nonnull (*slot);
}

static void
hang_up_in_handler (MpqChannel *channel,
                    MpqMessage *message,
                    gpointer    user_data)
{
  Nested *nested = user_data;
  g_autoptr(GError) error = NULL;

  if (!handle (nested, message))
    return;

  nested->depth++;
  mpq_channel_receive_async (channel, NULL, got_error_cb, &error);
  mpq_channel_close (MPQ_CHANNEL (nested->peer));
  while (error == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  nested->depth--;
}

/* The peer hangs up while a receive_async waits in a handler's own loop:
 * it fails there with MPQ_ERROR_CLOSED, and ::closed comes once, after
 * the handler returned. */
static void
test_pipe_hang_up_while_nested (void)
{
  Nested nested = { 0, };

  run_pipe (G_CALLBACK (hang_up_in_handler), &nested, 1, 1, TRUE);

  g_assert_cmpuint (nested.handled->len, ==, 1);
  g_assert_cmpuint (nested.closed, ==, 1);
  nested_clear (&nested);
}

/* One line the child wrote to its stdout, without the newline. */
static char *
read_child_line (GSubprocess *child)
{
  g_autoptr(GDataInputStream) out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (child));
  g_autoptr(GError) error = NULL;
  char *line;

  /* One byte at a time: nothing of a later line stays in our buffer. */
  g_buffered_input_stream_set_buffer_size (G_BUFFERED_INPUT_STREAM (out), 1);
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);
  return line;
}

static MpqMessage *
receive_for_me (MpqQueue *queue)
{
  g_autoptr(GError) error = NULL;
  MpqMessage *message = mpq_channel_receive_for_me (MPQ_CHANNEL (queue), -1, &error);

  g_assert_no_error (error);
  g_assert_nonnull (message);
  return message;
}

/* A queue worker's handler makes a receive_async in a main loop of its
 * own: the queue answers it there (the worker would wait forever
 * otherwise), and the worker answers both messages. */
static void
test_queue_receive_async_in_handler (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqQueue) queue = mpq_queue_new (0, &error);
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-queue-test-child", NULL);
  g_autoptr(GSubprocessLauncher) launcher =
    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  const char *argv[] = { path, "nested-receive-worker", NULL };
  g_autoptr(GSubprocess) worker = NULL;
  g_autoptr(MpqMessage) ready = NULL;
  g_autofree char *waiting = NULL;
  gint pid;

  g_assert_no_error (error);
  worker = mpq_queue_spawn_with_launcher (queue, launcher, argv, &error);
  g_assert_no_error (error);
  pid = atoi (g_subprocess_get_identifier (worker));
  ready = receive_for_me (queue);
  g_assert_cmpstr (mpq_message_get_request (ready), ==, "READY");

  send_value (MPQ_CHANNEL (queue), pid, 0);
  waiting = read_child_line (worker);
  g_assert_cmpstr (waiting, ==, "waiting");
  send_value (MPQ_CHANNEL (queue), pid, 1);

  for (gint64 expected = 1; expected >= 0; expected--)
    {
      g_autoptr(MpqMessage) answer = receive_for_me (queue);

      g_assert_cmpstr (mpq_message_get_request (answer), ==, MPQ_REQ_FINISHED);
      g_assert_cmpint (data_value (answer), ==, expected);
    }

  g_assert_true (mpq_channel_send (MPQ_CHANNEL (queue), MPQ_REQ_DIE, 0, pid, NULL, &error));
  g_assert_true (g_subprocess_wait (worker, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (worker));
  g_assert_cmpint (g_subprocess_get_exit_status (worker), ==, 0);
  mpq_channel_close (MPQ_CHANNEL (queue));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/Mpq/Nested/pipe-receive-async-in-handler", test_pipe_receive_async_in_handler);
  g_test_add_func ("/Mpq/Nested/pipe-burst-while-nested", test_pipe_burst_while_nested);
  g_test_add_func ("/Mpq/Nested/pipe-hang-up-while-nested", test_pipe_hang_up_while_nested);
  g_test_add_func ("/Mpq/Nested/queue-receive-async-in-handler", test_queue_receive_async_in_handler);

  return g_test_run ();
}
