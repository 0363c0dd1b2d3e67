/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* mpq-bench-mpq: the benchmark's Mpq side, through the public API only.
 *
 * W1, W2, W5 run over an MpqPipe (this file); W3 and W4 over an MpqQueue
 * (bench-mpq-queue.c). Every message a process receives is an MpqMessage
 * whose data, a JsonNode, is read for "value" and "payload". */

#include "bench-mpq.h"

#include <glib/gstdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct
{
  BenchArgs  *args;
  MpqChannel *channel;
  GMainLoop  *loop;
  BenchCheck  check;
  GArray     *latencies;   /* W2: ns per timed echo */
  gint64      sent;        /* W2: DOs sent so far */
  gint64      sent_ns;     /* W2: when the last DO was sent */
  gint64      spin_us;     /* W5: the reader's work per message, 0 for W1 */
} PipeRun;

gint64
bench_mpq_value (MpqMessage *message,
                 const char *request)
{
  if (g_strcmp0 (mpq_message_get_request (message), request) != 0)
    bench_fail ("expected %s, got %s", request, mpq_message_get_request (message));
  if (mpq_message_get_sender_pid (message) <= 0)
    bench_fail ("a message without a sender");

  return bench_data_value (mpq_message_get_data (message));
}

void
bench_mpq_send (MpqChannel *channel,
                const char *request,
                gint        recipient,
                JsonNode   *data)
{
  g_autoptr(GError) error = NULL;

  if (!mpq_channel_send (channel, request, 0, recipient, data, &error))
    bench_fail ("send: %s", error->message);
}

void
bench_mpq_send_value (MpqChannel      *channel,
                      const BenchArgs *args,
                      const char      *request,
                      gint             recipient,
                      gint64           value)
{
  g_autoptr(GError) error = NULL;
  char text[128];

  if (g_str_equal (args->data, "node"))
    {
      g_autoptr(JsonNode) data = bench_data_node (value);

      bench_mpq_send (channel, request, recipient, data);
      return;
    }

  if (!mpq_channel_send_json (channel, request, 0, recipient,
                              bench_data_json (text, sizeof text, value), &error))
    bench_fail ("send_json: %s", error->message);
}

void
bench_mpq_on_closed (MpqChannel *channel,
                     gpointer    user_data)
{
  bench_fail ("the peer hung up early");
}

/* W1, W5: the parent takes every message. */
static void
on_do (MpqChannel *channel,
       MpqMessage *message,
       gpointer    user_data)
{
  PipeRun *run = user_data;

  bench_check_add (&run->check, bench_mpq_value (message, MPQ_REQ_DO));
  if (run->spin_us > 0)
    bench_spin_us (run->spin_us);
  if (bench_check_done (&run->check))
    g_main_loop_quit (run->loop);
}

static void
receive_all (PipeRun *run)
{
  g_autoptr(GError) error = NULL;

  bench_check_init (&run->check, run->args->count);

  if (bench_is_loop (run->args))
    {
      g_signal_connect (run->channel, "message-received::" MPQ_REQ_DO, G_CALLBACK (on_do), run);
      g_signal_connect (run->channel, "closed", G_CALLBACK (bench_mpq_on_closed), run);
      mpq_channel_start (run->channel);
      g_main_loop_run (run->loop);
      mpq_channel_stop (run->channel);
      g_signal_handlers_disconnect_by_data (run->channel, run);
      return;
    }

  while (!bench_check_done (&run->check))
    {
      g_autoptr(MpqMessage) message = mpq_channel_receive (run->channel, -1, NULL, NULL, &error);

      if (message == NULL)
        bench_fail ("receive: %s", error != NULL ? error->message : "nothing");

      bench_check_add (&run->check, bench_mpq_value (message, MPQ_REQ_DO));
      if (run->spin_us > 0)
        bench_spin_us (run->spin_us);
    }
}

/* W2: one DO out; its FINISHED back is one round trip. */
static void
send_next (PipeRun *run)
{
  run->sent_ns = bench_now_ns ();
  bench_mpq_send_value (run->channel, run->args, MPQ_REQ_DO, 0, run->sent);
  run->sent++;
}

/* Returns TRUE when every echo is done. */
static gboolean
take_echo (PipeRun    *run,
           MpqMessage *message)
{
  gint64 elapsed = bench_now_ns () - run->sent_ns;
  gint64 total = run->args->warmup + run->args->count;

  if (bench_mpq_value (message, MPQ_REQ_FINISHED) != run->sent - 1)
    bench_fail ("echo %" G_GINT64_FORMAT " came back wrong", run->sent - 1);
  if (run->sent > run->args->warmup)
    g_array_append_val (run->latencies, elapsed);

  if (run->sent == total)
    return TRUE;

  send_next (run);
  return FALSE;
}

static void
on_finished (MpqChannel *channel,
             MpqMessage *message,
             gpointer    user_data)
{
  PipeRun *run = user_data;

  if (take_echo (run, message))
    g_main_loop_quit (run->loop);
}

