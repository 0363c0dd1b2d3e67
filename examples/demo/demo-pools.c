/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* mpq-demo: the pools, one per language, and what happens to their
 * workers: worker-started and worker-exited, --kill-worker, Ctrl-C and the
 * shutdown. */

#include "demo.h"

#include <glib-unix.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

const struct DemoLangName demo_lang_names[N_LANGS] = {
  [LANG_C]      = { "C",  "C" },
  [LANG_PYTHON] = { "Py", "Python" },
  [LANG_GJS]    = { "JS", "GJS" },
};

DemoWorker *
demo_worker_for_pid (Demo *demo,
                     gint  pid)
{
  return g_hash_table_lookup (demo->workers_by_pid, GINT_TO_POINTER (pid));
}

char *
demo_worker_describe (DemoWorker *w)
{
  return g_strdup_printf ("worker %u (%s, pid %d)", w->number,
                          demo_lang_names[w->pool->lang].name, w->pid);
}

static char *
describe_status (gint wait_status)
{
  if (WIFSIGNALED (wait_status))
    return g_strdup_printf ("killed by signal %d, %s", WTERMSIG (wait_status),
                            g_strsignal (WTERMSIG (wait_status)));
  return g_strdup_printf ("exit status %d", WEXITSTATUS (wait_status));
}

/* Starts and deaths ------------------------------------------------------- */

static void
on_worker_started (MpqPool  *pool,
                   gint      pid,
                   gpointer  user_data)
{
  DemoPool *dpool = user_data;
  Demo *demo = dpool->demo;
  DemoWorker *w = g_new0 (DemoWorker, 1);
  guint number = GPOINTER_TO_UINT (g_hash_table_lookup (demo->first_numbers,
                                                        GINT_TO_POINTER (pid)));

  w->pool = dpool;
  w->pid = pid;
  g_ptr_array_add (demo->workers, w);
  g_hash_table_insert (demo->workers_by_pid, GINT_TO_POINTER (pid), w);

  if (number != 0)
    {
      /* One of the first: numbered as --kill-worker counts them. */
      w->number = number;
      demo->n_started++;
    }
  else
    {
      /* A replacement: numbered after the first ones. */
      DemoWorker *dead = g_queue_pop_head (&dpool->dead);
      g_autofree char *who = NULL;

      w->number = demo->next_number++;
      w->replaced = dead != NULL ? dead->number : 0;
      who = demo_worker_describe (w);
      if (dead != NULL)
        demo_say (demo, "The pool started %s in place of worker %u", who, dead->number);
      else
        demo_say (demo, "The pool started %s", who);
    }

  if (demo->all_ready == 0 && demo->n_started == (guint) demo_count_workers (demo))
    {
      demo->all_ready = g_get_monotonic_time ();
      if (demo->n_started == 1)
        demo_say (demo, "The worker is ready after %.2f s",
                  demo_seconds_between (demo->started, demo->all_ready));
      else
        demo_say (demo, "All %u workers ready after %.2f s", demo->n_started,
                  demo_seconds_between (demo->started, demo->all_ready));
    }
}

/* The victim of --kill-worker is gone: says what became of its task. */
static void
victim_exited (Demo       *demo,
               DemoWorker *w,
               const char *who,
               const char *how)
{
  DemoTask *task = demo->victim_task;
  g_autofree char *what = demo_task_describe (task);

  if (task->ended)
    demo_say (demo, "%c%s is gone (%s); it had answered %s before the kill landed",
              g_ascii_toupper (who[0]), who + 1, how, what);
  else
    demo_say (demo, "%c%s is gone (%s): the pool puts %s, which it held, back in line "
              "for another worker", g_ascii_toupper (who[0]), who + 1, how, what);
}

static void
poisoned_exited (Demo       *demo,
                 DemoWorker *w,
                 const char *who,
                 const char *how)
{
  guint max = mpq_pool_get_max_attempts (w->pool->pool);

  w->poisoned = TRUE;
  demo->poison_deaths++;
  /* Not by the task's state: the pool fails it after this signal. */
  if (demo->poison_deaths >= max)
    demo_say (demo, "%c%s died of the poison task (%s): death %u of %u, the pool gives up "
              "on that task", g_ascii_toupper (who[0]), who + 1, how, demo->poison_deaths, max);
  else
    demo_say (demo, "%c%s died of the poison task (%s): death %u of %u, the pool hands the "
              "task to another worker", g_ascii_toupper (who[0]), who + 1, how,
              demo->poison_deaths, max);
}

