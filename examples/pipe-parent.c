/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pipe-parent.c — a C parent handing tasks to a child written in any language.
 *
 *   pipe-parent [CHILD COMMAND LINE...]   (default: /usr/bin/python3 pipe_child.py)
 *
 * It sends DO with a number (to square) or a text (to count its words), takes
 * the FINISHED answers {"task": …, "result": n} through the message-received
 * signal in a main loop, sends DIE after the last one and waits for the child.
 * Exits 0 only if every answer was right and the child exited with 0.
 */
#include <locale.h>
#include <stdlib.h>
#include <pymulproc/pymulproc.h>

static const struct { const char *json; gint64 result; } tasks[] = {
  { "7", 49 }, { "\"the quick brown fox\"", 4 }, { "-12", 144 },
  { "\"naïve café au lait\"", 4 }, { "1000000", 1000000000000 },
};

typedef struct
{
  GMainLoop *loop;
  gint       child_pid;
  guint      answers;  /* FINISHED messages taken */
  guint      right;    /* ... and right */
} State;

static void
on_finished (MpqChannel *channel,
             MpqMessage *message,
             gpointer    user_data)
{
  State *state = user_data;
  JsonNode *data = mpq_message_get_data (message);
  g_autoptr(JsonNode) task = NULL;
  g_autofree char *text = mpq_message_dup_data_json (message);
  gboolean right = FALSE;

  if (state->answers >= G_N_ELEMENTS (tasks))
    return;  /* one answer too many: not counted as right */

  task = json_from_string (tasks[state->answers].json, NULL);
  if (data != NULL && JSON_NODE_HOLDS_OBJECT (data))
    {
      JsonObject *answer = json_node_get_object (data);
      JsonNode *answer_task = json_object_get_member (answer, "task");

      right = mpq_message_get_sender_pid (message) == state->child_pid
              && answer_task != NULL && json_node_equal (answer_task, task)
              && json_object_get_int_member_with_default (answer, "result", -1)
                   == tasks[state->answers].result;
    }

  g_print ("answer %u from %d: %s %s\n", state->answers + 1,
           mpq_message_get_sender_pid (message), text, right ? "ok" : "WRONG");
  state->right += right;

  /* Every task answered: the poison pill. The child hangs up, we see ::closed. */
  if (++state->answers == G_N_ELEMENTS (tasks))
    mpq_channel_send (channel, MPQ_REQ_DIE, 0, 0, NULL, NULL);
}

static void
on_closed (MpqChannel *channel,
           gpointer    user_data)
{
  State *state = user_data;

  g_print ("the child hung up\n");
  g_main_loop_quit (state->loop);
}

int
main (int   argc,
      char *argv[])
{
  const char *default_argv[] = { "/usr/bin/python3", EXAMPLES_DIR "/pipe_child.py", NULL };
  const char * const *child_argv = argc > 1 ? (const char * const *) argv + 1 : default_argv;
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqPipe) pipe = NULL;
  g_autoptr(GSubprocess) child = NULL;
  const char *identifier;
  State state = { g_main_loop_new (NULL, FALSE), 0, 0, 0 };

  setlocale (LC_ALL, "");  /* so that g_print() shows the UTF-8 texts right */
  if ((pipe = mpq_pipe_new (&error)) == NULL
      || (child = mpq_pipe_spawn (pipe, child_argv, &error)) == NULL)
    {
      g_printerr ("pipe-parent: %s\n", error->message);
      return EXIT_FAILURE;
    }
  /* NULL if the child already exited and GLib reaped it. */
  identifier = g_subprocess_get_identifier (child);
  state.child_pid = identifier != NULL ? atoi (identifier) : 0;

  g_signal_connect (pipe, "message-received::FINISHED", G_CALLBACK (on_finished), &state);
  g_signal_connect (pipe, "closed", G_CALLBACK (on_closed), &state);
  mpq_channel_start (MPQ_CHANNEL (pipe));

  for (guint i = 0; i < G_N_ELEMENTS (tasks); i++)
    {
      g_print ("DO %s\n", tasks[i].json);
      if (!mpq_channel_send_json (MPQ_CHANNEL (pipe), MPQ_REQ_DO, 0, 0, tasks[i].json, &error))
        break;
    }

  if (error == NULL)
    g_main_loop_run (state.loop);  /* until the child hangs up */

  if (error == NULL)
    g_subprocess_wait_check (child, NULL, &error);
  if (error != NULL)
    g_printerr ("pipe-parent: %s\n", error->message);

  g_print ("%u of %zu answers right; child %s\n", state.right, G_N_ELEMENTS (tasks),
           error == NULL ? "exited with 0" : "failed");
  g_main_loop_unref (state.loop);

  return error == NULL && state.right == G_N_ELEMENTS (tasks) ? EXIT_SUCCESS : EXIT_FAILURE;
}
