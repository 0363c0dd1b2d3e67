/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <pymulproc/pymulproc.h>

/* Helpers --------------------------------------------------------------- */

static GSubprocess *
spawn_child (MpqPipe    *pipe,
             const char *mode,
             const char *arg)
{
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-test-child", NULL);
  const char *argv[] = { path, mode, arg, NULL };
  g_autoptr(GError) error = NULL;
  GSubprocess *child = mpq_pipe_spawn (pipe, argv, &error);

  g_assert_no_error (error);
  g_assert_nonnull (child);

  return child;
}

static MpqPipe *
new_pipe (void)
{
  g_autoptr(GError) error = NULL;
  MpqPipe *pipe = mpq_pipe_new (&error);

  g_assert_no_error (error);
  return pipe;
}

static gint64
data_value (MpqMessage *message)
{
  return json_object_get_int_member (json_node_get_object (mpq_message_get_data (message)), "value");
}

static MpqMessage *
receive_ok (MpqPipe *pipe,
            gint     timeout_ms)
{
  g_autoptr(GError) error = NULL;
  MpqMessage *message = mpq_channel_receive (MPQ_CHANNEL (pipe), timeout_ms, NULL, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (message);
  return message;
}

static void
assert_receive_error (MpqPipe *pipe,
                      gint     code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) message = mpq_channel_receive (MPQ_CHANNEL (pipe), -1, NULL, NULL, &error);

  g_assert_error (error, MPQ_ERROR, code);
  g_assert_null (message);
}

static void
wait_child (GSubprocess *child,
            gboolean     expect_success)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_wait (child, NULL, &error);
  g_assert_no_error (error);
  if (expect_success)
    g_assert_true (g_subprocess_get_successful (child));
}

static gboolean
reject_all (MpqMessage *message,
            gpointer    user_data)
{
  (*(int *) user_data)++;
  return FALSE;
}

static gboolean
accept_die (MpqMessage *message,
            gpointer    user_data)
{
  return g_str_equal (mpq_message_get_request (message), MPQ_REQ_DIE);
}

/* In one process -------------------------------------------------------- */

static void
test_pair_send_receive (void)
{
  g_autoptr(MpqPipe) parent = NULL;
  g_autoptr(MpqPipe) child = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) m1 = NULL;
  g_autoptr(MpqMessage) m2 = NULL;
  g_autoptr(JsonNode) data = json_from_string ("{\"value\":20}", NULL);

  g_assert_true (mpq_pipe_new_pair (&parent, &child, &error));
  g_assert_no_error (error);
  g_assert_cmpint (mpq_channel_get_role (MPQ_CHANNEL (parent)), ==, MPQ_ROLE_PARENT);
  g_assert_cmpint (mpq_channel_get_role (MPQ_CHANNEL (child)), ==, MPQ_ROLE_CHILD);
  g_assert_cmpint (mpq_channel_get_pid (MPQ_CHANNEL (child)), ==, getpid ());

  g_assert_true (mpq_channel_send (MPQ_CHANNEL (parent), MPQ_REQ_DO, 0, 0, data, &error));
  g_assert_true (mpq_channel_send_json (MPQ_CHANNEL (child), MPQ_REQ_FINISHED, 77, 88, "[1,2]", &error));
  g_assert_no_error (error);

  m1 = receive_ok (child, -1);
  g_assert_cmpstr (mpq_message_get_request (m1), ==, MPQ_REQ_DO);
  g_assert_cmpint (mpq_message_get_sender_pid (m1), ==, getpid ());
  g_assert_cmpint (data_value (m1), ==, 20);

  m2 = receive_ok (parent, -1);
  g_assert_cmpint (mpq_message_get_sender_pid (m2), ==, 77);
  g_assert_cmpint (mpq_message_get_recipient_pid (m2), ==, 88);
}

