/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* queue.c — tutorial step 2: a parent and three workers on an MpqQueue.
 *
 *   queue             the parent: spawns itself three times with --worker,
 *                     puts ten tasks for anyone, takes the ten answers,
 *                     sends each worker a DIE, joins the queue
 *   queue --worker    a worker (only as spawned by the parent)
 */
#include <stdlib.h>
#include <pymulproc/pymulproc.h>

#define N_WORKERS 3
#define N_TASKS   10

static int
run_worker (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqQueue) queue = mpq_queue_new_for_child (&error);

  while (queue != NULL)
    {
      /* The next message for me or for nobody: a task or my DIE. */
      g_autoptr(MpqMessage) task = mpq_channel_receive_for_me (MPQ_CHANNEL (queue), -1, &error);
      g_autofree char *square = NULL;
      gint64 n;

      if (task == NULL || g_str_equal (mpq_message_get_request (task), MPQ_REQ_DIE))
        break;

      n = json_node_get_int (mpq_message_get_data (task));
      square = g_strdup_printf ("%" G_GINT64_FORMAT, n * n);
      if (!mpq_channel_send_json (MPQ_CHANNEL (queue), MPQ_REQ_FINISHED, 0,
                                  mpq_queue_get_parent_pid (queue), square, &error))
        break;
    }

  if (error != NULL)
    {
      g_printerr ("worker: %s\n", error->message);
      return EXIT_FAILURE;
    }
  return EXIT_SUCCESS;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqQueue) queue = NULL;
  GSubprocess *workers[N_WORKERS] = { NULL, };
  const char *worker_argv[] = { argv[0], "--worker", NULL };
  gint64 sum = 0;
  int i;

  if (argc > 1 && g_str_equal (argv[1], "--worker"))
    return run_worker ();

  queue = mpq_queue_new (0, &error);  /* 0: unbounded */
  for (i = 0; queue != NULL && i < N_WORKERS; i++)
    if ((workers[i] = mpq_queue_spawn (queue, worker_argv, &error)) == NULL)
      break;

  /* Tasks for nobody in particular: whichever worker is free takes one. */
  for (i = 1; error == NULL && i <= N_TASKS; i++)
    {
      g_autofree char *data = g_strdup_printf ("%d", i);

      mpq_channel_send_json (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0, data, &error);
    }

  /* The answers, addressed to me; never my own tasks. */
  for (i = 0; error == NULL && i < N_TASKS; i++)
    {
      g_autoptr(MpqMessage) answer = mpq_channel_receive_for_me (MPQ_CHANNEL (queue), -1,
                                                                 &error);

      if (answer != NULL)
        sum += json_node_get_int (mpq_message_get_data (answer));
    }
  g_print ("the sum of the squares of 1 to %d is %" G_GINT64_FORMAT "\n", N_TASKS, sum);

  /* A poison pill for each worker, then wait until every message was taken. */
  for (i = 0; error == NULL && i < N_WORKERS; i++)
    {
      int pid = atoi (g_subprocess_get_identifier (workers[i]));

      mpq_channel_send (MPQ_CHANNEL (queue), MPQ_REQ_DIE, 0, pid, NULL, &error);
    }
  if (error == NULL && mpq_queue_join (queue, -1, &error))
    g_print ("joined: every message was taken\n");

  for (i = 0; i < N_WORKERS && workers[i] != NULL; i++)
    {
      if (error == NULL)
        g_subprocess_wait_check (workers[i], NULL, &error);
      else
        g_subprocess_force_exit (workers[i]);
      g_clear_object (&workers[i]);
    }

  if (error != NULL)
    {
      g_printerr ("parent: %s\n", error->message);
      return EXIT_FAILURE;
    }
  g_print ("%d workers exited\n", N_WORKERS);
  return EXIT_SUCCESS;
}
