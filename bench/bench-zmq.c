/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* mpq-bench-zmq: ZeroMQ over ipc:// endpoints in a private temporary
 * directory. Each message is the same JSON line (one frame, no newline),
 * and every receiver decodes it with json-glib.
 *
 * W1, W5: PAIR. W2: PAIR, blocking zmq_send/zmq_recv (--variant=sync) or a
 * GMainLoop watching ZMQ_FD (--variant=loop). W3: the children PUSH, the
 * parent PULLs. W4: the classic ventilator and sink: the parent PUSHes tasks
 * to the children's PULL, they PUSH FINISHED to the parent's PULL; the
 * parent zmq_poll ()s both so that neither side blocks the other. W6: PAIR,
 * each payload one frame, sent without a copy (zmq_msg_init_data ()); the
 * child sends the frame it got back as it is.
 *
 * ZeroMQ drops what a peer sent but the other end had not read yet when the
 * peer goes away (seen here with PAIR and PUSH over ipc://, lingering or
 * not), so a child that has sent everything waits for the parent to close
 * its standard input before it closes its socket and exits. That is also
 * how W4's children learn that the work is over: PUSH cannot deal exactly
 * one DIE to each of them. */

#include "bench-common.h"
#include "bench-payload.h"

#include <glib-unix.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

typedef struct
{
  BenchArgs        *args;
  JsonParser       *parser;
  void             *context;
  void             *socket;   /* PAIR, PULL (W3, W4 results), PULL (W4 child tasks) */
  void             *out;      /* W4: PUSH */
  GMainLoop        *loop;
  BenchCheck        check;
  BenchEcho         echo;
  GString          *line;
  gint              pid;
  BenchPayloadPool *pool;     /* W6: freed after the context, which may hold a buffer */
} ZmqRun;

static void *
open_socket (ZmqRun     *run,
             int         type,
             const char *endpoint,
             gboolean    bind)
{
  void *socket = zmq_socket (run->context, type);

  if (socket == NULL)
    bench_fail ("zmq_socket: %s", zmq_strerror (zmq_errno ()));
  if ((bind ? zmq_bind (socket, endpoint) : zmq_connect (socket, endpoint)) != 0)
    bench_fail ("%s %s: %s", bind ? "bind" : "connect", endpoint, zmq_strerror (zmq_errno ()));

  return socket;
}

static void
send_line (ZmqRun     *run,
           void       *socket,
           const char *request,
           gint64      value)
{
  g_string_truncate (run->line, 0);
  bench_format_line (run->line, request, run->pid, value);

  /* The frame is the line without its newline. */
  while (zmq_send (socket, run->line->str, run->line->len - 1, 0) < 0)
    if (zmq_errno () != EINTR)
      bench_fail ("zmq_send: %s", zmq_strerror (zmq_errno ()));
}

/* Sends @message and leaves it empty. */
static void
send_frame (void      *socket,
            zmq_msg_t *message)
{
  while (zmq_msg_send (message, socket, 0) < 0)
    if (zmq_errno () != EINTR)
      bench_fail ("zmq_msg_send: %s", zmq_strerror (zmq_errno ()));
}

/* Takes one frame: FALSE when @flags has ZMQ_DONTWAIT and none is there. */
static gboolean
recv_frame (void      *socket,
            zmq_msg_t *message,
            int        flags)
{
  while (zmq_msg_recv (message, socket, flags) < 0)
    {
      if (zmq_errno () == EAGAIN)
        return FALSE;
      if (zmq_errno () != EINTR)
        bench_fail ("zmq_msg_recv: %s", zmq_strerror (zmq_errno ()));
    }

  return TRUE;
}

static gboolean
is_die (zmq_msg_t *message)
{
  return zmq_msg_size (message) > 6 && memcmp (zmq_msg_data (message), "[\"DIE\"", 6) == 0;
}

static gint64
frame_value (ZmqRun     *run,
             zmq_msg_t  *message,
             const char *request)
{
  return bench_decode_json_glib (run->parser, zmq_msg_data (message), zmq_msg_size (message),
                                 request);
}

