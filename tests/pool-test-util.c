/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the pool test programs (test-pool*.c) share. */
#include "pool-test-util.h"

#include <glib/gstdio.h>
#include <sys/wait.h>

static void
worker_started_cb (MpqPool *pool,
                   gint     pid,
                   Counts  *counts)
{
  g_assert_cmpint (pid, >, 0);
  counts->started++;
}

static void
worker_exited_cb (MpqPool  *pool,
                  gint      pid,
                  gint      wait_status,
                  gboolean  expected,
                  Counts   *counts)
{
  /* Told to go, a worker exits 0 (under valgrind, not if it leaked);
   * unless it was killed at the end of a shutdown's time. */
  if (expected && WIFEXITED (wait_status))
    g_assert_cmpint (WEXITSTATUS (wait_status), ==, 0);
  if (expected)
    counts->exited_expected++;
  else
    counts->exited_unexpected++;
}

MpqPool *
new_pool_full (guint        n_workers,
               const char  *arg,
               const char  *log_dir,
               Counts      *counts)
{
  g_autofree char *worker = g_test_build_filename (G_TEST_BUILT, "mpq-pool-test-worker", NULL);
  const char *argv[] = { worker, arg, NULL };
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_autoptr(GError) error = NULL;
  MpqPool *pool;

  if (log_dir != NULL)
    g_subprocess_launcher_setenv (launcher, "MPQ_TEST_LOG_DIR", log_dir, TRUE);
  pool = mpq_pool_new_with_launcher (launcher, argv, n_workers, &error);
  g_assert_no_error (error);
  g_assert_nonnull (pool);
  if (counts != NULL)
    counts_connect (pool, counts);
  return pool;
}

/* @counts follows @pool's workers. */
void
counts_connect (MpqPool *pool,
                Counts  *counts)
{
  g_signal_connect (pool, "worker-started", G_CALLBACK (worker_started_cb), counts);
  g_signal_connect (pool, "worker-exited", G_CALLBACK (worker_exited_cb), counts);
}

MpqPool *
new_pool (guint n_workers)
{
  return new_pool_full (n_workers, NULL, NULL, NULL);
}

MpqTask *
submit_int (MpqPool    *pool,
            const char *request,
            gint64      n)
{
  g_autofree char *json = g_strdup_printf ("%" G_GINT64_FORMAT, n);
  g_autoptr(GError) error = NULL;
  MpqTask *task = mpq_pool_submit (pool, request, json, &error);

  g_assert_no_error (error);
  g_assert_nonnull (task);
  return task;
}

gint64
wait_int (MpqTask *task)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) reply = mpq_task_wait (task, -1, &error);

  g_assert_no_error (error);
  g_assert_nonnull (reply);
  g_assert_cmpstr (mpq_message_get_request (reply), ==, MPQ_REQ_FINISHED);
  g_assert_cmpint (mpq_message_get_sender_pid (reply), ==, mpq_task_get_worker_pid (task));
  g_assert_cmpint (mpq_task_get_state (task), ==, MPQ_TASK_DONE);
  return json_node_get_int (mpq_message_get_data (reply));
}

void
wait_error (MpqTask    *task,
            GQuark      domain,
            gint        code,
            const char *text)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) reply = mpq_task_wait (task, -1, &error);

  g_assert_null (reply);
  g_assert_error (error, domain, code);
  if (text != NULL)
    g_assert_nonnull (strstr (error->message, text));
}

void
shutdown_ok (MpqPool *pool)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (mpq_pool_shutdown (pool, -1, &error));
  g_assert_no_error (error);
}

static gboolean
counts_reach (Counts *counts,
              guint   started,
              guint   exited)
{
  return counts->started >= started &&
         counts->exited_expected + counts->exited_unexpected >= exited;
}

void
run_until_counts (Counts *counts,
                  guint   started,
                  guint   exited)
{
  while (!counts_reach (counts, started, exited))
    g_main_context_iteration (NULL, TRUE);
}


static void
started_cb (MpqTask    *task,
            MpqMessage *progress,
            gboolean   *started)
{
  *started = TRUE;
}

/* Submits an "until-cancel" task and returns once its worker works on
 * it (it said so). */
MpqTask *
submit_until_cancel (MpqPool *pool)
{
  MpqTask *task = submit_int (pool, "until-cancel", 0);
  gboolean started = FALSE;
  gulong id = g_signal_connect (task, "progress", G_CALLBACK (started_cb), &started);

  while (!started)
    g_main_context_iteration (NULL, TRUE);
  g_signal_handler_disconnect (task, id);
  return task;
}

/* A JSON array of the @n integers 0 … n - 1. */
char *
int_array (guint n)
{
  GString *out = g_string_new ("[");

  for (guint i = 0; i < n; i++)
    g_string_append_printf (out, i > 0 ? ",%u" : "%u", i);
  g_string_append_c (out, ']');
  return g_string_free (out, FALSE);
}

/* @dir and the files in it; what is not there (or will not go) is left
 * as it is. */
void
remove_dir (const char *dir)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);

      g_unlink (path);
    }
  g_rmdir (dir);
}
