/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* W3 and W4 over an MpqQueue, local or on Redis (--uri).
 *
 * W3: each child puts its messages; the parent takes them all with
 * receive (-1).
 *
 * W4: the parent puts every task, addressed to nobody, then collects by
 * dispatch (message-received::FINISHED in a main loop); routed dispatch
 * never hands a process a message for nobody that it put itself, so the
 * parent gets only the answers. The children take the tasks by dispatch
 * too (mpq_channel_start, message-received::DO in a main loop) and put a
 * FINISHED addressed to mpq_queue_get_parent_pid () for each.
 * --mode=children addresses task i to child i mod 4 instead (static
 * distribution, for comparison). --mode=for-me collects without a main
 * loop, with mpq_channel_receive_for_me (-1) (the routed sync receive).
 */

#include "bench-mpq.h"

#include <stdlib.h>
#include <unistd.h>

/* MpqQueue is there once <pymulproc/pymulproc.h> includes its header. */
#ifdef MPQ_TYPE_QUEUE

typedef struct
{
  BenchArgs  *args;
  MpqChannel *channel;
  GMainLoop  *loop;
  BenchCheck  check;
  gint        parent_pid;
} QueueRun;

/* On Redis (--uri) when asked: the queue is named after this process,
 * each run has its own keys. */
static MpqQueue *
new_parent_queue (BenchArgs *args)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *name = g_strdup_printf ("bench-%d", (int) getpid ());
  MpqQueue *queue = args->uri != NULL ? mpq_queue_new_for_uri (args->uri, name, 0, &error)
                                      : mpq_queue_new (0, &error);

  /* A build without Redis support: skipped, not failed. */
  if (queue == NULL && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED))
    {
      BenchResult *result = bench_result_new (args, "mpq");

      bench_result_string (result, "skipped", error->message);
      bench_result_print (result);
      exit (77);
    }
  if (queue == NULL)
    bench_fail ("new queue: %s", error->message);

  return queue;
}

static GPtrArray *
spawn_children (QueueRun *run,
                MpqQueue *queue)
{
  GPtrArray *children = g_ptr_array_new_with_free_func (g_object_unref);
  gint i;

  for (i = 0; i < run->args->children; i++)
    {
      g_autofree char *index = g_strdup_printf ("--index=%d", i);
      g_auto(GStrv) argv = bench_child_argv (run->args, (const char *[]) { index, NULL });
      g_autoptr(GError) error = NULL;
      GSubprocess *child = mpq_queue_spawn (queue, (const char * const *) argv, &error);

      if (child == NULL)
        bench_fail ("mpq_queue_spawn: %s", error->message);
      g_ptr_array_add (children, child);
    }

  return children;
}

static gint
child_pid (GPtrArray *children,
           guint      i)
{
  return (gint) g_ascii_strtoll (g_subprocess_get_identifier (children->pdata[i]), NULL, 10);
}

static void
wait_children (GPtrArray *children)
{
  guint i;

  for (i = 0; i < children->len; i++)
    bench_wait_child (children->pdata[i]);
}

static void
take_one (QueueRun   *run,
          MpqMessage *message,
          const char *request)
{
  bench_check_add (&run->check, bench_mpq_value (message, request));
}

static void
w3_parent (QueueRun *run)
{
  g_autoptr(MpqQueue) queue = new_parent_queue (run->args);
  g_autoptr(GPtrArray) children = NULL;

  run->channel = MPQ_CHANNEL (queue);
  bench_check_init (&run->check, run->args->count * run->args->children);
  children = spawn_children (run, queue);

  while (!bench_check_done (&run->check))
    {
      g_autoptr(MpqMessage) message = bench_mpq_receive (run->channel);

      take_one (run, message, MPQ_REQ_DO);
    }

  wait_children (children);
  mpq_channel_close (run->channel);
}

static void
on_finished (MpqChannel *channel,
             MpqMessage *message,
             gpointer    user_data)
{
  QueueRun *run = user_data;

  take_one (run, message, MPQ_REQ_FINISHED);
  if (bench_check_done (&run->check))
    g_main_loop_quit (run->loop);
}

