/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* mpq-demo: the parent of the pymulproc demo.
 *
 * Counts the primes below a limit (2^32 by default): [0, limit) is split into
 * tasks, and the tasks are handed to worker processes written in C, Python
 * and JavaScript, each on its own MpqPipe. Everything happens in one
 * GMainLoop. A worker gets its next task as soon as its FINISHED arrives
 * (message-received::FINISHED), so faster workers do more. Once every task
 * is done, each worker is sent DIE and waited for (g_subprocess_wait_async).
 *
 * A worker that hangs up before DIE (the closed signal), dies, or answers
 * nonsense is a failure: its task goes to another worker, the run goes on,
 * and the demo exits with status 1. So does a wrong total.
 */

#include "demo-config.h"

#include <pymulproc/pymulproc.h>
#include <glib-unix.h>

#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROGRESS_WIDTH       30
#define EXIT_TIMEOUT_SECONDS 10
/* Numbers per pass of the parent's recount: the flags stay in the cache. */
#define RECOUNT_BLOCK        (G_GUINT64_CONSTANT (1) << 20)
#define MAX_LIMIT            G_GUINT64_CONSTANT (1000000000000)
#define EXIT_INTERRUPTED     130

typedef enum
{
  LANG_C,
  LANG_PYTHON,
  LANG_GJS,
  N_LANGS
} Lang;

static const struct
{
  const char *tag;    /* in the progress line */
  const char *name;   /* in messages and the table */
} lang_names[N_LANGS] = {
  [LANG_C]      = { "C",  "C" },
  [LANG_PYTHON] = { "Py", "Python" },
  [LANG_GJS]    = { "JS", "GJS" },
};

typedef struct _Demo Demo;

typedef struct
{
  Demo        *demo;
  Lang         lang;
  guint        number;       /* 1-based, as shown to the user */
  MpqPipe     *pipe;
  GSubprocess *process;
  gint         pid;
  gint         task;         /* index of the task it holds, or -1 when idle */
  guint        tasks_done;
  guint64      numbers;      /* how many numbers it sieved */
  guint64      busy_us;      /* time spent sieving, as the worker reported it */
  guint        die_sent : 1;
  guint        lost : 1;     /* failed before DIE: gets no more work */
  guint        exited : 1;
  guint        killed : 1;   /* by us, after saying why */
  guint        hung_up : 1;  /* ::closed seen: every message it sent was taken */
} Worker;

typedef struct
{
  guint64  lo;
  guint64  hi;
  guint64  primes;
  Worker  *done_by;          /* NULL until its FINISHED arrives */
} Task;

struct _Demo
{
  /* Options */
  gint64     limit;
  gint       n_tasks;
  gint       n_workers[N_LANGS];
  char      *worker_path[N_LANGS];
  char      *python;
  char      *gjs;
  gint       kill_worker;

  GMainLoop *loop;
  GPtrArray *workers;         /* Worker */
  GArray    *tasks;           /* Task */
  GQueue     todo;            /* task indexes not handed out yet */
  guint      tasks_done;
  guint      messages_sent;
  guint      messages_received;
  gint64     started;
  guint      exit_timeout_id;
  guint      progress_tenth;  /* last tenth printed when stdout is no tty */
  gboolean   tty;
  gboolean   progress_shown;  /* a tty progress line waits for its end */
  gboolean   stopping;        /* no more tasks handed out */
  gboolean   interrupted;
  gboolean   failed;
};

static void demo_schedule (Demo *demo);

/* Output ---------------------------------------------------------------- */

/* 1234567 -> "1,234,567": the numbers here are too long to read bare. */
static char *
format_count (guint64 n)
{
  g_autofree char *digits = g_strdup_printf ("%" G_GUINT64_FORMAT, n);
  GString *out = g_string_new (NULL);
  gsize len = strlen (digits);
  gsize i;

  for (i = 0; i < len; i++)
    {
      if (i > 0 && (len - i) % 3 == 0)
        g_string_append_c (out, ',');
      g_string_append_c (out, digits[i]);
    }

  return g_string_free (out, FALSE);
}

static double
elapsed_seconds (Demo *demo)
{
  return (g_get_monotonic_time () - demo->started) / (double) G_USEC_PER_SEC;
}

static char *
worker_describe (Worker *w)
{
  return g_strdup_printf ("worker %u (%s, pid %d)", w->number, lang_names[w->lang].name, w->pid);
}

