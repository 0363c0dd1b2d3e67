/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The child program test-queue spawns through MpqQueue. The first argument
 * picks what it does; it exits 0 when all went as planned, 1 when something
 * the test checks went wrong, 2 when it could not even open its queue.
 *
 * Modes that must tell the parent "I am about to block" write a line to
 * stdout (the parent spawns them with G_SUBPROCESS_FLAGS_STDOUT_PIPE);
 * modes that block until the parent says so read stdin
 * (G_SUBPROCESS_FLAGS_STDIN_PIPE). Workers that receive through dispatch
 * put a "READY" message for the parent once dispatch is started. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pymulproc/pymulproc.h>

#define REQ_READY "READY"

/* Exit status of a dispatch worker whose queue was closed under it. */
#define STATUS_CLOSED 4

static MpqQueue *
open_queue (void)
{
  g_autoptr(GError) error = NULL;
  MpqQueue *queue = mpq_queue_new_for_child (&error);

  if (queue == NULL)
    {
      g_printerr ("mpq-queue-test-child: %s\n", error->message);
      exit (2);
    }

  return queue;
}

static JsonNode *
value_node (gint64 i)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "value");
  json_builder_add_int_value (builder, i);
  json_builder_end_object (builder);

  return json_builder_get_root (builder);
}

static gint64
data_value (MpqMessage *message)
{
  JsonNode *data = mpq_message_get_data (message);

  if (data == NULL || !JSON_NODE_HOLDS_OBJECT (data))
    return -1;
  return json_object_get_int_member_with_default (json_node_get_object (data), "value", -1);
}

static void
say (const char *line)
{
  /* One write, flushed: the parent reads it with a blocking read_line. */
  g_print ("%s\n", line);
  fflush (stdout);
}

static void
say_message (MpqMessage *message)
{
  g_autofree char *line = g_strdup_printf ("%s %" G_GINT64_FORMAT,
                                           mpq_message_get_request (message),
                                           data_value (message));

  say (line);
}

/* Reads stdin until EOF: the parent closes the pipe to let us go on. */
static void
wait_for_stdin_eof (void)
{
  char buffer[64];

  for (;;)
    {
      gssize n = read (STDIN_FILENO, buffer, sizeof buffer);

      if (n == 0 || (n < 0 && errno != EINTR))
        return;
    }
}

static gboolean
send_value (MpqQueue *queue,
            gint64    i,
            gint      recipient_pid)
{
  g_autoptr(JsonNode) data = value_node (i);
  g_autoptr(GError) error = NULL;

  if (!mpq_channel_send (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, recipient_pid, data, &error))
    {
      g_printerr ("mpq-queue-test-child: send %" G_GINT64_FORMAT ": %s\n", i, error->message);
      return FALSE;
    }

  return TRUE;
}

/* send N [parent]: sends N DO messages {"value": i}, addressed to the parent
 * with "parent", to nobody otherwise, then exits. Waits for room in a
 * bounded queue for up to a minute per message. */
static int
do_send (MpqQueue   *queue,
         int         n,
         const char *to)
{
  gint recipient = g_strcmp0 (to, "parent") == 0 ? mpq_queue_get_parent_pid (queue) : 0;

  mpq_queue_set_put_attempts (queue, 600);
  for (int i = 0; i < n; i++)
    if (!send_value (queue, i, recipient))
      return 1;

  return 0;
}

/* value V: pymulproc's README child: sends one DO whose data is V. */
static int
do_value (MpqQueue *queue,
          int       value)
{
  g_autoptr(JsonNode) data = json_node_init_int (json_node_alloc (), value);
  g_autoptr(GError) error = NULL;

  if (!mpq_channel_send (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0, data, &error))
    {
      g_printerr ("mpq-queue-test-child: send: %s\n", error->message);
      return 1;
    }

  return 0;
}

/* put-no-wait N: sends N values to the parent with put-attempts 0 (never
 * wait for room): into a queue with room, each must go through. */
static int
do_put_no_wait (MpqQueue *queue,
                int       n)
{
  gint parent = mpq_queue_get_parent_pid (queue);

  mpq_queue_set_put_timeout (queue, 0);
  mpq_queue_set_put_attempts (queue, 0);
  for (int i = 0; i < n; i++)
    if (!send_value (queue, i, parent))
      return 1;
  return 0;
}

/* text N: sends one DO whose data is a string of N letters; says the
 * error on stderr and exits 1 if the send failed. */
