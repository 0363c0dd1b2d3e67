/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* mpq-bench-mpq: the benchmark's Mpq side, through the public API only.
 *
 * W1, W2, W5 run over an MpqPipe (this file); W3 and W4 over an MpqQueue
 * (bench-mpq-queue.c); W6's binary payloads over an MpqPipe
 * (bench-mpq-payload.c). Every message a process receives is an MpqMessage
 * whose data, a JsonNode, is read for "value" and "payload". W1
 * --variant=decode decodes lines from memory only: no child, no socket. */

#include "bench-mpq.h"

#include <stdlib.h>
#include <string.h>

typedef struct
{
  BenchArgs  *args;
  MpqChannel *channel;
  GMainLoop  *loop;
  BenchCheck  check;
  BenchEcho   echo;
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

MpqMessage *
bench_mpq_receive (MpqChannel *channel)
{
  g_autoptr(GError) error = NULL;
  MpqMessage *message = mpq_channel_receive (channel, -1, NULL, NULL, &error);

  if (message == NULL)
    bench_fail ("receive: %s", error != NULL ? error->message : "nothing");

  return message;
}

MpqPipe *
bench_mpq_pipe_spawn (const BenchArgs  *args,
                      BenchRssFile     *rss,
                      GSubprocess     **child)
{
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) argv = NULL;
  MpqPipe *pipe = mpq_pipe_new (&error);

  if (pipe == NULL)
    bench_fail ("mpq_pipe_new: %s", error->message);

  bench_rss_file_init (rss);
  argv = bench_child_argv (args, (const char *[]) { rss->arg, NULL });
  *child = mpq_pipe_spawn (pipe, (const char * const *) argv, &error);
  if (*child == NULL)
    bench_fail ("mpq_pipe_spawn: %s", error->message);

  return pipe;
}

MpqPipe *
bench_mpq_pipe_for_child (void)
{
  g_autoptr(GError) error = NULL;
  MpqPipe *pipe = mpq_pipe_new_for_child (&error);

  if (pipe == NULL)
    bench_fail ("mpq_pipe_new_for_child: %s", error->message);

  return pipe;
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

  if (bench_receive (&run->check, run->args, bench_mpq_value (message, MPQ_REQ_DO)))
    g_main_loop_quit (run->loop);
}

static void
receive_all (PipeRun *run)
{
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

  for (;;)
    {
      g_autoptr(MpqMessage) message = bench_mpq_receive (run->channel);

      if (bench_receive (&run->check, run->args, bench_mpq_value (message, MPQ_REQ_DO)))
        break;
    }
}

/* W2: one DO out; its FINISHED back is one round trip. */
static void
send_next (PipeRun *run)
{
  bench_mpq_send_value (run->channel, run->args, MPQ_REQ_DO, 0, bench_echo_next (&run->echo));
}

/* Returns TRUE when every echo is done. */
static gboolean
take_echo (PipeRun    *run,
           MpqMessage *message)
{
  gint64 arrived_ns = bench_now_ns ();

  if (bench_echo_take (&run->echo, arrived_ns, bench_mpq_value (message, MPQ_REQ_FINISHED)))
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
  bench_echo_init (&run->echo, run->args);

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
          g_autoptr(MpqMessage) message = bench_mpq_receive (run->channel);

          done = take_echo (run, message);
        }
    }

  bench_mpq_send (run->channel, MPQ_REQ_DIE, 0, NULL);

  bench_echo_print (&run->echo, "mpq");
}

/* W1 --variant=decode: no child, no socket. Every line is in memory
 * already, and each is decoded the way a receiver must (an MpqMessage with
 * its data as a JsonNode, read through the public API): a bound on what
 * any transport could give a single receiving thread. */
static void
decode_all (BenchArgs *args)
{
  g_autoptr(GString) lines = g_string_new (NULL);
  BenchCheck check;
  const char *p;
  gint64 i;

  for (i = 0; i < args->count; i++)
    bench_format_line (lines, MPQ_REQ_DO, getpid (), i);

  bench_check_init (&check, args->count);
  for (p = lines->str; !bench_check_done (&check);)
    {
      const char *nl = strchr (p, '\n');
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqMessage) message = mpq_message_new_from_json (p, nl - p, &error);

      if (message == NULL)
        bench_fail ("mpq_message_new_from_json: %s", error->message);
      bench_receive (&check, args, bench_mpq_value (message, MPQ_REQ_DO));
      p = nl + 1;
    }

  bench_finish_throughput (args, "mpq", &check, NULL);
}

static void
pipe_parent (BenchArgs *args)
{
  g_autoptr(MpqPipe) pipe = NULL;
  g_autoptr(GSubprocess) child = NULL;
  BenchRssFile rss;
  PipeRun run = { 0 };

  pipe = bench_mpq_pipe_spawn (args, &rss, &child);
  run.args = args;
  run.channel = MPQ_CHANNEL (pipe);
  run.loop = g_main_loop_new (NULL, FALSE);

  if (args->workload == BENCH_W2)
    echo_all (&run);
  else
    receive_all (&run);

  bench_wait_child (child);
  mpq_channel_close (run.channel);

  if (args->workload != BENCH_W2)
    bench_finish_throughput (args, "mpq", &run.check, rss.path);

  bench_rss_file_clear (&rss);
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
  g_autoptr(MpqPipe) pipe = bench_mpq_pipe_for_child ();
  MpqChannel *channel = MPQ_CHANNEL (pipe);
  gint64 i;


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
          g_autoptr(MpqMessage) message = bench_mpq_receive (channel);

          if (g_str_equal (mpq_message_get_request (message), MPQ_REQ_DIE))
            break;
          on_child_do (channel, message, NULL);
        }
    }

  mpq_channel_close (channel);
  bench_write_rss_file (args->rss_file);
}

static int
run_mpq (BenchArgs *args,
         gpointer   user_data)
{
  if (args->workload == BENCH_W3 || args->workload == BENCH_W4)
    return bench_mpq_queue (args);
  if (args->workload == BENCH_W6)
    return bench_mpq_payload (args);

  if (args->child)
    pipe_child (args);
  else if (args->workload == BENCH_W1 && g_str_equal (args->variant, "decode"))
    decode_all (args);
  else
    pipe_parent (args);

  return EXIT_SUCCESS;
}

int
main (int   argc,
      char *argv[])
{
  return bench_main (argc, argv, NULL, run_mpq, NULL);
}
