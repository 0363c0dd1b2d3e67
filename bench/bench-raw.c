/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* mpq-bench-raw: the transport limit. The same JSON lines over a bare
 * AF_UNIX socketpair, one write () per message, read 64 KiB at a time.
 *
 * --decode=none reads each line's "value" without decoding the rest;
 * --decode=json-glib decodes every line with a JsonParser into a JsonNode
 * and reads it as Mpq's receivers do.
 *
 * W2 --variant=loop runs both ends in a GMainLoop with a g_unix_fd_add ()
 * watch. W3: one socketpair per child, the parent poll ()s them all. W4: the
 * parent hands each child tasks while it has fewer than 8 unanswered (Mpq's
 * default prefetch when this was written), the children answer FINISHED on
 * the same socket. */

#include "bench-common.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_SIZE (64 * 1024)
#define WINDOW    8

typedef struct
{
  char  *data;
  gsize  capacity;
  gsize  start;
  gsize  end;
} LineBuf;

typedef struct
{
  BenchArgs  *args;
  JsonParser *parser;
  gboolean    decode;
  int         fd;
  LineBuf     in;
  GMainLoop  *loop;
  BenchCheck  check;
  BenchEcho   echo;
} RawRun;

static void
linebuf_init (LineBuf *buf)
{
  buf->capacity = 2 * READ_SIZE;
  buf->data = g_malloc (buf->capacity);
  buf->start = buf->end = 0;
}

/* Reads once: > 0 bytes read, 0 end of stream, -1 nothing to read now. */
static gssize
linebuf_fill (LineBuf *buf,
              int      fd)
{
  gssize n;

  if (buf->start > 0)
    {
      memmove (buf->data, buf->data + buf->start, buf->end - buf->start);
      buf->end -= buf->start;
      buf->start = 0;
    }
  if (buf->capacity - buf->end < READ_SIZE)
    {
      buf->capacity *= 2;
      buf->data = g_realloc (buf->data, buf->capacity);
    }

  do
    n = read (fd, buf->data + buf->end, READ_SIZE);
  while (n < 0 && errno == EINTR);

  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return -1;
  if (n < 0)
    bench_fail ("read: %s", g_strerror (errno));

  buf->end += n;
  return n;
}

static gboolean
linebuf_next (LineBuf     *buf,
              const char **line,
              gsize       *length)
{
  char *nl = memchr (buf->data + buf->start, '\n', buf->end - buf->start);

  if (nl == NULL)
    return FALSE;

  *line = buf->data + buf->start;
  *length = nl - *line;
  buf->start += *length + 1;
  return TRUE;
}

/* Blocks for the next line; fails the run at end of stream. */
static void
next_line (RawRun      *run,
           const char **line,
           gsize       *length)
{
  while (!linebuf_next (&run->in, line, length))
    if (linebuf_fill (&run->in, run->fd) == 0)
      bench_fail ("the peer hung up early");
}

static void
send_line (int         fd,
           const char *request,
           gint64      value)
{
  static gint pid;
  GString *line = g_string_sized_new (128);

  if (pid == 0)
    pid = getpid ();
  bench_format_line (line, request, pid, value);
  bench_write_all (fd, line->str, line->len);
  g_string_free (line, TRUE);
}

static gboolean
has_request (const char *line,
             gsize       length,
             const char *request)
{
  gsize n = strlen (request);

  return length > n + 3 && line[1] == '"' && memcmp (line + 2, request, n) == 0
         && line[n + 2] == '"';
}

static gint64
line_value (RawRun     *run,
            const char *line,
            gsize       length,
            const char *request)
{
  if (run->decode)
    return bench_decode_json_glib (run->parser, line, length, request);

  if (!has_request (line, length, request))
    bench_fail ("expected %s", request);
  return bench_scan_value (line, length);
}

static void
set_nonblocking (int fd)
{
  g_autoptr(GError) error = NULL;

  if (!g_unix_set_fd_nonblocking (fd, TRUE, &error))
    bench_fail ("%s", error->message);
}

/* W1, W5 */
static void
receive_all (RawRun *run)
{
  const char *line;
  gsize length;

  bench_check_init (&run->check, run->args->count);
  do
    next_line (run, &line, &length);
  while (!bench_receive (&run->check, run->args, line_value (run, line, length, "DO")));
}