static void
on_worker_exited (MpqPool  *pool,
                  gint      pid,
                  gint      wait_status,
                  gboolean  expected,
                  gpointer  user_data)
{
  DemoPool *dpool = user_data;
  Demo *demo = dpool->demo;
  DemoWorker *w = demo_worker_for_pid (demo, pid);
  g_autofree char *how = describe_status (wait_status);
  g_autofree char *who = NULL;

  if (w == NULL)
    {
      /* It never said it was ready. */
      if (!expected)
        {
          demo_note (demo, "a %s worker (pid %d) died before it was ready: %s",
                     demo_lang_names[dpool->lang].name, pid, how);
          demo->failed = TRUE;
        }
      return;
    }

  w->exited = TRUE;
  w->wait_status = wait_status;
  if (w->current != NULL && !w->current->ended)
    w->current->progress = 0;   /* it starts over */
  if (expected)
    return;

  who = demo_worker_describe (w);
  g_queue_push_tail (&dpool->dead, w);
  if (w->victim)
    victim_exited (demo, w, who, how);
  else if (demo->poison != NULL && demo->poison->task != NULL
           && mpq_task_get_worker_pid (demo->poison->task) == pid)
    poisoned_exited (demo, w, who, how);
  else
    {
      /* The pool copes (it hands the task to another worker), but the demo
       * does not expect it: the run fails. */
      w->lost = TRUE;
      demo->failed = TRUE;
      demo_note (demo, "%s died unexpectedly: %s", who, how);
    }
}

/* --kill-worker ------------------------------------------------------------ */

/* Called on each progress report: once the victim reports it is half
 * through a task or more, it is killed. No timing: the report says it
 * holds the task. (Workers report at every tenth of a task but the last:
 * a task of two blocks or more has a report past its half.) */
void
demo_maybe_kill (Demo       *demo,
                 DemoWorker *w,
                 DemoTask   *task)
{
  g_autofree char *who = NULL;
  g_autofree char *what = NULL;

  if (demo->kill_worker == 0 || demo->victim != NULL || demo->stopping
      || w->number != (guint) demo->kill_worker || w->exited
      || task->progress * 2 < task->hi - task->lo)
    return;

  who = demo_worker_describe (w);
  what = demo_task_describe (task);
  demo->victim = w;
  demo->victim_task = task;
  demo->victim_percent = task->progress * 100 / (task->hi - task->lo);
  w->victim = TRUE;
  demo_say (demo, "%c%s is %u%% into %s: killing it with SIGKILL, as --kill-worker asked",
            g_ascii_toupper (who[0]), who + 1, demo->victim_percent, what);
  kill (w->pid, SIGKILL);
}

/* Spawning ------------------------------------------------------------------ */

static void
child_setup (gpointer user_data)
{
  struct rlimit no_core = { 0, 0 };

  /* Ctrl-C in a terminal reaches the whole process group: the parent
   * answers it by shutting the pools down; a worker killed by it would
   * look like a crash. */
  signal (SIGINT, SIG_IGN);
  /* The poison task's crashes leave no core files behind. */
  setrlimit (RLIMIT_CORE, &no_core);
}

static void
prepend_to_env (GSubprocessLauncher *launcher,
                const char          *variable,
                const char          *dir)
{
  const char *old = g_getenv (variable);
  g_autofree char *value = NULL;

  value = old != NULL && old[0] != '\0' ? g_strconcat (dir, ":", old, NULL) : g_strdup (dir);
  g_subprocess_launcher_setenv (launcher, variable, value, TRUE);
}

static GStrv
build_argv (Demo    *demo,
            Lang     lang,
            GError **error)
{
  g_autoptr(GStrvBuilder) argv = g_strv_builder_new ();
  const char *interpreter = lang == LANG_PYTHON ? demo->python
                          : lang == LANG_GJS ? demo->gjs
                          : NULL;

  if (lang != LANG_C && (interpreter == NULL || interpreter[0] == '\0'))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "no %s interpreter was found at build time: pass --%s=PATH or --%s-workers=0",
                   lang == LANG_PYTHON ? "python3" : "gjs",
                   lang == LANG_PYTHON ? "python" : "gjs",
                   lang == LANG_PYTHON ? "py" : "js");
      return NULL;
    }

  if (interpreter != NULL)
    g_strv_builder_add (argv, interpreter);
  if (lang == LANG_GJS)
    g_strv_builder_add (argv, "-m");
  g_strv_builder_add (argv, demo->worker_path[lang]);

  return g_strv_builder_end (argv);
}

static gint
compare_pids (gconstpointer a,
              gconstpointer b)
{
  return *(const gint *) a - *(const gint *) b;
}