/* receive_json: the message as its line, the data as it came. */
static void
test_receive_json (void)
{
  g_autoptr(MpqPipe) parent = NULL;
  g_autoptr(MpqPipe) child = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  g_autofree char *nothing = NULL;
  g_autofree char *after_close = NULL;

  g_assert_true (mpq_pipe_new_pair (&parent, &child, &error));
  g_assert_true (mpq_channel_send_json (MPQ_CHANNEL (child), MPQ_REQ_FINISHED, 77, 0,
                                        "{\"b\":1e22,\"a\":[true,null]}", &error));
  g_assert_no_error (error);

  line = mpq_channel_receive_json (MPQ_CHANNEL (parent), -1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (line, ==, "[\"FINISHED\",77,null,{\"b\":1e22,\"a\":[true,null]}]");

  nothing = mpq_channel_receive_json (MPQ_CHANNEL (parent), 0, &error);
  g_assert_no_error (error);
  g_assert_null (nothing);

  mpq_channel_close (MPQ_CHANNEL (child));
  after_close = mpq_channel_receive_json (MPQ_CHANNEL (parent), -1, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_assert_null (after_close);
}

/* receive_json keeps lines, receive and signals messages: taken in turns,
 * whatever was read already comes in order. */
static void
test_receive_json_mixed (void)
{
  g_autoptr(MpqPipe) parent = NULL;
  g_autoptr(MpqPipe) child = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) second = NULL;
  g_autofree char *first = NULL;
  g_autofree char *third = NULL;
  g_autofree char *fourth = NULL;

  g_assert_true (mpq_pipe_new_pair (&parent, &child, NULL));
  for (gint i = 1; i <= 4; i++)
    {
      g_autofree char *data = g_strdup_printf ("%d", i);

      g_assert_true (mpq_channel_send_json (MPQ_CHANNEL (child), MPQ_REQ_DO, 5, 0, data, NULL));
    }
  g_assert_true (mpq_channel_flush (MPQ_CHANNEL (child), -1, NULL));

  first = mpq_channel_receive_json (MPQ_CHANNEL (parent), -1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (first, ==, "[\"DO\",5,null,1]");

  second = receive_ok (parent, -1);
  g_assert_cmpint (json_node_get_int (mpq_message_get_data (second)), ==, 2);

  third = mpq_channel_receive_json (MPQ_CHANNEL (parent), -1, &error);
  g_assert_cmpstr (third, ==, "[\"DO\",5,null,3]");
  fourth = mpq_channel_receive_json (MPQ_CHANNEL (parent), 0, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (fourth, ==, "[\"DO\",5,null,4]");
}

static void
test_receive_poll_and_timeout (void)
{
  g_autoptr(MpqPipe) parent = NULL;
  g_autoptr(MpqPipe) child = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) none = NULL;
  g_autoptr(MpqMessage) late = NULL;
  gint64 before;

  g_assert_true (mpq_pipe_new_pair (&parent, &child, &error));

  none = mpq_channel_receive (MPQ_CHANNEL (child), 0, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (none);

  before = g_get_monotonic_time ();
  late = mpq_channel_receive (MPQ_CHANNEL (child), 50, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (late);
  /* It did wait: a bounded receive is not a poll. */
  g_assert_cmpint (g_get_monotonic_time () - before, >=, 50 * 1000);
}

static void
test_filter_keeps_first (void)
{
  g_autoptr(MpqPipe) parent = NULL;
  g_autoptr(MpqPipe) child = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) rejected = NULL;
  g_autoptr(MpqMessage) not_die = NULL;
  g_autoptr(MpqMessage) first = NULL;
  int calls = 0;

  g_assert_true (mpq_pipe_new_pair (&parent, &child, &error));
  mpq_channel_send (MPQ_CHANNEL (parent), MPQ_REQ_DO, 0, 0, NULL, &error);
  mpq_channel_send (MPQ_CHANNEL (parent), MPQ_REQ_DIE, 0, 0, NULL, &error);
  g_assert_no_error (error);

  rejected = mpq_channel_receive (MPQ_CHANNEL (child), -1, reject_all, &calls, &error);
  g_assert_no_error (error);
  g_assert_null (rejected);
  g_assert_cmpint (calls, ==, 1);

  /* A pipe has no back of the queue: DO stays in front of DIE. */
  not_die = mpq_channel_receive (MPQ_CHANNEL (child), 100, accept_die, NULL, &error);
  g_assert_null (not_die);

  first = receive_ok (child, 0);
  g_assert_cmpstr (mpq_message_get_request (first), ==, MPQ_REQ_DO);
}

/* A pipe has one peer: receive_for_me is receive without a filter, for
 * whomever the message says; it waits as receive does and fails with
 * MPQ_ERROR_CLOSED, without hanging, once the peer died. */
static void
test_receive_for_me (void)
{
  g_autoptr(MpqPipe) parent = NULL;
  g_autoptr(MpqPipe) child = NULL;
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) holder = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) first = NULL;
  g_autoptr(MpqMessage) second = NULL;
  g_autoptr(MpqMessage) none = NULL;
  g_autoptr(MpqMessage) dead = NULL;

  g_assert_true (mpq_pipe_new_pair (&parent, &child, &error));
  g_assert_true (mpq_channel_send (MPQ_CHANNEL (parent), MPQ_REQ_DO, 0, 4242, NULL, &error));
  g_assert_true (mpq_channel_send (MPQ_CHANNEL (parent), MPQ_REQ_DIE, 0, 0, NULL, &error));
  g_assert_no_error (error);

  first = mpq_channel_receive_for_me (MPQ_CHANNEL (child), -1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (mpq_message_get_request (first), ==, MPQ_REQ_DO);
  g_assert_cmpint (mpq_message_get_recipient_pid (first), ==, 4242);
  second = mpq_channel_receive_for_me (MPQ_CHANNEL (child), -1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (mpq_message_get_request (second), ==, MPQ_REQ_DIE);
  none = mpq_channel_receive_for_me (MPQ_CHANNEL (child), 0, &error);
  g_assert_no_error (error);
  g_assert_null (none);

  holder = spawn_child (pipe, "hold", NULL);
  g_subprocess_force_exit (holder);
  /* Blocks until the death is seen: a hang here fails by time-out. */
  dead = mpq_channel_receive_for_me (MPQ_CHANNEL (pipe), -1, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_assert_null (dead);
  wait_child (holder, FALSE);
}

static void
test_close_then_calls (void)
{
  g_autoptr(MpqPipe) parent = NULL;
  g_autoptr(MpqPipe) child = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) message = NULL;

  g_assert_true (mpq_pipe_new_pair (&parent, &child, &error));
  mpq_channel_close (MPQ_CHANNEL (parent));
  mpq_channel_close (MPQ_CHANNEL (parent));

  g_assert_false (mpq_channel_send (MPQ_CHANNEL (parent), MPQ_REQ_DO, 0, 0, NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_clear_error (&error);

  message = mpq_channel_receive (MPQ_CHANNEL (parent), 0, NULL, NULL, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_clear_error (&error);

  /* The other end sees the hang-up. */
  assert_receive_error (child, MPQ_ERROR_CLOSED);
}

static void
count_cb (gpointer user_data)
{
  (*(int *) user_data)++;
}

static void
test_closed_signal_once (void)
{
  g_autoptr(MpqPipe) parent = NULL;
  g_autoptr(MpqPipe) child = NULL;
  g_autoptr(GError) error = NULL;
  int parent_closed = 0;
  int child_closed = 0;

  g_assert_true (mpq_pipe_new_pair (&parent, &child, &error));
  g_signal_connect_swapped (parent, "closed", G_CALLBACK (count_cb), &parent_closed);
  g_signal_connect_swapped (child, "closed", G_CALLBACK (count_cb), &child_closed);
  mpq_channel_start (MPQ_CHANNEL (child));

  mpq_channel_close (MPQ_CHANNEL (parent));
  /* Never emitted re-entrantly from close(). */
  g_assert_cmpint (parent_closed, ==, 0);

  while (parent_closed == 0 || child_closed == 0)
    g_main_context_iteration (NULL, TRUE);

  mpq_channel_close (MPQ_CHANNEL (child));
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpint (parent_closed, ==, 1);
  g_assert_cmpint (child_closed, ==, 1);
}

static void
test_too_large (void)
{
  g_autoptr(MpqPipe) parent = NULL;
  g_autoptr(MpqPipe) child = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *big = g_strnfill (200, 'x');
  g_autofree char *json = g_strdup_printf ("\"%s\"", big);
  g_autoptr(MpqMessage) after = NULL;

  g_assert_true (mpq_pipe_new_pair (&parent, &child, &error));
  mpq_channel_set_max_message_size (MPQ_CHANNEL (parent), 100);
  g_assert_cmpuint (mpq_channel_get_max_message_size (MPQ_CHANNEL (parent)), ==, 100);

  g_assert_false (mpq_channel_send_json (MPQ_CHANNEL (parent), MPQ_REQ_DO, 0, 0, json, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE);
  g_clear_error (&error);

  /* Nothing of it went out: the next message is the first one read. */
  g_assert_true (mpq_channel_send (MPQ_CHANNEL (parent), MPQ_REQ_DIE, 0, 0, NULL, &error));
  after = receive_ok (child, -1);
  g_assert_cmpstr (mpq_message_get_request (after), ==, MPQ_REQ_DIE);
}

static void
test_too_large_received (void)
{
  g_autoptr(MpqPipe) parent = NULL;
  g_autoptr(MpqPipe) child = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *big = g_strnfill (500, 'x');
  g_autofree char *json = g_strdup_printf ("\"%s\"", big);
  g_autoptr(MpqMessage) first = NULL;

  g_assert_true (mpq_pipe_new_pair (&parent, &child, &error));
  mpq_channel_set_max_message_size (MPQ_CHANNEL (child), 100);
  mpq_channel_send (MPQ_CHANNEL (parent), MPQ_REQ_DO, 0, 0, NULL, &error);
  mpq_channel_send_json (MPQ_CHANNEL (parent), MPQ_REQ_DO, 0, 0, json, &error);
  mpq_channel_send (MPQ_CHANNEL (parent), MPQ_REQ_DIE, 0, 0, NULL, &error);
  g_assert_no_error (error);

  first = receive_ok (child, -1);
  assert_receive_error (child, MPQ_ERROR_TOO_LARGE);
  /* The peer is dropped: later calls see a closed pipe. */
  assert_receive_error (child, MPQ_ERROR_CLOSED);
}

/* A new max-message-size applies at once, to a reader already reading:
 * the next line over it is refused, both ways. */
static void
test_max_message_size_live (void)
{
  g_autoptr(MpqPipe) parent = NULL;
  g_autoptr(MpqPipe) child = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *big = g_strnfill (300, 'x');
  g_autofree char *json = g_strdup_printf ("\"%s\"", big);
  g_autoptr(MpqMessage) first = NULL;

  g_assert_true (mpq_pipe_new_pair (&parent, &child, &error));
  g_assert_true (mpq_channel_send_json (MPQ_CHANNEL (parent), MPQ_REQ_DO, 0, 0, json, &error));
  first = receive_ok (child, -1);

  mpq_channel_set_max_message_size (MPQ_CHANNEL (child), 100);
  g_assert_cmpuint (mpq_channel_get_max_message_size (MPQ_CHANNEL (child)), ==, 100);
  g_assert_false (mpq_channel_send_json (MPQ_CHANNEL (child), MPQ_REQ_DO, 0, 0, json, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE);
  g_clear_error (&error);

  g_assert_true (mpq_channel_send_json (MPQ_CHANNEL (parent), MPQ_REQ_DO, 0, 0, json, &error));
  assert_receive_error (child, MPQ_ERROR_TOO_LARGE);
}

/* What a binding makes with g_object_new (), without g_initable_init
 * (PyGObject 3.42's Mpq.Pipe ()), is a whole parent's pipe: it opens on
 * first use. */
static void
test_made_by_binding (void)
{
  g_autoptr(MpqPipe) pipe = g_object_new (MPQ_TYPE_PIPE, NULL);
  g_autoptr(MpqPipe) other = g_object_new (MPQ_TYPE_PIPE, NULL);
  g_autoptr(MpqPipe) unused = g_object_new (MPQ_TYPE_PIPE, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) message = NULL;

  g_assert_cmpint (mpq_channel_get_role (MPQ_CHANNEL (pipe)), ==, MPQ_ROLE_PARENT);
  message = mpq_channel_receive (MPQ_CHANNEL (pipe), 0, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (message);
  g_assert_true (mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_DO, 0, 0, NULL, &error));
  g_assert_no_error (error);
  mpq_channel_start (MPQ_CHANNEL (pipe));
  mpq_channel_close (MPQ_CHANNEL (pipe));
  g_assert_false (mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_DO, 0, 0, NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_clear_error (&error);

  /* g_initable_init () after first use, or twice, is the same pipe. */
  g_assert_true (mpq_channel_send (MPQ_CHANNEL (other), MPQ_REQ_DO, 0, 0, NULL, &error));
  g_assert_true (g_initable_init (G_INITABLE (other), NULL, &error));
  g_assert_true (g_initable_init (G_INITABLE (other), NULL, &error));
  g_assert_no_error (error);

  /* Closed before any use: closed, never opened. */
  mpq_channel_close (MPQ_CHANNEL (unused));
  g_assert_null (mpq_channel_receive (MPQ_CHANNEL (unused), 0, NULL, NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
}

/* A child's pipe made without MPQ_CHANNEL_FD fails with NOT_A_CHILD from
 * g_initable_init () and from its first call, and every call after. */
static void
test_made_by_binding_not_a_child (void)
{
  g_autoptr(MpqPipe) pipe = NULL;
  g_autoptr(MpqPipe) initable = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) message = NULL;

  g_unsetenv ("MPQ_CHANNEL_FD");
  pipe = g_object_new (MPQ_TYPE_PIPE, "role", MPQ_ROLE_CHILD, NULL);
  initable = g_object_new (MPQ_TYPE_PIPE, "role", MPQ_ROLE_CHILD, NULL);

  g_assert_false (g_initable_init (G_INITABLE (initable), NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD);
  g_clear_error (&error);

  message = mpq_channel_receive (MPQ_CHANNEL (pipe), 0, NULL, NULL, &error);
  g_assert_null (message);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD);
  g_clear_error (&error);
  g_assert_false (mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_DO, 0, 0, NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD);
  g_clear_error (&error);
  g_assert_false (mpq_channel_flush (MPQ_CHANNEL (pipe), 0, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD);
  mpq_channel_start (MPQ_CHANNEL (pipe));
  mpq_channel_stop (MPQ_CHANNEL (pipe));
  mpq_channel_close (MPQ_CHANNEL (pipe));
}

static gpointer
read_until_die (gpointer user_data)
{
  MpqPipe *child = user_data;
  guint received = 0;

  for (;;)
    {
      g_autoptr(MpqMessage) message = receive_ok (child, -1);

      received++;
      if (g_str_equal (mpq_message_get_request (message), MPQ_REQ_DIE))
        return GUINT_TO_POINTER (received);
      g_assert_cmpuint (strlen (json_object_get_string_member (
        json_node_get_object (mpq_message_get_data (message)), "p")), ==, 30000);
    }
}

/* A reader that stops reading: send waits at most send-timeout, and every
 * message is either whole on the wire or not there at all. */
static void
test_send_timeout_whole_messages (void)
{
  g_autoptr(MpqPipe) parent = NULL;
  g_autoptr(MpqPipe) child = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *payload = g_strnfill (30000, 'y');
  g_autofree char *json = g_strdup_printf ("{\"p\":\"%s\"}", payload);
  guint sent = 0;
  guint received = 0;
  gint64 before;
  GThread *reader;

  g_assert_true (mpq_pipe_new_pair (&parent, &child, &error));
  mpq_pipe_set_send_timeout (parent, 50);
  g_assert_cmpint (mpq_pipe_get_send_timeout (parent), ==, 50);

  before = g_get_monotonic_time ();
  while (mpq_channel_send_json (MPQ_CHANNEL (parent), MPQ_REQ_DO, 0, 0, json, &error))
    sent++;
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT);
  g_clear_error (&error);
  g_assert_cmpuint (sent, >, 0);
  g_assert_cmpint (g_get_monotonic_time () - before, <, G_USEC_PER_SEC * 30);

  /* A reader thread drains the socket while the rest of a partly written
   * line and one more message go out. */
  reader = g_thread_new ("reader", read_until_die, child);
  mpq_pipe_set_send_timeout (parent, -1);
  g_assert_true (mpq_channel_send (MPQ_CHANNEL (parent), MPQ_REQ_DIE, 0, 0, NULL, &error));
  sent++;
  received = GPOINTER_TO_UINT (g_thread_join (reader));
  g_assert_cmpuint (received, ==, sent);
}

static void
test_properties (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  guint64 size = 0;
  gint timeout = 0;
  MpqRole role = 0;
  int notified = 0;

  g_object_get (pipe, "max-message-size", &size, "send-timeout", &timeout, "role", &role, NULL);
  g_assert_cmpuint (size, ==, MPQ_DEFAULT_MAX_MESSAGE_SIZE);
  g_assert_cmpint (timeout, ==, MPQ_DEFAULT_SEND_TIMEOUT);
  g_assert_cmpint (role, ==, MPQ_ROLE_PARENT);

  g_signal_connect_swapped (pipe, "notify::max-message-size", G_CALLBACK (count_cb), &notified);
  mpq_channel_set_max_message_size (MPQ_CHANNEL (pipe), 4096);
  mpq_channel_set_max_message_size (MPQ_CHANNEL (pipe), 4096);
  g_assert_cmpint (notified, ==, 1);
}

static void
test_not_a_child (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqPipe) pipe = NULL;

  if (g_test_subprocess ())
    {
      g_unsetenv (MPQ_CHANNEL_FD_ENV);
      pipe = mpq_pipe_new_for_child (&error);
      g_assert_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD);
      g_clear_error (&error);

      g_setenv (MPQ_CHANNEL_FD_ENV, "not-a-number", TRUE);
      pipe = mpq_pipe_new_for_child (&error);
      g_assert_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD);
      g_clear_error (&error);

      /* stdin is no socket */
      g_setenv (MPQ_CHANNEL_FD_ENV, "0", TRUE);
      pipe = mpq_pipe_new_for_child (&error);
      g_assert_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD);
      return;
    }

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

static void
test_wrong_kind (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqPipe) pipe = NULL;
  int fds[2];

  if (g_test_subprocess ())
    {
      g_autofree char *fd_text = NULL;

      g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM, 0, fds), ==, 0);
      fd_text = g_strdup_printf ("%d", fds[1]);
      g_setenv (MPQ_CHANNEL_FD_ENV, fd_text, TRUE);
      g_setenv (MPQ_CHANNEL_KIND_ENV, "queue", TRUE);
      pipe = mpq_pipe_new_for_child (&error);
      g_assert_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD);
      g_clear_error (&error);

      g_setenv (MPQ_CHANNEL_KIND_ENV, "pipe", TRUE);
      pipe = mpq_pipe_new_for_child (&error);
      g_assert_no_error (error);
      /* One inherited channel per process. */
      g_assert_null (mpq_pipe_new_for_child (&error));
      g_assert_error (error, MPQ_ERROR, MPQ_ERROR_FAILED);
      return;
    }

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

static void
test_preconditions (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr(MpqPipe) pipe = new_pipe ();

      g_assert_false (mpq_channel_send (MPQ_CHANNEL (pipe), NULL, 0, 0, NULL, NULL));
      return;
    }

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*CRITICAL*request != NULL*");
}

/* With real children ---------------------------------------------------- */

static void
test_spawn_echo (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "echo", NULL);
  g_autoptr(GError) error = NULL;
  gint child_pid = atoi (g_subprocess_get_identifier (child));

  for (int i = 0; i < 500; i++)
    {
      g_autofree char *json = g_strdup_printf ("{\"value\":%d}", i);

      g_assert_true (mpq_channel_send_json (MPQ_CHANNEL (pipe), MPQ_REQ_DO, 0, 0, json, &error));
    }

  for (int i = 0; i < 500; i++)
    {
      g_autoptr(MpqMessage) answer = receive_ok (pipe, -1);

      g_assert_cmpstr (mpq_message_get_request (answer), ==, MPQ_REQ_FINISHED);
      g_assert_cmpint (mpq_message_get_sender_pid (answer), ==, child_pid);
      g_assert_cmpint (mpq_message_get_recipient_pid (answer), ==, getpid ());
      g_assert_cmpint (data_value (answer), ==, i);
    }

  g_assert_true (mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_DIE, 0, 0, NULL, &error));
  wait_child (child, TRUE);
  assert_receive_error (pipe, MPQ_ERROR_CLOSED);
}

/* pymulproc's README: the parent joins the child, then reads. */
static void
test_read_after_writer_exit (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "send", "2000");

  wait_child (child, TRUE);

  for (int i = 0; i < 2000; i++)
    {
      g_autoptr(MpqMessage) message = receive_ok (pipe, 0);

      g_assert_cmpint (data_value (message), ==, i);
    }

  assert_receive_error (pipe, MPQ_ERROR_CLOSED);
  assert_receive_error (pipe, MPQ_ERROR_CLOSED);
}