/* W2: TRUE when every echo is done, else the next DO is sent. */
static gboolean
take_echo (RawRun     *run,
           const char *line,
           gsize       length)
{
  gint64 arrived_ns = bench_now_ns ();

  if (bench_echo_take (&run->echo, arrived_ns, line_value (run, line, length, "FINISHED")))
    return TRUE;

  send_line (run->fd, "DO", bench_echo_next (&run->echo));
  return FALSE;
}

/* W2 child, W4 child: echoes DO as FINISHED; FALSE once DIE came. */
static gboolean
echo_back (RawRun     *run,
           const char *line,
           gsize       length)
{
  if (has_request (line, length, "DIE"))
    return FALSE;

  send_line (run->fd, "FINISHED", line_value (run, line, length, "DO"));
  return TRUE;
}

/* W2 in a main loop, at either end: takes every line there is. */
static gboolean
readable_cb (int          fd,
             GIOCondition condition,
             gpointer     user_data)
{
  RawRun *run = user_data;
  const char *line;
  gsize length;
  gssize n;

  while ((n = linebuf_fill (&run->in, fd)) != -1)
    {
      if (n == 0)
        bench_fail ("the %s hung up early", run->args->child ? "parent" : "peer");
      while (linebuf_next (&run->in, &line, &length))
        if (run->args->child ? !echo_back (run, line, length) : take_echo (run, line, length))
          {
            g_main_loop_quit (run->loop);
            return G_SOURCE_REMOVE;
          }
    }

  return G_SOURCE_CONTINUE;
}

static void
echo_all (RawRun *run)
{
  bench_echo_init (&run->echo, run->args);
  send_line (run->fd, "DO", bench_echo_next (&run->echo));

  if (bench_is_loop (run->args))
    {
      set_nonblocking (run->fd);
      g_unix_fd_add (run->fd, G_IO_IN, readable_cb, run);
      g_main_loop_run (run->loop);
    }
  else
    {
      const char *line;
      gsize length;

      do
        next_line (run, &line, &length);
      while (!take_echo (run, line, length));
    }

  send_line (run->fd, "DIE", 0);

  bench_echo_print (&run->echo, run->decode ? "raw-json" : "raw");
}

/* W3: every child's lines, in whatever order they come. */
static void
fan_in (RawRun *run,
        int    *fds,
        guint   n)
{
  g_autofree struct pollfd *pfds = g_new0 (struct pollfd, n);
  g_autofree LineBuf *bufs = g_new0 (LineBuf, n);
  const char *line;
  gsize length;
  guint open = n;
  guint i;

  for (i = 0; i < n; i++)
    {
      pfds[i].fd = fds[i];
      pfds[i].events = POLLIN;
      linebuf_init (&bufs[i]);
      set_nonblocking (fds[i]);
    }

  bench_check_init (&run->check, run->args->count * n);
  while (!bench_check_done (&run->check))
    {
      if (open == 0)
        break;   /* bench_check_finish () tells what was lost */
      if (poll (pfds, n, -1) < 0 && errno != EINTR)
        bench_fail ("poll: %s", g_strerror (errno));

      for (i = 0; i < n; i++)
        {
          if (pfds[i].revents == 0)
            continue;
          if (linebuf_fill (&bufs[i], fds[i]) == 0)
            {
              pfds[i].fd = -1;   /* that child is done */
              open--;
            }
          while (linebuf_next (&bufs[i], &line, &length))
            bench_check_add (&run->check, line_value (run, line, length, "DO"));
        }
    }

  for (i = 0; i < n; i++)
    g_free (bufs[i].data);
}

