/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The C worker of the pool benchmark (W7, W8; bench-pool.c is the
 * parent): an MpqWorker that answers each "square" task, its data an
 * integer n, with n * n, and each batch of a map (W8) whole. A task's
 * data is read as the JsonNode the library decoded, a batch's items as
 * integers from its JSON text; anything but integers fails the run.
 *
 * mpq-bench-pool spawns it through mpq_pool_new (); run by hand it has no
 * pool to serve and says so. */

#include <pymulproc/pymulproc.h>

#include <stdlib.h>
#include <string.h>

#include "bench-pool-ints.h"

static void
on_task (MpqWorker     *worker,
         MpqInvocation *invocation,
         gpointer       user_data)
{
  JsonNode *data = mpq_invocation_get_data (invocation);
  g_autoptr(GError) error = NULL;
  char answer[32];
  gint64 n;

  if (!g_str_equal (mpq_invocation_get_request (invocation), "square") ||
      data == NULL || !JSON_NODE_HOLDS_VALUE (data) ||
      json_node_get_value_type (data) != G_TYPE_INT64)
    {
      g_printerr ("bench worker %d FAILED: not a square task with an integer\n",
                  mpq_worker_get_pid (worker));
      exit (1);
    }
  n = json_node_get_int (data);
  g_snprintf (answer, sizeof answer, "%" G_GINT64_FORMAT, n * n);
  if (!mpq_invocation_return_json (invocation, answer, &error))
    {
      g_printerr ("bench worker %d FAILED: return_json: %s\n",
                  mpq_worker_get_pid (worker), error->message);
      exit (1);
    }
}

/* A map's batch (W8), whole: its items read as integers from the batch's
 * JSON text (strictly: anything else fails the run), their squares
 * written as one JSON array, as the parent writes and reads them. */
static void
on_batch (MpqWorker     *worker,
          MpqInvocation *invocation,
          gpointer       user_data)
{
  guint n_items = mpq_invocation_get_n_items (invocation);
  g_autofree char *items_json = mpq_invocation_dup_data_json (invocation);
  g_autoptr(GArray) items = g_array_sized_new (FALSE, FALSE, sizeof (gint64), n_items);
  g_autoptr(GString) results = g_string_sized_new (16 * n_items + 2);
  g_autoptr(GError) error = NULL;

  if (!g_str_equal (mpq_invocation_get_request (invocation), "square") ||
      !bench_pool_read_int_array (items_json, strlen (items_json), items))
    {
      g_printerr ("bench worker %d FAILED: not a batch of square tasks on integers\n",
                  mpq_worker_get_pid (worker));
      exit (1);
    }
  g_string_append_c (results, '[');
  for (guint i = 0; i < items->len; i++)
    {
      gint64 n = g_array_index (items, gint64, i);

      if (i > 0)
        g_string_append_c (results, ',');
      bench_pool_append_int (results, n * n);
    }
  g_string_append_c (results, ']');
  if (!mpq_invocation_return_json (invocation, results->str, &error))
    {
      g_printerr ("bench worker %d FAILED: return_json: %s\n",
                  mpq_worker_get_pid (worker), error->message);
      exit (1);
    }
}

int
main (void)
{
  g_autoptr(MpqWorker) worker = NULL;
  g_autoptr(GError) error = NULL;

  worker = mpq_worker_new_for_child (&error);
  if (worker == NULL)
    {
      g_printerr ("bench worker: %s\n", error->message);
      return 2;
    }
  g_signal_connect (worker, "task", G_CALLBACK (on_task), NULL);
  g_signal_connect (worker, "batch", G_CALLBACK (on_batch), NULL);
  if (!mpq_worker_run (worker, &error))
    {
      g_printerr ("bench worker %d: %s\n", mpq_worker_get_pid (worker), error->message);
      return 1;
    }
  return 0;
}