/* Problems go to stderr, on a line of their own even while a tty progress
 * line is being redrawn. */
G_GNUC_PRINTF (2, 3)
static void
demo_note (Demo       *demo,
           const char *format,
           ...)
{
  g_autofree char *text = NULL;
  va_list args;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);

  if (demo->progress_shown)
    {
      g_print ("\n");
      demo->progress_shown = FALSE;
    }
  fflush (stdout);
  g_printerr ("mpq-demo: %s\n", text);
}

static void
progress_print (Demo       *demo,
                const char *end)
{
  g_autoptr(GString) line = g_string_new ("[");
  guint tasks_by_lang[N_LANGS] = { 0 };
  guint filled = (guint64) demo->tasks_done * PROGRESS_WIDTH / demo->n_tasks;
  char digits[16];
  int width;
  guint i;

  for (i = 0; i < PROGRESS_WIDTH; i++)
    g_string_append_c (line, i < filled ? '=' : i == filled ? '>' : ' ');

  /* Counts keep their width, so the line does not jitter. */
  width = g_snprintf (digits, sizeof digits, "%d", demo->n_tasks);
  g_string_append_printf (line, "] %*u/%d tasks ", width, demo->tasks_done, demo->n_tasks);

  for (i = 0; i < demo->workers->len; i++)
    {
      Worker *w = g_ptr_array_index (demo->workers, i);

      tasks_by_lang[w->lang] += w->tasks_done;
    }
  for (i = 0; i < N_LANGS; i++)
    if (demo->n_workers[i] > 0)
      g_string_append_printf (line, " %s:%u", lang_names[i].tag, tasks_by_lang[i]);

  g_string_append_printf (line, "  %.1f s", elapsed_seconds (demo));
  g_print ("%s%s", line->str, end);
  fflush (stdout);
}

/* On a terminal, one line redrawn in place; in a log, a line every tenth. */
static void
progress_update (Demo *demo)
{
  guint tenth = (guint64) demo->tasks_done * 10 / demo->n_tasks;

  if (demo->tty)
    {
      g_print ("\r");
      progress_print (demo, "");
      demo->progress_shown = TRUE;
    }
  else if (tenth > demo->progress_tenth)
    {
      demo->progress_tenth = tenth;
      progress_print (demo, "\n");
    }
}

static void
progress_end (Demo *demo)
{
  if (demo->progress_shown)
    g_print ("\n");
  demo->progress_shown = FALSE;
}

/* Workers --------------------------------------------------------------- */

static gboolean
worker_is_idle (Worker *w)
{
  return !w->lost && !w->die_sent && w->task < 0;
}

static gboolean
worker_is_finished (Worker *w)
{
  return w->exited && w->hung_up;
}

static void
worker_kill (Worker *w)
{
  if (w->exited)
    return;

  w->killed = TRUE;
  g_subprocess_force_exit (w->process);
}

/* A worker that failed gets no more work; the task it held goes back to the
 * front of the queue for another one. */
static void
worker_lose (Worker     *w,
             const char *why)
{
  Demo *demo = w->demo;
  g_autofree char *who = worker_describe (w);

  if (w->lost)
    return;

  w->lost = TRUE;
  demo->failed = TRUE;

  if (w->task >= 0 && !demo->interrupted)
    {
      demo_note (demo, "%s %s; task %d goes to another worker", who, why, w->task);
      g_queue_push_head (&demo->todo, GINT_TO_POINTER (w->task));
    }
  else
    demo_note (demo, "%s %s", who, why);
  w->task = -1;

  /* It may still run (one that sent nonsense): end it, or we would wait for
   * its exit forever. Closing makes the pipe emit ::closed, if it has not. */
  mpq_channel_close (MPQ_CHANNEL (w->pipe));
  worker_kill (w);
}

static JsonNode *
task_to_json (guint  index,
              Task  *task)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "task");
  json_builder_add_int_value (builder, index);
  json_builder_set_member_name (builder, "lo");
  json_builder_add_int_value (builder, (gint64) task->lo);
  json_builder_set_member_name (builder, "hi");
  json_builder_add_int_value (builder, (gint64) task->hi);
  json_builder_end_object (builder);

  return json_builder_get_root (builder);
}

/* --kill-worker: shows what happens to a worker that dies with a task. It
 * is killed with its first one: later, all tasks might be taken. */