/* W1, W3, W5 */
static void
receive_all (ZmqRun *run)
{
  zmq_msg_t message;

  zmq_msg_init (&message);
  bench_check_init (&run->check, bench_expected (run->args));
  do
    recv_frame (run->socket, &message, 0);
  while (!bench_receive (&run->check, run->args, frame_value (run, &message, "DO")));
  zmq_msg_close (&message);
}

/* W2: TRUE when every echo is done, else the next DO is sent. */
static gboolean
take_echo (ZmqRun    *run,
           zmq_msg_t *message)
{
  gint64 arrived_ns = bench_now_ns ();

  if (bench_echo_take (&run->echo, arrived_ns, frame_value (run, message, "FINISHED")))
    return TRUE;

  send_line (run, run->socket, "DO", bench_echo_next (&run->echo));
  return FALSE;
}

/* Echoes DO as FINISHED: FALSE once DIE came. */
static gboolean
echo_back (ZmqRun    *run,
           zmq_msg_t *message)
{
  if (is_die (message))
    return FALSE;

  send_line (run, run->socket, "FINISHED", frame_value (run, message, "DO"));
  return TRUE;
}

/* ZMQ_FD only says "look at ZMQ_EVENTS": take every frame there is. */
static gboolean
readable_cb (int          fd,
             GIOCondition condition,
             gpointer     user_data)
{
  ZmqRun *run = user_data;
  zmq_msg_t message;
  gboolean more = TRUE;

  zmq_msg_init (&message);
  while (more && recv_frame (run->socket, &message, ZMQ_DONTWAIT))
    more = run->args->child ? echo_back (run, &message) : !take_echo (run, &message);
  zmq_msg_close (&message);

  if (more)
    return G_SOURCE_CONTINUE;

  g_main_loop_quit (run->loop);
  return G_SOURCE_REMOVE;
}

static void
watch_socket (ZmqRun *run)
{
  int fd;
  size_t size = sizeof fd;

  if (zmq_getsockopt (run->socket, ZMQ_FD, &fd, &size) != 0)
    bench_fail ("ZMQ_FD: %s", zmq_strerror (zmq_errno ()));
  g_unix_fd_add (fd, G_IO_IN, readable_cb, run);
}

static void
echo_all (ZmqRun *run)
{
  bench_echo_init (&run->echo, run->args);
  send_line (run, run->socket, "DO", bench_echo_next (&run->echo));

  if (bench_is_loop (run->args))
    {
      watch_socket (run);
      /* Whatever came before the watch did. */
      if (readable_cb (-1, G_IO_IN, run) == G_SOURCE_CONTINUE)
        g_main_loop_run (run->loop);
    }
  else
    {
      zmq_msg_t message;

      zmq_msg_init (&message);
      do
        recv_frame (run->socket, &message, 0);
      while (!take_echo (run, &message));
      zmq_msg_close (&message);
    }

  send_line (run, run->socket, "DIE", 0);

  bench_echo_print (&run->echo, "zmq");
}

/* W4: tasks out while the PUSH socket takes them, answers in. */
static void
distribute (ZmqRun *run)
{
  zmq_msg_t message;
  gint64 next = 0;
  gint i;

  zmq_msg_init (&message);
  bench_check_init (&run->check, run->args->count);
  while (!bench_check_done (&run->check))
    {
      zmq_pollitem_t items[] = {
        { run->socket, 0, ZMQ_POLLIN, 0 },
        { run->out, 0, next < run->args->count ? ZMQ_POLLOUT : 0, 0 },
      };

      if (zmq_poll (items, 2, -1) < 0 && zmq_errno () != EINTR)
        bench_fail ("zmq_poll: %s", zmq_strerror (zmq_errno ()));

      while (recv_frame (run->socket, &message, ZMQ_DONTWAIT))
        bench_check_add (&run->check, frame_value (run, &message, "FINISHED"));

      /* A batch of tasks, as long as the children have room. */
      for (i = 0; i < 64 && next < run->args->count; i++)
        {
          g_string_truncate (run->line, 0);
          bench_format_line (run->line, "DO", run->pid, next);
          if (zmq_send (run->out, run->line->str, run->line->len - 1, ZMQ_DONTWAIT) < 0)
            {
              if (zmq_errno () != EAGAIN && zmq_errno () != EINTR)
                bench_fail ("zmq_send: %s", zmq_strerror (zmq_errno ()));
              break;
            }
          next++;
        }
    }
  zmq_msg_close (&message);
  /* No DIE: PUSH cannot address one to each child (a child that exits on
   * its DIE may be dealt a second one). The parent closes their standard
   * input instead. */
}

