/* SPDX-License-Identifier: LGPL-2.1-or-later */

#define _GNU_SOURCE

#include "bench-common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const struct
{
  const char *name;
  gint64      count;
  gint64      warmup;
} workload_defaults[] = {
  [BENCH_W1] = { "w1", 200000, 0 },
  [BENCH_W2] = { "w2", 20000, 1000 },
  [BENCH_W3] = { "w3", 50000, 0 },
  [BENCH_W4] = { "w4", 100000, 0 },
  [BENCH_W5] = { "w5", 200000, 0 },
  [BENCH_W6] = { "w6", 1000, 0 },
};

void
bench_fail (const char *format,
            ...)
{
  va_list ap;
  g_autofree char *text = NULL;

  va_start (ap, format);
  text = g_strdup_vprintf (format, ap);
  va_end (ap);

  fprintf (stderr, "bench[%d] FAILED: %s\n", (int) getpid (), text);
  fflush (stderr);
  exit (EXIT_FAILURE);
}

static gboolean
parse_args (BenchArgs    *args,
            int          *argc,
            char       ***argv,
            GOptionEntry *extra)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  gint64 count = -1;
  gint64 warmup = -1;
  guint i;
  GOptionEntry entries[] = {
    { "child", 0, 0, G_OPTION_ARG_NONE, &args->child, "Run as a child", NULL },
    { "count", 0, 0, G_OPTION_ARG_INT64, &count, "Messages (W3: per child)", "N" },
    { "warmup", 0, 0, G_OPTION_ARG_INT64, &warmup, "W2: echoes before timing", "N" },
    { "children", 0, 0, G_OPTION_ARG_INT, &args->children, "W3, W4: children", "N" },
    { "index", 0, 0, G_OPTION_ARG_INT, &args->index, "Child: its index", "I" },
    { "spin-us", 0, 0, G_OPTION_ARG_INT64, &args->spin_us, "W5: reader work per message", "US" },
    { "size", 0, 0, G_OPTION_ARG_INT64, &args->size, "W6: payload bytes", "BYTES" },
    { "variant", 0, 0, G_OPTION_ARG_STRING, &args->variant, "sync or loop (Mpq W1: also decode)", "V" },
    { "decode", 0, 0, G_OPTION_ARG_STRING, &args->decode, "none or json-glib", "D" },
    { "endpoint", 0, 0, G_OPTION_ARG_STRING, &args->endpoint, "ZeroMQ endpoint", "E" },
    { "rss-file", 0, 0, G_OPTION_ARG_FILENAME, &args->rss_file, "Child: peak RSS out", "F" },
    { "mode", 0, 0, G_OPTION_ARG_STRING, &args->mode, "Mpq W4: task addressing", "M" },
    { "data", 0, 0, G_OPTION_ARG_STRING, &args->data, "Mpq: send data as json or node", "D" },
    { "parent-pid", 0, 0, G_OPTION_ARG_INT, &args->parent_pid, "Child: parent pid", "P" },
    { "uri", 0, 0, G_OPTION_ARG_STRING, &args->uri, "Mpq W3, W4: a queue on Redis", "URI" },
    { NULL }
  };

  args->children = 4;
  args->spin_us = 200;
  args->size = BENCH_PAYLOAD_SIZE;

  context = g_option_context_new ("w1|w2|w3|w4|w5|w6");
  g_option_context_add_main_entries (context, entries, NULL);
  if (extra != NULL)
    g_option_context_add_main_entries (context, extra, NULL);

  if (!g_option_context_parse (context, argc, argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return FALSE;
    }

  if (*argc != 2)
    {
      g_printerr ("Usage: %s w1|w2|w3|w4|w5|w6 [OPTION…]\n", (*argv)[0]);
      return FALSE;
    }

  for (i = 0; i < G_N_ELEMENTS (workload_defaults); i++)
    {
      if (g_str_equal ((*argv)[1], workload_defaults[i].name))
        {
          args->workload = i;
          args->workload_name = workload_defaults[i].name;
          args->count = count >= 0 ? count : workload_defaults[i].count;
          args->warmup = warmup >= 0 ? warmup : workload_defaults[i].warmup;
          break;
        }
    }

  if (args->workload_name == NULL)
    {
      g_printerr ("Unknown workload %s\n", (*argv)[1]);
      return FALSE;
    }

  if (args->variant == NULL)
    args->variant = g_strdup ("sync");
  if (args->decode == NULL)
    args->decode = g_strdup ("json-glib");
  if (args->mode == NULL)
    args->mode = g_strdup ("default");
  if (args->data == NULL)
    args->data = g_strdup ("json");

  /* W6's payload carries its index, samples and checksum (bench-payload.c). */
  if (args->count < 2 || args->children < 1 || args->size < 64)
    {
      g_printerr ("--count must be at least 2, --children at least 1 and --size at least 64\n");
      return FALSE;
    }

  return TRUE;
}