static void
maybe_kill_on_purpose (Worker *w)
{
  if ((gint) w->number != w->demo->kill_worker || w->tasks_done > 0)
    return;

  demo_note (w->demo, "killing worker %u (pid %d) on purpose, as --kill-worker asked",
             w->number, w->pid);
  g_subprocess_send_signal (w->process, SIGKILL);
}

/* Sends the task at the front of the queue. Returns FALSE if the worker
 * turned out to be gone (the task is back in the queue). */
static gboolean
worker_give_task (Worker *w)
{
  Demo *demo = w->demo;
  g_autoptr(JsonNode) data = NULL;
  g_autoptr(GError) error = NULL;
  guint index;

  g_assert (worker_is_idle (w) && !g_queue_is_empty (&demo->todo));

  index = GPOINTER_TO_INT (g_queue_pop_head (&demo->todo));
  data = task_to_json (index, &g_array_index (demo->tasks, Task, index));
  w->task = index;

  if (!mpq_channel_send (MPQ_CHANNEL (w->pipe), MPQ_REQ_DO, 0, 0, data, &error))
    {
      g_autofree char *why = g_strdup_printf ("could not be sent a task: %s", error->message);

      worker_lose (w, why);
      return FALSE;
    }

  demo->messages_sent++;
  maybe_kill_on_purpose (w);
  return TRUE;
}

static void
worker_send_die (Worker *w)
{
  g_autoptr(GError) error = NULL;

  w->die_sent = TRUE;
  if (mpq_channel_send (MPQ_CHANNEL (w->pipe), MPQ_REQ_DIE, 0, 0, NULL, &error))
    w->demo->messages_sent++;
  else
    {
      g_autofree char *why = g_strdup_printf ("could not be sent DIE: %s", error->message);

      worker_lose (w, why);
    }
}

static gboolean
get_uint_member (JsonObject *object,
                 const char *name,
                 guint64    *value)
{
  JsonNode *node = json_object_get_member (object, name);

  if (node == NULL || json_node_get_value_type (node) != G_TYPE_INT64
      || json_node_get_int (node) < 0)
    return FALSE;

  *value = (guint64) json_node_get_int (node);
  return TRUE;
}

/* Checks that a FINISHED answers the task the worker holds, then books it. */
static gboolean
worker_take_result (Worker    *w,
                    JsonNode  *data,
                    GError   **error)
{
  Demo *demo = w->demo;
  JsonObject *object;
  Task *task;
  guint64 index, lo, hi, primes;
  guint64 us = 0;

  if (w->task < 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           "sent FINISHED without holding a task");
      return FALSE;
    }

  task = &g_array_index (demo->tasks, Task, w->task);
  object = data != NULL && JSON_NODE_HOLDS_OBJECT (data) ? json_node_get_object (data) : NULL;
  if (object == NULL
      || !get_uint_member (object, "task", &index)
      || !get_uint_member (object, "lo", &lo)
      || !get_uint_member (object, "hi", &hi)
      || !get_uint_member (object, "primes", &primes)
      || index != (guint64) w->task || lo != task->lo || hi != task->hi
      || primes > hi - lo
      || (json_object_has_member (object, "us") && !get_uint_member (object, "us", &us)))
    {
      g_autofree char *text = data != NULL ? json_to_string (data, FALSE) : g_strdup ("null");

      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "answered task %d with %s", w->task, text);
      return FALSE;
    }

  task->primes = primes;
  task->done_by = w;
  w->tasks_done++;
  w->numbers += hi - lo;
  w->busy_us += us;
  w->task = -1;
  demo->tasks_done++;

  return TRUE;
}

/* Signal handlers --------------------------------------------------------- */

static void
on_finished (MpqChannel *channel,
             MpqMessage *message,
             gpointer    user_data)
{
  Worker *w = user_data;
  Demo *demo = w->demo;
  g_autoptr(GError) error = NULL;

  demo->messages_received++;
  if (w->lost)
    return;

  if (!worker_take_result (w, mpq_message_get_data (message), &error))
    worker_lose (w, error->message);
  else
    progress_update (demo);

  /* Its next task goes out before any other event is looked at. */
  demo_schedule (demo);
}

/* Every message, FINISHED included: anything else breaks the protocol. */
static void
on_message (MpqChannel *channel,
            MpqMessage *message,
            gpointer    user_data)
{
  Worker *w = user_data;
  g_autofree char *why = NULL;

  if (g_str_equal (mpq_message_get_request (message), MPQ_REQ_FINISHED))
    return;

  w->demo->messages_received++;
  why = g_strdup_printf ("sent an unexpected %s message", mpq_message_get_request (message));
  worker_lose (w, why);
  demo_schedule (w->demo);
}

