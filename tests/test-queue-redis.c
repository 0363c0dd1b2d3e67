/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* MpqQueue kept in Redis Streams (mpq_queue_new_for_uri), against a
 * redis-server of this test program's own (redis-test-util.c). Several
 * participants in one process are several connections, as processes on
 * several hosts would be; children are spawned through the library or
 * started with only the URI in their environment. No sleeps: a wait ends
 * on what the queue says. */
#include <signal.h>
#include <string.h>

#include <pymulproc/pymulproc.h>

#include "redis-test-util.h"

static RedisTestServer *server;

/* Helpers --------------------------------------------------------------- */

static MpqQueue *
open_queue (const char *name,
            guint       max_size)
{
  return redis_test_open_queue (server, name, max_size);
}

static gint
pid_of (MpqQueue *queue)
{
  gint pid = 0;

  g_object_get (queue, "pid", &pid, NULL);
  return pid;
}

static void
send_value (MpqQueue   *queue,
            const char *request,
            gint        recipient,
            gint64      value)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) data = json_node_init_int (json_node_alloc (), value);

  mpq_channel_send (MPQ_CHANNEL (queue), request, 0, recipient, data, &error);
  g_assert_no_error (error);
}

static gint64
value_of (MpqMessage *message)
{
  JsonNode *data = mpq_message_get_data (message);

  g_assert_nonnull (data);
  return json_node_get_int (data);
}

static MpqMessage *
take (MpqQueue *queue,
      gint      timeout_ms)
{
  g_autoptr(GError) error = NULL;
  MpqMessage *message = mpq_channel_receive (MPQ_CHANNEL (queue), timeout_ms, NULL, NULL,
                                             &error);

  g_assert_no_error (error);
  return message;
}

/* The value of the message taken, which must be there. */
static gint64
take_value (MpqQueue *queue,
            gint      timeout_ms)
{
  g_autoptr(MpqMessage) message = take (queue, timeout_ms);

  g_assert_nonnull (message);
  return value_of (message);
}

static MpqMessage *
take_for_me (MpqQueue *queue,
             gint      timeout_ms)
{
  g_autoptr(GError) error = NULL;
  MpqMessage *message = mpq_channel_receive_for_me (MPQ_CHANNEL (queue), timeout_ms, &error);

  g_assert_no_error (error);
  return message;
}

static void
assert_exits_zero (GSubprocess *child)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_wait_check (child, NULL, &error);
  g_assert_no_error (error);
}

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

static void
keep_result (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static MpqMessage *
finish_receive (MpqQueue     *queue,
                GAsyncResult *result)
{
  g_autoptr(GError) error = NULL;
  MpqMessage *message = mpq_channel_receive_finish (MPQ_CHANNEL (queue), result, &error);

  g_assert_no_error (error);
  g_assert_nonnull (message);
  return message;
}

static void
wait_result (GAsyncResult **result)
{
  while (*result == NULL)
    g_main_context_iteration (NULL, TRUE);
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
  send_value (queue, MPQ_REQ_DIE, worker, 0);
  assert_exits_zero (child);
  g_assert_true (mpq_queue_join (queue, -1, &error));
  g_assert_no_error (error);
}

/* Leases ------------------------------------------------------------------ */

static void
send_task (MpqQueue *queue,
           gint64    value)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *data = g_strdup_printf ("{\"value\":%" G_GINT64_FORMAT "}", value);

  mpq_channel_send_json (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0, data, &error);
  g_assert_no_error (error);
}

static gint64
answer_value (MpqMessage *message)
{
  g_assert_cmpstr (mpq_message_get_request (message), ==, MPQ_REQ_FINISHED);
  return json_object_get_int_member (json_node_get_object (mpq_message_get_data (message)),
                                     "value");
}

static GSubprocess *
spawn_child (MpqQueue            *queue,
             GSubprocessFlags     flags,
             const char          *mode)
{
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-queue-test-child", NULL);
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (flags);
  const char *argv[] = { path, mode, "kill", NULL };
  g_autoptr(GError) error = NULL;
  GSubprocess *child;

  /* die-in-handler reads its third word; the others ignore it. */
  child = mpq_queue_spawn_with_launcher (queue, launcher, argv, &error);
  g_assert_no_error (error);
  return child;
}

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
  send_value (queue, MPQ_REQ_DIE, mpq_message_get_sender_pid (answer), 0);
  assert_exits_zero (worker);
  g_assert_true (mpq_queue_join (queue, -1, &error));
  g_assert_no_error (error);
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

  send_value (queue, MPQ_REQ_DIE, mpq_message_get_sender_pid (answer), 0);
  assert_exits_zero (worker);
  g_assert_true (mpq_queue_join (queue, -1, &error));
  g_assert_no_error (error);
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

