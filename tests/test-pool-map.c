/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* mpq_pool_map_json () and MpqWorker::batch, with real workers
 * (mpq-pool-test-worker, with --batches for a batch handler). */
#include "pool-test-util.h"

#include <glib/gstdio.h>

static JsonNode *
parse (const char *json)
{
  g_autoptr(GError) error = NULL;
  JsonNode *node = json_from_string (json, &error);

  g_assert_no_error (error);
  g_assert_nonnull (node);
  return node;
}

static char *
map_json_ok (MpqPool    *pool,
             const char *request,
             const char *items)
{
  g_autoptr(GError) error = NULL;
  char *results = mpq_pool_map_json (pool, request, items, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (results);
  return results;
}

static void
assert_squares (const char *results,
                guint       n)
{
  g_autoptr(JsonNode) node = parse (results);
  JsonArray *array = json_node_get_array (node);

  g_assert_cmpuint (json_array_get_length (array), ==, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpint (json_array_get_int_element (array, i), ==, (gint64) i * i);
}

/* Results in input order, item by item (`task`) and by batches (`batch`),
 * and an empty map. */
static void
test_map_json_in_order (void)
{
  const char *args[] = { NULL, "--batches" };

  for (guint k = 0; k < G_N_ELEMENTS (args); k++)
    {
      g_autoptr(MpqPool) pool = new_pool_full (3, args[k], NULL, NULL);
      g_autofree char *items = int_array (1000);
      g_autofree char *squares = map_json_ok (pool, "square", items);
      g_autofree char *empty = map_json_ok (pool, "square", " [ ] ");
      g_autofree char *one = map_json_ok (pool, "square", "[7]");

      assert_squares (squares, 1000);
      g_assert_cmpstr (empty, ==, "[]");
      g_assert_cmpstr (one, ==, "[49]");
      shutdown_ok (pool);
    }
}

/* Any JSON value goes and comes back as it was, in a batch or not, and
 * whitespace in the items is no harm: a batch is made compact, and the
 * spaces in strings stay (after an escaped quote or backslash too). */
static void
test_map_json_keeps_values (void)
{
  const char *items = "[ 1, \"two\" ,null,{\"a\":[3,{\"b\":null}]},[],true,-0.5,\"\\u00e9\\n\",[[[]]],"
                      " \" a  b \", { \"k k\" :\t\" x\\\" , y\\\\ \" } ,\n[ \"[ ]\" , { } ] ]";
  const char *args[] = { NULL, "--batches" };
  g_autoptr(JsonNode) expected = parse (items);

  for (guint k = 0; k < G_N_ELEMENTS (args); k++)
    {
      g_autoptr(MpqPool) pool = new_pool_full (2, args[k], NULL, NULL);
      g_autofree char *results = map_json_ok (pool, "echo", items);
      g_autoptr(JsonNode) got = parse (results);

      g_assert_true (json_node_equal (got, expected));
      shutdown_ok (pool);
    }
}

/* What is not one JSON array fails at once, and nothing starts. */
static void
test_map_json_bad_input (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("mpq-pool-map-XXXXXX", &error);
  const char *bad[] = { "", "{}", "7", "[1,", "[1,]", "[1] [2]", "[1] x", "not json",
                        "[\"\xff\"]", "[1,\"a\x01\"]" };
  g_autoptr(MpqPool) pool = NULL;
  g_autoptr(MpqTask) after = NULL;
  g_autofree char *path = NULL;
  g_autofree char *log = NULL;

  g_assert_no_error (error);
  pool = new_pool_full (1, "--batches", dir, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      char *results = mpq_pool_map_json (pool, "echo", bad[i], NULL, &error);

      g_assert_null (results);
      g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
      g_clear_error (&error);
    }
  /* The worker heard of nothing but this. */
  after = submit_int (pool, "pid", 0);
  path = g_strdup_printf ("%s/%" G_GINT64_FORMAT, dir, wait_int (after));
  shutdown_ok (pool);
  g_assert_true (g_file_get_contents (path, &log, NULL, NULL));
  g_assert_cmpstr (log, ==, "pid\n");
  g_unlink (path);
  g_rmdir (dir);
}

/* A batch handler gets Pool.map's chunks (1000 items, 2 workers: 125 a
 * batch), and map () of messages splits their results. */
static void
test_batch_handler (void)
{
  Counts counts = { 0, };
  g_autoptr(MpqPool) pool = new_pool_full (2, "--batches", NULL, &counts);
  g_autofree char *items = int_array (1000);
  g_autofree char *sizes = NULL;
  g_autoptr(JsonNode) node = NULL;
  g_autoptr(GPtrArray) replies = NULL;
  g_autoptr(GError) error = NULL;
  const char *strv[] = { "1", "null", "{\"a\":[1,2]}", "\"x\"", NULL };

  run_until_counts (&counts, 2, 0);
  sizes = map_json_ok (pool, "n-items", items);
  node = parse (sizes);
  for (guint i = 0; i < 1000; i++)
    g_assert_cmpint (json_array_get_int_element (json_node_get_array (node), i), ==, 125);

  replies = mpq_pool_map (pool, "echo", strv, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (replies->len, ==, 4);
  for (guint i = 0; i < replies->len; i++)
    {
      MpqMessage *reply = g_ptr_array_index (replies, i);
      g_autofree char *json = mpq_message_dup_data_json (reply);

      g_assert_cmpstr (json, ==, strv[i]);
      g_assert_cmpstr (mpq_message_get_request (reply), ==, MPQ_REQ_FINISHED);
    }
  g_assert_null (mpq_message_get_data (g_ptr_array_index (replies, 1)));
  shutdown_ok (pool);
}

/* A batch's answer must be an array of as many results: anything else
 * is refused and the batch stays to answer (the worker asserts it). */
static void
test_batch_answer_checked (void)
{
  Counts counts = { 0, };
  g_autoptr(MpqPool) pool = new_pool_full (2, "--batches", NULL, &counts);
  g_autofree char *items = int_array (100);
  g_autofree char *results = map_json_ok (pool, "wrong-count", items);

  g_assert_cmpstr (results, ==, items);
  shutdown_ok (pool);
  g_assert_cmpuint (counts.exited_unexpected, ==, 0);
}

/* A batch answered with an error, or dropped, fails the map with it; the
 * pool goes on. */
static void
test_batch_failures (void)
{
  Counts counts = { 0, };
  g_autoptr(MpqPool) pool = new_pool_full (2, "--batches", NULL, &counts);
  g_autofree char *items = int_array (100);
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqTask) after = NULL;
  char *results;

  results = mpq_pool_map_json (pool, "fail", items, NULL, &error);
  g_assert_null (results);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_TASK_FAILED);
  g_assert_nonnull (strstr (error->message, "failing on purpose: ["));
  g_clear_error (&error);

  results = mpq_pool_map_json (pool, "drop", items, NULL, &error);
  g_assert_null (results);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_TASK_FAILED);
  g_assert_nonnull (strstr (error->message, "without answering"));
  g_clear_error (&error);

  after = submit_int (pool, "square", 6);
  g_assert_cmpint (wait_int (after), ==, 36);
  shutdown_ok (pool);
  g_assert_cmpuint (counts.exited_unexpected, ==, 0);
}

