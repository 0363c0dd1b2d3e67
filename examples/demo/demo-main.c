/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* mpq-demo: the options, the run from the pools' start to the verdict,
 * and main (). demo.h says what the other files do. */

#include "demo.h"

#include <locale.h>
#include <stdlib.h>
#include <unistd.h>

gint
demo_count_workers (Demo *demo)
{
  gint n = 0;
  Lang lang;

  for (lang = 0; lang < N_LANGS; lang++)
    n += demo->n_workers[lang];

  return n;
}

static gboolean
parse_options (Demo    *demo,
               int     *argc,
               char  ***argv,
               GError **error)
{
  const GOptionEntry entries[] = {
    { "limit", 'l', 0, G_OPTION_ARG_INT64, &demo->limit,
      "Count the primes below N (default 2^32 = 4294967296)", "N" },
    { "tasks", 't', 0, G_OPTION_ARG_INT, &demo->n_tasks,
      "Split the work into N tasks (default 100)", "N" },
    { "c-workers", 0, 0, G_OPTION_ARG_INT, &demo->n_workers[LANG_C],
      "Number of workers in the C pool (default 2)", "N" },
    { "py-workers", 0, 0, G_OPTION_ARG_INT, &demo->n_workers[LANG_PYTHON],
      "Number of workers in the Python pool (default 1)", "N" },
    { "js-workers", 0, 0, G_OPTION_ARG_INT, &demo->n_workers[LANG_GJS],
      "Number of workers in the GJS pool (default 1)", "N" },
    { "kill-worker", 0, 0, G_OPTION_ARG_INT, &demo->kill_worker,
      "Kill worker N (numbered C, Python, GJS) with SIGKILL in the middle of a task, "
      "to show that its pool hands the task to another worker", "N" },
    { "poison-task", 0, 0, G_OPTION_ARG_NONE, &demo->poison_task,
      "Add a task that crashes whichever worker takes it, to show that the pool gives up "
      "on it after max-attempts deaths while the count goes on", NULL },
    { "c-worker", 0, 0, G_OPTION_ARG_FILENAME, &demo->worker_path[LANG_C],
      "The C worker (default: the one built with the demo)", "PATH" },
    { "py-worker", 0, 0, G_OPTION_ARG_FILENAME, &demo->worker_path[LANG_PYTHON],
      "The Python worker (default: worker.py beside the sources)", "PATH" },
    { "js-worker", 0, 0, G_OPTION_ARG_FILENAME, &demo->worker_path[LANG_GJS],
      "The GJS worker (default: worker.js beside the sources)", "PATH" },
    { "python", 0, 0, G_OPTION_ARG_FILENAME, &demo->python,
      "The Python interpreter (default " DEMO_PYTHON ")", "PATH" },
    { "gjs", 0, 0, G_OPTION_ARG_FILENAME, &demo->gjs,
      "The GJS interpreter (default " DEMO_GJS ")", "PATH" },
    { NULL }
  };
  g_autoptr(GOptionContext) context = NULL;
  gint total_workers;
  Lang lang;

  context = g_option_context_new ("- count primes with pools of workers in C, Python and "
                                  "JavaScript");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, argc, argv, error))
    return FALSE;

  for (lang = 0; lang < N_LANGS; lang++)
    if (demo->n_workers[lang] < 0 || demo->n_workers[lang] > 1000)
      {
        g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                             "a number of workers must be between 0 and 1000");
        return FALSE;
      }
  total_workers = demo_count_workers (demo);

  if (total_workers == 0)
    g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "no workers");
  else if (demo->limit < 2 || (guint64) demo->limit > DEMO_MAX_LIMIT)
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--limit must be between 2 and %" G_GUINT64_FORMAT, DEMO_MAX_LIMIT);
  else if (demo->n_tasks < 1 || demo->n_tasks > demo->limit || demo->n_tasks > DEMO_MAX_TASKS)
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--tasks must be between 1 and the limit, and at most %d", DEMO_MAX_TASKS);
  else if (demo->kill_worker < 0 || demo->kill_worker > total_workers)
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--kill-worker must be between 1 and the number of workers (%d)",
                 total_workers);
  else
    return TRUE;

  return FALSE;
}