static int
do_text (MpqQueue *queue,
         int       n)
{
  g_autofree char *text = g_strnfill (MAX (n, 0), 'x');
  g_autoptr(JsonNode) data = json_node_init_string (json_node_alloc (), text);
  g_autoptr(GError) error = NULL;

  if (!mpq_channel_send (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0, data, &error))
    {
      g_printerr ("mpq-queue-test-child: send: %s\n", error->message);
      return 1;
    }

  return 0;
}

/* take N: takes N messages with a blocking receive (pymulproc's: the
 * front, whoever it is for), then exits. print-take N: says "REQUEST
 * VALUE" for each too. */
static int
do_take (MpqQueue *queue,
         int       n,
         gboolean  print)
{
  for (int i = 0; i < n; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqMessage) message = NULL;

      message = mpq_channel_receive (MPQ_CHANNEL (queue), -1, NULL, NULL, &error);
      if (message == NULL)
        {
          g_printerr ("mpq-queue-test-child: receive: %s\n",
                      error != NULL ? error->message : "NULL without error");
          return 1;
        }
      if (print)
        say_message (message);
    }

  return 0;
}

static void
keep_result (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

/* echo-bytes N: takes N messages (receive_async: for this child or for
 * nobody, never the answers addressed to the parent) and puts each back
 * to the parent as FINISHED with the same data and payload. */
static int
do_echo_bytes (MpqQueue *queue,
               int       n)
{
  gint parent = mpq_queue_get_parent_pid (queue);

  for (int i = 0; i < n; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GAsyncResult) result = NULL;
      g_autoptr(MpqMessage) message = NULL;
      g_autoptr(MpqMessage) answer = NULL;

      mpq_channel_receive_async (MPQ_CHANNEL (queue), NULL, keep_result, &result);
      while (result == NULL)
        g_main_context_iteration (NULL, TRUE);
      message = mpq_channel_receive_finish (MPQ_CHANNEL (queue), result, &error);
      if (message == NULL)
        {
          g_printerr ("mpq-queue-test-child: receive: %s\n",
                      error != NULL ? error->message : "NULL without error");
          return 1;
        }
      answer = mpq_message_new_with_bytes (MPQ_REQ_FINISHED, 0, parent,
                                           mpq_message_get_data (message),
                                           mpq_message_get_bytes (message));
      if (!mpq_channel_send_message (MPQ_CHANNEL (queue), answer, &error))
        {
          g_printerr ("mpq-queue-test-child: send: %s\n", error->message);
          return 1;
        }
    }
  return mpq_channel_flush (MPQ_CHANNEL (queue), -1, NULL) ? 0 : 1;
}

/* poll-empty: on an empty queue, receive (0) and receive (50) return NULL
 * without an error, the second one after waiting. */
static int
do_poll_empty (MpqQueue *queue)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) none = NULL;
  g_autoptr(MpqMessage) late = NULL;
  gint64 before;

  none = mpq_channel_receive (MPQ_CHANNEL (queue), 0, NULL, NULL, &error);
  if (none != NULL || error != NULL)
    return 1;

  before = g_get_monotonic_time ();
  late = mpq_channel_receive (MPQ_CHANNEL (queue), 50, NULL, NULL, &error);
  if (late != NULL || error != NULL)
    return 1;
  if (g_get_monotonic_time () - before < 50 * 1000)
    {
      g_printerr ("mpq-queue-test-child: receive (50) returned early\n");
      return 1;
    }

  return 0;
}

static gboolean
reject_after_go (MpqMessage *message,
                 gpointer    user_data)
{
  char line[16];

  (*(int *) user_data)++;
  /* The message is in our hand: let the parent act, then say no. */
  say ("filtering");
  if (fgets (line, sizeof line, stdin) == NULL)
    return FALSE;
  return FALSE;
}

/* reject-one EXPECT-EMPTY: takes the front message with a filter that says
 * "filtering" and waits for a line on stdin before refusing it, then checks
 * that receive returned NULL without an error and that is_empty is
 * EXPECT-EMPTY ("true"/"false"). is_empty is a round trip: once it has
 * answered, the server has seen the refusal. */
static int
do_reject_one (MpqQueue   *queue,
               const char *expect_empty)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) message = NULL;
  gboolean empty;
  int calls = 0;

  message = mpq_channel_receive (MPQ_CHANNEL (queue), -1, reject_after_go, &calls, &error);
  if (message != NULL || error != NULL || calls != 1)
    {
      g_printerr ("mpq-queue-test-child: reject-one: message %p, error %s, %d filter calls\n",
                  message, error != NULL ? error->message : "none", calls);
      return 1;
    }

  empty = mpq_queue_is_empty (queue, &error);
  if (error != NULL || empty != g_str_equal (expect_empty, "true"))
    {
      g_printerr ("mpq-queue-test-child: is_empty: %d, error %s\n",
                  empty, error != NULL ? error->message : "none");
      return 1;
    }

  return 0;
}

