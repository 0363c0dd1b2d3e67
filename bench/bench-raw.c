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
 * default prefetch), the children answer FINISHED on the same socket. */

#include "bench-common.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
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
  GArray     *latencies;
  gint64      sent;
  gint64      sent_ns;
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
write_all (int         fd,
           const char *data,
           gsize       length)
{
  while (length > 0)
    {
      gssize n = write (fd, data, length);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        bench_fail ("write: %s", g_strerror (errno));
      data += n;
      length -= n;
    }
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
  write_all (fd, line->str, line->len);
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
  while (!bench_check_done (&run->check))
    {
      next_line (run, &line, &length);
      bench_check_add (&run->check, line_value (run, line, length, "DO"));
      if (run->args->workload == BENCH_W5)
        bench_spin_us (run->args->spin_us);
    }
}

/* W2: TRUE when every echo is done, else the next DO is sent. */
static gboolean
take_echo (RawRun     *run,
           const char *line,
           gsize       length)
{
  gint64 elapsed = bench_now_ns () - run->sent_ns;

  if (line_value (run, line, length, "FINISHED") != run->sent - 1)
    bench_fail ("echo %" G_GINT64_FORMAT " came back wrong", run->sent - 1);
  if (run->sent > run->args->warmup)
    g_array_append_val (run->latencies, elapsed);
  if (run->sent == run->args->warmup + run->args->count)
    return TRUE;

  run->sent_ns = bench_now_ns ();
  send_line (run->fd, "DO", run->sent++);
  return FALSE;
}

static gboolean
parent_readable_cb (int          fd,
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
        bench_fail ("the peer hung up early");
      while (linebuf_next (&run->in, &line, &length))
        if (take_echo (run, line, length))
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
  BenchResult *result;
  double median, p99;

  run->latencies = g_array_new (FALSE, FALSE, sizeof (gint64));
  run->sent_ns = bench_now_ns ();
  send_line (run->fd, "DO", run->sent++);

  if (bench_is_loop (run->args))
    {
      set_nonblocking (run->fd);
      g_unix_fd_add (run->fd, G_IO_IN, parent_readable_cb, run);
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

  bench_latency_stats (run->latencies, &median, &p99);
  result = bench_result_new (run->args, run->decode ? "raw-json" : "raw");
  bench_result_int (result, "count", run->args->count);
  bench_result_int (result, "warmup", run->args->warmup);
  bench_result_double (result, "median_us", median);
  bench_result_double (result, "p99_us", p99);
  bench_result_print (result);
  g_array_unref (run->latencies);
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
            write_all (fds[i], out->str, out->len);
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
  g_autoptr(GPtrArray) children = g_ptr_array_new_with_free_func (g_object_unref);
  g_autofree char *rss_file = NULL;
  g_autofree char *rss_arg = NULL;
  g_autofree int *fds = NULL;
  const char *system = run->decode ? "raw-json" : "raw";
  guint n = 1;
  guint i;

  if (run->args->workload == BENCH_W3 || run->args->workload == BENCH_W4)
    n = run->args->children;

  rss_file = g_strdup_printf ("%s/mpq-bench-rss-%d", g_get_tmp_dir (), (int) getpid ());
  rss_arg = g_strdup_printf ("--rss-file=%s", rss_file);
  fds = g_new (int, n);

  for (i = 0; i < n; i++)
    {
      g_autofree char *index = g_strdup_printf ("--index=%u", i);
      int pair[2];

      bench_socketpair (pair);
      fds[i] = pair[0];
      g_ptr_array_add (children,
                       bench_spawn_child (run->args, pair[1],
                                          (const char *[]) { index, rss_arg, NULL }));
    }
  run->fd = fds[0];

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
      fan_in (run, fds, n);
      break;
    case BENCH_W4:
      distribute (run, fds, n);
      break;
    default:
      g_assert_not_reached ();
    }

  for (i = 0; i < n; i++)
    close (fds[i]);
  for (i = 0; i < children->len; i++)
    bench_wait_child (children->pdata[i]);

  if (run->args->workload != BENCH_W2)
    {
      gboolean w5 = run->args->workload == BENCH_W5;

      bench_check_finish (&run->check);
      bench_print_throughput (run->args, system, &run->check,
                              w5 ? bench_peak_rss_kib () : -1,
                              w5 ? bench_read_rss_file (rss_file) : -1);
    }
  g_unlink (rss_file);
}

/* W2 child in a main loop: every DO goes back as FINISHED. */
static gboolean
child_readable_cb (int          fd,
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
        bench_fail ("the parent hung up early");
      while (linebuf_next (&run->in, &line, &length))
        {
          if (has_request (line, length, "DIE"))
            {
              g_main_loop_quit (run->loop);
              return G_SOURCE_REMOVE;
            }
          send_line (fd, "FINISHED", line_value (run, line, length, "DO"));
        }
    }

  return G_SOURCE_CONTINUE;
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
        gint64 base = run->args->workload == BENCH_W3 ? run->args->index * run->args->count : 0;

        for (i = 0; i < run->args->count; i++)
          send_line (run->fd, "DO", base + i);
      }
      break;

    case BENCH_W2:
      if (bench_is_loop (run->args))
        {
          set_nonblocking (run->fd);
          g_unix_fd_add (run->fd, G_IO_IN, child_readable_cb, run);
          g_main_loop_run (run->loop);
          break;
        }
      G_GNUC_FALLTHROUGH;

    case BENCH_W4:
      for (;;)
        {
          next_line (run, &line, &length);
          if (has_request (line, length, "DIE"))
            break;
          send_line (run->fd, "FINISHED", line_value (run, line, length, "DO"));
        }
      break;

    default:
      g_assert_not_reached ();
    }

  bench_write_rss_file (run->args->rss_file);
  close (run->fd);
}

int
main (int   argc,
      char *argv[])
{
  BenchArgs args = { 0 };
  RawRun run = { 0 };

  if (!bench_parse_args (&args, &argc, &argv, NULL))
    return 2;

  run.args = &args;
  run.decode = !g_str_equal (args.decode, "none");
  run.parser = json_parser_new ();
  run.loop = g_main_loop_new (NULL, FALSE);
  run.fd = BENCH_CHILD_FD;
  linebuf_init (&run.in);

  if (args.child)
    child (&run);
  else
    parent (&run);

  g_free (run.in.data);
  g_main_loop_unref (run.loop);
  g_object_unref (run.parser);
  bench_args_clear (&args);
  return EXIT_SUCCESS;
}