static void
echo_all (PipeRun *run)
{
  g_autoptr(GError) error = NULL;
  BenchResult *result;
  double median, p99;

  run->latencies = g_array_sized_new (FALSE, FALSE, sizeof (gint64), run->args->count);

  if (bench_is_loop (run->args))
    {
      g_signal_connect (run->channel, "message-received::" MPQ_REQ_FINISHED,
                        G_CALLBACK (on_finished), run);
      g_signal_connect (run->channel, "closed", G_CALLBACK (bench_mpq_on_closed), run);
      mpq_channel_start (run->channel);
      send_next (run);
      g_main_loop_run (run->loop);
      mpq_channel_stop (run->channel);
      g_signal_handlers_disconnect_by_data (run->channel, run);
    }
  else
    {
      gboolean done = FALSE;

      send_next (run);
      while (!done)
        {
          g_autoptr(MpqMessage) message = mpq_channel_receive (run->channel, -1, NULL, NULL,
                                                               &error);

          if (message == NULL)
            bench_fail ("receive: %s", error != NULL ? error->message : "nothing");
          done = take_echo (run, message);
        }
    }

  bench_mpq_send (run->channel, MPQ_REQ_DIE, 0, NULL);

  bench_latency_stats (run->latencies, &median, &p99);
  result = bench_result_new (run->args, "mpq");
  bench_result_int (result, "count", run->args->count);
  bench_result_int (result, "warmup", run->args->warmup);
  bench_result_double (result, "median_us", median);
  bench_result_double (result, "p99_us", p99);
  bench_result_print (result);
  g_array_unref (run->latencies);
}

static void
pipe_parent (BenchArgs *args)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqPipe) pipe = NULL;
  g_autoptr(GSubprocess) child = NULL;
  g_autofree char *rss_file = NULL;
  g_autofree char *rss_arg = NULL;
  g_auto(GStrv) argv = NULL;
  PipeRun run = { 0 };

  pipe = mpq_pipe_new (&error);
  if (pipe == NULL)
    bench_fail ("mpq_pipe_new: %s", error->message);

  rss_file = g_strdup_printf ("%s/mpq-bench-rss-%d", g_get_tmp_dir (), (int) getpid ());
  rss_arg = g_strdup_printf ("--rss-file=%s", rss_file);
  argv = bench_child_argv (args, (const char *[]) { rss_arg, NULL });

  child = mpq_pipe_spawn (pipe, (const char * const *) argv, &error);
  if (child == NULL)
    bench_fail ("mpq_pipe_spawn: %s", error->message);

  run.args = args;
  run.channel = MPQ_CHANNEL (pipe);
  run.loop = g_main_loop_new (NULL, FALSE);
  run.spin_us = args->workload == BENCH_W5 ? args->spin_us : 0;

  if (args->workload == BENCH_W2)
    echo_all (&run);
  else
    receive_all (&run);

  bench_wait_child (child);
  mpq_channel_close (run.channel);

  if (args->workload != BENCH_W2)
    {
      gint64 child_rss = -1;

      bench_check_finish (&run.check);
      if (args->workload == BENCH_W5)
        child_rss = bench_read_rss_file (rss_file);
      bench_print_throughput (args, "mpq", &run.check,
                              args->workload == BENCH_W5 ? bench_peak_rss_kib () : -1,
                              child_rss);
    }

  g_unlink (rss_file);
  g_main_loop_unref (run.loop);
}

/* The child of W2 in a main loop: every DO goes back as FINISHED. */
static void
on_child_do (MpqChannel *channel,
             MpqMessage *message,
             gpointer    user_data)
{
  bench_mpq_value (message, MPQ_REQ_DO);
  bench_mpq_send (channel, MPQ_REQ_FINISHED, mpq_message_get_sender_pid (message),
                mpq_message_get_data (message));
}

static void
on_child_die (MpqChannel *channel,
              MpqMessage *message,
              gpointer    user_data)
{
  g_main_loop_quit (user_data);
}

static void
pipe_child (BenchArgs *args)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqPipe) pipe = mpq_pipe_new_for_child (&error);
  MpqChannel *channel;
  gint64 i;

  if (pipe == NULL)
    bench_fail ("mpq_pipe_new_for_child: %s", error->message);
  channel = MPQ_CHANNEL (pipe);

  if (args->workload != BENCH_W2)
    {
      for (i = 0; i < args->count; i++)
        bench_mpq_send_value (channel, args, MPQ_REQ_DO, 0, i);
    }
  else if (bench_is_loop (args))
    {
      g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);

      g_signal_connect (pipe, "message-received::" MPQ_REQ_DO, G_CALLBACK (on_child_do), NULL);
      g_signal_connect (pipe, "message-received::" MPQ_REQ_DIE, G_CALLBACK (on_child_die), loop);
      g_signal_connect (pipe, "closed", G_CALLBACK (bench_mpq_on_closed), NULL);
      mpq_channel_start (channel);
      g_main_loop_run (loop);
      g_signal_handlers_disconnect_by_data (pipe, loop);
      g_signal_handlers_disconnect_by_func (pipe, bench_mpq_on_closed, NULL);
    }
  else
    {
      for (;;)
        {
          g_autoptr(MpqMessage) message = mpq_channel_receive (channel, -1, NULL, NULL, &error);

          if (message == NULL)
            bench_fail ("receive: %s", error != NULL ? error->message : "nothing");
          if (g_str_equal (mpq_message_get_request (message), MPQ_REQ_DIE))
            break;
          on_child_do (channel, message, NULL);
        }
    }

  mpq_channel_close (channel);
  bench_write_rss_file (args->rss_file);
}

int
main (int   argc,
      char *argv[])
{
  BenchArgs args = { 0 };
  int status = EXIT_SUCCESS;

  if (!bench_parse_args (&args, &argc, &argv, NULL))
    return 2;

  switch (args.workload)
    {
    case BENCH_W1:
    case BENCH_W2:
    case BENCH_W5:
      if (args.child)
        pipe_child (&args);
      else
        pipe_parent (&args);
      break;

    case BENCH_W3:
    case BENCH_W4:
      status = bench_mpq_queue (&args);
      break;

    default:
      g_assert_not_reached ();
    }

  bench_args_clear (&args);
  return status;
}