static void
args_clear (BenchArgs *args)
{
  g_clear_pointer (&args->variant, g_free);
  g_clear_pointer (&args->decode, g_free);
  g_clear_pointer (&args->endpoint, g_free);
  g_clear_pointer (&args->rss_file, g_free);
  g_clear_pointer (&args->mode, g_free);
  g_clear_pointer (&args->data, g_free);
  g_clear_pointer (&args->uri, g_free);
}

int
bench_main (int            argc,
            char         **argv,
            GOptionEntry  *extra,
            BenchMainFunc  func,
            gpointer       user_data)
{
  BenchArgs args = { 0 };
  int status;

  if (!parse_args (&args, &argc, &argv, extra))
    return 2;

  status = func (&args, user_data);
  args_clear (&args);

  return status;
}

gboolean
bench_is_loop (const BenchArgs *args)
{
  return g_str_equal (args->variant, "loop");
}

void
bench_format_line (GString    *out,
                   const char *request,
                   gint        pid,
                   gint64      value)
{
  g_string_append_printf (out,
                          "[\"%s\",%d,null,{\"value\":%" G_GINT64_FORMAT ","
                          "\"payload\":\"" BENCH_PAYLOAD "\"}]\n",
                          request, pid, value);
}

const char *
bench_data_json (char   *buffer,
                 gsize   size,
                 gint64  value)
{
  g_snprintf (buffer, size, "{\"value\":%" G_GINT64_FORMAT ",\"payload\":\"" BENCH_PAYLOAD "\"}",
              value);
  return buffer;
}

JsonNode *
bench_data_node (gint64 value)
{
  JsonObject *object = json_object_new ();

  json_object_set_int_member (object, "value", value);
  json_object_set_string_member (object, "payload", BENCH_PAYLOAD);

  return json_node_init_object (json_node_alloc (), object);
}

gint64
bench_data_value (JsonNode *data)
{
  JsonObject *object;
  JsonNode *value;
  JsonNode *payload;

  if (data == NULL || !JSON_NODE_HOLDS_OBJECT (data))
    bench_fail ("the data is not an object");

  object = json_node_get_object (data);
  value = json_object_get_member (object, "value");
  payload = json_object_get_member (object, "payload");

  if (value == NULL || json_node_get_value_type (value) != G_TYPE_INT64)
    bench_fail ("the data has no integer \"value\"");
  if (payload == NULL || json_node_get_value_type (payload) != G_TYPE_STRING
      || strcmp (json_node_get_string (payload), BENCH_PAYLOAD) != 0)
    bench_fail ("the data has no right \"payload\"");

  return json_node_get_int (value);
}

gint64
bench_decode_json_glib (JsonParser *parser,
                        const char *line,
                        gssize      length,
                        const char *request)
{
  g_autoptr(GError) error = NULL;
  JsonNode *root;
  JsonArray *array;

  if (!json_parser_load_from_data (parser, line, length, &error))
    bench_fail ("json-glib: %s", error->message);

  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_ARRAY (root))
    bench_fail ("not a message array");

  array = json_node_get_array (root);
  if (json_array_get_length (array) != 4)
    bench_fail ("not a 4-element message");
  if (g_strcmp0 (json_array_get_string_element (array, 0), request) != 0)
    bench_fail ("expected request %s", request);
  if (json_array_get_int_element (array, 1) <= 0)
    bench_fail ("no sender pid");

  return bench_data_value (json_array_get_element (array, 3));
}

