/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pipe-child.c — a C child for any of the pipe-parent examples.
 *
 * Spawned through Mpq.Pipe.spawn(), it takes messages with a blocking
 * receive: DO 7 is answered FINISHED {"task": 7, "result": 49}, DO "a text"
 * is answered with the number of words, DIE ends it with status 0.
 */
#include <stdlib.h>
#include <pymulproc/pymulproc.h>

static gint64
count_words (const char *text)
{
  gint64 words = 0;
  gboolean in_word = FALSE;

  for (; *text != '\0'; text++)
    {
      gboolean space = g_ascii_isspace (*text);

      words += !space && !in_word;
      in_word = !space;
    }

  return words;
}

int
main (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqPipe) pipe = mpq_pipe_new_for_child (&error);

  while (pipe != NULL)
    {
      /* -1: wait for as long as it takes; fails with MPQ_ERROR_CLOSED if the
       * parent hangs up. */
      g_autoptr(MpqMessage) message = mpq_channel_receive (MPQ_CHANNEL (pipe), -1, NULL, NULL,
                                                           &error);
      g_autoptr(JsonBuilder) builder = json_builder_new ();
      g_autoptr(JsonNode) answer = NULL;
      JsonNode *task;
      gint64 result;

      if (message == NULL || g_str_equal (mpq_message_get_request (message), MPQ_REQ_DIE))
        break;
      if (!g_str_equal (mpq_message_get_request (message), MPQ_REQ_DO))
        continue;  /* not for us: ignore */

      task = mpq_message_get_data (message);
      if (task != NULL && JSON_NODE_HOLDS_VALUE (task)
          && json_node_get_value_type (task) == G_TYPE_STRING)
        result = count_words (json_node_get_string (task));
      else if (task != NULL && JSON_NODE_HOLDS_VALUE (task)
               && json_node_get_value_type (task) == G_TYPE_INT64)
        result = json_node_get_int (task) * json_node_get_int (task);
      else
        {
          g_autofree char *text = mpq_message_to_json (message, NULL);

          g_set_error (&error, MPQ_ERROR, MPQ_ERROR_FAILED, "Cannot do %s", text);
          break;
        }

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "task");
      json_builder_add_value (builder, json_node_copy (task));
      json_builder_set_member_name (builder, "result");
      json_builder_add_int_value (builder, result);
      json_builder_end_object (builder);
      answer = json_builder_get_root (builder);

      /* Answer whoever asked: the recipient is the sender of the task. */
      if (!mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_FINISHED, 0,
                             mpq_message_get_sender_pid (message), answer, &error))
        break;
    }

  if (error != NULL)
    {
      g_printerr ("pipe-child: %s\n", error->message);
      return EXIT_FAILURE;
    }

  return EXIT_SUCCESS;
}
