/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* MpqQueue with real children (tests/mpq-queue-test-child), real main loops
 * and no sleeps: whenever the parent must know that a child reached a
 * point, the child says so (a READY message, or a line on its stdout). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib-unix.h>
#include <pymulproc/pymulproc.h>

#define REQ_READY "READY"

/* The child's exit status for "my queue was closed under me". */
#define STATUS_CLOSED 4

/* A pid no child of ours has: messages for it wait in the queue. */
#define NOBODYS_PID 1

/* Helpers --------------------------------------------------------------- */

static gboolean
under_valgrind (void)
{
  return g_getenv ("MPQ_VALGRIND") != NULL;
}

static MpqQueue *
new_queue (guint max_size)
{
  g_autoptr(GError) error = NULL;
  MpqQueue *queue = mpq_queue_new (max_size, &error);

  g_assert_no_error (error);
  g_assert_nonnull (queue);
  return queue;
}

/* GLib reaps a child as soon as it exits, and forgets its identifier: a
 * child that puts a few messages and exits may be gone before
 * mpq_queue_spawn() even returns. So each child writes its pid to this
 * pipe between fork and exec, and the parent reads it after spawning. */
static int pid_pipe[2] = { -1, -1 };

static void
write_own_pid (gpointer user_data)
{
  pid_t pid = getpid ();

  /* Async-signal-safe: this runs between fork and exec. */
  if (write (pid_pipe[1], &pid, sizeof pid) != sizeof pid)
    _exit (127);
}

static GSubprocess *
spawn_child_full (MpqQueue         *queue,
                  GSubprocessFlags  flags,
                  const char       *mode,
                  const char       *arg,
                  const char       *arg2)
{
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (flags);
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-queue-test-child", NULL);
  const char *argv[] = { path, mode, arg, arg2, NULL };
  g_autoptr(GError) error = NULL;
  GSubprocess *child;
  pid_t pid = 0;

  if (pid_pipe[0] < 0)
    {
      g_unix_open_pipe (pid_pipe, FD_CLOEXEC, &error);
      g_assert_no_error (error);
    }

  g_subprocess_launcher_set_child_setup (launcher, write_own_pid, NULL, NULL);
  child = mpq_queue_spawn_with_launcher (queue, launcher, argv, &error);
  g_assert_no_error (error);
  g_assert_nonnull (child);

  g_assert_cmpint (read (pid_pipe[0], &pid, sizeof pid), ==, sizeof pid);
  g_assert_cmpint (pid, >, 0);
  g_object_set_data (G_OBJECT (child), "mpq-test-pid", GINT_TO_POINTER (pid));

  return child;
}

static GSubprocess *
spawn_child (MpqQueue   *queue,
             const char *mode,
             const char *arg)
{
  return spawn_child_full (queue, G_SUBPROCESS_FLAGS_NONE, mode, arg, NULL);
}

static gint
child_pid (GSubprocess *child)
{
  return GPOINTER_TO_INT (g_object_get_data (G_OBJECT (child), "mpq-test-pid"));
}

static void
wait_child_status (GSubprocess *child,
                   int          status)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_wait (child, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (child));
  g_assert_cmpint (g_subprocess_get_exit_status (child), ==, status);
}

static void
wait_child (GSubprocess *child)
{
  wait_child_status (child, 0);
}

static void
wait_child_killed (GSubprocess *child)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_wait (child, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_signaled (child));
  g_assert_cmpint (g_subprocess_get_term_sig (child), ==, SIGKILL);
}

typedef struct
{
  gboolean done;
  gboolean exited;
} ExitWait;

static void
exited_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  ExitWait *wait = user_data;

  wait->exited = g_subprocess_wait_finish (G_SUBPROCESS (object), result, NULL);
  wait->done = TRUE;
}

static gboolean
cancel_cb (gpointer user_data)
{
  g_cancellable_cancel (user_data);
  return G_SOURCE_REMOVE;
}

/* Whether @child exits within @timeout_ms: a test fails instead of hanging. */
static gboolean
child_exits_within (GSubprocess *child,
                    guint        timeout_ms)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  ExitWait wait = { FALSE, FALSE };
  guint timer = g_timeout_add (timeout_ms, cancel_cb, cancellable);

  g_subprocess_wait_async (child, cancellable, exited_cb, &wait);
  while (!wait.done)
    g_main_context_iteration (NULL, TRUE);
  if (!g_cancellable_is_cancelled (cancellable))
    g_source_remove (timer);
  return wait.exited;
}

/* One line the child wrote to its stdout, without the newline. */
static char *
read_child_line (GSubprocess *child)
{
  GInputStream *out = g_subprocess_get_stdout_pipe (child);
  g_autoptr(GString) line = g_string_new (NULL);

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      char c;
      gssize n = g_input_stream_read (out, &c, 1, NULL, &error);

      g_assert_no_error (error);
      g_assert_cmpint (n, ==, 1);   /* 0: the child exited before saying it */
      if (c == '\n')
        return g_string_free (g_steal_pointer (&line), FALSE);
      g_string_append_c (line, c);
    }
}

static void
expect_child_line (GSubprocess *child,
                   const char  *expected)
{
  g_autofree char *line = read_child_line (child);

  g_assert_cmpstr (line, ==, expected);
}

static void
write_child_stdin (GSubprocess *child,
                   const char  *text)
{
  g_autoptr(GError) error = NULL;

  g_output_stream_write_all (g_subprocess_get_stdin_pipe (child), text, strlen (text),
                             NULL, NULL, &error);
  g_assert_no_error (error);
}

static void
close_child_stdin (GSubprocess *child)
{
  g_autoptr(GError) error = NULL;

  g_output_stream_close (g_subprocess_get_stdin_pipe (child), NULL, &error);
  g_assert_no_error (error);
}

static gint64
data_value (MpqMessage *message)
{
  JsonNode *data = mpq_message_get_data (message);

  g_assert_nonnull (data);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (data));
  return json_object_get_int_member (json_node_get_object (data), "value");
}

static void
send_value (MpqQueue   *queue,
            const char *request,
            gint        recipient_pid,
            gint64      value)
{
  g_autofree char *json = g_strdup_printf ("{\"value\":%" G_GINT64_FORMAT "}", value);
  g_autoptr(GError) error = NULL;

  g_assert_true (mpq_channel_send_json (MPQ_CHANNEL (queue), request, 0, recipient_pid, json,
                                        &error));
  g_assert_no_error (error);
}

static void
send_die (MpqQueue *queue,
          gint      recipient_pid)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (mpq_channel_send (MPQ_CHANNEL (queue), MPQ_REQ_DIE, 0, recipient_pid, NULL,
                                   &error));
  g_assert_no_error (error);
}

static MpqMessage *
receive_ok (MpqQueue *queue,
            gint      timeout_ms)
{
  g_autoptr(GError) error = NULL;
  MpqMessage *message = mpq_channel_receive (MPQ_CHANNEL (queue), timeout_ms, NULL, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (message);
  return message;
}

static void
assert_receive_nothing (MpqQueue *queue)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) message = mpq_channel_receive (MPQ_CHANNEL (queue), 0, NULL, NULL, &error);

  g_assert_no_error (error);
  if (message != NULL)
    {
      g_autofree char *json = mpq_message_to_json (message, NULL);

      g_test_message ("unexpected message: %s", json);
    }
  g_assert_null (message);
}

/* pymulproc's way: receive (-1, filter) again and again; a message the
 * filter refuses goes to the back of the queue, and receive returns NULL. */
static MpqMessage *
receive_matching (MpqQueue         *queue,
                  MpqMessageFilter  filter,
                  gpointer          user_data)
{
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      MpqMessage *message;

      message = mpq_channel_receive (MPQ_CHANNEL (queue), -1, filter, user_data, &error);

      g_assert_no_error (error);
      if (message != NULL)
        return message;
    }
}

static void
assert_is_empty (MpqQueue *queue,
                 gboolean  expected)
{
  g_autoptr(GError) error = NULL;
  gboolean empty = mpq_queue_is_empty (queue, &error);

  g_assert_no_error (error);
  g_assert_cmpint (empty, ==, expected);
}

static void
assert_joined (MpqQueue *queue,
               gint      timeout_ms)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (mpq_queue_join (queue, timeout_ms, &error));
  g_assert_no_error (error);
}

static void
assert_not_joined (MpqQueue *queue,
                   gint      timeout_ms)
{
  g_autoptr(GError) error = NULL;

  g_assert_false (mpq_queue_join (queue, timeout_ms, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT);
}

/* The end of every test with children: nothing left, everything taken. */
static void
assert_drained (MpqQueue *queue)
{
  assert_joined (queue, -1);
  assert_is_empty (queue, TRUE);
  assert_receive_nothing (queue);
}

/* The same, when a worker spawned late may have left its READY behind
 * (taken by nobody, as answers were taken with a filter or routed). */
static void
assert_drained_but_readies (MpqQueue *queue)
{
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqMessage) left = mpq_channel_receive (MPQ_CHANNEL (queue), 0, NULL, NULL, &error);

      g_assert_no_error (error);
      if (left == NULL)
        break;
      g_assert_cmpstr (mpq_message_get_request (left), ==, REQ_READY);
    }
  assert_drained (queue);
}

/* Takes one READY from each of @n dispatch workers. Only READYs are in the
 * queue at this point, so a plain receive takes them. */
static void
wait_ready (MpqQueue *queue,
            gint     *pids,
            guint     n)
{
  g_autofree gboolean *seen = g_new0 (gboolean, n);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(MpqMessage) ready = receive_ok (queue, -1);
      guint j;

      g_assert_cmpstr (mpq_message_get_request (ready), ==, REQ_READY);
      g_assert_cmpint (mpq_message_get_recipient_pid (ready), ==, getpid ());
      for (j = 0; j < n && pids[j] != mpq_message_get_sender_pid (ready); j++)
        ;
      g_assert_cmpuint (j, <, n);
      g_assert_false (seen[j]);
      seen[j] = TRUE;
    }
}