gint64
bench_scan_value (const char *line,
                  gsize       length)
{
  static const char key[] = "\"value\":";
  const char *p = memmem (line, length, key, sizeof key - 1);
  const char *end = line + length;
  gint64 value = 0;

  if (p == NULL)
    bench_fail ("no \"value\" in a line");

  for (p += sizeof key - 1; p < end && g_ascii_isdigit (*p); p++)
    value = value * 10 + (*p - '0');

  return value;
}

void
bench_check_init (BenchCheck *check,
                  gint64      expected)
{
  memset (check, 0, sizeof *check);
  check->seen = g_malloc0 (expected);
  check->expected = expected;
}

void
bench_check_add (BenchCheck *check,
                 gint64      value)
{
  if (value < 0 || value >= check->expected)
    bench_fail ("value %" G_GINT64_FORMAT " out of range [0, %" G_GINT64_FORMAT ")",
                value, check->expected);
  if (check->seen[value])
    bench_fail ("DUPLICATE: value %" G_GINT64_FORMAT " arrived twice", value);

  check->seen[value] = 1;
  check->count++;
  check->sum += value;

  if (check->count == 1)
    check->first_ns = bench_now_ns ();
  if (check->count == check->expected)
    check->last_ns = bench_now_ns ();
}

gboolean
bench_check_done (BenchCheck *check)
{
  return check->count == check->expected;
}

void
bench_check_finish (BenchCheck *check)
{
  gint64 n = check->expected;

  if (check->count != n)
    bench_fail ("LOSS: %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " messages arrived",
                check->count, n);
  if (check->sum != n * (n - 1) / 2)
    bench_fail ("wrong sum %" G_GINT64_FORMAT, check->sum);

  g_clear_pointer (&check->seen, g_free);
}

gboolean
bench_receive (BenchCheck      *check,
               const BenchArgs *args,
               gint64           value)
{
  bench_check_add (check, value);
  if (args->workload == BENCH_W5)
    bench_spin_us (args->spin_us);

  return bench_check_done (check);
}

guint
bench_n_children (const BenchArgs *args)
{
  return (args->workload == BENCH_W3 || args->workload == BENCH_W4) ? args->children : 1;
}

gint64
bench_expected (const BenchArgs *args)
{
  return args->workload == BENCH_W3 ? args->count * args->children : args->count;
}

gint64
bench_first_value (const BenchArgs *args)
{
  return args->workload == BENCH_W3 ? args->index * args->count : 0;
}

gint64
bench_now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

/* Busy: the reader is working, not sleeping, so the writer runs ahead. */
void
bench_spin_us (gint64 us)
{
  gint64 until = bench_now_ns () + us * 1000;

  while (bench_now_ns () < until)
    ;
}

static gint64
peak_rss_kib (void)
{
  g_autofree char *status = NULL;
  const char *line;

  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return -1;

  line = strstr (status, "VmHWM:");
  if (line == NULL)
    return -1;

  return g_ascii_strtoll (line + strlen ("VmHWM:"), NULL, 10);
}

void
bench_write_rss_file (const char *path)
{
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;

  if (path == NULL)
    return;

  text = g_strdup_printf ("%" G_GINT64_FORMAT "\n", peak_rss_kib ());
  if (!g_file_set_contents (path, text, -1, &error))
    bench_fail ("%s", error->message);
}

static gint64
read_rss_file (const char *path)
{
  g_autofree char *text = NULL;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    bench_fail ("the child wrote no peak RSS to %s", path);

  return g_ascii_strtoll (text, NULL, 10);
}

static int
compare_gint64 (gconstpointer a,
                gconstpointer b)
{
  gint64 x = *(const gint64 *) a;
  gint64 y = *(const gint64 *) b;

  return (x > y) - (x < y);
}

static void
latency_stats (GArray *ns,
               double *median_us,
               double *p99_us)
{
  guint n = ns->len;
  guint p99;

  g_assert (n > 0);
  g_array_sort (ns, compare_gint64);

  if (n % 2 == 1)
    *median_us = g_array_index (ns, gint64, n / 2) / 1000.0;
  else
    *median_us = (g_array_index (ns, gint64, n / 2 - 1)
                  + g_array_index (ns, gint64, n / 2)) / 2000.0;

  /* The smallest value that 99 % of the samples do not exceed. */
  p99 = (guint) ((n * 99 + 99) / 100);
  *p99_us = g_array_index (ns, gint64, MAX (p99, 1) - 1) / 1000.0;
}

