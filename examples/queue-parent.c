/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* queue-parent.c — a C parent spreading tasks over workers in any language.
 *
 *   queue-parent [WORKER COMMAND LINE [-- WORKER COMMAND LINE]...]
 *                (default: three queue-worker, the C worker built with it)
 *
 * One worker is spawned for each command line, all on one MpqQueue. The
 * parent puts 20 tasks DO {"value": n}, addressed to nobody: whichever
 * worker has room takes the next one, so a fast worker does more. Each
 * worker answers FINISHED {"value": n * n} to the parent, which collects the
 * answers through message-received::FINISHED in a main loop. Then it sends
 * the poison pills, one DIE addressed to each worker, joins the queue (every
 * message put has been taken) and waits for the workers. Exits 0 only if
 * the sum of the answers is right and every worker exited with 0.
 */
#include <stdlib.h>
#include <pymulproc/pymulproc.h>

#define N_TASKS 20
#define EXPECTED_SUM (N_TASKS * (N_TASKS + 1) * (2 * N_TASKS + 1) / 6)  /* 2870 */
#define TIMEOUT_SECONDS 30

typedef struct
{
  char        *name;     /* its command line, shortened */
  GSubprocess *process;
  gint         pid;
  guint        tasks;    /* answers it sent */
} Worker;

typedef struct
{
  GMainLoop *loop;
  GArray    *workers;
  guint      answers;
  gint64     sum;
} Parent;

static void
worker_clear (Worker *worker)
{
  g_free (worker->name);
  g_clear_object (&worker->process);
}

/* "/usr/bin/python3 /src/examples/queue_worker.py" -> "python3 queue_worker.py" */
static char *
short_name (const char * const *command)
{
  GString *name = g_string_new (NULL);

  for (guint i = 0; command[i] != NULL; i++)
    {
      g_autofree char *base = g_path_get_basename (command[i]);

      g_string_append_printf (name, "%s%s", i > 0 ? " " : "", base);
    }

  return g_string_free (name, FALSE);
}

static void
on_finished (MpqChannel *channel,
             MpqMessage *message,
             gpointer    user_data)
{
  Parent *parent = user_data;
  JsonNode *data = mpq_message_get_data (message);

  if (data == NULL || !JSON_NODE_HOLDS_OBJECT (data))
    return;

  parent->sum += json_object_get_int_member_with_default (json_node_get_object (data),
                                                          "value", 0);
  for (guint i = 0; i < parent->workers->len; i++)
    if (g_array_index (parent->workers, Worker, i).pid == mpq_message_get_sender_pid (message))
      g_array_index (parent->workers, Worker, i).tasks++;

  if (++parent->answers == N_TASKS)
    {
      mpq_channel_stop (channel);
      g_main_loop_quit (parent->loop);
    }
}

static gboolean
on_timeout (gpointer user_data)
{
  Parent *parent = user_data;

  g_main_loop_quit (parent->loop);
  return G_SOURCE_REMOVE;
}

/* Spawns a worker for each command line, then puts the tasks. */
static gboolean
start_work (MpqQueue   *queue,
            GPtrArray  *commands,
            GArray     *workers,
            GError    **error)
{
  for (guint i = 0; i < commands->len; i++)
    {
      Worker worker = { short_name (commands->pdata[i]), NULL, 0, 0 };
      const char *identifier;

      worker.process = mpq_queue_spawn (queue, commands->pdata[i], error);
      if (worker.process == NULL)
        {
          g_free (worker.name);
          return FALSE;
        }
      /* NULL if the worker already exited and GLib reaped it. */
      identifier = g_subprocess_get_identifier (worker.process);
      worker.pid = identifier != NULL ? atoi (identifier) : 0;
      g_array_append_val (workers, worker);
      g_print ("worker %d: %s\n", worker.pid, worker.name);
    }

  /* The tasks, for anybody (but never handed back to the parent that put them). */
  for (int n = 1; n <= N_TASKS; n++)
    {
      g_autofree char *task = g_strdup_printf ("{\"value\":%d}", n);

      if (!mpq_channel_send_json (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0, task, error))
        return FALSE;
    }
  g_print ("put %d tasks\n", N_TASKS);

  return TRUE;
}