static gboolean
accept_all (MpqMessage *message,
            gpointer    user_data)
{
  return TRUE;
}

typedef struct
{
  guint  calls;
  gint64 last_value;
} RejectState;

static gboolean
reject_all (MpqMessage *message,
            gpointer    user_data)
{
  RejectState *state = user_data;

  state->calls++;
  state->last_value = data_value (message);
  return FALSE;
}

/* FINISHED (or READY) for this process: what workers answer. */
static gboolean
accept_answers (MpqMessage *message,
                gpointer    user_data)
{
  return !g_str_equal (mpq_message_get_request (message), MPQ_REQ_DO) &&
         mpq_message_get_recipient_pid (message) == getpid ();
}

/* Per producer FIFO: pid -> the value expected next. */
static void
check_fifo (GHashTable *next,
            MpqMessage *message)
{
  gpointer pid = GINT_TO_POINTER (mpq_message_get_sender_pid (message));
  gint64 expected = GPOINTER_TO_INT (g_hash_table_lookup (next, pid));

  g_assert_cmpint (data_value (message), ==, expected);
  g_hash_table_insert (next, pid, GINT_TO_POINTER (expected + 1));
}

/* Records a value in 0 … n-1, which must not have been seen before. */
static void
mark_seen (guint8 *seen,
           guint   n,
           gint64  value)
{
  g_assert_cmpint (value, >=, 0);
  g_assert_cmpint (value, <, n);
  g_assert_cmpuint (seen[value], ==, 0);
  seen[value] = 1;
}

typedef struct
{
  GPtrArray *results;
  GError    *error;
  guint      pending;
  gboolean   joined;
} AsyncState;

static void
async_state_init (AsyncState *state)
{
  state->results = g_ptr_array_new_with_free_func (g_object_unref);
  state->error = NULL;
  state->pending = 0;
  state->joined = FALSE;
}

static void
async_state_clear (AsyncState *state)
{
  g_ptr_array_unref (state->results);
  g_clear_error (&state->error);
}

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
      g_assert_nonnull (error);
      g_clear_error (&state->error);
      state->error = error;
    }
}

static void
start_receive (MpqQueue     *queue,
               GCancellable *cancellable,
               AsyncState   *state)
{
  state->pending++;
  mpq_channel_receive_async (MPQ_CHANNEL (queue), cancellable, receive_cb, state);
}

static void
join_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  AsyncState *state = user_data;
  GError *error = NULL;

  state->pending--;
  state->joined = mpq_queue_join_finish (MPQ_QUEUE (object), result, &error);
  g_assert_true (state->joined == (error == NULL));
  g_clear_error (&state->error);
  state->error = error;
}

static void
start_join (MpqQueue     *queue,
            GCancellable *cancellable,
            AsyncState   *state)
{
  state->pending++;
  mpq_queue_join_async (queue, cancellable, join_cb, state);
}

static void
wait_async (AsyncState *state)
{
  while (state->pending > 0)
    g_main_context_iteration (NULL, TRUE);
}

/* The next message routed to this process (receive_async): unlike a
 * filtering receive, it waits without taking the tasks it put for anyone
 * (a parent that spins through them starves its workers under valgrind). */
static MpqMessage *
receive_routed (MpqQueue *queue)
{
  AsyncState state;
  MpqMessage *message;

  async_state_init (&state);
  start_receive (queue, NULL, &state);
  wait_async (&state);
  g_assert_no_error (state.error);
  g_assert_cmpuint (state.results->len, ==, 1);
  message = g_object_ref (state.results->pdata[0]);
  async_state_clear (&state);
  return message;
}

/* Whatever is ready now, without blocking. */
static void
iterate_ready (void)
{
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

/* In one process -------------------------------------------------------- */

static void
count_cb (gpointer user_data)
{
  (*(int *) user_data)++;
}

static void
test_properties (void)
{
  g_autoptr(MpqQueue) queue = new_queue (5);
  g_autoptr(MpqQueue) unbounded = new_queue (0);
  gint put_timeout = 0;
  guint put_attempts = 0;
  guint prefetch = 0;
  MpqRole role = 0;
  int notified = 0;

  g_assert_cmpuint (mpq_queue_get_max_size (queue), ==, 5);
  g_assert_cmpuint (mpq_queue_get_max_size (unbounded), ==, 0);
  g_assert_cmpint (mpq_queue_get_put_timeout (queue), ==, MPQ_DEFAULT_PUT_TIMEOUT);
  g_assert_cmpint (MPQ_DEFAULT_PUT_TIMEOUT, ==, 100);
  g_assert_cmpuint (mpq_queue_get_put_attempts (queue), ==, MPQ_DEFAULT_PUT_ATTEMPTS);
  g_assert_cmpint (MPQ_DEFAULT_PUT_ATTEMPTS, ==, 10);
  g_assert_cmpuint (mpq_queue_get_prefetch (queue), ==, MPQ_DEFAULT_PREFETCH);
  g_assert_cmpint (mpq_channel_get_role (MPQ_CHANNEL (queue)), ==, MPQ_ROLE_PARENT);
  g_assert_cmpint (mpq_channel_get_pid (MPQ_CHANNEL (queue)), ==, getpid ());
  g_assert_cmpuint (mpq_channel_get_max_message_size (MPQ_CHANNEL (queue)), ==,
                    MPQ_DEFAULT_MAX_MESSAGE_SIZE);

  g_object_get (queue,
                "put-timeout", &put_timeout,
                "put-attempts", &put_attempts,
                "prefetch", &prefetch,
                "role", &role,
                NULL);
  g_assert_cmpint (put_timeout, ==, MPQ_DEFAULT_PUT_TIMEOUT);
  g_assert_cmpuint (put_attempts, ==, MPQ_DEFAULT_PUT_ATTEMPTS);
  g_assert_cmpuint (prefetch, ==, MPQ_DEFAULT_PREFETCH);
  g_assert_cmpint (role, ==, MPQ_ROLE_PARENT);

  g_signal_connect_swapped (queue, "notify::put-timeout", G_CALLBACK (count_cb), &notified);
  mpq_queue_set_put_timeout (queue, 10);
  mpq_queue_set_put_timeout (queue, 10);
  g_assert_cmpint (notified, ==, 1);
  g_assert_cmpint (mpq_queue_get_put_timeout (queue), ==, 10);

  mpq_queue_set_put_attempts (queue, 2);
  g_assert_cmpuint (mpq_queue_get_put_attempts (queue), ==, 2);
  mpq_queue_set_prefetch (queue, 3);
  g_assert_cmpuint (mpq_queue_get_prefetch (queue), ==, 3);
}

static void
test_not_a_child (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqQueue) queue = NULL;
  int fds[2];

  if (g_test_subprocess ())
    {
      g_autofree char *fd_text = NULL;

      g_unsetenv (MPQ_CHANNEL_FD_ENV);
      g_unsetenv (MPQ_CHANNEL_KIND_ENV);
      queue = mpq_queue_new_for_child (&error);
      g_assert_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD);
      g_assert_null (queue);
      g_clear_error (&error);

      /* A pipe's descriptor is not a queue's. */
      g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM, 0, fds), ==, 0);
      fd_text = g_strdup_printf ("%d", fds[1]);
      g_setenv (MPQ_CHANNEL_FD_ENV, fd_text, TRUE);
      g_setenv (MPQ_CHANNEL_KIND_ENV, "pipe", TRUE);
      queue = mpq_queue_new_for_child (&error);
      g_assert_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD);
      g_assert_null (queue);
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
      g_assert_false (mpq_queue_is_empty (NULL, NULL));
      return;
    }

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*CRITICAL*MPQ_IS_QUEUE*");
}

static void
test_spawn_failure (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  const char *argv[] = { "/nonexistent/mpq-queue-child", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) child = mpq_queue_spawn (queue, argv, &error);
  g_autoptr(MpqMessage) message = NULL;

  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_FAILED);
  g_assert_null (child);

  /* The queue still works. */
  send_value (queue, MPQ_REQ_DO, 0, 1);
  message = receive_ok (queue, 0);
  g_assert_cmpint (data_value (message), ==, 1);
}

/* receive (0) on an empty queue is NULL without an error, in the parent and
 * in a child; receive (50) waits, then is NULL too. */
static void
test_receive_nothing (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) none = NULL;
  g_autoptr(MpqMessage) late = NULL;
  g_autoptr(GSubprocess) child = NULL;
  gint64 before;

  none = mpq_channel_receive (MPQ_CHANNEL (queue), 0, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (none);

  before = g_get_monotonic_time ();
  late = mpq_channel_receive (MPQ_CHANNEL (queue), 50, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (late);
  g_assert_cmpint (g_get_monotonic_time () - before, >=, 50 * 1000);

  child = spawn_child (queue, "poll-empty", NULL);
  wait_child (child);
  assert_drained (queue);
}

/* A refused message goes to the END of the queue, and is not taken. */
static void
test_filter_puts_back_at_end (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) refused = NULL;
  RejectState state = { 0, -1 };

  for (int i = 0; i < 3; i++)
    send_value (queue, MPQ_REQ_DO, 0, i);

  refused = mpq_channel_receive (MPQ_CHANNEL (queue), 0, reject_all, &state, &error);
  g_assert_no_error (error);
  g_assert_null (refused);
  g_assert_cmpuint (state.calls, ==, 1);
  g_assert_cmpint (state.last_value, ==, 0);
  assert_is_empty (queue, FALSE);

  /* 1, 2, then the refused 0. */
  for (int i = 0; i < 3; i++)
    {
      g_autoptr(MpqMessage) message = receive_ok (queue, 0);

      g_assert_cmpint (data_value (message), ==, (i + 1) % 3);
    }
  assert_receive_nothing (queue);
  assert_joined (queue, 0);
}