static void
map_json_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  GError **error = user_data;
  char *results = mpq_pool_map_json_finish (MPQ_POOL (source), result, error);

  g_assert_null (results);
  g_assert_nonnull (*error);
}

/* Cancelled, the map fails with G_IO_ERROR_CANCELLED. */
static void
test_map_json_cancelled (void)
{
  g_autoptr(MpqPool) pool = new_pool (2);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqTask) after = NULL;

  mpq_pool_map_json_async (pool, "until-cancel", "[0,0,0,0,0,0]", cancellable,
                           map_json_cb, &error);
  g_cancellable_cancel (cancellable);
  while (error == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  after = submit_int (pool, "square", 3);
  g_assert_cmpint (wait_int (after), ==, 9);
  shutdown_ok (pool);
}

void
test_pool_add_map_tests (void)
{
  g_test_add_func ("/Mpq/Pool/map-json-in-order", test_map_json_in_order);
  g_test_add_func ("/Mpq/Pool/map-json-keeps-values", test_map_json_keeps_values);
  g_test_add_func ("/Mpq/Pool/map-json-bad-input", test_map_json_bad_input);
  g_test_add_func ("/Mpq/Pool/map-json-cancelled", test_map_json_cancelled);
  g_test_add_func ("/Mpq/Pool/batch-handler", test_batch_handler);
  g_test_add_func ("/Mpq/Pool/batch-answer-checked", test_batch_answer_checked);
  g_test_add_func ("/Mpq/Pool/batch-failures", test_batch_failures);
}