static void
on_closed (MpqChannel *channel,
           gpointer    user_data)
{
  Worker *w = user_data;

  w->hung_up = TRUE;
  if (!w->die_sent)
    worker_lose (w, "hung up before it was sent DIE");
  demo_schedule (w->demo);
}

static void
on_exited (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Worker *w = user_data;
  GSubprocess *process = G_SUBPROCESS (source);
  g_autofree char *why = NULL;

  /* Nothing cancels the wait, so it cannot fail. */
  g_subprocess_wait_finish (process, result, NULL);
  w->exited = TRUE;

  if (w->killed)
    ; /* by us, and we said why */
  else if (g_subprocess_get_if_signaled (process))
    why = g_strdup_printf ("was killed by signal %d (%s)", g_subprocess_get_term_sig (process),
                           g_strsignal (g_subprocess_get_term_sig (process)));
  else if (g_subprocess_get_exit_status (process) != 0)
    why = g_strdup_printf ("exited with status %d", g_subprocess_get_exit_status (process));
  else if (!w->die_sent)
    why = g_strdup ("exited before it was sent DIE");

  if (why != NULL && !w->lost)
    worker_lose (w, why);
  else if (why != NULL)
    {
      g_autofree char *who = worker_describe (w);

      demo_note (w->demo, "%s %s", who, why);
    }

  demo_schedule (w->demo);
}

/* Workers that did not leave after DIE are killed: the demo must end. */
static gboolean
on_exit_timeout (gpointer user_data)
{
  Demo *demo = user_data;
  guint i;

  demo->exit_timeout_id = 0;

  for (i = 0; i < demo->workers->len; i++)
    {
      Worker *w = g_ptr_array_index (demo->workers, i);

      if (worker_is_finished (w))
        continue;

      worker_lose (w, "did not exit within " G_STRINGIFY (EXIT_TIMEOUT_SECONDS) " s of DIE");
      worker_kill (w);
      /* Its exit is enough now: do not wait for the pipe too. */
      w->hung_up = TRUE;
    }

  demo_schedule (demo);
  return G_SOURCE_REMOVE;
}

/* Ctrl-C: stop handing out tasks and let the workers finish theirs; a
 * second one kills them. */
static gboolean
on_interrupt (gpointer user_data)
{
  Demo *demo = user_data;
  guint i;

  if (demo->interrupted)
    {
      for (i = 0; i < demo->workers->len; i++)
        {
          Worker *w = g_ptr_array_index (demo->workers, i);

          if (!w->exited)
            worker_lose (w, "is killed after a second interrupt");
        }
      return G_SOURCE_CONTINUE;
    }

  demo->interrupted = TRUE;
  demo->stopping = TRUE;
  demo_note (demo, "interrupted: the workers finish their tasks and leave (again to kill them)");
  demo_schedule (demo);

  return G_SOURCE_CONTINUE;
}

/* The scheduler ----------------------------------------------------------- */

static guint
count_live_workers (Demo *demo)
{
  guint n = 0;
  guint i;

  for (i = 0; i < demo->workers->len; i++)
    {
      Worker *w = g_ptr_array_index (demo->workers, i);

      if (!w->lost)
        n++;
    }

  return n;
}

static void
dispatch_tasks (Demo *demo)
{
  gboolean gave;

  /* A failed send puts the task back: go round until nobody can take one. */
  do
    {
      guint i;

      gave = FALSE;
      for (i = 0; i < demo->workers->len && !g_queue_is_empty (&demo->todo); i++)
        {
          Worker *w = g_ptr_array_index (demo->workers, i);

          if (worker_is_idle (w))
            gave |= worker_give_task (w);
        }
    }
  while (gave && !g_queue_is_empty (&demo->todo));
}

/* Called after every event: hands out work, says DIE once there is no more,
 * and ends the loop once every worker is gone. */
