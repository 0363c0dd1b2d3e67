/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the tests of a queue on Redis share (test-queue-redis*.c). */
#include "queue-redis-test-util.h"

RedisTestServer *server;

MpqQueue *
open_queue (const char *name,
            guint       max_size)
{
  return redis_test_open_queue (server, name, max_size);
}

gint
pid_of (MpqQueue *queue)
{
  gint pid = 0;

  g_object_get (queue, "pid", &pid, NULL);
  return pid;
}

void
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

gint64
value_of (MpqMessage *message)
{
  JsonNode *data = mpq_message_get_data (message);

  g_assert_nonnull (data);
  return json_node_get_int (data);
}

MpqMessage *
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
gint64
take_value (MpqQueue *queue,
            gint      timeout_ms)
{
  g_autoptr(MpqMessage) message = take (queue, timeout_ms);

  g_assert_nonnull (message);
  return value_of (message);
}

MpqMessage *
take_for_me (MpqQueue *queue,
             gint      timeout_ms)
{
  g_autoptr(GError) error = NULL;
  MpqMessage *message = mpq_channel_receive_for_me (MPQ_CHANNEL (queue), timeout_ms, &error);

  g_assert_no_error (error);
  return message;
}

void
assert_exits_zero (GSubprocess *child)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_wait_check (child, NULL, &error);
  g_assert_no_error (error);
}

/* Tells the worker whose queue-wide id is @worker to die, waits until
 * @child exited 0, then for the queue to be done with what it held. */
void
stop_worker (MpqQueue    *queue,
             gint         worker,
             GSubprocess *child)
{
  g_autoptr(GError) error = NULL;

  send_value (queue, MPQ_REQ_DIE, worker, 0);
  assert_exits_zero (child);
  g_assert_true (mpq_queue_join (queue, -1, &error));
  g_assert_no_error (error);
}

void
keep_result (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

MpqMessage *
finish_receive (MpqQueue     *queue,
                GAsyncResult *result)
{
  g_autoptr(GError) error = NULL;
  MpqMessage *message = mpq_channel_receive_finish (MPQ_CHANNEL (queue), result, &error);

  g_assert_no_error (error);
  g_assert_nonnull (message);
  return message;
}

void
wait_result (GAsyncResult **result)
{
  while (*result == NULL)
    g_main_context_iteration (NULL, TRUE);
}

void
send_task (MpqQueue *queue,
           gint64    value)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *data = g_strdup_printf ("{\"value\":%" G_GINT64_FORMAT "}", value);

  mpq_channel_send_json (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0, data, &error);
  g_assert_no_error (error);
}

gint64
answer_value (MpqMessage *message)
{
  g_assert_cmpstr (mpq_message_get_request (message), ==, MPQ_REQ_FINISHED);
  return json_object_get_int_member (json_node_get_object (mpq_message_get_data (message)),
                                     "value");
}

GSubprocess *
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

void
on_closed (MpqChannel *channel,
           gpointer    user_data)
{
  (*(guint *) user_data)++;
}