/* ZeroMQ lets go of a zero-copy frame from its I/O thread. */
static void
free_bytes (void *data,
            void *hint)
{
  g_bytes_unref (hint);
}

/* W6: one payload at a time, out and back. */
static void
payloads (ZmqRun *run)
{
  zmq_msg_t message;
  gint64 i;

  run->pool = bench_payload_pool_new (run->args->size);
  bench_check_init (&run->check, run->args->count);
  for (i = 0; i < run->args->count; i++)
    {
      GBytes *payload = bench_payload_pool_take (run->pool, i);
      gsize length;
      gconstpointer data = g_bytes_get_data (payload, &length);

      if (zmq_msg_init_data (&message, (void *) data, length, free_bytes, payload) != 0)
        bench_fail ("zmq_msg_init_data: %s", zmq_strerror (zmq_errno ()));
      send_frame (run->socket, &message);

      recv_frame (run->socket, &message, 0);
      bench_payload_check (zmq_msg_data (&message), zmq_msg_size (&message), run->args->size, i);
      bench_check_add (&run->check, i);
      zmq_msg_close (&message);
    }
}

/* A child whose standard input the parent closes once it has everything. */
static GSubprocess *
spawn_child (ZmqRun             *run,
             const char * const *extra)
{
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) argv = bench_child_argv (run->args, extra);
  GSubprocess *child = g_subprocess_newv ((const char * const *) argv,
                                          G_SUBPROCESS_FLAGS_STDIN_PIPE, &error);

  if (child == NULL)
    bench_fail ("cannot spawn a child: %s", error->message);

  return child;
}

static void
release_child (GSubprocess *child)
{
  g_output_stream_close (g_subprocess_get_stdin_pipe (child), NULL, NULL);
  bench_wait_child (child);
}

/* In the child: blocks until the parent closes our standard input. */
static void
wait_for_parent (void)
{
  char byte;

  while (read (STDIN_FILENO, &byte, 1) > 0)
    ;
}

static void
parent (ZmqRun *run)
{
  g_autoptr(GPtrArray) children = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("mpq-bench-zmq-XXXXXX", &error);
  g_autofree char *endpoint = NULL;
  g_autofree char *results = NULL;
  BenchRssFile rss;
  BenchWorkload w = run->args->workload;
  guint n = bench_n_children (run->args);
  guint i;

  if (dir == NULL)
    bench_fail ("%s", error->message);

  endpoint = g_strdup_printf ("ipc://%s/%s", dir, run->args->workload_name);
  results = g_strdup_printf ("ipc://%s/results", dir);
  run->args->endpoint = endpoint;
  bench_rss_file_init (&rss);

  switch (w)
    {
    case BENCH_W3:
      run->socket = open_socket (run, ZMQ_PULL, endpoint, TRUE);
      break;
    case BENCH_W4:
      run->out = open_socket (run, ZMQ_PUSH, endpoint, TRUE);
      run->socket = open_socket (run, ZMQ_PULL, results, TRUE);
      break;
    default:
      run->socket = open_socket (run, ZMQ_PAIR, endpoint, TRUE);
      break;
    }

  for (i = 0; i < n; i++)
    {
      g_autofree char *index = g_strdup_printf ("--index=%u", i);
      g_autofree char *results_arg = g_strdup_printf ("--results=%s", results);

      g_ptr_array_add (children,
                       spawn_child (run, (const char *[]) { index, rss.arg, results_arg, NULL }));
    }

  if (w == BENCH_W2)
    echo_all (run);
  else if (w == BENCH_W4)
    distribute (run);
  else if (w == BENCH_W6)
    payloads (run);
  else
    receive_all (run);

  for (i = 0; i < n; i++)
    release_child (children->pdata[i]);

  if (w != BENCH_W2)
    bench_finish_throughput (run->args, "zmq", &run->check, rss.path);

  zmq_close (run->socket);
  if (run->out != NULL)
    zmq_close (run->out);
  bench_rss_file_clear (&rss);
  g_unlink (endpoint + strlen ("ipc://"));
  g_unlink (results + strlen ("ipc://"));
  g_rmdir (dir);
  run->args->endpoint = NULL;
}