static void
demo_schedule (Demo *demo)
{
  guint i;

  if (!demo->stopping)
    dispatch_tasks (demo);

  if (!demo->stopping && demo->tasks_done == (guint) demo->n_tasks)
    demo->stopping = TRUE;
  else if (!demo->stopping && count_live_workers (demo) == 0)
    {
      demo_note (demo, "no worker is left; %u of %d tasks were not done",
                 demo->n_tasks - demo->tasks_done, demo->n_tasks);
      demo->failed = TRUE;
      demo->stopping = TRUE;
    }

  if (!demo->stopping)
    return;

  for (i = 0; i < demo->workers->len; i++)
    {
      Worker *w = g_ptr_array_index (demo->workers, i);

      if (!w->lost && !w->die_sent)
        worker_send_die (w);
    }

  if (demo->exit_timeout_id == 0)
    demo->exit_timeout_id = g_timeout_add_seconds (EXIT_TIMEOUT_SECONDS, on_exit_timeout, demo);

  for (i = 0; i < demo->workers->len; i++)
    if (!worker_is_finished (g_ptr_array_index (demo->workers, i)))
      return;

  g_main_loop_quit (demo->loop);
}

/* Spawning ---------------------------------------------------------------- */

static void
child_setup (gpointer user_data)
{
  /* Ctrl-C in a terminal reaches the whole process group. The parent
   * answers it with DIE; a worker killed by it would look like a crash. */
  signal (SIGINT, SIG_IGN);
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

static gboolean
build_argv (Demo          *demo,
            Lang           lang,
            GStrvBuilder  *argv,
            GError       **error)
{
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
      return FALSE;
    }

  if (interpreter != NULL)
    g_strv_builder_add (argv, interpreter);
  if (lang == LANG_GJS)
    g_strv_builder_add (argv, "-m");
  g_strv_builder_add (argv, demo->worker_path[lang]);

  return TRUE;
}

static Worker *
spawn_worker (Demo    *demo,
              Lang     lang,
              GError **error)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
  g_auto(GStrv) argv = NULL;
  g_autoptr(MpqPipe) pipe = NULL;
  g_autoptr(GSubprocess) process = NULL;
  Worker *w;

  if (!build_argv (demo, lang, builder, error))
    return NULL;
  argv = g_strv_builder_end (builder);

  pipe = mpq_pipe_new (error);
  if (pipe == NULL)
    return NULL;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  /* Python and GJS find Mpq-1.0.typelib and the library in the build tree
   * without any setup by the user. */
  prepend_to_env (launcher, "GI_TYPELIB_PATH", DEMO_LIBRARY_DIR);
  prepend_to_env (launcher, "LD_LIBRARY_PATH", DEMO_LIBRARY_DIR);

  process = mpq_pipe_spawn_with_launcher (pipe, launcher, (const char * const *) argv, error);
  if (process == NULL)
    return NULL;

  w = g_new0 (Worker, 1);
  w->demo = demo;
  w->lang = lang;
  w->number = demo->workers->len + 1;
  w->pipe = g_steal_pointer (&pipe);
  w->process = g_steal_pointer (&process);
  w->pid = atoi (g_subprocess_get_identifier (w->process));
  w->task = -1;

  g_signal_connect (w->pipe, "message-received::" MPQ_REQ_FINISHED, G_CALLBACK (on_finished), w);
  g_signal_connect (w->pipe, "message-received", G_CALLBACK (on_message), w);
  g_signal_connect (w->pipe, "closed", G_CALLBACK (on_closed), w);
  g_subprocess_wait_async (w->process, NULL, on_exited, w);
  mpq_channel_start (MPQ_CHANNEL (w->pipe));

  return w;
}

static void
worker_free (Worker *w)
{
  g_signal_handlers_disconnect_by_data (w->pipe, w);
  mpq_channel_close (MPQ_CHANNEL (w->pipe));
  g_clear_object (&w->pipe);
  g_clear_object (&w->process);
  g_free (w);
}

static gboolean
spawn_workers (Demo    *demo,
               GError **error)
{
  Lang lang;
  gint i;

  for (lang = 0; lang < N_LANGS; lang++)
    for (i = 0; i < demo->n_workers[lang]; i++)
      {
        Worker *w = spawn_worker (demo, lang, error);

        if (w == NULL)
          return FALSE;
        g_ptr_array_add (demo->workers, w);
      }

  return TRUE;
}

/* Checking the result ----------------------------------------------------- */