/* fill N: with put-timeout 10 and put-attempts 2, sends until a send
 * fails; that must be the N+1st, with MPQ_ERROR_FULL. Then is_empty
 * (FALSE: N messages wait) makes sure the server read everything we wrote
 * and has not dropped us. */
static int
do_fill (MpqQueue *queue,
         int       n)
{
  g_autoptr(GError) error = NULL;
  gint64 before;
  int sent = 0;

  mpq_queue_set_put_timeout (queue, 10);
  mpq_queue_set_put_attempts (queue, 2);

  for (;;)
    {
      g_autoptr(JsonNode) data = value_node (sent);

      before = g_get_monotonic_time ();
      if (!mpq_channel_send (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0, data, &error))
        break;
      sent++;
      if (sent > n)
        break;
    }

  if (sent != n || !g_error_matches (error, MPQ_ERROR, MPQ_ERROR_FULL))
    {
      g_printerr ("mpq-queue-test-child: fill: sent %d, error %s\n",
                  sent, error != NULL ? error->message : "none");
      return 1;
    }
  if (g_get_monotonic_time () - before < 20 * 1000)
    {
      g_printerr ("mpq-queue-test-child: fill: MPQ_ERROR_FULL without waiting 2 x 10 ms\n");
      return 1;
    }
  g_clear_error (&error);

  if (mpq_queue_is_empty (queue, &error) || error != NULL)
    {
      g_printerr ("mpq-queue-test-child: fill: is_empty TRUE or failed: %s\n",
                  error != NULL ? error->message : "none");
      return 1;
    }

  return 0;
}

/* is-empty true|false: checks mpq_queue_is_empty from the child. */
static int
do_is_empty (MpqQueue   *queue,
             const char *expect)
{
  g_autoptr(GError) error = NULL;
  gboolean empty = mpq_queue_is_empty (queue, &error);

  if (error != NULL)
    {
      g_printerr ("mpq-queue-test-child: is_empty: %s\n", error->message);
      return 1;
    }
  if (empty != g_str_equal (expect, "true"))
    {
      g_printerr ("mpq-queue-test-child: is_empty returned %d\n", empty);
      return 1;
    }

  return 0;
}

/* join-wait: join (0) must time out (the parent put a message nobody took
 * yet); then says "ready" and waits in join (-1), which must return TRUE
 * once the parent took it. */
static int
do_join_wait (MpqQueue *queue)
{
  g_autoptr(GError) error = NULL;

  if (mpq_queue_join (queue, 0, &error) || !g_error_matches (error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT))
    {
      g_printerr ("mpq-queue-test-child: join (0): %s\n",
                  error != NULL ? error->message : "joined");
      return 1;
    }
  g_clear_error (&error);

  say ("ready");
  if (!mpq_queue_join (queue, -1, &error))
    {
      g_printerr ("mpq-queue-test-child: join (-1): %s\n",
                  error != NULL ? error->message : "FALSE without error");
      return 1;
    }

  return 0;
}

/* answer-one: says "ready", blocks in receive (-1), and answers the message
 * it gets with FINISHED and the same data to the parent. */
static int
do_answer_one (MpqQueue *queue)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) message = NULL;

  say ("ready");
  message = mpq_channel_receive (MPQ_CHANNEL (queue), -1, NULL, NULL, &error);
  if (message == NULL)
    {
      g_printerr ("mpq-queue-test-child: receive: %s\n",
                  error != NULL ? error->message : "NULL without error");
      return 1;
    }

  if (!mpq_channel_send (MPQ_CHANNEL (queue), MPQ_REQ_FINISHED, 0,
                         mpq_queue_get_parent_pid (queue),
                         mpq_message_get_data (message), &error))
    {
      g_printerr ("mpq-queue-test-child: send: %s\n", error->message);
      return 1;
    }

  return 0;
}

/* expect-closed: says "ready", blocks in receive (-1), which must fail with
 * MPQ_ERROR_CLOSED once the parent closes its queue; so must a send. */