void
bench_echo_init (BenchEcho       *echo,
                 const BenchArgs *args)
{
  memset (echo, 0, sizeof *echo);
  echo->args = args;
  /* Allocated up front: no reallocation inside a timed round trip. */
  echo->latencies = g_array_sized_new (FALSE, FALSE, sizeof (gint64), args->count);
}

gint64
bench_echo_next (BenchEcho *echo)
{
  echo->sent_ns = bench_now_ns ();
  return echo->sent++;
}

gboolean
bench_echo_take (BenchEcho *echo,
                 gint64     arrived_ns,
                 gint64     value)
{
  gint64 elapsed = arrived_ns - echo->sent_ns;

  if (value != echo->sent - 1)
    bench_fail ("echo %" G_GINT64_FORMAT " came back wrong", echo->sent - 1);
  if (echo->sent > echo->args->warmup)
    g_array_append_val (echo->latencies, elapsed);

  return echo->sent == echo->args->warmup + echo->args->count;
}

void
bench_echo_print (BenchEcho  *echo,
                  const char *system)
{
  BenchResult *result;
  double median, p99;

  latency_stats (echo->latencies, &median, &p99);
  result = bench_result_new (echo->args, system);
  bench_result_int (result, "count", echo->args->count);
  bench_result_int (result, "warmup", echo->args->warmup);
  bench_result_double (result, "median_us", median);
  bench_result_double (result, "p99_us", p99);
  bench_result_print (result);
  g_clear_pointer (&echo->latencies, g_array_unref);
}

struct _BenchResult
{
  GString *json;
};

BenchResult *
bench_result_new (const BenchArgs *args,
                  const char      *system)
{
  BenchResult *result = g_new0 (BenchResult, 1);

  result->json = g_string_new ("{");
  bench_result_string (result, "workload", args->workload_name);
  bench_result_string (result, "system", system);
  bench_result_string (result, "variant", args->variant);

  return result;
}

static void
result_key (BenchResult *result,
            const char  *name)
{
  if (result->json->len > 1)
    g_string_append_c (result->json, ',');
  g_string_append_printf (result->json, "\"%s\":", name);
}

void
bench_result_int (BenchResult *result,
                  const char  *name,
                  gint64       value)
{
  result_key (result, name);
  g_string_append_printf (result->json, "%" G_GINT64_FORMAT, value);
}

void
bench_result_double (BenchResult *result,
                     const char  *name,
                     double       value)
{
  char buffer[G_ASCII_DTOSTR_BUF_SIZE];

  result_key (result, name);
  g_string_append (result->json, g_ascii_formatd (buffer, sizeof buffer, "%.6g", value));
}

void
bench_result_string (BenchResult *result,
                     const char  *name,
                     const char  *value)
{
  result_key (result, name);
  /* Only our own plain names go here: nothing to escape. */
  g_string_append_printf (result->json, "\"%s\"", value);
}

void
bench_result_print (BenchResult *result)
{
  g_string_append (result->json, "}\n");
  fputs (result->json->str, stdout);
  fflush (stdout);
  g_string_free (result->json, TRUE);
  g_free (result);
}

void
bench_finish_throughput (const BenchArgs *args,
                         const char      *system,
                         BenchCheck      *check,
                         const char      *rss_file)
{
  BenchResult *result;
  double seconds;

  bench_check_finish (check);
  result = bench_result_new (args, system);
  seconds = (check->last_ns - check->first_ns) / 1e9;

  bench_result_int (result, "count", check->expected);
  bench_result_double (result, "seconds", seconds);
  bench_result_double (result, "rate", seconds > 0 ? (check->expected - 1) / seconds : 0);
  if (args->workload == BENCH_W6)
    {
      /* Each payload went out and came back. */
      bench_result_int (result, "size", args->size);
      bench_result_double (result, "gb_s",
                           seconds > 0 ? 2.0 * (check->expected - 1) * args->size / seconds / 1e9
                                       : 0);
    }
  if (args->workload == BENCH_W5 || args->workload == BENCH_W6)
    {
      bench_result_int (result, "parent_rss_kib", peak_rss_kib ());
      bench_result_int (result, "child_rss_kib", read_rss_file (rss_file));
    }
  bench_result_print (result);
}