/* Published prime counts: π(x), the number of primes below x. */
static const struct
{
  guint64     limit;
  guint64     primes;
  const char *name;
} known_counts[] = {
  { G_GUINT64_CONSTANT (1000), 168, "pi(10^3)" },
  { G_GUINT64_CONSTANT (10000), 1229, "pi(10^4)" },
  { G_GUINT64_CONSTANT (100000), 9592, "pi(10^5)" },
  { G_GUINT64_CONSTANT (1000000), 78498, "pi(10^6)" },
  { G_GUINT64_CONSTANT (10000000), 664579, "pi(10^7)" },
  { G_GUINT64_CONSTANT (100000000), 5761455, "pi(10^8)" },
  { G_GUINT64_CONSTANT (1000000000), 50847534, "pi(10^9)" },
  { G_GUINT64_CONSTANT (4294967296), 203280221, "pi(2^32), the number of 32-bit primes" },
  { G_GUINT64_CONSTANT (10000000000), 455052511, "pi(10^10)" },
  { G_GUINT64_CONSTANT (100000000000), G_GUINT64_CONSTANT (4118054813), "pi(10^11)" },
  { G_GUINT64_CONSTANT (1000000000000), G_GUINT64_CONSTANT (37607912018), "pi(10^12)" },
};

/* Returns the index of @limit in known_counts, or -1. */
static gint
find_known_count (guint64 limit)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (known_counts); i++)
    if (known_counts[i].limit == limit)
      return i;

  return -1;
}

static guint64
isqrt_u64 (guint64 n)
{
  guint64 r = n;

  /* Newton's method from above converges on floor (sqrt (n)). */
  while (r > 0 && r > n / r)
    r = (r + n / r) / 2;

  return r;
}

/* The odd primes up to @bound. */
static GArray *
odd_primes_up_to (guint64 bound)
{
  GArray *primes = g_array_new (FALSE, FALSE, sizeof (guint64));
  g_autofree guint8 *composite = g_malloc0 (bound + 1);
  guint64 i, m;

  for (i = 3; i <= bound; i += 2)
    {
      if (composite[i])
        continue;
      g_array_append_val (primes, i);
      for (m = i * i; m <= bound; m += 2 * i)
        composite[m] = 1;
    }

  return primes;
}

/* The parent's own count of the primes in [lo, hi), to check the workers.
 * It is written apart from theirs (it sieves odd numbers only), so that a
 * bug would have to be made twice to go unnoticed. @is_prime has room for
 * (hi - lo) / 2 + 1 flags. */
static guint64
count_primes_in_block (guint64  lo,
                       guint64  hi,
                       GArray  *odd_primes,
                       guint8  *is_prime)
{
  guint64 count = lo <= 2 && 2 < hi ? 1 : 0;
  guint64 first = MAX (lo, 3) | 1;   /* the first odd number >= 3 in range */
  guint64 n_odd, i;

  if (first >= hi)
    return count;

  n_odd = (hi - first + 1) / 2;
  memset (is_prime, 1, n_odd);

  for (i = 0; i < odd_primes->len; i++)
    {
      guint64 p = g_array_index (odd_primes, guint64, i);
      guint64 m;

      if (p * p >= hi)
        break;

      m = MAX (p * p, (first + p - 1) / p * p);
      if (m % 2 == 0)
        m += p;
      for (; m < hi; m += 2 * p)
        is_prime[(m - first) / 2] = 0;
    }

  for (i = 0; i < n_odd; i++)
    count += is_prime[i];

  return count;
}

static guint64
count_primes_in_range (guint64  lo,
                       guint64  hi,
                       GArray  *odd_primes,
                       guint8  *is_prime)
{
  guint64 count = 0;
  guint64 start;

  for (start = lo; start < hi; start += RECOUNT_BLOCK)
    count += count_primes_in_block (start, MIN (hi, start + RECOUNT_BLOCK), odd_primes, is_prime);

  return count;
}

/* Recounts every task in this process, and names the workers that got one
 * wrong. Returns the total. */
static guint64
recount_tasks (Demo *demo)
{
  g_autoptr(GArray) odd_primes = odd_primes_up_to (isqrt_u64 (demo->limit));
  g_autofree guint8 *is_prime = g_malloc (RECOUNT_BLOCK / 2 + 1);
  guint64 total = 0;
  guint i;

  for (i = 0; i < demo->tasks->len; i++)
    {
      Task *task = &g_array_index (demo->tasks, Task, i);
      guint64 primes = count_primes_in_range (task->lo, task->hi, odd_primes, is_prime);

      total += primes;
      if (task->done_by != NULL && task->primes != primes)
        {
          g_autofree char *who = worker_describe (task->done_by);

          demo_note (demo, "%s counted %" G_GUINT64_FORMAT " primes in task %u [%"
                     G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT "), not %" G_GUINT64_FORMAT,
                     who, task->primes, i, task->lo, task->hi, primes);
        }
    }

  return total;
}

