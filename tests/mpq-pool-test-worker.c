/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The worker test-pool.c's pools spawn: an MpqWorker whose behaviour each
 * task's request picks.
 *
 *   square        data n → n * n
 *   echo          data → data
 *   pid           → this worker's pid
 *   task-id       → the invocation's task id (a map's batch shares one)
 *   fail          → return_error ("failing on purpose: <data>")
 *   drop          → the invocation is dropped unanswered
 *   crash-on      data n: SIGSEGV when n is 13, else n * n
 *   sleep         data ms: sleeps, then → ms
 *   hang          never answers, never returns
 *   until-cancel  reports progress "started", runs the context until the
 *                 task is cancelled, → "stopped"
 *   progress      data n: progress 1..n, then → n
 *   exit-after    → data, then exits at once
 *   later         answers data from an idle, later
 *   hang-once     data n: the first worker to get it makes
 *                 $MPQ_TEST_LOG_DIR/hung, reports progress "started" and
 *                 never answers; the others report it too, → n
 *   bytes-echo    with a payload of n > 0 bytes: return_bytes, data n,
 *                 the payload with each byte XOR 0xFF (processed, not
 *                 just sent back); without one (or an empty one) → null
 *   crash-unless-bytes-seen
 *                 the first worker to get it writes the size of its
 *                 payload (-1: none) to $MPQ_TEST_LOG_DIR/bytes-seen and
 *                 SIGSEGVs; the others answer as bytes-echo
 *
 * With --batches it also takes a map's batches whole (MpqWorker::batch):
 *
 *   square        each item n → n * n
 *   n-items       each item → the batch's number of items
 *   fail          return_error ("failing on purpose: <batch>")
 *   drop          the batch is dropped unanswered
 *   wrong-count   tries an array one short, and what is no array (both
 *                 must be refused), then answers each item → item
 *   bytes-on-batch
 *                 tries return_bytes (it must be refused: a batch has no
 *                 payload), then answers each item → item
 *   (else)        each item → item
 *
 * Every request is appended, one per line, to $MPQ_TEST_LOG_DIR/<pid>
 * when that is set (a batch's once, as "batch <request>"). With
 * --die-at-start the worker exits 3 at once; with --format=NAME its READY
 * names NAME as the format of payloads it reads (mpq_worker_set_format). */
#include <pymulproc/pymulproc.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
log_request (const char *request)
{
  const char *dir = g_getenv ("MPQ_TEST_LOG_DIR");
  g_autofree char *path = NULL;
  FILE *file;

  if (dir == NULL)
    return;
  path = g_strdup_printf ("%s/%d", dir, (int) getpid ());
  file = fopen (path, "a");
  g_assert_nonnull (file);
  fprintf (file, "%s\n", request);
  fclose (file);
}

static gint64
data_int (MpqInvocation *invocation)
{
  JsonNode *data = mpq_invocation_get_data (invocation);

  return data != NULL && JSON_NODE_HOLDS_VALUE (data) ? json_node_get_int (data) : 0;
}

static void
answer_int (MpqInvocation *invocation,
            gint64         value)
{
  g_autofree char *json = g_strdup_printf ("%" G_GINT64_FORMAT, value);

  g_assert_true (mpq_invocation_return_json (invocation, json, NULL));
}

static gboolean
answer_later (gpointer user_data)
{
  MpqInvocation *invocation = user_data;
  g_autofree char *json = mpq_invocation_dup_data_json (invocation);

  g_assert_true (mpq_invocation_return_json (invocation, json, NULL));
  return G_SOURCE_REMOVE;
}

/* bytes-echo: the payload's size, and the payload XOR 0xFF. */
static void
answer_bytes (MpqInvocation *invocation)
{
  GBytes *payload = mpq_invocation_get_bytes (invocation);
  const guint8 *in;
  guint8 *out;
  gsize size = 0;
  g_autoptr(GBytes) answer = NULL;
  g_autofree char *json = NULL;

  in = payload != NULL ? g_bytes_get_data (payload, &size) : NULL;
  if (size == 0)
    {
      g_assert_true (mpq_invocation_return_json (invocation, NULL, NULL));
      return;
    }
  out = g_malloc (size);
  for (gsize i = 0; i < size; i++)
    out[i] = in[i] ^ 0xff;
  answer = g_bytes_new_take (out, size);
  json = g_strdup_printf ("%" G_GSIZE_FORMAT, size);
  g_assert_true (mpq_invocation_return_bytes (invocation, json, answer, NULL));
}

static void
task_cb (MpqWorker     *worker,
         MpqInvocation *invocation,
         gpointer       user_data)
{
  const char *request = mpq_invocation_get_request (invocation);
  gint64 n = data_int (invocation);

  log_request (request);
  if (g_str_equal (request, "square"))
    answer_int (invocation, n * n);
  else if (g_str_equal (request, "echo"))
    {
      g_autofree char *json = mpq_invocation_dup_data_json (invocation);

      g_assert_true (mpq_invocation_return_json (invocation, json, NULL));
    }
  else if (g_str_equal (request, "pid"))
    answer_int (invocation, getpid ());
  else if (g_str_equal (request, "task-id"))
    answer_int (invocation, mpq_invocation_get_task_id (invocation));
  else if (g_str_equal (request, "fail"))
    {
      g_autofree char *json = mpq_invocation_dup_data_json (invocation);
      g_autofree char *text = g_strdup_printf ("failing on purpose: %s", json);

      g_assert_true (mpq_invocation_return_error (invocation, text, NULL));
    }
  else if (g_str_equal (request, "drop"))
    ;
  else if (g_str_equal (request, "crash-on"))
    {
      if (n == 13)
        raise (SIGSEGV);
      answer_int (invocation, n * n);
    }
  else if (g_str_equal (request, "sleep"))
    {
      g_usleep (n * 1000);
      answer_int (invocation, n);
    }
  else if (g_str_equal (request, "hang"))
    for (;;)
      pause ();
  else if (g_str_equal (request, "until-cancel"))
    {
      GCancellable *cancellable = mpq_invocation_get_cancellable (invocation);

      g_assert_true (mpq_invocation_send_progress_json (invocation, "\"started\"", NULL));
      while (!g_cancellable_is_cancelled (cancellable))
        g_main_context_iteration (NULL, TRUE);
      log_request ("cancelled");
      g_assert_true (mpq_invocation_return_json (invocation, "\"stopped\"", NULL));
    }
  else if (g_str_equal (request, "progress"))
    {
      for (gint64 i = 1; i <= n; i++)
        {
          g_autofree char *json = g_strdup_printf ("%" G_GINT64_FORMAT, i);

          g_assert_true (mpq_invocation_send_progress_json (invocation, json, NULL));
        }
      answer_int (invocation, n);
    }
  else if (g_str_equal (request, "exit-after"))
    {
      char *json = mpq_invocation_dup_data_json (invocation);

      g_assert_true (mpq_invocation_return_json (invocation, json, NULL));
      g_free (json);
      g_object_run_dispose (G_OBJECT (worker));   /* flushes */
      _exit (0);
    }
  else if (g_str_equal (request, "hang-once"))
    {
      g_autofree char *hung = g_build_filename (g_getenv ("MPQ_TEST_LOG_DIR"), "hung", NULL);
      int fd;

      /* The file first: once "started" is seen, the one that hangs is
       * known. */
      fd = open (hung, O_CREAT | O_EXCL | O_WRONLY, 0600);
      g_assert_true (mpq_invocation_send_progress_json (invocation, "\"started\"", NULL));
      if (fd >= 0)
        for (;;)
          pause ();
      answer_int (invocation, n);
    }
  else if (g_str_equal (request, "bytes-echo"))
    answer_bytes (invocation);
  else if (g_str_equal (request, "crash-unless-bytes-seen"))
    {
      g_autofree char *seen = g_build_filename (g_getenv ("MPQ_TEST_LOG_DIR"), "bytes-seen",
                                                NULL);
      GBytes *payload = mpq_invocation_get_bytes (invocation);
      g_autofree char *size = g_strdup_printf ("%" G_GSSIZE_FORMAT,
                                               payload != NULL ?
                                               (gssize) g_bytes_get_size (payload) : -1);
      int fd;

      /* Written before the crash: the test checks the first attempt had
       * the payload too, not only the retry. */
      fd = open (seen, O_CREAT | O_EXCL | O_WRONLY, 0600);
      if (fd >= 0)
        {
          g_assert_cmpint (write (fd, size, strlen (size)), ==, (gssize) strlen (size));
          close (fd);
          raise (SIGSEGV);
        }
      answer_bytes (invocation);
    }
  else if (g_str_equal (request, "later"))
    g_idle_add_full (G_PRIORITY_DEFAULT, answer_later, g_object_ref (invocation),
                     g_object_unref);
  else
    g_assert_true (mpq_invocation_return_json (invocation, "\"unknown request\"", NULL));
}

static void
batch_cb (MpqWorker     *worker,
          MpqInvocation *invocation,
          gpointer       user_data)
{
  const char *request = mpq_invocation_get_request (invocation);
  JsonArray *items = json_node_get_array (mpq_invocation_get_data (invocation));
  guint n = mpq_invocation_get_n_items (invocation);
  g_autoptr(GString) results = g_string_new ("[");
  g_autofree char *log = g_strdup_printf ("batch %s", request);
  g_autofree char *items_json = mpq_invocation_dup_data_json (invocation);
  GError *error = NULL;

  log_request (log);
  g_assert_cmpuint (json_array_get_length (items), ==, n);
  g_assert_cmpuint (n, >, 0);
  if (g_str_equal (request, "fail"))
    {
      g_autofree char *text = g_strdup_printf ("failing on purpose: %s", items_json);

      g_assert_true (mpq_invocation_return_error (invocation, text, NULL));
      return;
    }
  if (g_str_equal (request, "drop"))
    return;
  if (g_str_equal (request, "bytes-on-batch"))
    {
      g_autoptr(GBytes) payload = g_bytes_new_static ("xyz", 3);

      /* Refused, and the batch stays to answer (below, item by item); a
       * batch never carries bytes either. */
      g_assert_null (mpq_invocation_get_bytes (invocation));
      g_assert_false (mpq_invocation_return_bytes (invocation, items_json, payload, &error));
      g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
      g_clear_error (&error);
    }
  if (g_str_equal (request, "wrong-count"))
    {
      g_autofree char *short_one = g_strndup (items_json, strlen (items_json) - 1);
      g_autofree char *one_short = NULL;
      char *comma = strrchr (short_one, ',');

      /* Refused, and the batch stays to answer. */
      if (comma != NULL)
        {
          *comma = '\0';
          one_short = g_strdup_printf ("%s]", short_one);
        }
      else
        one_short = g_strdup ("[]");
      g_assert_false (mpq_invocation_return_json (invocation, one_short, &error));
      g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
      g_clear_error (&error);
      g_assert_false (mpq_invocation_return_json (invocation, "{\"not\":\"an array\"}", &error));
      g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
      g_clear_error (&error);
      g_assert_false (mpq_invocation_return_json (invocation, "[1,", &error));
      g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
      g_clear_error (&error);
      g_assert_true (mpq_invocation_return_json (invocation, items_json, NULL));
      return;
    }
  for (guint i = 0; i < n; i++)
    {
      JsonNode *item = json_array_get_element (items, i);

      if (i > 0)
        g_string_append_c (results, ',');
      if (g_str_equal (request, "square"))
        g_string_append_printf (results, "%" G_GINT64_FORMAT,
                                json_node_get_int (item) * json_node_get_int (item));
      else if (g_str_equal (request, "n-items"))
        g_string_append_printf (results, "%u", n);
      else
        {
          g_autofree char *json = json_to_string (item, FALSE);

          g_string_append (results, json);
        }
    }
  g_string_append_c (results, ']');
  g_assert_true (mpq_invocation_return_json (invocation, results->str, NULL));
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(MpqWorker) worker = NULL;
  g_autoptr(GError) error = NULL;

  if (argc > 1 && g_str_equal (argv[1], "--die-at-start"))
    return 3;

  worker = mpq_worker_new_for_child (&error);
  if (worker == NULL)
    {
      g_printerr ("worker: %s\n", error->message);
      return 2;
    }
  g_signal_connect (worker, "task", G_CALLBACK (task_cb), NULL);
  if (argc > 1 && g_str_equal (argv[1], "--batches"))
    g_signal_connect (worker, "batch", G_CALLBACK (batch_cb), NULL);
  if (argc > 1 && g_str_has_prefix (argv[1], "--format="))
    mpq_worker_set_format (worker, argv[1] + strlen ("--format="));
  if (!mpq_worker_run (worker, &error))
    {
      g_printerr ("worker %d: %s\n", (int) getpid (), error->message);
      return 1;
    }
  return 0;
}