static int
do_expect_closed (MpqQueue *queue)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) message = NULL;

  say ("ready");
  message = mpq_channel_receive (MPQ_CHANNEL (queue), -1, NULL, NULL, &error);
  if (message != NULL || !g_error_matches (error, MPQ_ERROR, MPQ_ERROR_CLOSED))
    {
      g_printerr ("mpq-queue-test-child: expect-closed: message %p, error %s\n",
                  message, error != NULL ? error->message : "none");
      return 1;
    }
  g_clear_error (&error);

  if (mpq_channel_send (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0, NULL, &error) ||
      !g_error_matches (error, MPQ_ERROR, MPQ_ERROR_CLOSED))
    {
      g_printerr ("mpq-queue-test-child: expect-closed: send after close: %s\n",
                  error != NULL ? error->message : "succeeded");
      return 1;
    }

  return 0;
}

static gboolean
is_for_me (MpqMessage *message,
           gpointer    user_data)
{
  return mpq_message_is_for (message, GPOINTER_TO_INT (user_data));
}

/* filter-worker: pymulproc's way: receive (-1, filter) with a filter that
 * takes messages for this process or for nobody (others go to the back of
 * the queue); DO is answered with FINISHED to the parent, same data; DIE
 * ends. */
static int
do_filter_worker (MpqQueue *queue)
{
  gint me = mpq_channel_get_pid (MPQ_CHANNEL (queue));   /* its id on a server's queue */
  gint parent = mpq_queue_get_parent_pid (queue);

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqMessage) message = NULL;

      message = mpq_channel_receive (MPQ_CHANNEL (queue), -1, is_for_me, GINT_TO_POINTER (me),
                                     &error);
      if (error != NULL)
        {
          g_printerr ("mpq-queue-test-child: receive: %s\n", error->message);
          return 1;
        }
      if (message == NULL)
        continue;

      if (g_str_equal (mpq_message_get_request (message), MPQ_REQ_DIE))
        return 0;

      if (!g_str_equal (mpq_message_get_request (message), MPQ_REQ_DO) ||
          (mpq_message_get_recipient_pid (message) != me))
        {
          g_printerr ("mpq-queue-test-child: filter-worker got %s for %d\n",
                      mpq_message_get_request (message),
                      mpq_message_get_recipient_pid (message));
          return 1;
        }

      if (!mpq_channel_send (MPQ_CHANNEL (queue), MPQ_REQ_FINISHED, 0, parent,
                             mpq_message_get_data (message), &error))
        {
          g_printerr ("mpq-queue-test-child: send: %s\n", error->message);
          return 1;
        }
    }
}

/* Routed synchronous receive --------------------------------------------- */

static MpqMessage *
receive_for_me_or_complain (MpqQueue *queue,
                            gint      timeout_ms)
{
  g_autoptr(GError) error = NULL;
  MpqMessage *message = mpq_channel_receive_for_me (MPQ_CHANNEL (queue), timeout_ms, &error);

  if (error != NULL)
    g_printerr ("mpq-queue-test-child: receive_for_me (%d): %s\n", timeout_ms, error->message);
  return message;
}

/* for-me-worker: receive_for_me (-1) in a loop; DO is answered with
 * FINISHED and the same data to the parent; DIE ends. Exits 1 if a DO
 * came out of the order the values say: the parent put them in order,
 * and nothing may have gone to the back of the queue meanwhile. */
static int
do_for_me_worker (MpqQueue *queue)
{
  gint parent = mpq_queue_get_parent_pid (queue);
  gint64 last = -1;
  int status = 0;

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqMessage) message = receive_for_me_or_complain (queue, -1);
      const char *request;

      if (message == NULL)
        return 1;
      request = mpq_message_get_request (message);
      if (g_str_equal (request, MPQ_REQ_DIE))
        return status;
      if (!g_str_equal (request, MPQ_REQ_DO) || data_value (message) <= last)
        {
          g_printerr ("mpq-queue-test-child: for-me-worker got %s %" G_GINT64_FORMAT
                      " after %" G_GINT64_FORMAT "\n", request, data_value (message), last);
          status = 1;
        }
      last = data_value (message);
      if (!mpq_channel_send (MPQ_CHANNEL (queue), MPQ_REQ_FINISHED, 0, parent,
                             mpq_message_get_data (message), &error))
        {
          g_printerr ("mpq-queue-test-child: send: %s\n", error->message);
          return 1;
        }
    }
}

/* for-me-check N: puts OWN (value 1) for nobody and SELF (value 2)
 * addressed to itself, makes sure they are in the queue, says "ready"; then says
 * "REQUEST VALUE" for each of N messages receive_for_me (-1) gives, and
 * "none" once receive_for_me (0) gives nothing, without an error. */
