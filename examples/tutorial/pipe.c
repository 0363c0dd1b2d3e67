/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pipe.c — tutorial step 1: a parent and a child on an MpqPipe.
 *
 *   pipe            the parent: spawns itself with --child, asks for three
 *                   squares, tells the child to die and waits for it
 *   pipe --child    the child's side (only as spawned by the parent)
 */
#include <stdlib.h>
#include <pymulproc/pymulproc.h>

static int
run_child (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqPipe) pipe = mpq_pipe_new_for_child (&error);

  while (pipe != NULL)
    {
      /* -1: wait as long as it takes (MPQ_ERROR_CLOSED if the parent goes). */
      g_autoptr(MpqMessage) task = mpq_channel_receive (MPQ_CHANNEL (pipe), -1,
                                                        NULL, NULL, &error);
      g_autofree char *square = NULL;
      gint64 n;

      if (task == NULL || g_str_equal (mpq_message_get_request (task), MPQ_REQ_DIE))
        break;

      n = json_node_get_int (mpq_message_get_data (task));
      square = g_strdup_printf ("%" G_GINT64_FORMAT, n * n);
      /* Sender 0: my own pid. Recipient: whoever asked. */
      if (!mpq_channel_send_json (MPQ_CHANNEL (pipe), MPQ_REQ_FINISHED, 0,
                                  mpq_message_get_sender_pid (task), square, &error))
        break;
    }

  if (error != NULL)
    {
      g_printerr ("child: %s\n", error->message);
      return EXIT_FAILURE;
    }
  return EXIT_SUCCESS;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqPipe) pipe = NULL;
  g_autoptr(GSubprocess) child = NULL;
  const char *child_argv[] = { argv[0], "--child", NULL };

  if (argc > 1 && g_str_equal (argv[1], "--child"))
    return run_child ();

  pipe = mpq_pipe_new (&error);
  if (pipe != NULL)
    child = mpq_pipe_spawn (pipe, child_argv, &error);

  for (int n = 1; child != NULL && n <= 3; n++)
    {
      g_autofree char *data = g_strdup_printf ("%d", n);
      g_autoptr(MpqMessage) answer = NULL;
      g_autofree char *square = NULL;

      if (!mpq_channel_send_json (MPQ_CHANNEL (pipe), MPQ_REQ_DO, 0, 0, data, &error))
        break;
      answer = mpq_channel_receive (MPQ_CHANNEL (pipe), -1, NULL, NULL, &error);
      if (answer == NULL)
        break;
      square = mpq_message_dup_data_json (answer);
      g_print ("%d squared is %s\n", n, square);
    }

  if (error == NULL
      && mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_DIE, 0, 0, NULL, &error)
      && g_subprocess_wait_check (child, NULL, &error))
    g_print ("the child exited\n");

  if (error != NULL)
    {
      g_printerr ("parent: %s\n", error->message);
      return EXIT_FAILURE;
    }
  return EXIT_SUCCESS;
}