/* Prints the verdict on @total; returns whether it is right. */
static gboolean
check_total (Demo    *demo,
             guint64  total)
{
  g_autofree char *total_text = format_count (total);
  g_autofree char *limit_text = format_count (demo->limit);
  gint k = find_known_count (demo->limit);
  guint64 expected;

  if (k >= 0 && known_counts[k].primes == total)
    {
      g_print ("Primes below %s: %s, the known value of %s. OK\n",
               limit_text, total_text, known_counts[k].name);
      return TRUE;
    }

  /* Unknown limit, or a wrong total: recount to tell which task is wrong. */
  expected = recount_tasks (demo);

  if (expected == total && k < 0)
    {
      g_print ("Primes below %s: %s, as the parent's own recount finds. OK\n",
               limit_text, total_text);
      return TRUE;
    }
  else
    {
      g_autofree char *expected_text = format_count (k >= 0 ? known_counts[k].primes : expected);

      g_print ("Primes below %s: %s, but there are %s. WRONG\n",
               limit_text, total_text, expected_text);
      return FALSE;
    }
}

/* Summary ------------------------------------------------------------------ */

static void
print_summary (Demo   *demo,
               double  wall_seconds)
{
  guint64 numbers_by_lang[N_LANGS] = { 0 };
  guint64 all_numbers = 0;
  g_autofree char *all_text = NULL;
  guint i;

  for (i = 0; i < demo->workers->len; i++)
    all_numbers += ((Worker *) g_ptr_array_index (demo->workers, i))->numbers;

  g_print ("\n  #  worker      pid  tasks   numbers sieved   share   busy\n");
  for (i = 0; i < demo->workers->len; i++)
    {
      Worker *w = g_ptr_array_index (demo->workers, i);
      g_autofree char *numbers = format_count (w->numbers);

      numbers_by_lang[w->lang] += w->numbers;
      g_print ("%3u  %-6s %8d  %5u  %15s  %5.1f%%  %5.2f s%s\n",
               w->number, lang_names[w->lang].name, w->pid, w->tasks_done, numbers,
               all_numbers > 0 ? 100.0 * w->numbers / all_numbers : 0.0,
               w->busy_us / (double) G_USEC_PER_SEC, w->lost ? "  LOST" : "");
    }

  all_text = format_count (all_numbers);
  g_print ("     total           %6u  %15s  %5.1f%%\n\n", demo->tasks_done, all_text,
           all_numbers > 0 ? 100.0 : 0.0);

  g_print ("By language:");
  for (i = 0; i < N_LANGS; i++)
    if (demo->n_workers[i] > 0)
      g_print ("  %s %.1f%%", lang_names[i].name,
               all_numbers > 0 ? 100.0 * numbers_by_lang[i] / all_numbers : 0.0);
  g_print ("\n");

  g_print ("Wall time %.2f s; %u messages: %u sent (DO, DIE), %u received (FINISHED)\n",
           wall_seconds, demo->messages_sent + demo->messages_received,
           demo->messages_sent, demo->messages_received);
}

/* Setup -------------------------------------------------------------------- */

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
      "Number of C workers (default 2)", "N" },
    { "py-workers", 0, 0, G_OPTION_ARG_INT, &demo->n_workers[LANG_PYTHON],
      "Number of Python workers (default 1)", "N" },
    { "js-workers", 0, 0, G_OPTION_ARG_INT, &demo->n_workers[LANG_GJS],
      "Number of GJS workers (default 1)", "N" },
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
    { "kill-worker", 0, 0, G_OPTION_ARG_INT, &demo->kill_worker,
      "Kill worker N with its first task, to show how a lost worker is handled", "N" },
    { NULL }
  };
  g_autoptr(GOptionContext) context = NULL;
  gint total_workers = 0;
  Lang lang;

  context = g_option_context_new ("- count primes with workers in C, Python and JavaScript");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, argc, argv, error))
    return FALSE;

  for (lang = 0; lang < N_LANGS; lang++)
    {
      if (demo->n_workers[lang] < 0)
        {
          g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                               "a number of workers cannot be negative");
          return FALSE;
        }
      total_workers += demo->n_workers[lang];
    }

  if (total_workers == 0)
    g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "no workers");
  else if (demo->limit < 2 || (guint64) demo->limit > MAX_LIMIT)
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--limit must be between 2 and %" G_GUINT64_FORMAT, MAX_LIMIT);
  else if (demo->n_tasks < 1 || demo->n_tasks > demo->limit)
    g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                         "--tasks must be between 1 and the limit");
  else
    return TRUE;

  return FALSE;
}