static int
do_for_me_check (MpqQueue *queue,
                 int       n)
{
  g_autoptr(JsonNode) own = value_node (1);
  g_autoptr(JsonNode) self = value_node (2);
  g_autoptr(MpqMessage) last = NULL;
  g_autoptr(GError) error = NULL;

  if (!mpq_channel_send (MPQ_CHANNEL (queue), "OWN", 0, 0, own, &error) ||
      !mpq_channel_send (MPQ_CHANNEL (queue), "SELF", 0, getpid (), self, &error) ||
      /* A round trip: the server took both before it answers. */
      (mpq_queue_is_empty (queue, &error), error != NULL))
    {
      g_printerr ("mpq-queue-test-child: for-me-check: %s\n", error->message);
      return 1;
    }
  say ("ready");

  for (int i = 0; i < n; i++)
    {
      g_autoptr(MpqMessage) message = receive_for_me_or_complain (queue, -1);

      if (message == NULL)
        return 1;
      say_message (message);
    }

  last = mpq_channel_receive_for_me (MPQ_CHANNEL (queue), 0, &error);
  if (last != NULL || error != NULL)
    {
      g_printerr ("mpq-queue-test-child: receive_for_me (0): %s\n",
                  error != NULL ? error->message : "a message");
      return 1;
    }
  say ("none");
  return 0;
}

/* for-me-expect-closed: says "ready", blocks in receive_for_me (-1),
 * which must fail with MPQ_ERROR_CLOSED once the parent closes its queue. */
static int
do_for_me_expect_closed (MpqQueue *queue)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) message = NULL;

  say ("ready");
  message = mpq_channel_receive_for_me (MPQ_CHANNEL (queue), -1, &error);
  if (message != NULL || !g_error_matches (error, MPQ_ERROR, MPQ_ERROR_CLOSED))
    {
      g_printerr ("mpq-queue-test-child: for-me-expect-closed: message %p, error %s\n",
                  message, error != NULL ? error->message : "none");
      return 1;
    }
  return 0;
}

/* Dispatch workers ------------------------------------------------------ */

/* How a dispatch worker handles DO:
 * - PLAIN answers each at once;
 * - BLOCK_FIRST waits for stdin EOF in the first before answering it;
 * - ANSWER_THEN_BLOCK answers the first, then waits for stdin EOF;
 * - WARM_BLOCK answers at once (its window grows) until a DO with a
 *   negative value, in which it waits for stdin EOF;
 * - NESTED runs a main loop of its own in each for a few ms;
 * - NESTED_RECEIVE, in the first, says "waiting" and runs a main loop of
 *   its own until a receive_async made there answers, and answers that
 *   message first. */
typedef enum
{
  WORKER_PLAIN,
  WORKER_BLOCK_FIRST,
  WORKER_ANSWER_THEN_BLOCK,
  WORKER_WARM_BLOCK,
  WORKER_NESTED,
  WORKER_NESTED_RECEIVE,
} WorkerMode;

typedef struct
{
  MpqQueue  *queue;
  GMainLoop *loop;
  int        status;
  gint       me;
  gint       parent;
  guint      handled;
  WorkerMode mode;
  guint      depth;        /* DO handlers under way */
  const char *die_how;     /* die-in-handler: "exit" or "kill" */
} Worker;

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
  if (*slot == NULL)
    g_printerr ("mpq-queue-test-child: receive_async: %s\n", error->message);
}

static void worker_on_do (MpqChannel *channel, MpqMessage *message, Worker *worker);

/* In a handler: a receive_async answered in a main loop of our own, in
 * few iterations (it sleeps while it waits); the message it gives is
 * answered as any other, first. Dispatch stops first: while it runs, the
 * queue may push the next message to this process, where it waits for
 * this handler to return, and the receive_async for the one after. */
static void
receive_in_nested_loop (MpqChannel *channel,
                        Worker     *worker)
{
  g_autoptr(MpqMessage) got = NULL;
  guint iterations = 0;

  mpq_channel_stop (channel);
  mpq_channel_receive_async (channel, NULL, got_message_cb, &got);
  say ("waiting");
  while (got == NULL && iterations < 1000)
    {
      g_main_context_iteration (NULL, TRUE);
      iterations++;
    }
  if (got == NULL || iterations > 50)
    {
      g_printerr ("mpq-queue-test-child: receive_async in a handler: %s after %u iterations\n",
                  got != NULL ? "answered" : "not answered", iterations);
      worker->status = 1;
      return;
    }
  worker_on_do (channel, got, worker);
  mpq_channel_start (channel);
}