static void
fill_defaults (Demo *demo)
{
  if (demo->worker_path[LANG_C] == NULL)
    demo->worker_path[LANG_C] = g_strdup (DEMO_C_WORKER);
  if (demo->worker_path[LANG_PYTHON] == NULL)
    demo->worker_path[LANG_PYTHON] = g_strdup (DEMO_PY_WORKER);
  if (demo->worker_path[LANG_GJS] == NULL)
    demo->worker_path[LANG_GJS] = g_strdup (DEMO_JS_WORKER);
  if (demo->python == NULL)
    demo->python = g_strdup (DEMO_PYTHON);
  if (demo->gjs == NULL)
    demo->gjs = g_strdup (DEMO_GJS);
}

static void
demo_init (Demo *demo)
{
  demo->limit = G_GINT64_CONSTANT (4294967296);
  demo->n_tasks = 100;
  demo->n_workers[LANG_C] = 2;
  demo->n_workers[LANG_PYTHON] = 1;
  demo->n_workers[LANG_GJS] = 1;
  demo->workers = g_ptr_array_new_with_free_func (g_free);
  demo->workers_by_pid = g_hash_table_new (NULL, NULL);
  demo->first_numbers = g_hash_table_new (NULL, NULL);
  demo->tasks = g_ptr_array_new_with_free_func ((GDestroyNotify) demo_task_free);
  demo->loop = g_main_loop_new (NULL, FALSE);
  demo->tty = isatty (STDOUT_FILENO);
}

static void
demo_clear (Demo *demo)
{
  Lang lang;

  g_clear_handle_id (&demo->progress_id, g_source_remove);
  g_clear_handle_id (&demo->interrupt_ids[0], g_source_remove);
  g_clear_handle_id (&demo->interrupt_ids[1], g_source_remove);
  /* The tasks first: each holds its pool until it ends. */
  g_clear_pointer (&demo->tasks, g_ptr_array_unref);
  demo_pools_clear (demo);
  g_clear_pointer (&demo->workers_by_pid, g_hash_table_unref);
  g_clear_pointer (&demo->first_numbers, g_hash_table_unref);
  g_clear_pointer (&demo->workers, g_ptr_array_unref);
  g_clear_pointer (&demo->loop, g_main_loop_unref);
  for (lang = 0; lang < N_LANGS; lang++)
    g_clear_pointer (&demo->worker_path[lang], g_free);
  g_clear_pointer (&demo->python, g_free);
  g_clear_pointer (&demo->gjs, g_free);
}

/* The verdict ---------------------------------------------------------------- */

/* --kill-worker: the victim was killed, and its pool carried on. */
static gboolean
check_kill (Demo *demo)
{
  if (demo->kill_worker == 0 || demo->interrupted)
    return TRUE;

  if (demo->victim == NULL)
    {
      demo_note (demo, "worker %d never reported progress in the middle of a task, so it was "
                 "not killed (use fewer, larger tasks)", demo->kill_worker);
      return FALSE;
    }
  return TRUE;
}

/* --poison-task: it failed with MPQ_ERROR_WORKER_LOST once max-attempts
 * workers died of it, each of them replaced. */
static gboolean
check_poison (Demo *demo)
{
  DemoTask *poison = demo->poison;
  guint max;
  g_autoptr(GString) victims = NULL;
  guint i;

  if (poison == NULL || demo->interrupted)
    return TRUE;

  max = mpq_pool_get_max_attempts (poison->pool->pool);
  if (!poison->ended || !g_error_matches (poison->error, MPQ_ERROR, MPQ_ERROR_WORKER_LOST)
      || demo->poison_deaths != max)
    {
      demo_note (demo, "the poison task should have failed with MPQ_ERROR_WORKER_LOST after "
                 "%u deaths; it killed %u workers and ended with: %s", max,
                 demo->poison_deaths, poison->error != NULL ? poison->error->message
                                                            : "no error");
      return FALSE;
    }

  victims = g_string_new (NULL);
  for (i = 0; i < demo->workers->len; i++)
    {
      DemoWorker *w = g_ptr_array_index (demo->workers, i);

      if (w->poisoned)
        g_string_append_printf (victims, "%s%u", victims->len > 0 ? ", " : "", w->number);
    }
  g_print ("The poison task failed as the pool promises: it killed %u %s workers (%s), each "
           "replaced, and then the pool gave up on it: %s\n", demo->poison_deaths,
           demo_lang_names[poison->pool->lang].name, victims->str, poison->error->message);
  return TRUE;
}