static void
test_peer_death_closes (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "hold", NULL);
  g_autoptr(GError) error = NULL;

  g_subprocess_force_exit (child);
  /* Blocks until the death is seen: a hang here fails by time-out. */
  assert_receive_error (pipe, MPQ_ERROR_CLOSED);
  wait_child (child, FALSE);

  /* Writing to a dead peer fails, without SIGPIPE. */
  g_assert_false (mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_DO, 0, 0, NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
}

static void
test_crash_keeps_sent (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "send-then-crash", "300");

  for (int i = 0; i < 300; i++)
    {
      g_autoptr(MpqMessage) message = receive_ok (pipe, -1);

      g_assert_cmpint (data_value (message), ==, i);
    }

  assert_receive_error (pipe, MPQ_ERROR_CLOSED);
  wait_child (child, FALSE);
  g_assert_true (g_subprocess_get_if_signaled (child));
  g_assert_cmpint (g_subprocess_get_term_sig (child), ==, SIGKILL);
}

typedef struct
{
  GMainLoop *loop;
  GPtrArray *all;
  guint      dies;
  guint      closed;
  gboolean   stop_after_first;
} Collect;

static void
collect_all (MpqChannel *channel,
             MpqMessage *message,
             Collect    *collect)
{
  g_ptr_array_add (collect->all, g_object_ref (message));
  if (collect->stop_after_first)
    mpq_channel_stop (channel);
}