static void
worker_on_do (MpqChannel *channel,
              MpqMessage *message,
              Worker     *worker)
{
  g_autoptr(GError) error = NULL;

  if (worker->die_how != NULL)
    {
      /* The message is in our hand; die without answering for it. */
      if (g_str_equal (worker->die_how, "kill"))
        raise (SIGKILL);
      _exit (3);
    }

  if (mpq_message_get_recipient_pid (message) != 0 &&
      mpq_message_get_recipient_pid (message) != worker->me)
    {
      g_printerr ("mpq-queue-test-child: worker %d was handed a DO for %d\n",
                  worker->me, mpq_message_get_recipient_pid (message));
      worker->status = 1;
    }

  if (worker->mode == WORKER_NESTED_RECEIVE && worker->handled == 0 && worker->depth == 0)
    {
      worker->depth++;
      receive_in_nested_loop (channel, worker);
      worker->depth--;
    }

  if (worker->mode == WORKER_NESTED)
    {
      /* A main loop of our own, inside the handler, for a few ms: no other
       * DO of this queue may come in it, and it must sleep, not spin. */
      gboolean done = FALSE;
      guint iterations = 0;

      if (worker->depth > 0)
        {
          g_printerr ("mpq-queue-test-child: a DO came inside a DO handler\n");
          worker->status = 1;
        }
      worker->depth++;
      g_timeout_add (20, set_flag_cb, &done);
      while (!done)
        {
          g_main_context_iteration (NULL, TRUE);
          iterations++;
        }
      worker->depth--;
      if (iterations > 20)
        {
          g_printerr ("mpq-queue-test-child: the nested loop spun %u times\n", iterations);
          worker->status = 1;
        }
    }

  if ((worker->mode == WORKER_BLOCK_FIRST && worker->handled == 0) ||
      (worker->mode == WORKER_WARM_BLOCK && data_value (message) < 0))
    {
      g_autofree char *line = g_strdup_printf ("holding %" G_GINT64_FORMAT, data_value (message));

      say (line);
      wait_for_stdin_eof ();
    }
  worker->handled++;

  if (!mpq_channel_send (channel, MPQ_REQ_FINISHED, 0, worker->parent,
                         mpq_message_get_data (message), &error))
    {
      g_printerr ("mpq-queue-test-child: send: %s\n", error->message);
      worker->status = 1;
      g_main_loop_quit (worker->loop);
    }

  if (worker->mode == WORKER_ANSWER_THEN_BLOCK && worker->handled == 1)
    {
      g_autofree char *line = g_strdup_printf ("answered %" G_GINT64_FORMAT, data_value (message));

      say (line);
      wait_for_stdin_eof ();
    }
}

static void
worker_on_die (MpqChannel *channel,
               MpqMessage *message,
               Worker     *worker)
{
  g_main_loop_quit (worker->loop);
}

static void
worker_on_closed (MpqChannel *channel,
                  Worker     *worker)
{
  if (worker->status == 0)
    worker->status = STATUS_CLOSED;
  g_main_loop_quit (worker->loop);
}

/* worker [PREFETCH]: dispatch in a main loop: says READY to the parent, then
 * answers each DO with FINISHED and the same data to the parent; quits on
 * DIE (status 0) or when the queue closes (status 4). */
static int
do_worker (MpqQueue   *queue,
           int         prefetch,
           WorkerMode  mode,
           const char *die_how)
{
  g_autoptr(GError) error = NULL;
  Worker worker = { 0, };

  worker.queue = queue;
  worker.loop = g_main_loop_new (NULL, FALSE);
  worker.me = mpq_channel_get_pid (MPQ_CHANNEL (queue));
  worker.parent = mpq_queue_get_parent_pid (queue);
  worker.mode = mode;
  worker.die_how = die_how;

  if (prefetch > 0)
    mpq_queue_set_prefetch (queue, prefetch);

  g_signal_connect (queue, "message-received::" MPQ_REQ_DO, G_CALLBACK (worker_on_do), &worker);
  g_signal_connect (queue, "message-received::" MPQ_REQ_DIE, G_CALLBACK (worker_on_die), &worker);
  g_signal_connect (queue, "closed", G_CALLBACK (worker_on_closed), &worker);
  mpq_channel_start (MPQ_CHANNEL (queue));

  if (!mpq_channel_send (MPQ_CHANNEL (queue), REQ_READY, 0, worker.parent, NULL, &error))
    {
      g_printerr ("mpq-queue-test-child: send READY: %s\n", error->message);
      return 1;
    }

  g_main_loop_run (worker.loop);
  g_main_loop_unref (worker.loop);

  return worker.status;
}

/* Without the library --------------------------------------------------- */

