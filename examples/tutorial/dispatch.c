/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dispatch.c — tutorial step 3: messages as signals in a GMainLoop.
 *
 *   dispatch             the parent: spawns itself twice with --worker,
 *                        puts ten tasks, counts the answers in a
 *                        message-received::FINISHED handler
 *   dispatch --worker    a worker answering in message-received::DO
 *                        (only as spawned by the parent)
 */
#include <stdlib.h>
#include <pymulproc/pymulproc.h>

#define N_WORKERS 2
#define N_TASKS   10

static void
on_do (MpqChannel *queue,
       MpqMessage *task,
       gpointer    user_data)
{
  g_autofree char *square = NULL;
  gint64 n = json_node_get_int (mpq_message_get_data (task));

  square = g_strdup_printf ("%" G_GINT64_FORMAT, n * n);
  mpq_channel_send_json (queue, MPQ_REQ_FINISHED, 0,
                         mpq_queue_get_parent_pid (MPQ_QUEUE (queue)), square, NULL);
}

static int
run_worker (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqQueue) queue = mpq_queue_new_for_child (&error);
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);

  if (queue == NULL)
    {
      g_printerr ("worker: %s\n", error->message);
      return EXIT_FAILURE;
    }

  g_signal_connect (queue, "message-received::DO", G_CALLBACK (on_do), NULL);
  g_signal_connect_swapped (queue, "message-received::DIE", G_CALLBACK (g_main_loop_quit), loop);
  g_signal_connect_swapped (queue, "closed", G_CALLBACK (g_main_loop_quit), loop);
  /* From now on, what is for me (or for nobody) comes as signals. */
  mpq_channel_start (MPQ_CHANNEL (queue));
  g_main_loop_run (loop);
  return EXIT_SUCCESS;
}

typedef struct
{
  GMainLoop *loop;
  gint64     sum;
  int        n_answers;
} Parent;

static void
on_finished (MpqChannel *queue,
             MpqMessage *answer,
             Parent     *parent)
{
  parent->sum += json_node_get_int (mpq_message_get_data (answer));
  if (++parent->n_answers == N_TASKS)
    g_main_loop_quit (parent->loop);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqQueue) queue = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  GSubprocess *workers[N_WORKERS] = { NULL, };
  const char *worker_argv[] = { argv[0], "--worker", NULL };
  Parent parent = { loop, 0, 0 };
  int i;

  if (argc > 1 && g_str_equal (argv[1], "--worker"))
    return run_worker ();

  queue = mpq_queue_new (0, &error);
  for (i = 0; queue != NULL && i < N_WORKERS; i++)
    if ((workers[i] = mpq_queue_spawn (queue, worker_argv, &error)) == NULL)
      break;
  if (error != NULL)
    {
      g_printerr ("parent: %s\n", error->message);
      return EXIT_FAILURE;
    }

  g_signal_connect (queue, "message-received::FINISHED", G_CALLBACK (on_finished), &parent);
  mpq_channel_start (MPQ_CHANNEL (queue));

  for (i = 1; i <= N_TASKS; i++)
    {
      g_autofree char *data = g_strdup_printf ("%d", i);

      mpq_channel_send_json (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0, data, NULL);
    }
  g_main_loop_run (loop);  /* until on_finished () counted every answer */
  g_print ("%d answers, their sum is %" G_GINT64_FORMAT "\n", parent.n_answers, parent.sum);

  for (i = 0; i < N_WORKERS; i++)
    mpq_channel_send (MPQ_CHANNEL (queue), MPQ_REQ_DIE, 0,
                      atoi (g_subprocess_get_identifier (workers[i])), NULL, NULL);
  for (i = 0; i < N_WORKERS; i++)
    {
      if (error == NULL)
        g_subprocess_wait_check (workers[i], NULL, &error);
      g_clear_object (&workers[i]);
    }
  if (error != NULL)
    {
      g_printerr ("parent: %s\n", error->message);
      return EXIT_FAILURE;
    }
  g_print ("the workers exited\n");
  return EXIT_SUCCESS;
}