/* A child refuses the message it holds while the queue filled up behind
 * it: the put-back still goes in (put-backs never fail), at the end. */
static void
test_child_filter_puts_back_when_full (void)
{
  g_autoptr(MpqQueue) queue = new_queue (1);
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(MpqMessage) first = NULL;
  g_autoptr(MpqMessage) second = NULL;

  send_value (queue, MPQ_REQ_DO, 0, 0);
  child = spawn_child_full (queue, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                            "reject-one", "false", NULL);

  /* 0 is in the child's hand: not in the queue, so there is room. */
  expect_child_line (child, "filtering");
  assert_is_empty (queue, TRUE);
  send_value (queue, MPQ_REQ_DO, 0, 1);

  write_child_stdin (child, "go\n");
  wait_child (child);

  first = receive_ok (queue, 0);
  second = receive_ok (queue, 0);
  g_assert_cmpint (data_value (first), ==, 1);
  g_assert_cmpint (data_value (second), ==, 0);
  assert_drained (queue);
}

/* join (timeout) fails with MPQ_ERROR_TIMED_OUT while a message is not
 * taken, a put-back included, and returns TRUE once all are. */
static void
test_join_counting (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) first = NULL;
  g_autoptr(MpqMessage) refused = NULL;
  g_autoptr(MpqMessage) last = NULL;
  g_autoptr(GSubprocess) child = NULL;
  RejectState state = { 0, -1 };
  gint64 before;

  assert_joined (queue, 0);

  send_value (queue, MPQ_REQ_DO, 0, 0);
  send_value (queue, MPQ_REQ_DO, 0, 1);
  assert_not_joined (queue, 0);

  before = g_get_monotonic_time ();
  assert_not_joined (queue, 30);
  g_assert_cmpint (g_get_monotonic_time () - before, >=, 30 * 1000);

  first = receive_ok (queue, 0);
  assert_not_joined (queue, 0);

  refused = mpq_channel_receive (MPQ_CHANNEL (queue), 0, reject_all, &state, &error);
  g_assert_no_error (error);
  g_assert_null (refused);
  g_assert_cmpuint (state.calls, ==, 1);
  assert_not_joined (queue, 0);

  last = receive_ok (queue, 0);
  g_assert_cmpint (data_value (last), ==, 1);
  assert_joined (queue, 0);

  /* The parent blocks in join while a child takes the messages. */
  for (int i = 0; i < 5; i++)
    send_value (queue, MPQ_REQ_DO, 0, i);
  assert_not_joined (queue, 0);
  child = spawn_child (queue, "take", "5");
  assert_joined (queue, -1);
  wait_child (child);
  assert_is_empty (queue, TRUE);
}

/* join from a child: it times out while the parent's message is untaken,
 * and returns once the parent took it. */
static void
test_join_in_child (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(MpqMessage) message = NULL;

  send_value (queue, MPQ_REQ_DO, NOBODYS_PID, 0);
  child = spawn_child_full (queue, G_SUBPROCESS_FLAGS_STDOUT_PIPE, "join-wait", NULL, NULL);
  expect_child_line (child, "ready");

  message = receive_ok (queue, 0);
  wait_child (child);
  assert_drained (queue);
}

/* mpq_queue_new (3), put-timeout 10, put-attempts 2: the 4th send fails
 * with MPQ_ERROR_FULL after waiting, and nothing of it went in. */
static void
test_full (void)
{
  g_autoptr(MpqQueue) queue = new_queue (3);
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) taker = NULL;
  g_autoptr(GSubprocess) filler = NULL;
  gint filler_pid;
  gint64 before;

  mpq_queue_set_put_timeout (queue, 10);
  mpq_queue_set_put_attempts (queue, 2);

  for (int i = 0; i < 3; i++)
    send_value (queue, MPQ_REQ_DO, 0, i);

  before = g_get_monotonic_time ();
  g_assert_false (mpq_channel_send_json (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0,
                                         "{\"value\":3}", &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_FULL);
  g_clear_error (&error);
  g_assert_cmpint (g_get_monotonic_time () - before, >=, 2 * 10 * 1000);

  for (int i = 0; i < 3; i++)
    {
      g_autoptr(MpqMessage) message = receive_ok (queue, 0);

      g_assert_cmpint (data_value (message), ==, i);
    }
  assert_receive_nothing (queue);

  /* A send into a full queue goes in as soon as a child makes room. */
  for (int i = 0; i < 3; i++)
    send_value (queue, MPQ_REQ_DO, 0, i);
  mpq_queue_set_put_timeout (queue, 100);
  mpq_queue_set_put_attempts (queue, 600);
  taker = spawn_child (queue, "take", "1");
  send_value (queue, MPQ_REQ_DO, 0, 3);
  wait_child (taker);
  for (int i = 1; i < 4; i++)
    {
      g_autoptr(MpqMessage) message = receive_ok (queue, 0);

      g_assert_cmpint (data_value (message), ==, i);
    }
  assert_receive_nothing (queue);

  /* The same from a child: 3 go in, the 4th fails with MPQ_ERROR_FULL. */
  filler = spawn_child (queue, "fill", "3");
  filler_pid = child_pid (filler);
  wait_child (filler);
  for (int i = 0; i < 3; i++)
    {
      g_autoptr(MpqMessage) message = receive_ok (queue, 0);

      g_assert_cmpint (data_value (message), ==, i);
      g_assert_cmpint (mpq_message_get_sender_pid (message), ==, filler_pid);
    }
  assert_drained (queue);
}

static void
test_is_empty (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) empty_child = NULL;
  g_autoptr(GSubprocess) full_child = NULL;
  g_autoptr(MpqMessage) message = NULL;

  assert_is_empty (queue, TRUE);
  empty_child = spawn_child (queue, "is-empty", "true");
  wait_child (empty_child);

  send_value (queue, MPQ_REQ_DO, NOBODYS_PID, 0);
  assert_is_empty (queue, FALSE);
  full_child = spawn_child (queue, "is-empty", "false");
  wait_child (full_child);

  message = receive_ok (queue, 0);
  assert_is_empty (queue, TRUE);
  assert_joined (queue, 0);
}

/* With real children ---------------------------------------------------- */

/* pymulproc's README: five children each put 3; the parent waits for them
 * to exit, then reads while the queue is not empty, and joins. */
static void
test_readme_children_to_parent (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-queue-test-child", NULL);
  const char *argv[] = { path, "value", "3", NULL };
  GSubprocess *children[5];
  gint64 counter = 0;
  guint taken = 0;

  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    {
      children[i] = mpq_queue_spawn (queue, argv, &error);
      g_assert_no_error (error);
      g_assert_nonnull (children[i]);
    }

  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    {
      wait_child (children[i]);
      g_object_unref (children[i]);
    }

  while (!mpq_queue_is_empty (queue, &error))
    {
      g_autoptr(MpqMessage) message = NULL;

      g_assert_no_error (error);
      message = mpq_channel_receive (MPQ_CHANNEL (queue), 0, accept_all, NULL, &error);
      g_assert_no_error (error);
      g_assert_nonnull (message);
      g_assert_cmpstr (mpq_message_get_request (message), ==, MPQ_REQ_DO);
      counter += json_node_get_int (mpq_message_get_data (message));
      taken++;
    }
  g_assert_no_error (error);

  /* Every child had exited: all of their messages were there. */
  g_assert_cmpuint (taken, ==, 5);
  g_assert_cmpint (counter, ==, 3 * 5);
  assert_joined (queue, -1);
}

/* Children put while the parent reads: nothing lost, FIFO per producer. */
static void
test_children_to_parent (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GHashTable) next = g_hash_table_new (NULL, NULL);
  GSubprocess *children[3];
  gint pids[3];
  const guint n = 500;

  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    {
      children[i] = spawn_child (queue, "send", "500");
      pids[i] = child_pid (children[i]);
    }

  for (guint i = 0; i < n * G_N_ELEMENTS (children); i++)
    {
      g_autoptr(MpqMessage) message = receive_ok (queue, -1);

      g_assert_cmpstr (mpq_message_get_request (message), ==, MPQ_REQ_DO);
      check_fifo (next, message);
    }

  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    {
      gpointer pid = GINT_TO_POINTER (pids[i]);

      g_assert_cmpint (GPOINTER_TO_INT (g_hash_table_lookup (next, pid)), ==, n);
      wait_child (children[i]);
      g_object_unref (children[i]);
    }
  assert_drained (queue);
}

/* pymulproc's full duplex: DO addressed to each child, FINISHED back to the
 * parent, then one DIE each. The children receive with filters, as in
 * pymulproc, so what one refuses goes to the back for the others. */
