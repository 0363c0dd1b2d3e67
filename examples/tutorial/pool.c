/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pool.c — tutorial step 4: an MpqPool from C.
 *
 *   pool [WORKER COMMAND LINE]    (default: pool-worker, built beside it)
 *
 * Two workers running the command line; one task submitted and waited
 * for, a map over ten numbers, a task that fails, then shutdown.
 */
#include <stdlib.h>
#include <pymulproc/pymulproc.h>

#ifndef POOL_WORKER
# define POOL_WORKER "pool-worker"
#endif

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  const char *default_argv[] = { POOL_WORKER, NULL };
  const char * const *worker_argv = argc > 1 ? (const char * const *) argv + 1 : default_argv;
  g_autoptr(MpqPool) pool = NULL;
  g_autoptr(MpqTask) task = NULL;
  g_autoptr(MpqTask) bad = NULL;
  g_autoptr(MpqMessage) reply = NULL;
  g_autoptr(MpqMessage) no_reply = NULL;
  g_autofree char *result = NULL;
  g_autofree char *squares = NULL;

  pool = mpq_pool_new (worker_argv, 2, &error);
  if (pool == NULL)
    goto out;

  /* One task: submit returns at once, wait gives the worker's reply. */
  task = mpq_pool_submit (pool, "square", "7", &error);
  if (task == NULL || (reply = mpq_task_wait (task, -1, &error)) == NULL)
    goto out;
  result = mpq_message_dup_data_json (reply);
  g_print ("square of 7: %s\n", result);

  /* A map: the items and the results as one JSON array each, in order. */
  squares = mpq_pool_map_json (pool, "square", "[1,2,3,4,5,6,7,8,9,10]", NULL, &error);
  if (squares == NULL)
    goto out;
  g_print ("map: %s\n", squares);

  /* A worker's error is the task's: MPQ_ERROR_TASK_FAILED. */
  bad = mpq_pool_submit (pool, "square", "\"seven\"", &error);
  if (bad == NULL)
    goto out;
  no_reply = mpq_task_wait (bad, -1, &error);
  if (g_error_matches (error, MPQ_ERROR, MPQ_ERROR_TASK_FAILED))
    {
      g_auto(GStrv) lines = g_strsplit (error->message, "\n", 2);

      g_print ("square of \"seven\" failed: %s\n", lines[0]);
      g_clear_error (&error);
    }
  if (error != NULL)
    goto out;

  /* No new tasks; the workers are told to die and reaped. */
  if (mpq_pool_shutdown (pool, 5000, &error))
    g_print ("the pool is shut down\n");

out:
  if (error != NULL)
    {
      g_printerr ("pool: %s\n", error->message);
      return EXIT_FAILURE;
    }
  return EXIT_SUCCESS;
}