static void
collect_die (MpqChannel *channel,
             MpqMessage *message,
             Collect    *collect)
{
  g_assert_cmpstr (mpq_message_get_request (message), ==, MPQ_REQ_DIE);
  collect->dies++;
}

static void
collect_closed (MpqChannel *channel,
                Collect    *collect)
{
  collect->closed++;
  g_main_loop_quit (collect->loop);
}

static void
collect_init (Collect *collect,
              MpqPipe *pipe)
{
  collect->loop = g_main_loop_new (NULL, FALSE);
  collect->all = g_ptr_array_new_with_free_func (g_object_unref);
  collect->dies = collect->closed = 0;
  collect->stop_after_first = FALSE;
  g_signal_connect (pipe, "message-received", G_CALLBACK (collect_all), collect);
  g_signal_connect (pipe, "message-received::" MPQ_REQ_DIE, G_CALLBACK (collect_die), collect);
  g_signal_connect (pipe, "closed", G_CALLBACK (collect_closed), collect);
}

static void
collect_clear (Collect *collect)
{
  g_main_loop_unref (collect->loop);
  g_ptr_array_unref (collect->all);
}

/* Signals in a main loop: every message, in order, then ::closed; the DIE
 * detail sees DIE only. */
static void
test_signals_detail (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "echo-signals", NULL);
  g_autoptr(GError) error = NULL;
  Collect collect;

  collect_init (&collect, pipe);
  mpq_channel_start (MPQ_CHANNEL (pipe));

  for (int i = 0; i < 1000; i++)
    {
      g_autofree char *json = g_strdup_printf ("{\"value\":%d}", i);

      g_assert_true (mpq_channel_send_json (MPQ_CHANNEL (pipe), MPQ_REQ_DO, 0, 0, json, &error));
    }
  g_assert_true (mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_DIE, 0, 0, NULL, &error));

  g_main_loop_run (collect.loop);

  g_assert_cmpuint (collect.all->len, ==, 1000);
  for (guint i = 0; i < collect.all->len; i++)
    g_assert_cmpint (data_value (collect.all->pdata[i]), ==, i);
  g_assert_cmpuint (collect.dies, ==, 0);
  g_assert_cmpuint (collect.closed, ==, 1);
  wait_child (child, TRUE);
  collect_clear (&collect);
}