static void
test_full_duplex_targeted (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  AsyncState state;
  const guint n_children = 3;
  const guint n_tasks = 12;
  GSubprocess *children[3];
  gint pids[3];
  guint8 seen[12] = { 0, };

  for (guint i = 0; i < n_children; i++)
    {
      children[i] = spawn_child (queue, "filter-worker", NULL);
      pids[i] = child_pid (children[i]);
    }

  for (guint i = 0; i < n_tasks; i++)
    send_value (queue, MPQ_REQ_DO, pids[i % n_children], i);

  /* The parent takes the answers through receive_async, which is routed:
   * the DOs for the children are never its. */
  async_state_init (&state);
  for (guint i = 0; i < n_tasks; i++)
    start_receive (queue, NULL, &state);
  wait_async (&state);
  g_assert_no_error (state.error);
  g_assert_cmpuint (state.results->len, ==, n_tasks);

  for (guint i = 0; i < n_tasks; i++)
    {
      MpqMessage *answer = state.results->pdata[i];
      gint64 value = data_value (answer);

      g_assert_cmpstr (mpq_message_get_request (answer), ==, MPQ_REQ_FINISHED);
      g_assert_cmpint (mpq_message_get_recipient_pid (answer), ==, getpid ());
      mark_seen (seen, n_tasks, value);
      /* Answered by the child it was addressed to. */
      g_assert_cmpint (mpq_message_get_sender_pid (answer), ==, pids[value % n_children]);
    }

  /* Poison pills, addressed to nobody: each child takes one and dies. */
  for (guint i = 0; i < n_children; i++)
    send_die (queue, 0);

  for (guint i = 0; i < n_children; i++)
    {
      wait_child (children[i]);
      g_object_unref (children[i]);
    }
  assert_drained (queue);
  async_state_clear (&state);
}

/* A child blocked in receive (-1) gets the message the parent sends after
 * the child said it was about to block. */
static void
test_blocking_receive_in_child (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) child = spawn_child_full (queue, G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                                                   "answer-one", NULL, NULL);
  gint pid = child_pid (child);
  g_autoptr(MpqMessage) answer = NULL;

  expect_child_line (child, "ready");
  assert_is_empty (queue, TRUE);
  send_value (queue, MPQ_REQ_DO, 0, 21);

  answer = receive_matching (queue, accept_answers, NULL);
  g_assert_cmpstr (mpq_message_get_request (answer), ==, MPQ_REQ_FINISHED);
  g_assert_cmpint (mpq_message_get_sender_pid (answer), ==, pid);
  g_assert_cmpint (data_value (answer), ==, 21);
  wait_child (child);
  assert_drained (queue);
}

/* Dispatch ---------------------------------------------------------------- */

typedef struct
{
  GMainLoop  *loop;
  GPtrArray  *all;
  GHashTable *next;
  guint       expected;
  guint       dos;
  guint       closed;
} Collect;

static void
collect_all (MpqChannel *channel,
             MpqMessage *message,
             Collect    *collect)
{
  g_ptr_array_add (collect->all, g_object_ref (message));
  if (collect->all->len == collect->expected)
    g_main_loop_quit (collect->loop);
}

static void
collect_do (MpqChannel *channel,
            MpqMessage *message,
            Collect    *collect)
{
  g_assert_cmpstr (mpq_message_get_request (message), ==, MPQ_REQ_DO);
  collect->dos++;
}

static void
collect_closed (MpqChannel *channel,
                Collect    *collect)
{
  collect->closed++;
}

/* Collects what @queue's dispatch hands over, @expected messages. */
static void
collect_init (Collect  *collect,
              MpqQueue *queue,
              guint     expected)
{
  collect->loop = g_main_loop_new (NULL, FALSE);
  collect->all = g_ptr_array_new_with_free_func (g_object_unref);
  collect->next = g_hash_table_new (NULL, NULL);
  collect->expected = expected;
  g_signal_connect (queue, "message-received", G_CALLBACK (collect_all), collect);
  g_signal_connect (queue, "message-received::" MPQ_REQ_DO, G_CALLBACK (collect_do), collect);
  g_signal_connect (queue, "closed", G_CALLBACK (collect_closed), collect);
}

/* Dispatches until every expected message came: all of them DOs, each
 * sender's in order. */
static void
collect_run (Collect  *collect,
             MpqQueue *queue)
{
  mpq_channel_start (MPQ_CHANNEL (queue));
  g_main_loop_run (collect->loop);
  mpq_channel_stop (MPQ_CHANNEL (queue));

  g_assert_cmpuint (collect->all->len, ==, collect->expected);
  g_assert_cmpuint (collect->dos, ==, collect->expected);
  for (guint i = 0; i < collect->all->len; i++)
    check_fifo (collect->next, collect->all->pdata[i]);
}

static void
collect_clear (Collect *collect)
{
  g_main_loop_unref (collect->loop);
  g_ptr_array_unref (collect->all);
  g_hash_table_unref (collect->next);
}

/* The parent receives through dispatch in its main loop: only messages
 * for it or for nobody are emitted, FIFO per producer; a message for
 * another pid stays in the queue. */
static void
test_dispatch_parent (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(MpqMessage) other = NULL;
  GSubprocess *children[3];
  const guint n = 200;
  Collect collect = { 0, };

  collect_init (&collect, queue, n * G_N_ELEMENTS (children));

  send_value (queue, MPQ_REQ_DO, NOBODYS_PID, -1);
  children[0] = spawn_child_full (queue, G_SUBPROCESS_FLAGS_NONE, "send", "200", "parent");
  children[1] = spawn_child_full (queue, G_SUBPROCESS_FLAGS_NONE, "send", "200", "parent");
  children[2] = spawn_child_full (queue, G_SUBPROCESS_FLAGS_NONE, "send", "200", NULL);
  collect_run (&collect, queue);
  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    {
      wait_child (children[i]);
      g_object_unref (children[i]);
    }

  /* Handled by dispatch means taken; the message for pid 1 is not. */
  assert_is_empty (queue, FALSE);
  assert_not_joined (queue, 0);
  other = receive_ok (queue, 0);
  g_assert_cmpint (mpq_message_get_recipient_pid (other), ==, NOBODYS_PID);
  assert_drained (queue);
  g_assert_cmpuint (collect.closed, ==, 0);

  collect_clear (&collect);
}

/* A backlog of messages for the parent, larger than what the queue's
 * thread hands the parent's dispatch at a time: the parent asks for more
 * only as what it holds runs low, and everything still comes, in order. */
static void
test_dispatch_parent_backlog (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  GSubprocess *children[2];
  Collect collect = { 0, };

  collect_init (&collect, queue, 2 * 1500);

  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    children[i] = spawn_child_full (queue, G_SUBPROCESS_FLAGS_NONE, "send", "1500", "parent");
  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    {
      wait_child (children[i]);
      g_object_unref (children[i]);
    }

  collect_run (&collect, queue);
  assert_drained (queue);

  collect_clear (&collect);
}

/* Spawns @n dispatch workers (mode @mode, argument @arg) and waits for
 * them to be started. */
static void
spawn_workers (MpqQueue     *queue,
               GSubprocess **children,
               gint         *pids,
               guint         n,
               const char   *mode,
               const char   *arg)
{
  for (guint i = 0; i < n; i++)
    {
      children[i] = spawn_child (queue, mode, arg);
      pids[i] = child_pid (children[i]);
    }
  wait_ready (queue, pids, n);
}

/* DIE to each worker, wait for all of them, then take the @n FINISHED they
 * put; returns the answering pid of each value. */
static gint *
finish_workers (MpqQueue     *queue,
                GSubprocess **children,
                const gint   *pids,
                guint         n_workers,
                guint         n)
{
  gint *answered_by = g_new0 (gint, n);

  for (guint i = 0; i < n_workers; i++)
    send_die (queue, pids[i]);

  /* The parent's main thread blocks here; the library's thread serves. */
  for (guint i = 0; i < n_workers; i++)
    wait_child (children[i]);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(MpqMessage) answer = receive_ok (queue, -1);
      gint64 value = data_value (answer);

      g_assert_cmpstr (mpq_message_get_request (answer), ==, MPQ_REQ_FINISHED);
      g_assert_cmpint (mpq_message_get_recipient_pid (answer), ==, getpid ());
      g_assert_cmpint (value, >=, 0);
      g_assert_cmpint (value, <, n);
      g_assert_cmpint (answered_by[value], ==, 0);
      answered_by[value] = mpq_message_get_sender_pid (answer);
    }
  assert_drained (queue);

  return answered_by;
}

