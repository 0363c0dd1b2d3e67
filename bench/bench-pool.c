/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The pool benchmark's C parent (W7, W8): an MpqPool of --workers C
 * workers (mpq-bench-pool-worker, found next to this program), each task
 * "square" with an integer n as its data, answered n * n.
 *
 * W7: one by one, as futures: every task is submitted with
 * mpq_pool_submit () (its data formatted as JSON text there), then each
 * MpqTask is waited for in order with mpq_task_wait (-1) and its result
 * read from the reply's JsonNode.
 * W8: the same work as one mpq_pool_map_json () of [0, ..., N - 1]
 * (made inside the timing too), its results read back with json-glib;
 * the workers take the map's batches whole (MpqWorker::batch). With
 * --messages: one mpq_pool_map () of N JSON texts, a message per result.
 *
 * Every result is checked (i * i for task i). Before timing, the program
 * waits until every worker said it is ready (worker-started) and runs
 * --warmup tasks the measured way; the rate runs from the first submit (W8:
 * the first JSON text made) to the last result, so spawning is not
 * counted. The one JSON line on stdout also gives the parent's CPU time
 * in the timed part, and the workers' over their whole life (warm-up
 * included), from getrusage (). */

#include "bench-common.h"
#include "bench-pool-ints.h"

#include <pymulproc/pymulproc.h>

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct
{
  const char *workload;   /* "w7" or "w8" */
  gint64      count;
  gint        workers;
  gint64      warmup;
  char       *worker_exe;
  gboolean    messages;   /* W8: mpq_pool_map (), a message per item */
  gboolean    json_glib;  /* W8: map_json's results read by json-glib's parser */
} PoolArgs;

typedef struct
{
  gint64 submit_ns;       /* W7: submitting everything */
  gint64 total_ns;
} Timing;

static double
cpu_seconds (int who)
{
  struct rusage usage;

  getrusage (who, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

static gint64
reply_value (MpqMessage *reply)
{
  JsonNode *data = mpq_message_get_data (reply);

  if (data == NULL || !JSON_NODE_HOLDS_VALUE (data) ||
      json_node_get_value_type (data) != G_TYPE_INT64)
    bench_fail ("a result is not an integer");
  return json_node_get_int (data);
}

static void
check_reply (MpqMessage *reply,
             gint64      i)
{
  gint64 value = reply_value (reply);

  if (value != i * i)
    bench_fail ("task %" G_GINT64_FORMAT " came back as %" G_GINT64_FORMAT, i, value);
}

/* W7's loop: submit @n tasks, then wait for each in order. */
static void
one_by_one (MpqPool *pool,
            gint64   n,
            Timing  *timing)
{
  g_autoptr(GPtrArray) tasks = g_ptr_array_new_full (n, g_object_unref);
  gint64 start = bench_now_ns ();
  gint64 i;

  for (i = 0; i < n; i++)
    {
      g_autoptr(GError) error = NULL;
      char json[32];
      MpqTask *task;

      g_snprintf (json, sizeof json, "%" G_GINT64_FORMAT, i);
      task = mpq_pool_submit (pool, "square", json, &error);
      if (task == NULL)
        bench_fail ("mpq_pool_submit: %s", error->message);
      g_ptr_array_add (tasks, task);
    }
  if (timing != NULL)
    timing->submit_ns = bench_now_ns () - start;

  for (i = 0; i < n; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqMessage) reply = mpq_task_wait (tasks->pdata[i], -1, &error);

      if (reply == NULL)
        bench_fail ("mpq_task_wait: %s", error->message);
      check_reply (reply, i);
    }
  if (timing != NULL)
    timing->total_ns = bench_now_ns () - start;
}

/* W8's: one mpq_pool_map_json () of [0, ..., @n - 1], its text made inside
 * the timing; the results read back as integers (bench_pool_read_int_array (), or
 * with --json-glib as one JsonArray by json-glib's parser). */
static void
map_json_all (MpqPool  *pool,
              gint64    n,
              gboolean  json_glib,
              Timing   *timing)
{
  g_autoptr(GString) items = g_string_sized_new (8 * n);
  g_autoptr(GArray) values = g_array_sized_new (FALSE, FALSE, sizeof (gint64), n);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) results = NULL;
  g_autofree char *text = NULL;
  gint64 start = bench_now_ns ();
  gint64 i;

  g_string_append_c (items, '[');
  for (i = 0; i < n; i++)
    {
      if (i > 0)
        g_string_append_c (items, ',');
      bench_pool_append_int (items, i);
    }
  g_string_append_c (items, ']');
  text = mpq_pool_map_json (pool, "square", items->str, NULL, &error);
  if (text == NULL)
    bench_fail ("mpq_pool_map_json: %s", error->message);
  if (json_glib)
    {
      JsonArray *array;

      results = json_from_string (text, &error);
      if (results == NULL || !JSON_NODE_HOLDS_ARRAY (results))
        bench_fail ("map_json gave no array: %s", error != NULL ? error->message : text);
      array = json_node_get_array (results);
      for (guint k = 0; k < json_array_get_length (array); k++)
        {
          JsonNode *value = json_array_get_element (array, k);

          if (!JSON_NODE_HOLDS_VALUE (value) || json_node_get_value_type (value) != G_TYPE_INT64)
            bench_fail ("item %u came back as no integer", k);
          g_array_append_val (values, (gint64) { json_node_get_int (value) });
        }
    }
  else if (!bench_pool_read_int_array (text, strlen (text), values))
    bench_fail ("map_json gave no compact array of integers: %.200s", text);
  if (values->len != (guint) n)
    bench_fail ("map gave %u results for %" G_GINT64_FORMAT " items", values->len, n);
  for (i = 0; i < n; i++)
    if (g_array_index (values, gint64, i) != i * i)
      bench_fail ("item %" G_GINT64_FORMAT " came back wrong", i);
  if (timing != NULL)
    timing->total_ns = bench_now_ns () - start;
}