static void
w4_parent (QueueRun *run)
{
  g_autoptr(MpqQueue) queue = new_parent_queue (run->args);
  g_autoptr(GPtrArray) children = NULL;
  gboolean by_child = g_str_equal (run->args->mode, "children");
  /* Redis queues have no dispatch yet (issue 14): for-me at both ends. */
  gboolean for_me = g_str_equal (run->args->mode, "for-me") || run->args->uri != NULL;
  gint64 i;

  run->channel = MPQ_CHANNEL (queue);
  run->loop = g_main_loop_new (NULL, FALSE);
  bench_check_init (&run->check, run->args->count);
  children = spawn_children (run, queue);

  if (!for_me)
    {
      g_signal_connect (queue, "message-received::" MPQ_REQ_FINISHED,
                        G_CALLBACK (on_finished), run);
      mpq_channel_start (run->channel);
    }

  for (i = 0; i < run->args->count; i++)
    {
      gint recipient = by_child ? child_pid (children, i % children->len) : 0;

      bench_mpq_send_value (run->channel, run->args, MPQ_REQ_DO, recipient, i);
    }

  while (for_me && !bench_check_done (&run->check))
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqMessage) message = mpq_channel_receive_for_me (run->channel, -1, &error);

      if (message == NULL)
        bench_fail ("receive_for_me: %s", error != NULL ? error->message : "nothing");
      take_one (run, message, MPQ_REQ_FINISHED);
    }
  if (!for_me)
    g_main_loop_run (run->loop);
  mpq_channel_stop (run->channel);
  g_signal_handlers_disconnect_by_data (queue, run);

  /* On Redis a participant's pid is its queue-wide id, not the OS's: a
   * DIE for anyone each, and each child takes one. */
  for (i = 0; i < children->len; i++)
    bench_mpq_send (run->channel, MPQ_REQ_DIE, run->args->uri != NULL ? 0 : child_pid (children, i),
                    NULL);

  wait_children (children);
  mpq_channel_close (run->channel);
  g_main_loop_unref (run->loop);
}

static void
on_child_do (MpqChannel *channel,
             MpqMessage *message,
             gpointer    user_data)
{
  QueueRun *run = user_data;

  bench_mpq_value (message, MPQ_REQ_DO);
  bench_mpq_send (channel, MPQ_REQ_FINISHED, run->parent_pid, mpq_message_get_data (message));
}

static void
on_child_die (MpqChannel *channel,
              MpqMessage *message,
              gpointer    user_data)
{
  QueueRun *run = user_data;

  g_main_loop_quit (run->loop);
}

/* W4 on Redis: the tasks by routed receive until a DIE. */
static void
answer_for_me (QueueRun *run)
{
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqMessage) message = mpq_channel_receive_for_me (run->channel, -1, &error);

      if (message == NULL)
        bench_fail ("child receive_for_me: %s", error != NULL ? error->message : "nothing");
      if (g_str_equal (mpq_message_get_request (message), MPQ_REQ_DIE))
        return;
      on_child_do (run->channel, message, run);
    }
}

static void
queue_child (QueueRun *run)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqQueue) queue = mpq_queue_new_for_child (&error);
  gint64 i;

  if (queue == NULL)
    bench_fail ("mpq_queue_new_for_child: %s", error->message);
  run->channel = MPQ_CHANNEL (queue);

  if (run->args->workload == BENCH_W3)
    {
      gint64 base = bench_first_value (run->args);

      for (i = 0; i < run->args->count; i++)
        bench_mpq_send_value (run->channel, run->args, MPQ_REQ_DO, 0, base + i);
    }
  else if (g_getenv (MPQ_QUEUE_URI_ENV) != NULL)
    {
      run->parent_pid = mpq_queue_get_parent_pid (queue);
      answer_for_me (run);
    }
  else
    {
      run->loop = g_main_loop_new (NULL, FALSE);
      run->parent_pid = mpq_queue_get_parent_pid (queue);
      g_signal_connect (queue, "message-received::" MPQ_REQ_DO, G_CALLBACK (on_child_do), run);
      g_signal_connect (queue, "message-received::" MPQ_REQ_DIE, G_CALLBACK (on_child_die), run);
      g_signal_connect (queue, "closed", G_CALLBACK (bench_mpq_on_closed), run);
      mpq_channel_start (run->channel);
      g_main_loop_run (run->loop);
      g_signal_handlers_disconnect_by_data (queue, run);
      g_main_loop_unref (run->loop);
    }

  mpq_channel_close (run->channel);
}

int
bench_mpq_queue (BenchArgs *args)
{
  QueueRun run = { 0 };

  run.args = args;

  if (args->child)
    {
      queue_child (&run);
      return EXIT_SUCCESS;
    }

  if (args->workload == BENCH_W3)
    w3_parent (&run);
  else
    w4_parent (&run);

  bench_finish_throughput (args, "mpq", &run.check, NULL);

  return EXIT_SUCCESS;
}

#else /* !MPQ_TYPE_QUEUE */

int
bench_mpq_queue (BenchArgs *args)
{
  BenchResult *result = bench_result_new (args, "mpq");

  bench_result_string (result, "skipped", "MpqQueue is not in this build yet");
  bench_result_print (result);

  return 77;
}

#endif