/* Messages addressed to a worker go to that worker only. */
static void
test_dispatch_routing (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  GSubprocess *children[3];
  gint pids[3];
  const guint n = 60;
  g_autofree gint *answered_by = NULL;

  spawn_workers (queue, children, pids, 3, "worker", NULL);
  for (guint i = 0; i < n; i++)
    send_value (queue, MPQ_REQ_DO, pids[i % 3], i);

  answered_by = finish_workers (queue, children, pids, 3, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpint (answered_by[i], ==, pids[i % 3]);

  for (guint i = 0; i < 3; i++)
    g_object_unref (children[i]);
}

/* Messages for nobody spread over all the workers: each gets a share, each
 * message is handled exactly once. */
static void
test_dispatch_fairness (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  GSubprocess *children[4];
  gint pids[4];
  guint shares[4] = { 0, };
  const guint n = 400;
  g_autofree gint *answered_by = NULL;

  spawn_workers (queue, children, pids, 4, "worker", NULL);
  for (guint i = 0; i < n; i++)
    send_value (queue, MPQ_REQ_DO, 0, i);

  answered_by = finish_workers (queue, children, pids, 4, n);
  for (guint i = 0; i < n; i++)
    {
      guint w;

      for (w = 0; w < 4 && pids[w] != answered_by[i]; w++)
        ;
      g_assert_cmpuint (w, <, 4);
      shares[w]++;
    }

  g_test_message ("shares: %u %u %u %u", shares[0], shares[1], shares[2], shares[3]);
  for (guint w = 0; w < 4; w++)
    {
      g_assert_cmpuint (shares[w], >, 0);
      g_object_unref (children[w]);
    }
}

/* A warm-block-worker with @prefetch that did 40 quick tasks (its window
 * widened to @prefetch) and now sits in the handler of a DO -1. */
static GSubprocess *
spawn_warm_blocker (MpqQueue   *queue,
                    const char *prefetch)
{
  GSubprocess *blocker;
  g_autofree char *holding = NULL;
  guint8 seen[40] = { 0, };
  gint pid;

  blocker = spawn_child_full (queue, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                              "warm-block-worker", prefetch, NULL);
  pid = child_pid (blocker);
  wait_ready (queue, &pid, 1);

  for (guint i = 0; i < G_N_ELEMENTS (seen); i++)
    {
      g_autoptr(MpqMessage) done = NULL;

      send_value (queue, MPQ_REQ_DO, 0, i);
      done = receive_routed (queue);
      mark_seen (seen, G_N_ELEMENTS (seen), data_value (done));
    }

  send_value (queue, MPQ_REQ_DO, 0, -1);
  holding = read_child_line (blocker);
  g_assert_cmpstr (holding, ==, "holding -1");
  return blocker;
}

/* Dispatch hands over what is in hand as a batch, but a batch ends after a
 * DIE: a worker that quits its loop on DIE (without stopping) is not
 * handed a second DIE meant for another worker. Here one worker has both
 * DIEs in hand, read in one go, when it quits: quick tasks first widened
 * its window, then it sits in a handler while they come. */
static void
test_dispatch_batch_ends_at_die (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) blocker = spawn_warm_blocker (queue, "16");
  g_autoptr(GSubprocess) worker = NULL;
  g_autoptr(MpqMessage) answer = NULL;
  gint64 deadline;
  gint pid;

  /* Both DIEs for anyone go to the only worker there is, which has room. */
  send_die (queue, 0);
  send_die (queue, 0);
  deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  while (!mpq_queue_is_empty (queue, NULL))
    g_assert_cmpint (g_get_monotonic_time (), <, deadline);

  worker = spawn_child (queue, "worker", NULL);
  pid = child_pid (worker);
  wait_ready (queue, &pid, 1);

  close_child_stdin (blocker);
  wait_child (blocker);
  answer = receive_ok (queue, -1);
  g_assert_cmpstr (mpq_message_get_request (answer), ==, MPQ_REQ_FINISHED);
  g_assert_cmpint (mpq_message_get_sender_pid (answer), ==, child_pid (blocker));

  /* The second DIE came back when the blocker quit, and the other worker
   * took it (without the rule it would wait for a DIE forever). */
  assert_joined (queue, 20000);
  g_assert_true (child_exits_within (worker, 20000));
  wait_child (worker);
  assert_drained (queue);
}

/* What a handler sends is gathered until its dispatch ends, but not
 * longer than a moment: a handler that answers, then works on for long,
 * has its answer delivered meanwhile. */
static void
test_dispatch_answer_leaves_during_handler (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) worker = NULL;
  g_autoptr(MpqMessage) answer = NULL;
  g_autofree char *answered = NULL;
  gint pid;

  worker = spawn_child_full (queue, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                             "answer-then-block", "1", NULL);
  pid = child_pid (worker);
  wait_ready (queue, &pid, 1);

  send_value (queue, MPQ_REQ_DO, 0, 7);
  answered = read_child_line (worker);
  g_assert_cmpstr (answered, ==, "answered 7");

  /* The worker still sits in its handler. */
  answer = receive_ok (queue, 20000);
  g_assert_cmpstr (mpq_message_get_request (answer), ==, MPQ_REQ_FINISHED);
  g_assert_cmpint (data_value (answer), ==, 7);

  close_child_stdin (worker);
  send_die (queue, pid);
  wait_child (worker);
  assert_drained (queue);
}

/* A handler that runs a main loop of its own (a dialog, a sync call) is
 * not handed the next message inside it, and that loop sleeps instead of
 * spinning on the queue's socket; each task is answered once. */
static void
test_dispatch_nested_main_loop (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) worker = NULL;
  const guint n = 6;
  guint8 seen[6] = { 0, };
  gint pid;

  worker = spawn_child (queue, "nested-worker", "4");
  pid = child_pid (worker);
  wait_ready (queue, &pid, 1);

  /* Addressed to it: all in its hand at once, whatever its window. */
  for (guint i = 0; i < n; i++)
    send_value (queue, MPQ_REQ_DO, pid, i);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(MpqMessage) answer = receive_routed (queue);

      g_assert_cmpstr (mpq_message_get_request (answer), ==, MPQ_REQ_FINISHED);
      mark_seen (seen, n, data_value (answer));
    }

  send_die (queue, pid);
  wait_child (worker);
  assert_drained (queue);
}

/* A worker whose handlers were quick is handed more ahead, up to its
 * prefetch and no more: stuck in a handler after quick ones, it holds
 * exactly `prefetch` messages while another worker does the rest. */
static void
test_dispatch_prefetch_cap (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) blocker = spawn_warm_blocker (queue, "3");
  g_autoptr(GSubprocess) worker = NULL;
  guint8 seen[12] = { 0, };
  const guint prefetch = 3;
  const guint n = G_N_ELEMENTS (seen);
  guint by_blocker = 0;
  guint by_worker = 0;
  gint pid = child_pid (blocker);

  /* Stuck in -1, the next ones come: it takes prefetch - 1 more. */
  for (guint i = 0; i < n; i++)
    send_value (queue, MPQ_REQ_DO, 0, i);

  worker = spawn_child (queue, "worker", NULL);
  while (by_worker < n - (prefetch - 1))
    {
      g_autoptr(MpqMessage) answer = receive_routed (queue);

      if (g_str_equal (mpq_message_get_request (answer), REQ_READY))
        continue;
      g_assert_cmpint (mpq_message_get_sender_pid (answer), ==, child_pid (worker));
      mark_seen (seen, n, data_value (answer));
      by_worker++;
    }

  close_child_stdin (blocker);
  while (by_blocker < prefetch)
    {
      g_autoptr(MpqMessage) answer = receive_routed (queue);

      if (g_str_equal (mpq_message_get_request (answer), REQ_READY))
        continue;
      g_assert_cmpint (mpq_message_get_sender_pid (answer), ==, pid);
      if (data_value (answer) >= 0)
        mark_seen (seen, n, data_value (answer));
      by_blocker++;
    }

  send_die (queue, pid);
  send_die (queue, child_pid (worker));
  wait_child (blocker);
  wait_child (worker);
  assert_drained_but_readies (queue);
}

/* A worker stuck in its first handler holds that one message (a window
 * starts at one); another worker handles all the others meanwhile. */
static void
test_dispatch_prefetch (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) blocker = NULL;
  g_autoptr(GSubprocess) worker = NULL;
  g_autofree char *holding = NULL;
  guint8 seen[20] = { 0, };
  const guint n = 20;
  guint by_blocker = 0;
  guint by_worker = 0;
  gint blocker_pid;
  gint worker_pid;

  blocker = spawn_child_full (queue, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                              "block-worker", "3", NULL);
  blocker_pid = child_pid (blocker);
  wait_ready (queue, &blocker_pid, 1);

  for (guint i = 0; i < n; i++)
    send_value (queue, MPQ_REQ_DO, 0, i);

  /* The blocker sits in its first handler now. */
  holding = read_child_line (blocker);
  g_assert_true (g_str_has_prefix (holding, "holding "));

  worker = spawn_child (queue, "worker", NULL);
  worker_pid = child_pid (worker);

  /* Everything but what the blocker holds is answered by the worker while
   * the blocker still blocks: that is one message, as the blocker's window
   * starts at one and it never finished anything to widen it. */
  while (by_worker < n - 1)
    {
      g_autoptr(MpqMessage) answer = receive_routed (queue);

      if (g_str_equal (mpq_message_get_request (answer), REQ_READY))
        continue;
      g_assert_cmpstr (mpq_message_get_request (answer), ==, MPQ_REQ_FINISHED);
      mark_seen (seen, n, data_value (answer));
      g_assert_cmpint (mpq_message_get_sender_pid (answer), ==, worker_pid);
      by_worker++;
    }

  close_child_stdin (blocker);
  while (by_worker + by_blocker < n)
    {
      g_autoptr(MpqMessage) answer = receive_routed (queue);

      if (g_str_equal (mpq_message_get_request (answer), REQ_READY))
        continue;
      mark_seen (seen, n, data_value (answer));
      if (mpq_message_get_sender_pid (answer) == blocker_pid)
        by_blocker++;
      else
        by_worker++;
    }

  g_test_message ("blocker handled %u, worker %u", by_blocker, by_worker);
  g_assert_cmpuint (by_blocker, ==, 1);

  send_die (queue, blocker_pid);
  send_die (queue, worker_pid);
  wait_child (blocker);
  wait_child (worker);
  assert_drained_but_readies (queue);
}

/* A worker that dies inside its first handler: the messages it held go to
 * another worker; nothing is lost, join completes. */
static void
test_dead_worker (gconstpointer user_data)
{
  const char *how = user_data;
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) dier = spawn_child (queue, "die-in-handler", how);
  g_autoptr(GSubprocess) worker = NULL;
  g_autoptr(GError) error = NULL;
  guint8 seen[5] = { 0, };
  gint dier_pid = child_pid (dier);
  gint worker_pid;
  guint answers = 0;

  wait_ready (queue, &dier_pid, 1);
  for (guint i = 0; i < 5; i++)
    send_value (queue, MPQ_REQ_DO, 0, i);

  g_subprocess_wait (dier, NULL, &error);
  g_assert_no_error (error);
  if (g_str_equal (how, "kill"))
    {
      g_assert_true (g_subprocess_get_if_signaled (dier));
      g_assert_cmpint (g_subprocess_get_term_sig (dier), ==, SIGKILL);
    }
  else
    {
      g_assert_true (g_subprocess_get_if_exited (dier));
      g_assert_cmpint (g_subprocess_get_exit_status (dier), ==, 3);
    }
  assert_not_joined (queue, 0);

  worker = spawn_child (queue, "worker", NULL);
  worker_pid = child_pid (worker);
  while (answers < 5)
    {
      g_autoptr(MpqMessage) answer = receive_matching (queue, accept_answers, NULL);

      if (g_str_equal (mpq_message_get_request (answer), REQ_READY))
        continue;
      g_assert_cmpint (mpq_message_get_sender_pid (answer), ==, worker_pid);
      mark_seen (seen, 5, data_value (answer));
      answers++;
    }

  send_die (queue, worker_pid);
  wait_child (worker);
  assert_drained_but_readies (queue);
}