/* W4: tasks out while a child has room, answers in. */
static void
distribute (RawRun *run,
            int    *fds,
            guint   n)
{
  g_autofree struct pollfd *pfds = g_new0 (struct pollfd, n);
  g_autofree LineBuf *bufs = g_new0 (LineBuf, n);
  g_autofree gint *in_hand = g_new0 (gint, n);
  GString *out = g_string_sized_new (128);
  gint pid = getpid ();
  gint64 next = 0;
  const char *line;
  gsize length;
  guint i;

  for (i = 0; i < n; i++)
    {
      pfds[i].fd = fds[i];
      pfds[i].events = POLLIN;
      linebuf_init (&bufs[i]);
    }

  bench_check_init (&run->check, run->args->count);
  while (!bench_check_done (&run->check))
    {
      /* Blocking writes of one short line each: the child's socket buffer
       * always has room for WINDOW of them. */
      for (i = 0; i < n && next < run->args->count; i++)
        while (in_hand[i] < WINDOW && next < run->args->count)
          {
            g_string_truncate (out, 0);
            bench_format_line (out, "DO", pid, next++);
            bench_write_all (fds[i], out->str, out->len);
            in_hand[i]++;
          }

      if (poll (pfds, n, -1) < 0 && errno != EINTR)
        bench_fail ("poll: %s", g_strerror (errno));

      for (i = 0; i < n; i++)
        {
          if (pfds[i].revents == 0)
            continue;
          if (linebuf_fill (&bufs[i], fds[i]) == 0)
            bench_fail ("child %u hung up early", i);
          while (linebuf_next (&bufs[i], &line, &length))
            {
              bench_check_add (&run->check, line_value (run, line, length, "FINISHED"));
              in_hand[i]--;
            }
        }
    }

  for (i = 0; i < n; i++)
    {
      send_line (fds[i], "DIE", 0);
      g_free (bufs[i].data);
    }
  g_string_free (out, TRUE);
}

static void
parent (RawRun *run)
{
  BenchChildren children;
  guint i;

  bench_children_spawn (&children, run->args);
  run->fd = children.fds[0];

  switch (run->args->workload)
    {
    case BENCH_W1:
    case BENCH_W5:
      receive_all (run);
      break;
    case BENCH_W2:
      echo_all (run);
      break;
    case BENCH_W3:
      fan_in (run, children.fds, children.n);
      break;
    case BENCH_W4:
      distribute (run, children.fds, children.n);
      break;
    default:
      g_assert_not_reached ();
    }

  for (i = 0; i < children.n; i++)
    close (children.fds[i]);
  bench_children_wait (&children);

  if (run->args->workload != BENCH_W2)
    bench_finish_throughput (run->args, run->decode ? "raw-json" : "raw", &run->check,
                             children.rss.path);
  bench_children_clear (&children);
}

static void
child (RawRun *run)
{
  const char *line;
  gsize length;
  gint64 i;

  switch (run->args->workload)
    {
    case BENCH_W1:
    case BENCH_W3:
    case BENCH_W5:
      {
        gint64 base = bench_first_value (run->args);

        for (i = 0; i < run->args->count; i++)
          send_line (run->fd, "DO", base + i);
      }
      break;

    case BENCH_W2:
      if (bench_is_loop (run->args))
        {
          set_nonblocking (run->fd);
          g_unix_fd_add (run->fd, G_IO_IN, readable_cb, run);
          g_main_loop_run (run->loop);
          break;
        }
      G_GNUC_FALLTHROUGH;

    case BENCH_W4:
      do
        next_line (run, &line, &length);
      while (echo_back (run, line, length));
      break;

    default:
      g_assert_not_reached ();
    }

  bench_write_rss_file (run->args->rss_file);
  close (run->fd);
}

static int
run_raw (BenchArgs *args,
         gpointer   user_data)
{
  RawRun run = { 0 };

  /* W6's payloads are measured for the systems issue 11 names (README.md). */
  if (args->workload == BENCH_W6)
    bench_fail ("this system has no W6");

  run.args = args;
  run.decode = !g_str_equal (args->decode, "none");
  run.parser = json_parser_new ();
  run.loop = g_main_loop_new (NULL, FALSE);
  run.fd = BENCH_CHILD_FD;
  linebuf_init (&run.in);

  if (args->child)
    child (&run);
  else
    parent (&run);

  g_free (run.in.data);
  g_main_loop_unref (run.loop);
  g_object_unref (run.parser);
  return EXIT_SUCCESS;
}

int
main (int   argc,
      char *argv[])
{
  return bench_main (argc, argv, NULL, run_raw, NULL);
}