static gboolean
all_arrived (gpointer user_data)
{
  Collect *collect = user_data;

  if (collect->all->len == 50)
    g_main_loop_quit (collect->loop);
  return G_SOURCE_CONTINUE;
}

/* 50 messages in one write, then silence: all of them are delivered
 * without waiting for another byte. */
static void
test_signals_burst (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "burst", "50");
  g_autoptr(GError) error = NULL;
  Collect collect;
  guint check;

  collect_init (&collect, pipe);
  mpq_channel_start (MPQ_CHANNEL (pipe));
  check = g_idle_add (all_arrived, &collect);
  g_main_loop_run (collect.loop);
  g_source_remove (check);

  g_assert_cmpuint (collect.all->len, ==, 50);
  g_assert_true (mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_DIE, 0, 0, NULL, &error));
  wait_child (child, TRUE);
  g_main_loop_run (collect.loop);
  g_assert_cmpuint (collect.closed, ==, 1);
  collect_clear (&collect);
}

/* stop() from a handler keeps the rest for receive() and the next start(). */
static void
test_stop_in_handler (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "send", "10");
  g_autoptr(MpqMessage) second = NULL;
  Collect collect;

  wait_child (child, TRUE);
  collect_init (&collect, pipe);
  collect.stop_after_first = TRUE;
  mpq_channel_start (MPQ_CHANNEL (pipe));
  while (collect.all->len == 0)
    g_main_context_iteration (NULL, TRUE);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (collect.all->len, ==, 1);

  second = receive_ok (pipe, 0);
  g_assert_cmpint (data_value (second), ==, 1);

  collect.stop_after_first = FALSE;
  mpq_channel_start (MPQ_CHANNEL (pipe));
  g_main_loop_run (collect.loop);
  g_assert_cmpuint (collect.all->len, ==, 9);
  g_assert_cmpint (data_value (collect.all->pdata[8]), ==, 9);
  g_assert_cmpuint (collect.closed, ==, 1);
  collect_clear (&collect);
}