/* A worker killed while it holds two messages: both go back to the FRONT,
 * in order, ahead of the messages that waited meanwhile. */
static void
test_dead_worker_in_hand_to_front (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) blocker = NULL;
  g_autoptr(GSubprocess) sender = NULL;
  g_autofree char *holding = NULL;
  AsyncState state;
  gint blocker_pid;

  blocker = spawn_child_full (queue, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                              "block-worker", "2", NULL);
  blocker_pid = child_pid (blocker);
  wait_ready (queue, &blocker_pid, 1);

  /* 0, for nobody, put by another child (a process is never routed its
   * own work for nobody, and the parent will want 0 back), is handed to
   * the blocker, which blocks in its handler. Then 1, 2 and 3 (addressed
   * to the blocker: prefetch bounds only work for anyone) are handed to
   * it too and wait in its hand. */
  sender = spawn_child (queue, "send", "1");
  holding = read_child_line (blocker);
  g_assert_cmpstr (holding, ==, "holding 0");
  wait_child (sender);
  send_value (queue, MPQ_REQ_DO, blocker_pid, 1);
  send_value (queue, MPQ_REQ_DO, blocker_pid, 2);
  send_value (queue, MPQ_REQ_DO, blocker_pid, 3);

  g_subprocess_force_exit (blocker);
  wait_child_killed (blocker);

  /* receive_async takes only messages for us, or for nobody and put by
   * someone else: 0, once it is back. */
  async_state_init (&state);
  start_receive (queue, NULL, &state);
  wait_async (&state);
  g_assert_no_error (state.error);
  g_assert_cmpuint (state.results->len, ==, 1);
  g_assert_cmpint (data_value (state.results->pdata[0]), ==, 0);

  /* Then the front of the queue is 1, then 2 and 3 (all for the dead pid):
   * what it had in hand went back to the front, in order. */
  for (int i = 1; i < 4; i++)
    {
      g_autoptr(MpqMessage) message = receive_ok (queue, 0);

      g_assert_cmpint (data_value (message), ==, i);
    }
  assert_drained (queue);
  async_state_clear (&state);
}

/* A child that exits is seen at once: what it put stays, nothing hangs. */
static void
test_child_exit (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) crasher = spawn_child (queue, "send-then-crash", "300");
  g_autoptr(GSubprocess) getter = NULL;
  g_autoptr(MpqMessage) after = NULL;
  gint crasher_pid = child_pid (crasher);

  wait_child_killed (crasher);
  for (int i = 0; i < 300; i++)
    {
      g_autoptr(MpqMessage) message = receive_ok (queue, -1);

      g_assert_cmpint (data_value (message), ==, i);
      g_assert_cmpint (mpq_message_get_sender_pid (message), ==, crasher_pid);
    }
  assert_drained (queue);

  /* A child killed while blocked in receive (-1): its pending request is
   * forgotten, and the next message is not lost to it. */
  getter = spawn_child_full (queue, G_SUBPROCESS_FLAGS_STDOUT_PIPE, "answer-one", NULL, NULL);
  expect_child_line (getter, "ready");
  g_subprocess_force_exit (getter);
  wait_child_killed (getter);

  send_value (queue, MPQ_REQ_DO, 0, 7);
  after = receive_ok (queue, -1);
  g_assert_cmpint (data_value (after), ==, 7);
  g_assert_cmpint (mpq_message_get_sender_pid (after), ==, getpid ());
  assert_drained (queue);
}

/* 8 children put many messages each and exit; only then does the parent
 * read: nothing lost, FIFO per producer. */
static void
test_many_children (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GHashTable) next = g_hash_table_new (NULL, NULL);
  GSubprocess *children[8];
  gint pids[8];
  guint n = under_valgrind () ? 2000 : 50000;
  g_autofree char *n_text = g_strdup_printf ("%u", n);
  guint total = n * G_N_ELEMENTS (children);
  guint received = 0;
  guint late = 0;

  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    {
      children[i] = spawn_child (queue, "send", n_text);
      pids[i] = child_pid (children[i]);
    }
  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    wait_child (children[i]);

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqMessage) message = NULL;

      message = mpq_channel_receive (MPQ_CHANNEL (queue), 0, NULL, NULL, &error);
      g_assert_no_error (error);
      if (message == NULL)
        break;
      check_fifo (next, message);
      received++;
    }

  if (received != total)
    {
      /* Tell "late" from "lost" before failing. */
      for (;;)
        {
          g_autoptr(MpqMessage) message = NULL;

          message = mpq_channel_receive (MPQ_CHANNEL (queue), 2000, NULL, NULL, NULL);

          if (message == NULL)
            break;
          check_fifo (next, message);
          late++;
        }
      g_test_message ("after all children exited, receive (0) found %u of %u messages; "
                      "%u more came later", received, total, late);
    }
  g_assert_cmpuint (received, ==, total);

  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    {
      gpointer pid = GINT_TO_POINTER (pids[i]);

      g_assert_cmpint (GPOINTER_TO_INT (g_hash_table_lookup (next, pid)), ==, n);
      g_object_unref (children[i]);
    }
  assert_drained (queue);
}

/* A bounded queue and a child that puts far faster than the parent takes:
 * the child waits for room, everything arrives, in order. */
static void
test_bounded_back_pressure (void)
{
  g_autoptr(MpqQueue) queue = new_queue (16);
  guint n = under_valgrind () ? 2000 : 20000;
  g_autofree char *n_text = g_strdup_printf ("%u", n);
  g_autoptr(GSubprocess) child = spawn_child (queue, "send", n_text);
  gint pid = child_pid (child);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(MpqMessage) message = receive_ok (queue, -1);

      g_assert_cmpint (data_value (message), ==, i);
      g_assert_cmpint (mpq_message_get_sender_pid (message), ==, pid);
    }
  wait_child (child);
  assert_drained (queue);
}

/* Protocol violations from a child that does not use the library. */
typedef struct
{
  const char *name;
  const char *bad_line;   /* one line, "\\n" included */
} BadPeer;

static const BadPeer bad_peers[] = {
  { "garbage", "hello\\n" },
  { "unknown-op", "{\"op\":\"frobnicate\",\"id\":1}\\n" },
  { "ack-unknown-tag", "{\"op\":\"ack\",\"tag\":424242}\\n" },
  { "bad-message", "[\"DO\",0,null,null]\\n" },
};

/* The raw child puts a good message (value 1, for us), the bad line and
 * another message (value 2): the first is kept, the server hangs up on the
 * child (it reads EOF and exits 0), the rest is dropped; a worker spawned
 * before keeps working. */
static void
test_bad_peer (gconstpointer user_data)
{
  const BadPeer *bad = user_data;
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) worker = NULL;
  g_autoptr(GSubprocess) raw = NULL;
  g_autoptr(MpqMessage) good = NULL;
  g_autoptr(MpqMessage) answer = NULL;
  g_autofree char *text = NULL;
  gint worker_pid;
  gint raw_pid;

  worker = spawn_child (queue, "worker", NULL);
  worker_pid = child_pid (worker);
  wait_ready (queue, &worker_pid, 1);

  text = g_strdup_printf ("[\"DO\",@PID@,%d,{\"value\":1}]\\n%s[\"DO\",@PID@,%d,{\"value\":2}]\\n",
                          (int) getpid (), bad->bad_line, (int) getpid ());
  raw = spawn_child (queue, "raw", text);
  raw_pid = child_pid (raw);
  wait_child (raw);

  good = receive_ok (queue, 0);
  g_assert_cmpint (data_value (good), ==, 1);
  g_assert_cmpint (mpq_message_get_sender_pid (good), ==, raw_pid);
  assert_receive_nothing (queue);

  send_value (queue, MPQ_REQ_DO, worker_pid, 7);
  answer = receive_matching (queue, accept_answers, NULL);
  g_assert_cmpstr (mpq_message_get_request (answer), ==, MPQ_REQ_FINISHED);
  g_assert_cmpint (mpq_message_get_sender_pid (answer), ==, worker_pid);
  g_assert_cmpint (data_value (answer), ==, 7);

  send_die (queue, worker_pid);
  wait_child (worker);
  assert_drained (queue);
}

/* A put into a bounded queue without credit drops the child; what it put
 * with credit stays. */
static void
test_bad_peer_no_credit (void)
{
  g_autoptr(MpqQueue) queue = new_queue (1);
  g_autoptr(GSubprocess) raw = spawn_child_full (queue, G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                                                 "over-credit", NULL, NULL);
  g_autofree char *good = read_child_line (raw);
  guint64 credit = 0;

  g_assert_true (g_str_has_prefix (good, "good "));
  g_assert_true (g_ascii_string_to_unsigned (good + 5, 10, 1, 1, &credit, NULL));
  wait_child (raw);

  for (guint i = 1; i <= credit; i++)
    {
      g_autoptr(MpqMessage) message = receive_ok (queue, 0);

      g_assert_cmpint (data_value (message), ==, i);
    }
  assert_drained (queue);
}