/* close: later calls fail with CLOSED, ::closed comes from an idle. */
static void
on_closed (MpqChannel *channel,
           gpointer    user_data)
{
  (*(guint *) user_data)++;
}

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

/* The server goes away for good: a send waits as its time-out allows,
 * then fails with CLOSED (never a SIGPIPE); a receive that waits for
 * ever fails once the queue gives the server up, a lease-time later;
 * ::closed is emitted once, then. */
#ifdef MPQ_TEST_REDIS_SERVER
static void
test_server_lost (void)
{
  g_autoptr(GError) error = NULL;
  RedisTestServer *own = redis_test_server_start (MPQ_TEST_REDIS_SERVER, &error);
  g_autoptr(MpqQueue) queue = NULL;
  g_autoptr(JsonNode) data = json_node_init_int (json_node_alloc (), 1);
  guint closed = 0;

  g_assert_no_error (error);
  queue = mpq_queue_new_for_uri (redis_test_server_uri (own), "lost", 0, &error);
  g_assert_no_error (error);
  /* It gives the server up after a lease-time without it. */
  mpq_queue_set_lease_time (queue, 300);
  g_signal_connect (queue, "closed", G_CALLBACK (on_closed), &closed);
  send_value (queue, MPQ_REQ_DO, 0, 1);
  redis_test_server_stop (own);

  /* A unix socket whose server is gone: the write fails with EPIPE. */
  g_assert_false (mpq_channel_send (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0, data, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_clear_error (&error);
  g_assert_null (mpq_channel_receive (MPQ_CHANNEL (queue), -1, NULL, NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);

  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (closed, ==, 1);
}
#endif

#ifdef MPQ_TEST_REDIS_SERVER
/* The server SIGKILLed and started again mid-run, its append-only file
 * keeping what it acknowledged: the parent and a worker on dispatch
 * connect again and go on; every task is answered (a task may be done
 * twice, never lost) and join ends. */
static void
test_server_restarted (void)
{
  g_autoptr(GError) error = NULL;
  RedisTestServer *own = redis_test_server_start_persistent (MPQ_TEST_REDIS_SERVER, &error);
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-queue-test-child", NULL);
  const char *argv[] = { path, "worker", NULL };
  g_autoptr(GHashTable) answered = g_hash_table_new (NULL, NULL);
  g_autoptr(MpqQueue) queue = NULL;
  g_autoptr(GSubprocess) worker = NULL;
  gboolean restarted = FALSE;
  guint closed = 0;
  gint worker_id = 0;
  const guint n = 40;

  g_assert_no_error (error);
  queue = mpq_queue_new_for_uri (redis_test_server_uri (own), "restarted", 0, &error);
  g_assert_no_error (error);
  g_signal_connect (queue, "closed", G_CALLBACK (on_closed), &closed);
  worker = mpq_queue_spawn (queue, argv, &error);
  g_assert_no_error (error);
  for (guint i = 1; i <= n / 2; i++)
    send_task (queue, i);

  /* A quarter answered: the restart; the second half is sent after it,
   * so both ends must have the server again. */
  while (g_hash_table_size (answered) < n)
    {
      g_autoptr(MpqMessage) message = take_for_me (queue, -1);

      if (g_strcmp0 (mpq_message_get_request (message), MPQ_REQ_FINISHED) != 0)
        continue;
      worker_id = mpq_message_get_sender_pid (message);
      g_assert_cmpint (answer_value (message), >=, 1);
      g_assert_cmpint (answer_value (message), <=, n);
      g_hash_table_add (answered, GINT_TO_POINTER ((gint) answer_value (message)));
      if (!restarted && g_hash_table_size (answered) >= n / 4)
        {
          redis_test_server_restart (own, &error);
          g_assert_no_error (error);
          restarted = TRUE;
          for (guint i = n / 2 + 1; i <= n; i++)
            send_task (queue, i);
        }
    }
  send_value (queue, MPQ_REQ_DIE, worker_id, 0);
  assert_exits_zero (worker);
  g_assert_true (mpq_queue_join (queue, -1, &error));
  g_assert_no_error (error);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (closed, ==, 0);
  g_clear_object (&queue);
  redis_test_server_stop (own);
}
#endif

#ifdef MPQ_TEST_REDIS_SERVER
/* While the server is away, a call waits as its time-out allows, then
 * fails with CLOSED, and the queue stays open: once the server is back,
 * the next call works and nothing was lost. */
static void
test_outage_calls_wait_then_fail (void)
{
  g_autoptr(GError) error = NULL;
  RedisTestServer *own = redis_test_server_start_persistent (MPQ_TEST_REDIS_SERVER, &error);
  g_autoptr(MpqQueue) queue = NULL;
  guint closed = 0;

  g_assert_no_error (error);
  queue = mpq_queue_new_for_uri (redis_test_server_uri (own), "outage", 0, &error);
  g_assert_no_error (error);
  g_signal_connect (queue, "closed", G_CALLBACK (on_closed), &closed);
  send_value (queue, MPQ_REQ_DO, 0, 1);
  send_value (queue, MPQ_REQ_DO, 0, 2);
  g_assert_cmpint (take_value (queue, 0), ==, 1);

  redis_test_server_kill (own);
  g_assert_null (mpq_channel_receive (MPQ_CHANNEL (queue), 100, NULL, NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_clear_error (&error);
  g_assert_false (mpq_queue_join (queue, 0, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_clear_error (&error);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (closed, ==, 0);

  redis_test_server_relaunch (own, &error);
  g_assert_no_error (error);
  /* 1 was taken for good before the outage; 2 waits. */
  g_assert_cmpint (take_value (queue, -1), ==, 2);
  g_assert_true (mpq_queue_join (queue, -1, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (closed, ==, 0);
  g_clear_object (&queue);
  redis_test_server_stop (own);
}

/* A server that comes back without the queue (no persistence): the
 * queue gives up at once, its calls fail CLOSED, ::closed once. */
static void
test_server_back_without_the_queue (void)
{
  g_autoptr(GError) error = NULL;
  RedisTestServer *own = redis_test_server_start (MPQ_TEST_REDIS_SERVER, &error);
  g_autoptr(MpqQueue) queue = NULL;
  guint closed = 0;

  g_assert_no_error (error);
  queue = mpq_queue_new_for_uri (redis_test_server_uri (own), "forgotten", 0, &error);
  g_assert_no_error (error);
  g_signal_connect (queue, "closed", G_CALLBACK (on_closed), &closed);
  send_value (queue, MPQ_REQ_DO, 0, 1);
  redis_test_server_restart (own, &error);
  g_assert_no_error (error);

  g_assert_null (mpq_channel_receive (MPQ_CHANNEL (queue), -1, NULL, NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (closed, ==, 1);
  g_clear_object (&queue);
  redis_test_server_stop (own);
}
#endif

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

  send_value (queue, MPQ_REQ_DIE, worker, 0);
  assert_exits_zero (child);
  g_assert_true (mpq_queue_join (queue, -1, &error));
  g_assert_no_error (error);
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
  g_autoptr(GError) error = NULL;
  int status;

#ifndef MPQ_TEST_REDIS_SERVER
  g_print ("pymulproc was built without Redis support, or redis-server is missing: skipped\n");
  return 77;
#endif

  g_test_init (&argc, &argv, NULL);

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
  g_test_add_func ("/Mpq/QueueRedis/dispatch", test_dispatch);
  g_test_add_func ("/Mpq/QueueRedis/dispatch-stop", test_dispatch_stop);
  g_test_add_func ("/Mpq/QueueRedis/dispatch-worker", test_dispatch_worker);
  g_test_add_func ("/Mpq/QueueRedis/killed-worker-task-redone", test_killed_worker_task_redone);
  g_test_add_func ("/Mpq/QueueRedis/slow-handler-keeps-its-task",
                   test_slow_handler_keeps_its_task);
#ifdef MPQ_TEST_REDIS_SERVER
  g_test_add_func ("/Mpq/QueueRedis/hostile-entries", test_hostile_entries);
#endif
  g_test_add_func ("/Mpq/QueueRedis/close", test_close);
#ifdef MPQ_TEST_REDIS_SERVER
  g_test_add_func ("/Mpq/QueueRedis/server-lost", test_server_lost);
  g_test_add_func ("/Mpq/QueueRedis/server-restarted", test_server_restarted);
  g_test_add_func ("/Mpq/QueueRedis/outage-calls-wait-then-fail",
                   test_outage_calls_wait_then_fail);
  g_test_add_func ("/Mpq/QueueRedis/server-back-without-the-queue",
                   test_server_back_without_the_queue);
#endif
  g_test_add_func ("/Mpq/QueueRedis/spawned-child", test_spawned_child);
  g_test_add_func ("/Mpq/QueueRedis/waits-end-on-others-takes",
                   test_waits_end_on_others_takes);
  g_test_add_func ("/Mpq/QueueRedis/shared-uri-only", test_shared_uri_only);

#ifdef MPQ_TEST_REDIS_SERVER
  server = redis_test_server_start (MPQ_TEST_REDIS_SERVER, &error);
  g_assert_no_error (error);
#endif
  status = g_test_run ();
  redis_test_server_stop (server);
  return status;
}