typedef struct
{
  GPtrArray *results;
  GError    *error;
  guint      pending;
} AsyncState;

static void
receive_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  AsyncState *state = user_data;
  GError *error = NULL;
  MpqMessage *message = mpq_channel_receive_finish (MPQ_CHANNEL (object), result, &error);

  state->pending--;
  if (message != NULL)
    g_ptr_array_add (state->results, message);
  else
    {
      g_clear_error (&state->error);
      state->error = error;
    }
}

static void
start_receive (MpqPipe      *pipe,
               GCancellable *cancellable,
               AsyncState   *state)
{
  state->pending++;
  mpq_channel_receive_async (MPQ_CHANNEL (pipe), cancellable, receive_cb, state);
}

static void
wait_receives (AsyncState *state)
{
  while (state->pending > 0)
    g_main_context_iteration (NULL, TRUE);
}

static void
test_receive_async (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "send", "5");
  AsyncState state = { g_ptr_array_new_with_free_func (g_object_unref), NULL, 0 };

  for (int i = 0; i < 5; i++)
    start_receive (pipe, NULL, &state);
  wait_receives (&state);

  g_assert_no_error (state.error);
  for (guint i = 0; i < 5; i++)
    g_assert_cmpint (data_value (state.results->pdata[i]), ==, i);

  /* After the last message, the hang-up. */
  start_receive (pipe, NULL, &state);
  wait_receives (&state);
  g_assert_error (state.error, MPQ_ERROR, MPQ_ERROR_CLOSED);

  wait_child (child, TRUE);
  g_clear_error (&state.error);
  g_ptr_array_unref (state.results);
}

static void
test_receive_async_cancel (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "echo", NULL);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  AsyncState state = { g_ptr_array_new_with_free_func (g_object_unref), NULL, 0 };

  start_receive (pipe, cancellable, &state);
  g_cancellable_cancel (cancellable);
  wait_receives (&state);
  g_assert_error (state.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&state.error);

  /* The cancelled call took nothing: the next answer goes to the next call. */
  mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_DO, 0, 0, NULL, &error);
  start_receive (pipe, NULL, &state);
  wait_receives (&state);
  g_assert_no_error (state.error);
  g_assert_cmpuint (state.results->len, ==, 1);

  mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_DIE, 0, 0, NULL, &error);
  wait_child (child, TRUE);
  g_ptr_array_unref (state.results);
}

static void
test_receive_async_peer_death (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "hold", NULL);
  AsyncState state = { g_ptr_array_new_with_free_func (g_object_unref), NULL, 0 };

  start_receive (pipe, NULL, &state);
  g_subprocess_force_exit (child);
  wait_receives (&state);
  g_assert_error (state.error, MPQ_ERROR, MPQ_ERROR_CLOSED);

  wait_child (child, FALSE);
  g_clear_error (&state.error);
  g_ptr_array_unref (state.results);
}

static void
test_receive_async_close (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "echo", NULL);
  AsyncState state = { g_ptr_array_new_with_free_func (g_object_unref), NULL, 0 };

  start_receive (pipe, NULL, &state);
  mpq_channel_close (MPQ_CHANNEL (pipe));
  wait_receives (&state);
  g_assert_error (state.error, MPQ_ERROR, MPQ_ERROR_CLOSED);

  /* The child's blocking receive saw the hang-up and failed. */
  wait_child (child, FALSE);
  g_assert_cmpint (g_subprocess_get_exit_status (child), ==, 1);
  g_clear_error (&state.error);
  g_ptr_array_unref (state.results);
}

/* Bad input from a child that does not use the library. */
typedef struct
{
  const char *name;
  const char *raw;
  gint        code;
} BadLine;

static const BadLine bad_lines[] = {
  { "not-json", "[\"DO\",1,null,1]\\nhello\\n", MPQ_ERROR_PROTOCOL },
  { "three-elements", "[\"DO\",1,null,1]\\n[\"DO\",1,null]\\n", MPQ_ERROR_PROTOCOL },
  { "empty-request", "[\"DO\",1,null,1]\\n[\"\",1,null,null]\\n", MPQ_ERROR_PROTOCOL },
  { "number-request", "[\"DO\",1,null,1]\\n[7,1,null,null]\\n", MPQ_ERROR_PROTOCOL },
  { "zero-pid", "[\"DO\",1,null,1]\\n[\"DO\",0,null,null]\\n", MPQ_ERROR_PROTOCOL },
  { "float-pid", "[\"DO\",1,null,1]\\n[\"DO\",2.5,null,null]\\n", MPQ_ERROR_PROTOCOL },
  { "invalid-utf8", "[\"DO\",1,null,1]\\n[\"D\\377\",1,null,null]\\n", MPQ_ERROR_PROTOCOL },
  { "empty-line", "[\"DO\",1,null,1]\\n\\n", MPQ_ERROR_PROTOCOL },
  { "partial-line", "[\"DO\",1,null,1]\\n[\"DO\",1,nu", MPQ_ERROR_PROTOCOL },
};