/* Async ------------------------------------------------------------------- */

/* receive_async takes only messages for this process, or for nobody and
 * put by another process; a cancelled one takes nothing. */
static void
test_receive_async (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(GSubprocess) sender = NULL;
  g_autoptr(MpqMessage) other = NULL;
  g_autoptr(MpqMessage) own = NULL;
  AsyncState state;
  gint sender_pid;
  gint pid;

  async_state_init (&state);
  send_value (queue, MPQ_REQ_DO, NOBODYS_PID, -1);

  start_receive (queue, cancellable, &state);
  iterate_ready ();
  g_assert_cmpuint (state.pending, ==, 1);
  g_cancellable_cancel (cancellable);
  wait_async (&state);
  g_assert_error (state.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&state.error);
  g_assert_cmpuint (state.results->len, ==, 0);

  /* Pending before the child even exists, served in order. */
  for (int i = 0; i < 3; i++)
    start_receive (queue, NULL, &state);
  child = spawn_child_full (queue, G_SUBPROCESS_FLAGS_NONE, "send", "3", "parent");
  pid = child_pid (child);
  wait_async (&state);
  g_assert_no_error (state.error);
  g_assert_cmpuint (state.results->len, ==, 3);
  for (guint i = 0; i < 3; i++)
    {
      g_assert_cmpint (data_value (state.results->pdata[i]), ==, i);
      g_assert_cmpint (mpq_message_get_sender_pid (state.results->pdata[i]), ==, pid);
    }
  wait_child (child);

  /* Our own message for nobody is not routed back to us; a child's is. */
  send_value (queue, MPQ_REQ_DO, 0, 7);
  start_receive (queue, NULL, &state);
  iterate_ready ();
  g_assert_cmpuint (state.pending, ==, 1);
  sender = spawn_child (queue, "send", "1");
  sender_pid = child_pid (sender);
  wait_async (&state);
  g_assert_no_error (state.error);
  g_assert_cmpuint (state.results->len, ==, 4);
  g_assert_cmpint (data_value (state.results->pdata[3]), ==, 0);
  g_assert_cmpint (mpq_message_get_sender_pid (state.results->pdata[3]), ==, sender_pid);
  wait_child (sender);

  /* The message for pid 1 and ours are still there: receive takes them. */
  assert_is_empty (queue, FALSE);
  other = receive_ok (queue, 0);
  g_assert_cmpint (data_value (other), ==, -1);
  own = receive_ok (queue, 0);
  g_assert_cmpint (data_value (own), ==, 7);
  assert_drained (queue);
  async_state_clear (&state);
}

static void
test_join_async (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GSubprocess) child = NULL;
  AsyncState state;

  async_state_init (&state);

  /* Nothing ever put: joined. */
  start_join (queue, NULL, &state);
  wait_async (&state);
  g_assert_no_error (state.error);
  g_assert_true (state.joined);

  send_value (queue, MPQ_REQ_DO, 0, 0);
  send_value (queue, MPQ_REQ_DO, 0, 1);
  start_join (queue, cancellable, &state);
  iterate_ready ();
  g_assert_cmpuint (state.pending, ==, 1);
  g_cancellable_cancel (cancellable);
  wait_async (&state);
  g_assert_error (state.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_false (state.joined);
  g_clear_error (&state.error);

  /* A child takes both while the parent's main loop runs. */
  start_join (queue, NULL, &state);
  iterate_ready ();
  g_assert_cmpuint (state.pending, ==, 1);
  child = spawn_child (queue, "take", "2");
  wait_async (&state);
  g_assert_no_error (state.error);
  g_assert_true (state.joined);
  wait_child (child);
  assert_is_empty (queue, TRUE);
  async_state_clear (&state);
}

/* receive_for_me -------------------------------------------------------- */

static MpqMessage *
receive_for_me_ok (MpqQueue *queue,
                   gint      timeout_ms)
{
  g_autoptr(GError) error = NULL;
  MpqMessage *message = mpq_channel_receive_for_me (MPQ_CHANNEL (queue), timeout_ms, &error);

  g_assert_no_error (error);
  g_assert_nonnull (message);
  return message;
}

static void
assert_message (MpqMessage *message,
                const char *request,
                gint        sender_pid,
                gint64      value)
{
  g_assert_cmpstr (mpq_message_get_request (message), ==, request);
  g_assert_cmpint (mpq_message_get_sender_pid (message), ==, sender_pid);
  g_assert_cmpint (data_value (message), ==, value);
}

static void
assert_for_me (MpqQueue   *queue,
               gint        timeout_ms,
               const char *request,
               gint        sender_pid,
               gint64      value)
{
  g_autoptr(MpqMessage) message = receive_for_me_ok (queue, timeout_ms);

  assert_message (message, request, sender_pid, value);
}

static void
assert_nothing_for_me (MpqQueue *queue)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) message = mpq_channel_receive_for_me (MPQ_CHANNEL (queue), 0, &error);

  g_assert_no_error (error);
  g_assert_null (message);
}

/* The parent's receive_for_me takes, oldest first, what children
 * addressed to it, what they put for nobody and what it addressed to
 * itself; its own tasks for anyone, and a message for a pid nobody has,
 * stay where they are (a child's plain receive takes the tasks from the
 * front afterwards, in the order they were put). A time-out of 0 gives
 * NULL, without an error, when nothing is for the parent. */
static void
test_receive_for_me_parent (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) to_parent = NULL;
  g_autoptr(GSubprocess) to_anyone = NULL;
  g_autoptr(GSubprocess) taker = NULL;
  g_autoptr(MpqMessage) left = NULL;
  gint me = getpid ();

  send_value (queue, MPQ_REQ_DO, 0, 100);
  send_value (queue, MPQ_REQ_DO, 0, 101);
  send_value (queue, "SELF", me, 200);
  to_parent = spawn_child_full (queue, G_SUBPROCESS_FLAGS_NONE, "send", "3", "parent");
  wait_child (to_parent);
  /* A time-out of 0 reads what children wrote before it: the child's
   * three are in the queue once it returns. */
  assert_for_me (queue, 0, "SELF", me, 200);
  to_anyone = spawn_child (queue, "send", "2");
  wait_child (to_anyone);
  send_value (queue, MPQ_REQ_DO, NOBODYS_PID, 300);

  for (gint64 i = 0; i < 3; i++)
    assert_for_me (queue, -1, MPQ_REQ_DO, child_pid (to_parent), i);
  for (gint64 i = 0; i < 2; i++)
    assert_for_me (queue, -1, MPQ_REQ_DO, child_pid (to_anyone), i);
  assert_nothing_for_me (queue);
  send_value (queue, "SELF", me, 201);
  assert_for_me (queue, 0, "SELF", me, 201);

  /* Nothing was put back: the parent's tasks are still first in line. */
  taker = spawn_child_full (queue, G_SUBPROCESS_FLAGS_STDOUT_PIPE, "print-take", "2", NULL);
  expect_child_line (taker, "DO 100");
  expect_child_line (taker, "DO 101");
  wait_child (taker);
  left = receive_ok (queue, 0);
  assert_message (left, MPQ_REQ_DO, me, 300);
  g_assert_cmpint (mpq_message_get_recipient_pid (left), ==, NOBODYS_PID);
  assert_is_empty (queue, TRUE);
  assert_joined (queue, 0);
}

/* A child's receive_for_me: what the parent put for anyone, what the
 * child addressed to itself and what the parent addressed to it, in the
 * queue's order; not what the child put for anyone itself, nor what is
 * for another pid, which stay in place. */
static void
test_receive_for_me_child (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(MpqMessage) other = NULL;
  g_autoptr(MpqMessage) own = NULL;

  send_value (queue, MPQ_REQ_DO, 0, 10);
  send_value (queue, MPQ_REQ_DO, NOBODYS_PID, 11);
  child = spawn_child_full (queue, G_SUBPROCESS_FLAGS_STDOUT_PIPE, "for-me-check", "3", NULL);
  /* Its OWN (for anyone) and SELF (for itself) are in the queue now. */
  expect_child_line (child, "ready");
  send_value (queue, MPQ_REQ_DO, child_pid (child), 12);

  expect_child_line (child, "DO 10");
  expect_child_line (child, "SELF 2");
  expect_child_line (child, "DO 12");
  expect_child_line (child, "none");
  wait_child (child);

  other = receive_ok (queue, 0);
  assert_message (other, MPQ_REQ_DO, getpid (), 11);
  own = receive_ok (queue, 0);
  assert_message (own, "OWN", child_pid (child), 1);
  assert_is_empty (queue, TRUE);
}

static gpointer
kill_child_thread (gpointer data)
{
  kill (child_pid (data), SIGKILL);
  return NULL;
}

/* A child dies holding a message while the parent waits in
 * receive_for_me (-1): the message comes back and the wait ends with it.
 * Once the queue is closed, receive_for_me fails with MPQ_ERROR_CLOSED. */
static void
test_receive_for_me_child_dies (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) worker = NULL;
  g_autoptr(GSubprocess) sender = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) ready = NULL;
  g_autoptr(MpqMessage) closed = NULL;
  GThread *killer;

  worker = spawn_child_full (queue, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                             "block-worker", "1", NULL);
  ready = receive_for_me_ok (queue, -1);
  g_assert_cmpstr (mpq_message_get_request (ready), ==, REQ_READY);
  g_assert_cmpint (mpq_message_get_sender_pid (ready), ==, child_pid (worker));
  /* Only the worker takes work for anyone now: it holds the task. */
  sender = spawn_child (queue, "send", "1");
  wait_child (sender);
  expect_child_line (worker, "holding 0");

  killer = g_thread_new ("killer", kill_child_thread, worker);
  assert_for_me (queue, -1, MPQ_REQ_DO, child_pid (sender), 0);
  g_thread_join (killer);
  wait_child_killed (worker);

  mpq_channel_close (MPQ_CHANNEL (queue));
  closed = mpq_channel_receive_for_me (MPQ_CHANNEL (queue), -1, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_assert_null (closed);
}