static int
channel_fd (void)
{
  const char *fd_text = g_getenv (MPQ_CHANNEL_FD_ENV);

  return fd_text != NULL ? atoi (fd_text) : -1;
}

static gboolean
write_all (int         fd,
           const char *bytes)
{
  gsize len = strlen (bytes);

  return write (fd, bytes, len) == (gssize) len;
}

/* Reads until the server hangs up; TRUE once it did. */
static gboolean
read_until_hang_up (int fd)
{
  char buffer[4096];

  for (;;)
    {
      gssize n = read (fd, buffer, sizeof buffer);

      if (n == 0)
        return TRUE;
      /* A hang-up with our last lines unread reads as a reset. */
      if (n < 0 && errno == ECONNRESET)
        return TRUE;
      if (n < 0 && errno != EINTR)
        return FALSE;
    }
}

/* raw TEXT: writes TEXT ("\n" escapes allowed, "@PID@" replaced by our pid)
 * to the channel in one write, then reads until the server hangs up.
 * Exits 0 once it did. */
static int
do_raw (const char *text)
{
  g_autofree char *bytes = g_strcompress (text);
  g_autofree char *pid = g_strdup_printf ("%d", (int) getpid ());
  g_auto(GStrv) parts = g_strsplit (bytes, "@PID@", -1);
  g_autofree char *line = g_strjoinv (pid, parts);
  int fd = channel_fd ();

  if (fd < 0 || !write_all (fd, line))
    return 1;

  return read_until_hang_up (fd) ? 0 : 1;
}

