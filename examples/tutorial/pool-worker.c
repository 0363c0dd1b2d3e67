/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pool-worker.c — tutorial step 4: a pool worker in C.
 *
 * Spawned by an MpqPool (pool.c, pool.py, pool.js): answers "square" with
 * the square of a whole number, and anything else with an error.
 */
#include <stdlib.h>
#include <pymulproc/pymulproc.h>

static void
on_task (MpqWorker     *worker,
         MpqInvocation *invocation,
         gpointer       user_data)
{
  JsonNode *data = mpq_invocation_get_data (invocation);

  if (g_str_equal (mpq_invocation_get_request (invocation), "square")
      && data != NULL && JSON_NODE_HOLDS_VALUE (data)
      && json_node_get_value_type (data) == G_TYPE_INT64)
    {
      gint64 n = json_node_get_int (data);
      g_autofree char *square = g_strdup_printf ("%" G_GINT64_FORMAT, n * n);

      mpq_invocation_return_json (invocation, square, NULL);
    }
  else
    {
      g_autofree char *text = mpq_invocation_dup_data_json (invocation);
      g_autofree char *message = g_strdup_printf ("not a whole number: %s", text);

      mpq_invocation_return_error (invocation, message, NULL);
    }
}

int
main (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqWorker) worker = mpq_worker_new_for_child (&error);

  if (worker != NULL)
    {
      g_signal_connect (worker, "task", G_CALLBACK (on_task), NULL);
      /* Serves tasks until the pool says DIE (TRUE) or is gone (FALSE). */
      mpq_worker_run (worker, &error);
    }
  if (error != NULL && !g_error_matches (error, MPQ_ERROR, MPQ_ERROR_CLOSED))
    {
      g_printerr ("pool-worker: %s\n", error->message);
      return EXIT_FAILURE;
    }
  return EXIT_SUCCESS;
}
