/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* queue-worker.c — a C worker for any of the queue-parent examples.
 *
 * Spawned through Mpq.Queue.spawn(), it takes its tasks by dispatch: it
 * starts the queue and runs a main loop, and the queue emits
 * message-received for each message addressed to it or to nobody.
 * DO {"value": n} is answered FINISHED {"value": n * n} to the parent;
 * DIE ends it with status 0.
 */
#include <stdlib.h>
#include <pymulproc/pymulproc.h>

typedef struct
{
  GMainLoop *loop;
  GError    *error;  /* why it stopped early, or NULL */
} Worker;

static void
fail (Worker *worker,
      GError *error)
{
  if (worker->error == NULL)
    worker->error = error;
  else
    g_error_free (error);
  g_main_loop_quit (worker->loop);
}

static void
on_do (MpqChannel *channel,
       MpqMessage *message,
       gpointer    user_data)
{
  Worker *worker = user_data;
  JsonNode *data = mpq_message_get_data (message);
  JsonNode *value = NULL;
  GError *error = NULL;
  g_autofree char *answer = NULL;
  gint64 n;

  if (data != NULL && JSON_NODE_HOLDS_OBJECT (data))
    value = json_object_get_member (json_node_get_object (data), "value");
  if (value == NULL || !JSON_NODE_HOLDS_VALUE (value)
      || json_node_get_value_type (value) != G_TYPE_INT64
      || ABS (json_node_get_int (value)) > 3037000499)  /* n * n must fit */
    {
      g_autofree char *text = mpq_message_to_json (message, NULL);

      fail (worker, g_error_new (MPQ_ERROR, MPQ_ERROR_FAILED, "Cannot do %s", text));
      return;
    }

  n = json_node_get_int (value);
  answer = g_strdup_printf ("{\"value\":%" G_GINT64_FORMAT "}", n * n);

  /* The parent's pid comes from the queue's server: answers go there. */
  if (!mpq_channel_send_json (channel, MPQ_REQ_FINISHED, 0,
                              mpq_queue_get_parent_pid (MPQ_QUEUE (channel)), answer, &error))
    fail (worker, error);
}

static void
on_die (MpqChannel *channel,
        MpqMessage *message,
        gpointer    user_data)
{
  Worker *worker = user_data;

  g_main_loop_quit (worker->loop);
}

static void
on_closed (MpqChannel *channel,
           gpointer    user_data)
{
  fail (user_data, g_error_new (MPQ_ERROR, MPQ_ERROR_CLOSED, "The queue closed before DIE"));
}

int
main (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqQueue) queue = mpq_queue_new_for_child (&error);  /* MPQ_CHANNEL_FD */
  Worker worker = { NULL, NULL };

  if (queue == NULL)
    {
      g_printerr ("queue-worker: %s\n", error->message);
      return EXIT_FAILURE;
    }

  worker.loop = g_main_loop_new (NULL, FALSE);
  g_signal_connect (queue, "message-received::DO", G_CALLBACK (on_do), &worker);
  g_signal_connect (queue, "message-received::DIE", G_CALLBACK (on_die), &worker);
  g_signal_connect (queue, "closed", G_CALLBACK (on_closed), &worker);
  mpq_channel_start (MPQ_CHANNEL (queue));
  g_main_loop_run (worker.loop);

  /* Whatever was handed to us and not handled goes back to the queue. */
  g_signal_handlers_disconnect_by_data (queue, &worker);
  mpq_channel_close (MPQ_CHANNEL (queue));
  g_main_loop_unref (worker.loop);

  if (worker.error != NULL)
    {
      g_printerr ("queue-worker: %s\n", worker.error->message);
      g_error_free (worker.error);
      return EXIT_FAILURE;
    }

  return EXIT_SUCCESS;
}