/* Reads one frame line from @in and returns it parsed, or NULL. */
static JsonObject *
read_frame (FILE *in)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  char line[4096];

  if (fgets (line, sizeof line, in) == NULL)
    return NULL;
  if (!json_parser_load_from_data (parser, line, -1, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return NULL;

  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

/* over-credit: a bounded-queue child that keeps to its credit for as many
 * messages as it was given (asking for credit once if the hello gave none),
 * then puts one more without credit, and one after that. Says "good N" on
 * stdout (N messages put with credit, values 1..N, to the parent), then
 * reads until the server hangs up. Exits 0 once it did. */
static int
do_over_credit (void)
{
  int fd = channel_fd ();
  FILE *in = fd >= 0 ? fdopen (dup (fd), "r") : NULL;
  g_autoptr(JsonObject) hello = NULL;
  g_autoptr(GString) lines = g_string_new (NULL);
  g_autofree char *good = NULL;
  gint64 credit;
  gint64 parent;

  if (in == NULL || (hello = read_frame (in)) == NULL ||
      g_strcmp0 (json_object_get_string_member_with_default (hello, "op", ""), "hello") != 0)
    return 1;

  credit = json_object_get_int_member_with_default (hello, "credit", -2);
  parent = json_object_get_int_member_with_default (hello, "pid", 0);
  if (credit < -1 || parent <= 0)
    return 1;
  if (credit == -1)
    {
      g_printerr ("mpq-queue-test-child: over-credit: the queue is unbounded\n");
      return 1;
    }

  if (credit == 0)
    {
      if (!write_all (fd, "{\"op\":\"credit\"}\n"))
        return 1;
      for (;;)
        {
          g_autoptr(JsonObject) frame = read_frame (in);
          const char *op;

          if (frame == NULL)
            return 1;
          op = json_object_get_string_member_with_default (frame, "op", "");
          if (g_str_equal (op, "credit"))
            {
              credit = json_object_get_int_member_with_default (frame, "n", 0);
              break;
            }
        }
      if (credit <= 0)
        return 1;
    }

  for (gint64 i = 1; i <= credit; i++)
    g_string_append_printf (lines,
                            "[\"DO\",%d,%" G_GINT64_FORMAT ",{\"value\":%" G_GINT64_FORMAT "}]\n",
                            (int) getpid (), parent, i);
  g_string_append_printf (lines, "[\"DO\",%d,%" G_GINT64_FORMAT ",{\"value\":99}]\n",
                          (int) getpid (), parent);
  g_string_append_printf (lines, "[\"DO\",%d,%" G_GINT64_FORMAT ",{\"value\":100}]\n",
                          (int) getpid (), parent);

  good = g_strdup_printf ("good %" G_GINT64_FORMAT, credit);
  say (good);
  if (!write_all (fd, lines->str))
    return 1;

  fclose (in);
  return read_until_hang_up (fd) ? 0 : 1;
}

/* send-in-handler-then-crash N: starts dispatch; its first message's
 * handler waits for a line on stdin (the queue goes on pushing what is
 * addressed to it, unread), then sends N values, flushes them and dies. */
static void
send_then_crash_cb (MpqChannel *channel,
                    MpqMessage *message,
                    gpointer    user_data)
{
  char go[8];

  if (fgets (go, sizeof go, stdin) == NULL)
    _exit (1);
  do_send (MPQ_QUEUE (channel), GPOINTER_TO_INT (user_data), NULL);
  mpq_channel_flush (channel, -1, NULL);
  raise (SIGKILL);
}

static int
do_send_in_handler_then_crash (MpqQueue *queue,
                               int       n)
{
  g_signal_connect (queue, "message-received", G_CALLBACK (send_then_crash_cb),
                    GINT_TO_POINTER (n));
  mpq_channel_start (MPQ_CHANNEL (queue));
  for (;;)
    g_main_context_iteration (NULL, TRUE);
  return 1;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(MpqQueue) queue = NULL;
  const char *mode = argc > 1 ? argv[1] : "";
  const char *arg = argc > 2 ? argv[2] : NULL;
  int n = arg != NULL ? atoi (arg) : 0;
  int status = 2;

  if (g_str_equal (mode, "raw"))
    return do_raw (arg != NULL ? arg : "");
  if (g_str_equal (mode, "over-credit"))
    return do_over_credit ();

  queue = open_queue ();

  if (g_str_equal (mode, "send"))
    status = do_send (queue, n, argc > 3 ? argv[3] : NULL);
  else if (g_str_equal (mode, "send-in-handler-then-crash"))
    status = do_send_in_handler_then_crash (queue, n);
  else if (g_str_equal (mode, "send-then-crash"))
    {
      do_send (queue, n, NULL);
      /* A process about to die makes sure its last sends left. */
      mpq_channel_flush (MPQ_CHANNEL (queue), -1, NULL);
      raise (SIGKILL);
    }
  else if (g_str_equal (mode, "value"))
    status = do_value (queue, n);
  else if (g_str_equal (mode, "text"))
    status = do_text (queue, n);
  else if (g_str_equal (mode, "put-no-wait"))
    status = do_put_no_wait (queue, n);
  else if (g_str_equal (mode, "echo-bytes"))
    status = do_echo_bytes (queue, n);
  else if (g_str_equal (mode, "take"))
    status = do_take (queue, n, FALSE);
  else if (g_str_equal (mode, "poll-empty"))
    status = do_poll_empty (queue);
  else if (g_str_equal (mode, "reject-one"))
    status = do_reject_one (queue, arg != NULL ? arg : "");
  else if (g_str_equal (mode, "fill"))
    status = do_fill (queue, n);
  else if (g_str_equal (mode, "is-empty"))
    status = do_is_empty (queue, arg != NULL ? arg : "");
  else if (g_str_equal (mode, "join-wait"))
    status = do_join_wait (queue);
  else if (g_str_equal (mode, "answer-one"))
    status = do_answer_one (queue);
  else if (g_str_equal (mode, "expect-closed"))
    status = do_expect_closed (queue);
  else if (g_str_equal (mode, "filter-worker"))
    status = do_filter_worker (queue);
  else if (g_str_equal (mode, "for-me-worker"))
    status = do_for_me_worker (queue);
  else if (g_str_equal (mode, "for-me-check"))
    status = do_for_me_check (queue, n);
  else if (g_str_equal (mode, "print-take"))
    status = do_take (queue, n, TRUE);
  else if (g_str_equal (mode, "for-me-expect-closed"))
    status = do_for_me_expect_closed (queue);
  else if (g_str_equal (mode, "worker"))
    status = do_worker (queue, n, WORKER_PLAIN, NULL);
  else if (g_str_equal (mode, "block-worker"))
    status = do_worker (queue, n, WORKER_BLOCK_FIRST, NULL);
  else if (g_str_equal (mode, "answer-then-block"))
    status = do_worker (queue, n, WORKER_ANSWER_THEN_BLOCK, NULL);
  else if (g_str_equal (mode, "warm-block-worker"))
    status = do_worker (queue, n, WORKER_WARM_BLOCK, NULL);
  else if (g_str_equal (mode, "nested-worker"))
    status = do_worker (queue, n, WORKER_NESTED, NULL);
  else if (g_str_equal (mode, "nested-receive-worker"))
    status = do_worker (queue, n, WORKER_NESTED_RECEIVE, NULL);
  else if (g_str_equal (mode, "die-in-handler"))
    status = do_worker (queue, 0, WORKER_PLAIN, arg);

  return status;
}