int
main (int   argc,
      char *argv[])
{
  const char *default_command[] = { QUEUE_WORKER, NULL };
  g_autoptr(GPtrArray) commands = g_ptr_array_new ();
  g_autoptr(GArray) workers = g_array_new (FALSE, TRUE, sizeof (Worker));
  g_autoptr(MpqQueue) queue = NULL;
  g_autoptr(GError) error = NULL;
  Parent parent = { g_main_loop_new (NULL, FALSE), workers, 0, 0 };
  guint failed = 0;

  /* Each "--" ends a worker's command line: it becomes the NULL that ends
   * that command's argv (argv[argc] is NULL already). */
  for (int i = 1, start = 1; i <= argc; i++)
    if (argv[i] == NULL || g_str_equal (argv[i], "--"))
      {
        argv[i] = NULL;
        if (i > start)
          g_ptr_array_add (commands, argv + start);
        start = i + 1;
      }
  if (commands->len == 0)
    for (guint i = 0; i < 3; i++)
      g_ptr_array_add (commands, default_command);

  g_array_set_clear_func (workers, (GDestroyNotify) worker_clear);
  queue = mpq_queue_new (0, &error);  /* 0: no bound on its size */

  if (queue != NULL && start_work (queue, commands, workers, &error))
    {
      guint timeout_id;

      /* The answers are addressed to the parent: its own dispatch gets them,
       * while a thread of the library serves the workers. */
      g_signal_connect (queue, "message-received::FINISHED", G_CALLBACK (on_finished), &parent);
      mpq_channel_start (MPQ_CHANNEL (queue));
      timeout_id = g_timeout_add_seconds (TIMEOUT_SECONDS, on_timeout, &parent);
      g_main_loop_run (parent.loop);
      if (parent.answers == N_TASKS)
        g_source_remove (timeout_id);
      else
        g_set_error (&error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT, "%u answers of %d after %d s",
                     parent.answers, N_TASKS, TIMEOUT_SECONDS);
    }

  /* The pills, one for each worker, addressed to it. */
  for (guint i = 0; error == NULL && i < workers->len; i++)
    mpq_channel_send (MPQ_CHANNEL (queue), MPQ_REQ_DIE, 0,
                      g_array_index (workers, Worker, i).pid, NULL, &error);

  /* join: every message ever put has been taken, the pills included. */
  if (error == NULL && mpq_queue_join (queue, TIMEOUT_SECONDS * 1000, &error))
    g_print ("joined: every message was taken\n");
  if (error != NULL)
    g_printerr ("queue-parent: %s\n", error->message);

  for (guint i = 0; i < workers->len; i++)
    {
      Worker *worker = &g_array_index (workers, Worker, i);
      g_autoptr(GError) exit_error = NULL;

      if (error != NULL)
        g_subprocess_force_exit (worker->process);
      if (!g_subprocess_wait_check (worker->process, NULL, &exit_error))
        {
          g_printerr ("queue-parent: worker %d: %s\n", worker->pid, exit_error->message);
          failed++;
        }
      g_print ("worker %d (%s) did %u tasks\n", worker->pid, worker->name, worker->tasks);
    }

  g_print ("sum of the squares of 1 to %d: %" G_GINT64_FORMAT " (%s)\n", N_TASKS, parent.sum,
           parent.sum == EXPECTED_SUM ? "right" : "WRONG");
  g_main_loop_unref (parent.loop);

  return error == NULL && failed == 0 && parent.sum == EXPECTED_SUM ? EXIT_SUCCESS
                                                                    : EXIT_FAILURE;
}