static void
test_bad_line (gconstpointer user_data)
{
  const BadLine *bad = user_data;
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "raw", bad->raw);
  g_autoptr(MpqMessage) good = NULL;

  good = receive_ok (pipe, -1);
  g_assert_cmpint (json_node_get_int (mpq_message_get_data (good)), ==, 1);
  assert_receive_error (pipe, bad->code);
  assert_receive_error (pipe, MPQ_ERROR_CLOSED);
  wait_child (child, TRUE);
}

/* The same through receive_json, which keeps lines as they come: the good
 * line comes as it was sent, then the same error, then CLOSED. */
static void
test_bad_line_json (gconstpointer user_data)
{
  const BadLine *bad = user_data;
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "raw", bad->raw);
  g_autoptr(GError) error = NULL;
  g_autofree char *good = NULL;
  g_autofree char *bad_json = NULL;
  g_autofree char *after = NULL;

  good = mpq_channel_receive_json (MPQ_CHANNEL (pipe), -1, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (good, "[\"DO\","));
  g_assert_true (g_str_has_suffix (good, ",null,1]"));

  bad_json = mpq_channel_receive_json (MPQ_CHANNEL (pipe), -1, &error);
  g_assert_error (error, MPQ_ERROR, bad->code);
  g_assert_null (bad_json);
  g_clear_error (&error);

  after = mpq_channel_receive_json (MPQ_CHANNEL (pipe), -1, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_assert_null (after);
  wait_child (child, TRUE);
}

static void
test_bad_line_deep_nesting (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "nest", "100000");

  assert_receive_error (pipe, MPQ_ERROR_PROTOCOL);
  wait_child (child, TRUE);
}

/* An endless line: memory stays bounded by max-message-size and the peer is
 * dropped as soon as the line is longer. */
static void
test_bad_line_endless (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "nest", "3000000");

  assert_receive_error (pipe, MPQ_ERROR_TOO_LARGE);
  /* The child's write fails once we drop it; it exits either way. */
  wait_child (child, FALSE);
}

static void
test_bad_line_signals (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "raw", "[\"DO\",1,null,1]\\n[1]\\n[\"DO\",1,null,2]\\n");
  Collect collect;

  collect_init (&collect, pipe);
  mpq_channel_start (MPQ_CHANNEL (pipe));
  g_main_loop_run (collect.loop);

  /* The good message before the bad line, nothing after it. */
  g_assert_cmpuint (collect.all->len, ==, 1);
  g_assert_cmpuint (collect.closed, ==, 1);
  wait_child (child, TRUE);
  collect_clear (&collect);
}

static void
test_fds_not_leaked (void)
{
  g_autoptr(MpqPipe) other = new_pipe ();
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocess) child = spawn_child (pipe, "fds", NULL);
  g_autoptr(MpqMessage) message = receive_ok (pipe, -1);

  (void) other;   /* open, so that its descriptors could leak into the child */
  JsonArray *fds = json_node_get_array (mpq_message_get_data (message));
  guint sockets = 0;

  /* Besides the standard streams, the channel is the only socket the child
   * has: neither the parent's end nor another pipe's leaked. (Under valgrind
   * the child also holds valgrind's own files, which is why only sockets
   * are counted.) */
  for (guint i = 0; i < json_array_get_length (fds); i++)
    {
      JsonArray *fd = json_array_get_array_element (fds, i);
      gint64 number = json_array_get_int_element (fd, 0);
      const char *target = json_array_get_string_element (fd, 1);

      g_test_message ("child fd %" G_GINT64_FORMAT ": %s", number, target);
      if (number > 2 && g_str_has_prefix (target, "socket:"))
        sockets++;
    }
  g_assert_cmpuint (sockets, ==, 1);
  wait_child (child, TRUE);
}

static void
test_spawn_with_launcher (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_autofree char *built = g_test_build_filename (G_TEST_BUILT, "mpq-test-child", NULL);
  g_autofree char *path = g_canonicalize_filename (built, NULL);
  g_autofree char *tmp = g_dir_make_tmp ("mpq-test-XXXXXX", NULL);
  g_autofree char *real_tmp = realpath (tmp, NULL);
  const char *argv[] = { path, "env", "MPQ_TEST_VALUE", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(GSubprocess) again = NULL;
  g_autoptr(MpqMessage) message = NULL;
  JsonArray *answer;

  g_subprocess_launcher_setenv (launcher, "MPQ_TEST_VALUE", "from-launcher", TRUE);
  g_subprocess_launcher_set_cwd (launcher, real_tmp);
  child = mpq_pipe_spawn_with_launcher (pipe, launcher, argv, &error);
  g_assert_no_error (error);

  message = receive_ok (pipe, -1);
  answer = json_node_get_array (mpq_message_get_data (message));
  g_assert_cmpstr (json_array_get_string_element (answer, 0), ==, "from-launcher");
  g_assert_cmpstr (json_array_get_string_element (answer, 1), ==, real_tmp);
  wait_child (child, TRUE);
  g_rmdir (tmp);

  /* One child per pipe. */
  again = mpq_pipe_spawn (pipe, argv, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_FAILED);
  g_assert_null (again);
}

static void
test_spawn_failure (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  const char *argv[] = { "/nonexistent/mpq-child", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) child = mpq_pipe_spawn (pipe, argv, &error);

  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_FAILED);
  g_assert_null (child);
}

/* MPQ_DEBUG=1 traces each message, with the time, the process's name
 * and pid, and the direction. */