static gboolean
start_pool (DemoPool  *dpool,
            GError   **error)
{
  Demo *demo = dpool->demo;
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_auto(GStrv) argv = build_argv (demo, dpool->lang, error);
  g_autoptr(GArray) pids = NULL;

  if (argv == NULL)
    return FALSE;

  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  /* Python and GJS find Mpq-1.0.typelib and the library in the build tree
   * without any setup by the user. */
  prepend_to_env (launcher, "GI_TYPELIB_PATH", DEMO_LIBRARY_DIR);
  prepend_to_env (launcher, "LD_LIBRARY_PATH", DEMO_LIBRARY_DIR);

  dpool->pool = mpq_pool_new_with_launcher (launcher, (const char * const *) argv,
                                            dpool->n_workers, error);
  if (dpool->pool == NULL)
    return FALSE;

  /* The workers it spawned, numbered in the order they were spawned. */
  pids = mpq_pool_dup_worker_pids (dpool->pool);
  g_array_sort (pids, compare_pids);
  for (guint i = 0; i < pids->len; i++)
    g_hash_table_insert (demo->first_numbers, GINT_TO_POINTER (g_array_index (pids, gint, i)),
                         GUINT_TO_POINTER (dpool->first_number + i));

  g_signal_connect (dpool->pool, "worker-started", G_CALLBACK (on_worker_started), dpool);
  g_signal_connect (dpool->pool, "worker-exited", G_CALLBACK (on_worker_exited), dpool);
  return TRUE;
}

/* One pool per language that has workers, each running its worker's
 * command line; their workers are numbered C first, then Python, then
 * GJS, as --kill-worker counts them. */
gboolean
demo_pools_start (Demo    *demo,
                  GError **error)
{
  guint number = 1;
  Lang lang;

  for (lang = 0; lang < N_LANGS; lang++)
    {
      DemoPool *dpool = &demo->pools[lang];

      dpool->demo = demo;
      dpool->lang = lang;
      dpool->n_workers = demo->n_workers[lang];
      dpool->first_number = number;
      g_queue_init (&dpool->dead);
      number += dpool->n_workers;
    }
  demo->next_number = number;

  for (lang = 0; lang < N_LANGS; lang++)
    if (demo->pools[lang].n_workers > 0 && !start_pool (&demo->pools[lang], error))
      {
        g_prefix_error (error, "could not start the %s pool: ", demo_lang_names[lang].name);
        return FALSE;
      }

  return TRUE;
}

/* The end ------------------------------------------------------------------ */

static void
on_shutdown (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  DemoPool *dpool = user_data;
  Demo *demo = dpool->demo;
  g_autoptr(GError) error = NULL;

  if (!mpq_pool_shutdown_finish (MPQ_POOL (source), result, &error) && !demo->interrupted)
    {
      demo_note (demo, "the %s pool's shutdown failed: %s", demo_lang_names[dpool->lang].name,
                 error->message);
      demo->failed = TRUE;
    }

  if (--demo->pools_shutting == 0)
    g_main_loop_quit (demo->loop);
}

/* Shuts every pool down: the tasks submitted end (within @timeout_ms, or
 * they fail and the workers are killed), then each worker is told to die
 * and reaped. The loop quits once all of them are done. A second call
 * (a second Ctrl-C) hurries the first. */
void
demo_pools_shutdown (Demo *demo,
                     gint  timeout_ms)
{
  Lang lang;

  demo->stopping = TRUE;
  for (lang = 0; lang < N_LANGS; lang++)
    if (demo->pools[lang].pool != NULL)
      {
        demo->pools_shutting++;
        mpq_pool_shutdown_async (demo->pools[lang].pool, timeout_ms, NULL, on_shutdown,
                                 &demo->pools[lang]);
      }

  if (demo->pools_shutting == 0)
    g_main_loop_quit (demo->loop);
}

/* Ctrl-C (or SIGTERM): the tasks not begun are cancelled, the workers
 * finish the ones they work on and leave; a second one kills them. */
static gboolean
on_interrupt (gpointer user_data)
{
  Demo *demo = user_data;

  if (demo->interrupted)
    {
      demo_note (demo, "interrupted again: killing the workers");
      demo_pools_shutdown (demo, 0);
      return G_SOURCE_CONTINUE;
    }

  demo->interrupted = TRUE;
  demo_note (demo, "interrupted: the workers finish the task they work on and leave "
             "(again to kill them)");
  demo_tasks_cancel_unstarted (demo);
  demo_pools_shutdown (demo, -1);
  return G_SOURCE_CONTINUE;
}

void
demo_interrupt_watch (Demo *demo)
{
  demo->interrupt_ids[0] = g_unix_signal_add (SIGINT, on_interrupt, demo);
  demo->interrupt_ids[1] = g_unix_signal_add (SIGTERM, on_interrupt, demo);
}

void
demo_pools_clear (Demo *demo)
{
  Lang lang;

  for (lang = 0; lang < N_LANGS; lang++)
    {
      DemoPool *dpool = &demo->pools[lang];

      if (dpool->pool != NULL)
        g_signal_handlers_disconnect_by_data (dpool->pool, dpool);
      g_clear_object (&dpool->pool);
      g_queue_clear (&dpool->dead);
    }
}
