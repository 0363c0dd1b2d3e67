/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* What the C benchmark programs share for starting their children and
 * talking to them: the child's command line, spawning it with its end of a
 * socketpair, waiting for it, the file a child writes its peak RSS to, and
 * writing to a descriptor. */

#include "bench-common.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <sys/socket.h>
#include <unistd.h>

char **
bench_child_argv (const BenchArgs    *args,
                  const char * const *extra)
{
  GPtrArray *argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  char *self;
  guint i;

  self = g_file_read_link ("/proc/self/exe", &error);
  if (self == NULL)
    bench_fail ("%s", error->message);

  g_ptr_array_add (argv, self);
  g_ptr_array_add (argv, g_strdup (args->workload_name));
  g_ptr_array_add (argv, g_strdup ("--child"));
  g_ptr_array_add (argv, g_strdup_printf ("--count=%" G_GINT64_FORMAT, args->count));
  g_ptr_array_add (argv, g_strdup_printf ("--warmup=%" G_GINT64_FORMAT, args->warmup));
  g_ptr_array_add (argv, g_strdup_printf ("--children=%d", args->children));
  g_ptr_array_add (argv, g_strdup_printf ("--size=%" G_GINT64_FORMAT, args->size));
  g_ptr_array_add (argv, g_strdup_printf ("--variant=%s", args->variant));
  g_ptr_array_add (argv, g_strdup_printf ("--decode=%s", args->decode));
  g_ptr_array_add (argv, g_strdup_printf ("--mode=%s", args->mode));
  g_ptr_array_add (argv, g_strdup_printf ("--data=%s", args->data));
  g_ptr_array_add (argv, g_strdup_printf ("--parent-pid=%d", (int) getpid ()));
  if (args->endpoint != NULL)
    g_ptr_array_add (argv, g_strdup_printf ("--endpoint=%s", args->endpoint));

  for (i = 0; extra != NULL && extra[i] != NULL; i++)
    g_ptr_array_add (argv, g_strdup (extra[i]));
  g_ptr_array_add (argv, NULL);

  return (char **) g_ptr_array_free (argv, FALSE);
}

/* With @fd as the child's BENCH_CHILD_FD. */
static GSubprocess *
spawn_child (const BenchArgs    *args,
             int                 fd,
             const char * const *extra)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_auto(GStrv) argv = bench_child_argv (args, extra);
  g_autoptr(GError) error = NULL;
  GSubprocess *child;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_subprocess_launcher_take_fd (launcher, fd, BENCH_CHILD_FD);

  child = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv, &error);
  if (child == NULL)
    bench_fail ("cannot spawn a child: %s", error->message);

  /* Closes the parent's copy of the child's end now. */
  g_subprocess_launcher_close (launcher);

  return child;
}

void
bench_wait_child (GSubprocess *child)
{
  g_autoptr(GError) error = NULL;

  if (!g_subprocess_wait_check (child, NULL, &error))
    bench_fail ("a child failed: %s", error->message);
}

void
bench_rss_file_init (BenchRssFile *rss)
{
  rss->path = g_strdup_printf ("%s/mpq-bench-rss-%d", g_get_tmp_dir (), (int) getpid ());
  rss->arg = g_strdup_printf ("--rss-file=%s", rss->path);
}

void
bench_rss_file_clear (BenchRssFile *rss)
{
  if (rss->path != NULL)
    g_unlink (rss->path);
  g_clear_pointer (&rss->path, g_free);
  g_clear_pointer (&rss->arg, g_free);
}

void
bench_children_spawn (BenchChildren   *children,
                      const BenchArgs *args)
{
  guint i;

  children->n = bench_n_children (args);
  children->processes = g_ptr_array_new_with_free_func (g_object_unref);
  children->fds = g_new (int, children->n);
  bench_rss_file_init (&children->rss);

  for (i = 0; i < children->n; i++)
    {
      g_autofree char *index = g_strdup_printf ("--index=%u", i);
      int pair[2];

      if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
        bench_fail ("socketpair: %s", g_strerror (errno));
      children->fds[i] = pair[0];
      g_ptr_array_add (children->processes,
                       spawn_child (args, pair[1],
                                    (const char *[]) { index, children->rss.arg, NULL }));
    }
}

void
bench_children_wait (BenchChildren *children)
{
  guint i;

  for (i = 0; i < children->processes->len; i++)
    bench_wait_child (children->processes->pdata[i]);
}

void
bench_children_clear (BenchChildren *children)
{
  g_clear_pointer (&children->processes, g_ptr_array_unref);
  g_clear_pointer (&children->fds, g_free);
  bench_rss_file_clear (&children->rss);
}

void
bench_write_all (int           fd,
                 gconstpointer data,
                 gsize         length)
{
  const char *p = data;

  while (length > 0)
    {
      gssize n = write (fd, p, length);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        bench_fail ("write: %s", g_strerror (errno));
      p += n;
      length -= n;
    }
}

GIOStream *
bench_stream_for_fd (int fd)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = g_socket_new_from_fd (fd, &error);

  if (socket == NULL)
    bench_fail ("g_socket_new_from_fd: %s", error->message);

  return G_IO_STREAM (g_socket_connection_factory_create_connection (socket));
}