/* W8 with --messages: one mpq_pool_map () of @n JSON texts, a message
 * per result. */
static void
map_all (MpqPool *pool,
         gint64   n,
         Timing  *timing)
{
  g_autoptr(GPtrArray) items = NULL;
  g_autoptr(GPtrArray) replies = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start = bench_now_ns ();
  gint64 i;

  items = g_ptr_array_new_full (n + 1, g_free);
  for (i = 0; i < n; i++)
    g_ptr_array_add (items, g_strdup_printf ("%" G_GINT64_FORMAT, i));
  g_ptr_array_add (items, NULL);
  replies = mpq_pool_map (pool, "square", (const char * const *) items->pdata, NULL, &error);
  if (replies == NULL)
    bench_fail ("mpq_pool_map: %s", error->message);
  if (replies->len != (guint) n)
    bench_fail ("map gave %u results for %" G_GINT64_FORMAT " items", replies->len, n);
  for (i = 0; i < n; i++)
    check_reply (replies->pdata[i], i);
  if (timing != NULL)
    timing->total_ns = bench_now_ns () - start;
}

static void
on_worker_started (MpqPool *pool,
                   gint     pid,
                   gpointer user_data)
{
  (*(gint *) user_data)++;
}

static char *
default_worker_exe (void)
{
  g_autofree char *self = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree char *dir = NULL;

  if (self == NULL)
    bench_fail ("cannot find this program: give --worker-exe");
  dir = g_path_get_dirname (self);
  return g_build_filename (dir, "mpq-bench-pool-worker", NULL);
}

static void
measure (PoolArgs *args,
         MpqPool  *pool,
         gint64    n,
         Timing   *timing)
{
  if (!g_str_equal (args->workload, "w8"))
    one_by_one (pool, n, timing);
  else if (args->messages)
    map_all (pool, n, timing);
  else
    map_json_all (pool, n, args->json_glib, timing);
}

static int
run (PoolArgs *args)
{
  const char *argv[] = { args->worker_exe, NULL };
  gboolean map = g_str_equal (args->workload, "w8");
  g_autoptr(MpqPool) pool = NULL;
  g_autoptr(GError) error = NULL;
  BenchArgs result_args = { 0 };
  BenchResult *result;
  Timing timing = { 0 };
  double parent_cpu;
  gint started = 0;

  pool = mpq_pool_new (argv, args->workers, &error);
  if (pool == NULL)
    bench_fail ("mpq_pool_new: %s", error->message);
  g_signal_connect (pool, "worker-started", G_CALLBACK (on_worker_started), &started);
  while (started < args->workers)
    g_main_context_iteration (NULL, TRUE);

  if (args->warmup > 0)
    measure (args, pool, args->warmup, NULL);

  parent_cpu = cpu_seconds (RUSAGE_SELF);
  measure (args, pool, args->count, &timing);
  parent_cpu = cpu_seconds (RUSAGE_SELF) - parent_cpu;

  if (!mpq_pool_shutdown (pool, -1, &error))
    bench_fail ("mpq_pool_shutdown: %s", error->message);

  result_args.workload_name = args->workload;
  result_args.variant = (char *) (!map ? "submit" : args->messages ? "map" :
                                  args->json_glib ? "map_json_glib" : "map_json");
  result = bench_result_new (&result_args, "mpq-pool");
  bench_result_int (result, "count", args->count);
  bench_result_int (result, "workers", args->workers);
  bench_result_double (result, "seconds", timing.total_ns / 1e9);
  bench_result_double (result, "rate", args->count / (timing.total_ns / 1e9));
  if (!map)
    bench_result_double (result, "submit_seconds", timing.submit_ns / 1e9);
  bench_result_double (result, "parent_cpu_s", parent_cpu);
  bench_result_double (result, "workers_cpu_s", cpu_seconds (RUSAGE_CHILDREN));
  bench_result_print (result);
  return 0;
}

int
main (int   argc,
      char *argv[])
{
  PoolArgs args = { .count = 100000, .workers = 4, .warmup = 1000 };
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  GOptionEntry entries[] = {
    { "count", 0, 0, G_OPTION_ARG_INT64, &args.count, "Tasks", "N" },
    { "workers", 0, 0, G_OPTION_ARG_INT, &args.workers, "Worker processes", "N" },
    { "warmup", 0, 0, G_OPTION_ARG_INT64, &args.warmup, "Tasks run before timing", "N" },
    { "worker-exe", 0, 0, G_OPTION_ARG_FILENAME, &args.worker_exe, "The C worker", "PATH" },
    { "messages", 0, 0, G_OPTION_ARG_NONE, &args.messages, "W8: mpq_pool_map (), not map_json", NULL },
    { "json-glib", 0, 0, G_OPTION_ARG_NONE, &args.json_glib,
      "W8: read map_json's results with json-glib's parser", NULL },
    { NULL }
  };
  int status;

  context = g_option_context_new ("w7|w8");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  if (argc != 2 || (!g_str_equal (argv[1], "w7") && !g_str_equal (argv[1], "w8")) ||
      args.count < 1 || args.workers < 1 || args.warmup < 0)
    {
      g_printerr ("Usage: %s w7|w8 [--count=N] [--workers=N] [--warmup=N] [--worker-exe=PATH]\n",
                  argv[0]);
      return 2;
    }
  args.workload = argv[1];
  if (args.worker_exe == NULL)
    args.worker_exe = default_worker_exe ();

  status = run (&args);
  g_free (args.worker_exe);
  return status;
}