/* A child blocked in receive_for_me (-1) fails with MPQ_ERROR_CLOSED
 * when the parent closes the queue. */
static void
test_receive_for_me_child_closed (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) child = NULL;

  child = spawn_child_full (queue, G_SUBPROCESS_FLAGS_STDOUT_PIPE, "for-me-expect-closed",
                            NULL, NULL);
  expect_child_line (child, "ready");
  mpq_channel_close (MPQ_CHANNEL (queue));
  wait_child (child);
}

/* W4 without a main loop: the parent puts N tasks for anyone, two
 * children take them with receive_for_me and answer the parent, and the
 * parent collects the N answers with receive_for_me. Nothing goes to the
 * back of the queue: each child sees its tasks in the order they were
 * put (it exits 1 otherwise), and each task is answered once. */
static void
test_receive_for_me_work_distribution (void)
{
  const guint n = 400;
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) first = NULL;
  g_autoptr(GSubprocess) second = NULL;
  g_autofree gboolean *seen = g_new0 (gboolean, n);

  for (guint i = 0; i < n; i++)
    send_value (queue, MPQ_REQ_DO, 0, i);
  first = spawn_child (queue, "for-me-worker", NULL);
  second = spawn_child (queue, "for-me-worker", NULL);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(MpqMessage) answer = receive_for_me_ok (queue, -1);
      gint64 value = data_value (answer);

      g_assert_cmpstr (mpq_message_get_request (answer), ==, MPQ_REQ_FINISHED);
      g_assert_true (mpq_message_get_sender_pid (answer) == child_pid (first) ||
                     mpq_message_get_sender_pid (answer) == child_pid (second));
      g_assert_cmpint (value, >=, 0);
      g_assert_cmpint (value, <, n);
      g_assert_false (seen[value]);
      seen[value] = TRUE;
    }

  send_die (queue, 0);
  send_die (queue, 0);
  wait_child (first);
  wait_child (second);
  assert_is_empty (queue, TRUE);
  assert_joined (queue, 0);
}

/* close () on the parent's queue: a child blocked in receive (-1) fails
 * with MPQ_ERROR_CLOSED (and so does its next send). */
static void
test_close_child_receive (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) receiver = NULL;

  receiver = spawn_child_full (queue, G_SUBPROCESS_FLAGS_STDOUT_PIPE, "expect-closed", NULL, NULL);
  expect_child_line (receiver, "ready");

  mpq_channel_close (MPQ_CHANNEL (queue));
  wait_child (receiver);
}

/* close () on the parent's queue: the parent's pending calls fail with
 * MPQ_ERROR_CLOSED, a dispatching child sees ::closed, later calls fail,
 * ::closed is emitted once, from the main loop. */
static void
test_close (void)
{
  g_autoptr(MpqQueue) queue = new_queue (0);
  g_autoptr(GSubprocess) worker = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) none = NULL;
  g_autoptr(GSubprocess) late = NULL;
  AsyncState receive_state;
  AsyncState join_state;
  gint worker_pid;
  int closed = 0;
  const char *argv[] = { "/bin/true", NULL };

  async_state_init (&receive_state);
  async_state_init (&join_state);
  g_signal_connect_swapped (queue, "closed", G_CALLBACK (count_cb), &closed);

  worker = spawn_child (queue, "worker", NULL);
  worker_pid = child_pid (worker);
  wait_ready (queue, &worker_pid, 1);

  /* A message nobody takes keeps join waiting (dispatch routes it to no
   * one). */
  send_value (queue, MPQ_REQ_DO, NOBODYS_PID, 0);
  start_receive (queue, NULL, &receive_state);
  start_join (queue, NULL, &join_state);
  iterate_ready ();
  g_assert_cmpuint (receive_state.pending, ==, 1);
  g_assert_cmpuint (join_state.pending, ==, 1);

  mpq_channel_close (MPQ_CHANNEL (queue));
  mpq_channel_close (MPQ_CHANNEL (queue));
  g_assert_cmpint (closed, ==, 0);   /* never from inside close () */

  wait_async (&receive_state);
  g_assert_error (receive_state.error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  wait_async (&join_state);
  g_assert_error (join_state.error, MPQ_ERROR, MPQ_ERROR_CLOSED);

  wait_child_status (worker, STATUS_CLOSED);

  g_assert_false (mpq_channel_send (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0, NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_clear_error (&error);
  none = mpq_channel_receive (MPQ_CHANNEL (queue), 0, NULL, NULL, &error);
  g_assert_null (none);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_clear_error (&error);
  mpq_queue_is_empty (queue, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_clear_error (&error);
  g_assert_false (mpq_queue_join (queue, 0, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_clear_error (&error);
  late = mpq_queue_spawn (queue, argv, &error);
  g_assert_null (late);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_clear_error (&error);

  while (closed == 0)
    g_main_context_iteration (NULL, TRUE);
  iterate_ready ();
  g_assert_cmpint (closed, ==, 1);

  async_state_clear (&receive_state);
  async_state_clear (&join_state);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/Mpq/Queue/properties", test_properties);
  g_test_add_func ("/Mpq/Queue/not-a-child", test_not_a_child);
  g_test_add_func ("/Mpq/Queue/preconditions", test_preconditions);
  g_test_add_func ("/Mpq/Queue/spawn-failure", test_spawn_failure);
  g_test_add_func ("/Mpq/Queue/receive-nothing", test_receive_nothing);
  g_test_add_func ("/Mpq/Queue/filter-puts-back-at-end", test_filter_puts_back_at_end);
  g_test_add_func ("/Mpq/Queue/child-filter-puts-back-when-full",
                   test_child_filter_puts_back_when_full);
  g_test_add_func ("/Mpq/Queue/join-counting", test_join_counting);
  g_test_add_func ("/Mpq/Queue/join-in-child", test_join_in_child);
  g_test_add_func ("/Mpq/Queue/full", test_full);
  g_test_add_func ("/Mpq/Queue/is-empty", test_is_empty);
  g_test_add_func ("/Mpq/Queue/readme-children-to-parent", test_readme_children_to_parent);
  g_test_add_func ("/Mpq/Queue/children-to-parent", test_children_to_parent);
  g_test_add_func ("/Mpq/Queue/full-duplex-targeted", test_full_duplex_targeted);
  g_test_add_func ("/Mpq/Queue/blocking-receive-in-child", test_blocking_receive_in_child);
  g_test_add_func ("/Mpq/Queue/dispatch/parent", test_dispatch_parent);
  g_test_add_func ("/Mpq/Queue/dispatch/parent-backlog", test_dispatch_parent_backlog);
  g_test_add_func ("/Mpq/Queue/dispatch/routing", test_dispatch_routing);
  g_test_add_func ("/Mpq/Queue/dispatch/fairness", test_dispatch_fairness);
  g_test_add_func ("/Mpq/Queue/dispatch/prefetch", test_dispatch_prefetch);
  g_test_add_func ("/Mpq/Queue/dispatch/prefetch-cap", test_dispatch_prefetch_cap);
  g_test_add_data_func ("/Mpq/Queue/dead-worker/exit", "exit", test_dead_worker);
  g_test_add_data_func ("/Mpq/Queue/dead-worker/kill", "kill", test_dead_worker);
  g_test_add_func ("/Mpq/Queue/dead-worker/in-hand-to-front", test_dead_worker_in_hand_to_front);
  g_test_add_func ("/Mpq/Queue/child-exit", test_child_exit);
  g_test_add_func ("/Mpq/Queue/many-children", test_many_children);
  g_test_add_func ("/Mpq/Queue/bounded-back-pressure", test_bounded_back_pressure);
  for (guint i = 0; i < G_N_ELEMENTS (bad_peers); i++)
    {
      g_autofree char *path = g_strdup_printf ("/Mpq/Queue/bad-peer/%s", bad_peers[i].name);

      g_test_add_data_func (path, &bad_peers[i], test_bad_peer);
    }
  g_test_add_func ("/Mpq/Queue/bad-peer/no-credit", test_bad_peer_no_credit);
  g_test_add_func ("/Mpq/Queue/receive-async", test_receive_async);
  g_test_add_func ("/Mpq/Queue/join-async", test_join_async);
  g_test_add_func ("/Mpq/Queue/dispatch/batch-ends-at-die", test_dispatch_batch_ends_at_die);
  g_test_add_func ("/Mpq/Queue/dispatch/answer-leaves-during-handler",
                   test_dispatch_answer_leaves_during_handler);
  g_test_add_func ("/Mpq/Queue/dispatch/nested-main-loop", test_dispatch_nested_main_loop);
  g_test_add_func ("/Mpq/Queue/close", test_close);
  g_test_add_func ("/Mpq/Queue/close-child-receive", test_close_child_receive);
  g_test_add_func ("/Mpq/Queue/receive-for-me/parent", test_receive_for_me_parent);
  g_test_add_func ("/Mpq/Queue/receive-for-me/child", test_receive_for_me_child);
  g_test_add_func ("/Mpq/Queue/receive-for-me/child-dies", test_receive_for_me_child_dies);
  g_test_add_func ("/Mpq/Queue/receive-for-me/child-closed", test_receive_for_me_child_closed);
  g_test_add_func ("/Mpq/Queue/receive-for-me/work-distribution",
                   test_receive_for_me_work_distribution);

  return g_test_run ();
}