static void
test_debug_env (void)
{
  g_autoptr(MpqPipe) pipe = new_pipe ();
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-test-child", NULL);
  const char *argv[] = { path, "echo", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(MpqMessage) answer = NULL;
  g_autofree char *err_text = NULL;
  g_autofree char *expect_in = NULL;
  g_autofree char *expect_out = NULL;
  g_autofree char *child_pid = NULL;

  g_subprocess_launcher_setenv (launcher, "MPQ_DEBUG", "1", TRUE);
  child = mpq_pipe_spawn_with_launcher (pipe, launcher, argv, &error);
  g_assert_no_error (error);
  /* The identifier is gone once the child is reaped. */
  child_pid = g_strdup (g_subprocess_get_identifier (child));

  mpq_channel_send_json (MPQ_CHANNEL (pipe), MPQ_REQ_DO, 0, 0, "{\"value\":7}", &error);
  answer = receive_ok (pipe, -1);
  mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_DIE, 0, 0, NULL, &error);
  g_subprocess_communicate_utf8 (child, NULL, NULL, NULL, &err_text, &error);
  g_assert_no_error (error);

  expect_in = g_strdup_printf (" mpq-test-child[%s] < [\"DO\",%d,null,{\"value\":7}]\n",
                               child_pid, getpid ());
  expect_out = g_strdup_printf (" mpq-test-child[%s] > [\"FINISHED\",%s,%d,{\"value\":7}]\n",
                                child_pid,
                                child_pid, getpid ());
  g_test_message ("child stderr: %s", err_text);
  g_assert_nonnull (strstr (err_text, expect_in));
  g_assert_nonnull (strstr (err_text, expect_out));
  /* "mpq HH:MM:SS.µµµµµµ name[pid] ...": the time (UTC) first. */
  g_assert_true (g_regex_match_simple ("^mpq [0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\.[0-9]{6} "
                                       "mpq-test-child\\[[0-9]+\\] [<>] ",
                                       err_text, G_REGEX_MULTILINE, 0));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/Mpq/Pipe/pair-send-receive", test_pair_send_receive);
  g_test_add_func ("/Mpq/Pipe/receive-poll-and-timeout", test_receive_poll_and_timeout);
  g_test_add_func ("/Mpq/Pipe/receive-json", test_receive_json);
  g_test_add_func ("/Mpq/Pipe/receive-json-mixed", test_receive_json_mixed);
  g_test_add_func ("/Mpq/Pipe/filter-keeps-first", test_filter_keeps_first);
  g_test_add_func ("/Mpq/Pipe/receive-for-me", test_receive_for_me);
  g_test_add_func ("/Mpq/Pipe/close-then-calls", test_close_then_calls);
  g_test_add_func ("/Mpq/Pipe/closed-signal-once", test_closed_signal_once);
  g_test_add_func ("/Mpq/Pipe/too-large", test_too_large);
  g_test_add_func ("/Mpq/Pipe/too-large-received", test_too_large_received);
  g_test_add_func ("/Mpq/Pipe/max-message-size-live", test_max_message_size_live);
  g_test_add_func ("/Mpq/Pipe/made-by-binding", test_made_by_binding);
  g_test_add_func ("/Mpq/Pipe/made-by-binding-not-a-child", test_made_by_binding_not_a_child);
  g_test_add_func ("/Mpq/Pipe/send-timeout-whole-messages", test_send_timeout_whole_messages);
  g_test_add_func ("/Mpq/Pipe/properties", test_properties);
  g_test_add_func ("/Mpq/Pipe/not-a-child", test_not_a_child);
  g_test_add_func ("/Mpq/Pipe/wrong-kind", test_wrong_kind);
  g_test_add_func ("/Mpq/Pipe/preconditions", test_preconditions);
  g_test_add_func ("/Mpq/Pipe/spawn-echo", test_spawn_echo);
  g_test_add_func ("/Mpq/Pipe/read-after-writer-exit", test_read_after_writer_exit);
  g_test_add_func ("/Mpq/Pipe/peer-death-closes", test_peer_death_closes);
  g_test_add_func ("/Mpq/Pipe/crash-keeps-sent", test_crash_keeps_sent);
  g_test_add_func ("/Mpq/Pipe/signals-detail", test_signals_detail);
  g_test_add_func ("/Mpq/Pipe/signals-burst", test_signals_burst);
  g_test_add_func ("/Mpq/Pipe/stop-in-handler", test_stop_in_handler);
  g_test_add_func ("/Mpq/Pipe/receive-async", test_receive_async);
  g_test_add_func ("/Mpq/Pipe/receive-async-cancel", test_receive_async_cancel);
  g_test_add_func ("/Mpq/Pipe/receive-async-peer-death", test_receive_async_peer_death);
  g_test_add_func ("/Mpq/Pipe/receive-async-close", test_receive_async_close);
  for (guint i = 0; i < G_N_ELEMENTS (bad_lines); i++)
    {
      g_autofree char *path = g_strdup_printf ("/Mpq/Pipe/bad-line/%s", bad_lines[i].name);

      g_autofree char *json_path = g_strdup_printf ("/Mpq/Pipe/bad-line-json/%s", bad_lines[i].name);

      g_test_add_data_func (path, &bad_lines[i], test_bad_line);
      g_test_add_data_func (json_path, &bad_lines[i], test_bad_line_json);
    }
  g_test_add_func ("/Mpq/Pipe/bad-line/deep-nesting", test_bad_line_deep_nesting);
  g_test_add_func ("/Mpq/Pipe/bad-line/endless", test_bad_line_endless);
  g_test_add_func ("/Mpq/Pipe/bad-line/signals", test_bad_line_signals);
  g_test_add_func ("/Mpq/Pipe/fds-not-leaked", test_fds_not_leaked);
  g_test_add_func ("/Mpq/Pipe/spawn-with-launcher", test_spawn_with_launcher);
  g_test_add_func ("/Mpq/Pipe/spawn-failure", test_spawn_failure);
  g_test_add_func ("/Mpq/Pipe/debug-env", test_debug_env);

  return g_test_run ();
}