/* After the shutdown, no worker is left: no zombie, no orphan. */
static gboolean
check_workers_gone (Demo *demo)
{
  gboolean ok = TRUE;
  guint i;

  for (i = 0; i < demo->workers->len; i++)
    {
      DemoWorker *w = g_ptr_array_index (demo->workers, i);

      if (!w->exited)
        {
          g_autofree char *who = demo_worker_describe (w);

          demo_note (demo, "%s was not reaped by the shutdown", who);
          ok = FALSE;
        }
    }

  return ok;
}

static gboolean
check_result (Demo *demo)
{
  guint64 total = 0;
  gboolean ok = TRUE;
  guint i;

  ok &= check_kill (demo);
  ok &= check_poison (demo);
  ok &= check_workers_gone (demo);

  for (i = 0; i < (guint) demo->n_tasks; i++)
    total += ((DemoTask *) g_ptr_array_index (demo->tasks, i))->primes;

  if (demo->tasks_done < (guint) demo->n_tasks)
    {
      g_autofree char *total_text = demo_format_count (total);

      g_print ("Only %u of %d tasks were done: the %s primes found are not checked.\n",
               demo->tasks_done, demo->n_tasks, total_text);
      if (!demo->interrupted)
        ok = FALSE;
    }
  else if (!demo_check_total (demo, total))
    ok = FALSE;

  return ok;
}

/* The run -------------------------------------------------------------------- */

static guint
count_submitted (Demo *demo)
{
  guint n = 0;
  guint i;

  for (i = 0; i < demo->tasks->len; i++)
    if (((DemoTask *) g_ptr_array_index (demo->tasks, i))->pool != NULL)
      n++;

  return n;
}

static int
run (Demo *demo)
{
  g_autoptr(GError) error = NULL;
  gboolean ok;
  double wall;

  demo_tasks_make (demo);
  demo_print_header (demo);
  demo->started = g_get_monotonic_time ();
  demo_interrupt_watch (demo);

  if (!demo_pools_start (demo, &error))
    {
      demo_note (demo, "%s", error->message);
      demo->failed = TRUE;
      demo_pools_shutdown (demo, 0);
    }
  else
    {
      /* The pools take the tasks at once and hand them out as their
       * workers get ready. */
      demo_progress_start (demo);
      demo_tasks_submit_more (demo);
      demo_check_end (demo);
    }

  if (demo->pools_shutting > 0 || !demo->stopping)
    g_main_loop_run (demo->loop);
  wall = demo_seconds_between (demo->started, g_get_monotonic_time ());

  /* Every worker is gone, so every task has ended: their last callbacks
   * may still be on their way. */
  while (demo->tasks_ended < count_submitted (demo))
    g_main_context_iteration (NULL, TRUE);
  demo_progress_end (demo);

  demo_print_summary (demo, wall);
  ok = check_result (demo);

  if (!ok || demo->failed)
    return EXIT_FAILURE;
  if (demo->interrupted)
    return DEMO_EXIT_INTERRUPTED;
  return EXIT_SUCCESS;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  Demo demo = { 0 };
  int status;

  setlocale (LC_ALL, "");
  demo_init (&demo);

  if (!parse_options (&demo, &argc, &argv, &error))
    {
      g_printerr ("mpq-demo: %s\n", error->message);
      demo_clear (&demo);
      return 2;
    }
  fill_defaults (&demo);

  status = run (&demo);

  demo_clear (&demo);
  return status;
}