/* Splits [0, limit) into tasks of nearly equal size. */
static void
make_tasks (Demo *demo)
{
  gint i;

  for (i = 0; i < demo->n_tasks; i++)
    {
      Task task = {
        .lo = (guint64) demo->limit * i / demo->n_tasks,
        .hi = (guint64) demo->limit * (i + 1) / demo->n_tasks,
      };

      g_array_append_val (demo->tasks, task);
      g_queue_push_tail (&demo->todo, GINT_TO_POINTER (i));
    }
}

static void
print_header (Demo *demo)
{
  g_autofree char *limit = format_count (demo->limit);
  g_autofree char *size = format_count (demo->limit / demo->n_tasks);
  gint n = 0;
  Lang lang;

  for (lang = 0; lang < N_LANGS; lang++)
    n += demo->n_workers[lang];

  g_print ("Counting the primes below %s in %d tasks of ~%s numbers with %d workers (",
           limit, demo->n_tasks, size, n);
  for (lang = 0, n = 0; lang < N_LANGS; lang++)
    if (demo->n_workers[lang] > 0)
      g_print ("%s%d %s", n++ > 0 ? ", " : "", demo->n_workers[lang], lang_names[lang].name);
  g_print (")\n");
}

static void
demo_init (Demo *demo)
{
  demo->limit = G_GINT64_CONSTANT (4294967296);
  demo->n_tasks = 100;
  demo->n_workers[LANG_C] = 2;
  demo->n_workers[LANG_PYTHON] = 1;
  demo->n_workers[LANG_GJS] = 1;
  demo->workers = g_ptr_array_new_with_free_func ((GDestroyNotify) worker_free);
  demo->tasks = g_array_new (FALSE, TRUE, sizeof (Task));
  g_queue_init (&demo->todo);
  demo->loop = g_main_loop_new (NULL, FALSE);
  demo->tty = isatty (STDOUT_FILENO);
}

static void
demo_clear (Demo *demo)
{
  g_clear_handle_id (&demo->exit_timeout_id, g_source_remove);
  g_clear_pointer (&demo->workers, g_ptr_array_unref);
  g_clear_pointer (&demo->tasks, g_array_unref);
  g_queue_clear (&demo->todo);
  g_clear_pointer (&demo->loop, g_main_loop_unref);
  g_clear_pointer (&demo->worker_path[LANG_C], g_free);
  g_clear_pointer (&demo->worker_path[LANG_PYTHON], g_free);
  g_clear_pointer (&demo->worker_path[LANG_GJS], g_free);
  g_clear_pointer (&demo->python, g_free);
  g_clear_pointer (&demo->gjs, g_free);
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

static int
run (Demo *demo)
{
  g_autoptr(GError) error = NULL;
  guint64 total = 0;
  double wall;
  guint interrupt_id, terminate_id;
  guint i;

  make_tasks (demo);
  print_header (demo);

  interrupt_id = g_unix_signal_add (SIGINT, on_interrupt, demo);
  terminate_id = g_unix_signal_add (SIGTERM, on_interrupt, demo);
  demo->started = g_get_monotonic_time ();

  if (!spawn_workers (demo, &error))
    {
      demo_note (demo, "%s", error->message);
      demo->failed = TRUE;
      demo->stopping = TRUE;
    }

  demo_schedule (demo);
  if (demo->tty)
    progress_update (demo);
  if (demo->workers->len > 0)
    g_main_loop_run (demo->loop);

  wall = elapsed_seconds (demo);
  g_source_remove (interrupt_id);
  g_source_remove (terminate_id);
  progress_end (demo);

  print_summary (demo, wall);

  for (i = 0; i < demo->tasks->len; i++)
    total += g_array_index (demo->tasks, Task, i).primes;

  if (demo->tasks_done < (guint) demo->n_tasks)
    {
      g_autofree char *total_text = format_count (total);

      g_print ("Only %u of %d tasks were done: the %s primes found are not checked.\n",
               demo->tasks_done, demo->n_tasks, total_text);
    }
  else if (!check_total (demo, total))
    demo->failed = TRUE;

  if (demo->failed)
    return EXIT_FAILURE;
  if (demo->interrupted)
    return EXIT_INTERRUPTED;
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