static void
child (ZmqRun     *run,
       const char *results)
{
  BenchWorkload w = run->args->workload;
  zmq_msg_t message;
  gint64 i;

  zmq_msg_init (&message);

  switch (w)
    {
    case BENCH_W2:
      run->socket = open_socket (run, ZMQ_PAIR, run->args->endpoint, FALSE);
      if (bench_is_loop (run->args))
        {
          watch_socket (run);
          if (readable_cb (-1, G_IO_IN, run) == G_SOURCE_CONTINUE)
            g_main_loop_run (run->loop);
        }
      else
        {
          do
            recv_frame (run->socket, &message, 0);
          while (echo_back (run, &message));
        }
      break;

    case BENCH_W4:
      run->socket = open_socket (run, ZMQ_PULL, run->args->endpoint, FALSE);
      run->out = open_socket (run, ZMQ_PUSH, results, FALSE);
      for (;;)
        {
          zmq_pollitem_t items[] = {
            { run->socket, 0, ZMQ_POLLIN, 0 },
            { NULL, STDIN_FILENO, ZMQ_POLLIN, 0 },
          };

          if (recv_frame (run->socket, &message, ZMQ_DONTWAIT))
            {
              send_line (run, run->out, "FINISHED", frame_value (run, &message, "DO"));
              continue;
            }
          /* Nothing queued: wait for a task, or for the parent to be done. */
          if (zmq_poll (items, 2, -1) < 0 && zmq_errno () != EINTR)
            bench_fail ("zmq_poll: %s", zmq_strerror (zmq_errno ()));
          if (items[1].revents != 0)
            break;
        }
      break;

    case BENCH_W6:
      run->socket = open_socket (run, ZMQ_PAIR, run->args->endpoint, FALSE);
      for (i = 0; i < run->args->count; i++)
        {
          recv_frame (run->socket, &message, 0);
          if (bench_payload_index (zmq_msg_data (&message), zmq_msg_size (&message),
                                   run->args->size) != i)
            bench_fail ("payload %" G_GINT64_FORMAT " arrived out of order", i);
          send_frame (run->socket, &message);
        }
      break;

    default:
      {
        gint64 base = bench_first_value (run->args);

        run->socket = open_socket (run, w == BENCH_W3 ? ZMQ_PUSH : ZMQ_PAIR,
                                   run->args->endpoint, FALSE);
        for (i = 0; i < run->args->count; i++)
          send_line (run, run->socket, "DO", base + i);
      }
      break;
    }

  zmq_msg_close (&message);
  wait_for_parent ();
  zmq_close (run->socket);
  if (run->out != NULL)
    zmq_close (run->out);
  bench_write_rss_file (run->args->rss_file);
}

/* @user_data: where --results went, the W4 child's PUSH endpoint. */
static int
run_zmq (BenchArgs *args,
         gpointer   user_data)
{
  char **results = user_data;
  ZmqRun run = { 0 };

  run.args = args;
  run.parser = json_parser_new ();
  run.context = zmq_ctx_new ();
  run.loop = g_main_loop_new (NULL, FALSE);
  run.line = g_string_sized_new (128);
  run.pid = getpid ();

  if (args->child)
    child (&run, *results);
  else
    parent (&run);

  zmq_ctx_term (run.context);
  if (run.pool != NULL)
    bench_payload_pool_free (run.pool);
  g_string_free (run.line, TRUE);
  g_main_loop_unref (run.loop);
  g_object_unref (run.parser);
  return EXIT_SUCCESS;
}

int
main (int   argc,
      char *argv[])
{
  g_autofree char *results = NULL;
  GOptionEntry extra[] = {
    { "results", 0, 0, G_OPTION_ARG_STRING, &results, "W4: the parent's PULL", "E" },
    { NULL }
  };

  return bench_main (argc, argv, extra, run_zmq, &results);
}
