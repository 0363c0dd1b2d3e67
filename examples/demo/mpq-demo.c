/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* mpq-demo: the parent of the pymulproc demo.
 *
 * Counts the primes below a limit (2^32 by default) with worker processes
 * written in C, Python and JavaScript that share ONE MpqQueue. [0, limit)
 * is split into tasks; once every worker has said READY, the parent puts
 * every task on the queue as a DO addressed to nobody, and the queue hands
 * them out: each worker takes one at a time by dispatch, so the faster ones
 * take more. The workers answer FINISHED addressed to the parent, which
 * collects them as message-received::FINISHED in its GMainLoop while a
 * thread of the library serves the queue. Once every task is answered, the
 * parent sends each worker a DIE addressed to its pid and waits for it
 * (g_subprocess_wait_async). mpq_queue_join_async() tells when everything
 * put has been taken: if that happens with tasks unanswered, they are lost.
 *
 * --kill-worker N kills worker N with SIGKILL in the middle of a task: the
 * queue hands what it held to another worker, and the total is still exact.
 * Any other worker that dies, a wrong or missing answer, or a wrong total
 * makes the demo exit with status 1.
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

/* What a worker says once it takes tasks from the queue. */
#define REQ_READY             "READY"

#define PROGRESS_WIDTH        30
#define PROGRESS_INTERVAL_MS  200
#define READY_TIMEOUT_SECONDS 30
#define EXIT_TIMEOUT_SECONDS  10
/* Numbers per pass of the parent's recount: the flags stay in the cache. */
#define RECOUNT_BLOCK         (G_GUINT64_CONSTANT (1) << 20)
#define MAX_LIMIT             G_GUINT64_CONSTANT (1000000000000)
#define MAX_TASKS             1000000
#define MAX_LISTED_TASKS      10
#define EXIT_INTERRUPTED      130

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

typedef enum
{
  PHASE_STARTING,   /* waiting for every worker's READY */
  PHASE_WORKING,    /* the tasks are on the queue */
  PHASE_STOPPING,   /* DIE sent (or being sent); waiting for the exits */
} Phase;

typedef struct _Demo Demo;

typedef struct
{
  Demo        *demo;
  Lang         lang;
  guint        number;       /* 1-based, as shown to the user */
  GSubprocess *process;
  gint         pid;
  guint        tasks_done;   /* tasks it answered first */
  guint        repeats;      /* answers to tasks already answered */
  guint64      numbers;      /* how many numbers it sieved, repeats left out */
  guint64      primes;       /* how many primes it found, repeats left out */
  guint64      busy_us;      /* time spent sieving, as the worker reported it */
  guint        ready : 1;
  guint        die_sent : 1;
  guint        exited : 1;
  guint        killed : 1;   /* by us, after saying why */
  guint        victim : 1;   /* killed by --kill-worker: not a failure */
  guint        lost : 1;     /* failed: a failure of the run */
} Worker;

typedef struct
{
  guint64  lo;
  guint64  hi;
  guint64  primes;
  Worker  *done_by;          /* NULL until its first FINISHED arrives */
} Task;

struct _Demo
{
  /* Options */
  gint64        limit;
  gint          n_tasks;
  gint          n_workers[N_LANGS];
  char         *worker_path[N_LANGS];
  char         *python;
  char         *gjs;
  gint          kill_worker;

  GMainLoop    *loop;
  MpqQueue     *queue;
  gint          pid;
  GPtrArray    *workers;         /* Worker */
  GHashTable   *workers_by_pid;  /* pid -> Worker, borrowed */
  GArray       *tasks;           /* Task */
  Phase         phase;
  guint         tasks_done;
  guint64       numbers_done;
  guint         repeats;         /* answers to tasks already answered */
  guint         sent_do;
  guint         sent_die;
  guint         got_finished;
  guint         got_ready;
  guint         got_other;
  guint         taken_back;      /* DOs taken off the queue after Ctrl-C */
  gint64        started;         /* when the demo started */
  gint64        work_started;    /* when the tasks were put */
  gint64        work_ended;      /* when the last task was answered */
  gint64        last_drawn;      /* when the tty progress line was drawn */
  GCancellable *join_cancellable;
  gboolean      join_pending;
  guint         ready_timeout_id;
  guint         kill_timeout_id;
  guint         exit_timeout_id;
  guint         progress_id;
  guint         progress_tenth;  /* last tenth printed when stdout is no tty */
  gboolean      tty;
  gboolean      progress_shown;  /* a tty progress line waits for its end */
  gboolean      kill_done;       /* --kill-worker did kill */
  guint         tasks_done_at_kill;
  gboolean      interrupted;
  gboolean      failed;
};

static void demo_check (Demo *demo);

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

/* 1234567890.0 -> "1.23 G" */
static char *
format_rate (double rate)
{
  if (rate >= 1e9)
    return g_strdup_printf ("%.2f G", rate / 1e9);
  if (rate >= 1e6)
    return g_strdup_printf ("%.0f M", rate / 1e6);
  if (rate >= 1e3)
    return g_strdup_printf ("%.0f k", rate / 1e3);
  return g_strdup_printf ("%.0f", rate);
}

static double
seconds_between (gint64 from,
                 gint64 to)
{
  return (to - from) / (double) G_USEC_PER_SEC;
}

static double
elapsed_seconds (Demo *demo)
{
  return seconds_between (demo->started, g_get_monotonic_time ());
}

static char *
worker_describe (Worker *w)
{
  return g_strdup_printf ("worker %u (%s, pid %d)", w->number, lang_names[w->lang].name, w->pid);
}

/* Notes go to stderr, on a line of their own even while a tty progress
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

/* [=========>     ]  37/100 tasks    12.3 tasks/s  1.21 G numbers/s     3.0 s  C:20  Py:7  JS:10
 * (the rates and the time count from when the tasks were put) */
static void
progress_print (Demo       *demo,
                const char *end)
{
  g_autoptr(GString) line = g_string_new ("[");
  g_autofree char *rate = NULL;
  guint tasks_by_lang[N_LANGS] = { 0 };
  guint filled = (guint64) demo->tasks_done * PROGRESS_WIDTH / demo->n_tasks;
  gint64 now = demo->work_ended != 0 ? demo->work_ended : g_get_monotonic_time ();
  double seconds = seconds_between (demo->work_started, now);
  char digits[16];
  int width;
  guint i;

  for (i = 0; i < PROGRESS_WIDTH; i++)
    g_string_append_c (line, i < filled ? '=' : i == filled ? '>' : ' ');

  /* Counts keep their width, so the line does not jitter. */
  width = g_snprintf (digits, sizeof digits, "%d", demo->n_tasks);
  g_string_append_printf (line, "] %*u/%d tasks", width, demo->tasks_done, demo->n_tasks);

  rate = format_rate (seconds > 0 ? demo->numbers_done / seconds : 0);
  g_string_append_printf (line, "  %6.1f tasks/s  %s numbers/s  %6.1f s",
                          seconds > 0 ? demo->tasks_done / seconds : 0.0, rate, seconds);

  for (i = 0; i < demo->workers->len; i++)
    {
      Worker *w = g_ptr_array_index (demo->workers, i);

      tasks_by_lang[w->lang] += w->tasks_done;
    }
  for (i = 0; i < N_LANGS; i++)
    if (demo->n_workers[i] > 0)
      g_string_append_printf (line, "  %s:%u", lang_names[i].tag, tasks_by_lang[i]);

  g_print ("%s%s", line->str, end);
  fflush (stdout);
}

/* On a terminal, one line redrawn in place (at most every few hundredths of
 * a second, unless @force); in a log, a line every tenth of the tasks. */
static void
progress_update (Demo     *demo,
                 gboolean  force)
{
  guint tenth = (guint64) demo->tasks_done * 10 / demo->n_tasks;
  gint64 now = g_get_monotonic_time ();

  if (demo->work_started == 0)
    return;

  if (demo->tty)
    {
      if (!force && now - demo->last_drawn < 40 * G_TIME_SPAN_MILLISECOND)
        return;
      demo->last_drawn = now;
      g_print ("\r");
      progress_print (demo, "\033[K");
      demo->progress_shown = TRUE;
    }
  else if (tenth > demo->progress_tenth)
    {
      demo->progress_tenth = tenth;
      progress_print (demo, "\n");
    }
}

static gboolean
on_progress_tick (gpointer user_data)
{
  progress_update (user_data, TRUE);
  return G_SOURCE_CONTINUE;
}

static void
progress_end (Demo *demo)
{
  g_clear_handle_id (&demo->progress_id, g_source_remove);
  if (demo->progress_shown)
    {
      g_print ("\r");
      progress_print (demo, "\033[K\n");
    }
  demo->progress_shown = FALSE;
}

/* Workers --------------------------------------------------------------- */

static Worker *
worker_for_pid (Demo *demo,
                gint  pid)
{
  return g_hash_table_lookup (demo->workers_by_pid, GINT_TO_POINTER (pid));
}

/* Still at work, or still able to be: it will get a DIE. */
static gboolean
worker_is_active (Worker *w)
{
  return !w->exited && !w->killed && !w->lost;
}

static guint
count_active_workers (Demo     *demo,
                      gboolean  ready_only)
{
  guint n = 0;
  guint i;

  for (i = 0; i < demo->workers->len; i++)
    {
      Worker *w = g_ptr_array_index (demo->workers, i);

      if (worker_is_active (w) && (w->ready || !ready_only))
        n++;
    }

  return n;
}

static void
worker_kill (Worker *w)
{
  if (w->exited || w->killed)
    return;

  w->killed = TRUE;
  g_subprocess_force_exit (w->process);
}

/* A worker that failed gets no DIE: it is killed, and what it held goes
 * back to the queue. */
static void
worker_lose (Worker     *w,
             const char *why)
{
  g_autofree char *who = worker_describe (w);

  if (w->lost)
    return;

  w->lost = TRUE;
  w->demo->failed = TRUE;
  demo_note (w->demo, "%s %s", who, why);
  worker_kill (w);
}

static void
worker_send_die (Worker *w)
{
  Demo *demo = w->demo;
  g_autoptr(GError) error = NULL;

  w->die_sent = TRUE;
  if (mpq_channel_send (MPQ_CHANNEL (demo->queue), MPQ_REQ_DIE, 0, w->pid, NULL, &error))
    demo->sent_die++;
  else
    {
      g_autofree char *why = g_strdup_printf ("could not be sent DIE: %s", error->message);

      worker_lose (w, why);
    }
}

/* Tasks ------------------------------------------------------------------ */

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

/* Puts task @index on the queue, for whichever worker is free first. */
static gboolean
put_task (Demo     *demo,
          guint     index,
          GError  **error)
{
  g_autoptr(JsonNode) data = task_to_json (index, &g_array_index (demo->tasks, Task, index));

  if (!mpq_channel_send (MPQ_CHANNEL (demo->queue), MPQ_REQ_DO, 0, 0, data, error))
    return FALSE;

  demo->sent_do++;
  return TRUE;
}

static void demo_stop (Demo *demo);
static void on_joined (GObject      *source,
                       GAsyncResult *result,
                       gpointer      user_data);

/* Every task goes on the queue at once; then join tells when all of them
 * (and every answer) have been taken. */
static void
put_tasks (Demo *demo)
{
  g_autoptr(GError) error = NULL;
  guint ready = count_active_workers (demo, TRUE);
  guint i;

  g_clear_handle_id (&demo->ready_timeout_id, g_source_remove);
  demo->phase = PHASE_WORKING;
  demo->work_started = g_get_monotonic_time ();

  g_print ("%u worker%s ready after %.2f s; putting %d tasks on the queue\n",
           ready, ready == 1 ? "" : "s", elapsed_seconds (demo), demo->n_tasks);

  for (i = 0; i < (guint) demo->n_tasks; i++)
    if (!put_task (demo, i, &error))
      {
        demo_note (demo, "could not put task %u on the queue: %s", i, error->message);
        demo->failed = TRUE;
        demo_stop (demo);
        return;
      }

  demo->join_pending = TRUE;
  mpq_queue_join_async (demo->queue, demo->join_cancellable, on_joined, demo);

  if (demo->tty)
    {
      demo->progress_id = g_timeout_add (PROGRESS_INTERVAL_MS, on_progress_tick, demo);
      progress_update (demo, TRUE);
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

/* Reads a FINISHED {"task", "lo", "hi", "primes", "us"}. Returns the task's
 * index, or -1 if @data does not answer one of our tasks. */
static gint
parse_answer (Demo     *demo,
              JsonNode *data,
              guint64  *primes,
              guint64  *us)
{
  JsonObject *object;
  Task *task;
  guint64 index, lo, hi;

  *us = 0;
  object = data != NULL && JSON_NODE_HOLDS_OBJECT (data) ? json_node_get_object (data) : NULL;
  if (object == NULL
      || !get_uint_member (object, "task", &index)
      || index >= demo->tasks->len)
    return -1;

  task = &g_array_index (demo->tasks, Task, index);
  if (!get_uint_member (object, "lo", &lo)
      || !get_uint_member (object, "hi", &hi)
      || !get_uint_member (object, "primes", primes)
      || lo != task->lo || hi != task->hi
      || *primes > hi - lo
      || (json_object_has_member (object, "us") && !get_uint_member (object, "us", us)))
    return -1;

  return (gint) index;
}

/* The kill ----------------------------------------------------------------- */

static gboolean
on_kill_timeout (gpointer user_data)
{
  Worker *w = user_data;
  Demo *demo = w->demo;
  g_autofree char *who = worker_describe (w);

  demo->kill_timeout_id = 0;
  if (demo->phase != PHASE_WORKING || !worker_is_active (w))
    return G_SOURCE_REMOVE;

  demo_note (demo, "killing %s with SIGKILL in the middle of a task, as --kill-worker asked: "
             "the queue hands what it held to another worker", who);
  w->victim = TRUE;
  w->killed = TRUE;
  demo->kill_done = TRUE;
  demo->tasks_done_at_kill = demo->tasks_done;
  g_subprocess_send_signal (w->process, SIGKILL);

  demo_check (demo);
  return G_SOURCE_REMOVE;
}

/* --kill-worker: once the worker has answered a task that took it @us, it
 * is killed halfway through the next one, while it holds it. */
static void
maybe_schedule_kill (Worker  *w,
                     guint64  us)
{
  Demo *demo = w->demo;
  guint delay_ms;

  if ((gint) w->number != demo->kill_worker || demo->kill_done || demo->kill_timeout_id != 0
      || demo->phase != PHASE_WORKING || demo->tasks_done == (guint) demo->n_tasks)
    return;

  delay_ms = CLAMP (us / 2000, 1, 5000);
  demo->kill_timeout_id = g_timeout_add (delay_ms, on_kill_timeout, w);
}

/* Answers ------------------------------------------------------------------ */

/* Books one FINISHED: the first answer to a task counts, a later one (the
 * queue handed the task again because a worker died after answering it but
 * before the queue saw it taken) must agree with it. */
static void
take_answer (Demo       *demo,
             MpqMessage *message)
{
  gint pid = mpq_message_get_sender_pid (message);
  Worker *w = worker_for_pid (demo, pid);
  guint64 primes, us;
  Task *task;
  gint index;

  demo->got_finished++;

  if (w == NULL)
    {
      demo_note (demo, "FINISHED from pid %d, which is none of our workers", pid);
      demo->failed = TRUE;
      return;
    }

  index = parse_answer (demo, mpq_message_get_data (message), &primes, &us);
  if (index < 0)
    {
      g_autofree char *text = mpq_message_dup_data_json (message);
      g_autofree char *why = g_strdup_printf ("answered %s: no task of ours", text);

      /* It took the task it means, whatever that was: it is lost, and join
       * will say so. */
      worker_lose (w, why);
      return;
    }

  task = &g_array_index (demo->tasks, Task, index);
  if (task->done_by != NULL)
    {
      g_autofree char *who = worker_describe (w);
      g_autofree char *first = worker_describe (task->done_by);

      w->repeats++;
      demo->repeats++;
      if (primes != task->primes)
        {
          demo_note (demo, "%s counted %" G_GUINT64_FORMAT " primes in task %d, but %s counted %"
                     G_GUINT64_FORMAT, who, primes, index, first, task->primes);
          demo->failed = TRUE;
        }
      else
        demo_note (demo, "task %d was done twice, by %s and by %s (the queue handed it again: "
                   "a worker died after answering it, before the queue saw it taken); "
                   "both counted %" G_GUINT64_FORMAT " primes", index, first, who, primes);
      return;
    }

  task->primes = primes;
  task->done_by = w;
  w->tasks_done++;
  w->numbers += task->hi - task->lo;
  w->primes += primes;
  w->busy_us += us;
  demo->tasks_done++;
  demo->numbers_done += task->hi - task->lo;
  if (demo->tasks_done == (guint) demo->n_tasks)
    demo->work_ended = g_get_monotonic_time ();

  maybe_schedule_kill (w, us);
}

/* Signal handlers --------------------------------------------------------- */

static void
on_finished (MpqChannel *channel,
             MpqMessage *message,
             gpointer    user_data)
{
  Demo *demo = user_data;

  take_answer (demo, message);
  progress_update (demo, demo->tasks_done == (guint) demo->n_tasks);
  demo_check (demo);
}

static void
on_ready (MpqChannel *channel,
          MpqMessage *message,
          gpointer    user_data)
{
  Demo *demo = user_data;
  gint pid = mpq_message_get_sender_pid (message);
  Worker *w = worker_for_pid (demo, pid);

  demo->got_ready++;
  if (w == NULL)
    {
      demo_note (demo, "READY from pid %d, which is none of our workers", pid);
      demo->failed = TRUE;
      return;
    }

  w->ready = TRUE;
  demo_check (demo);
}

/* Anything but FINISHED and READY: the parent expects nothing else. */
static void
on_message (MpqChannel *channel,
            MpqMessage *message,
            gpointer    user_data)
{
  Demo *demo = user_data;
  const char *request = mpq_message_get_request (message);
  g_autofree char *data = NULL;

  if (g_str_equal (request, MPQ_REQ_FINISHED) || g_str_equal (request, REQ_READY))
    return;

  demo->got_other++;
  demo->failed = TRUE;
  data = mpq_message_dup_data_json (message);

  if (mpq_message_get_sender_pid (message) == demo->pid)
    demo_note (demo, "the queue handed the parent its own %s %s, which only a worker should "
               "take: that is a task lost", request, data != NULL ? data : "null");
  else
    demo_note (demo, "unexpected %s %s from pid %d", request, data != NULL ? data : "null",
               mpq_message_get_sender_pid (message));
}

static void
on_queue_closed (MpqChannel *channel,
                 gpointer    user_data)
{
  Demo *demo = user_data;

  demo_note (demo, "the queue closed under the parent");
  demo->failed = TRUE;
  demo_stop (demo);
  demo_check (demo);
}

/* Every message put has been taken. With tasks unanswered, that means they
 * are lost: no worker will answer them any more. */
static void
on_joined (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Demo *demo = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) missing = NULL;
  guint n_missing = 0;
  guint i;

  demo->join_pending = FALSE;
  if (!mpq_queue_join_finish (MPQ_QUEUE (source), result, &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          demo_note (demo, "join failed: %s", error->message);
          demo->failed = TRUE;
        }
      return;
    }

  if (demo->phase != PHASE_WORKING || demo->tasks_done == (guint) demo->n_tasks)
    return;

  missing = g_string_new (NULL);
  for (i = 0; i < demo->tasks->len; i++)
    if (g_array_index (demo->tasks, Task, i).done_by == NULL && n_missing++ < MAX_LISTED_TASKS)
      g_string_append_printf (missing, "%s%u", missing->len > 0 ? ", " : "", i);

  demo_note (demo, "the queue was joined (everything put was taken), but %u task%s never "
             "answered: %s%s; %s lost", n_missing, n_missing == 1 ? " was" : "s were",
             missing->str, n_missing > MAX_LISTED_TASKS ? ", ..." : "",
             n_missing == 1 ? "it is" : "they are");
  demo->failed = TRUE;
  demo_stop (demo);
  demo_check (demo);
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

  /* What it held goes back to the queue: the library sees it go. */
  if (why != NULL)
    worker_lose (w, why);

  demo_check (w->demo);
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

      if (!w->exited)
        worker_lose (w, "did not exit within " G_STRINGIFY (EXIT_TIMEOUT_SECONDS) " s of DIE");
    }

  return G_SOURCE_REMOVE;
}

/* Workers that never said READY do not hold the others back for ever. */
static gboolean
on_ready_timeout (gpointer user_data)
{
  Demo *demo = user_data;
  guint i;

  demo->ready_timeout_id = 0;
  if (demo->phase != PHASE_STARTING)
    return G_SOURCE_REMOVE;

  for (i = 0; i < demo->workers->len; i++)
    {
      Worker *w = g_ptr_array_index (demo->workers, i);
      g_autofree char *who = worker_describe (w);

      if (worker_is_active (w) && !w->ready)
        demo_note (demo, "%s is not READY after " G_STRINGIFY (READY_TIMEOUT_SECONDS)
                   " s; starting without it", who);
    }

  put_tasks (demo);
  demo_check (demo);
  return G_SOURCE_REMOVE;
}

/* After Ctrl-C: the tasks still waiting are taken back off the queue with
 * a plain receive (pymulproc's: it takes whatever is at the front), so the
 * workers only finish the task they hold. Answers met on the way count. */
static void
take_back_tasks (Demo *demo)
{
  while (TRUE)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqMessage) message = NULL;
      const char *request;

      message = mpq_channel_receive (MPQ_CHANNEL (demo->queue), 0, NULL, NULL, &error);
      if (message == NULL)
        {
          if (error != NULL)
            {
              demo_note (demo, "could not empty the queue: %s", error->message);
              demo->failed = TRUE;
            }
          return;
        }

      request = mpq_message_get_request (message);
      if (g_str_equal (request, MPQ_REQ_DO))
        demo->taken_back++;
      else if (g_str_equal (request, MPQ_REQ_FINISHED))
        take_answer (demo, message);
      else if (g_str_equal (request, REQ_READY))
        demo->got_ready++;
      else if (!g_str_equal (request, MPQ_REQ_DIE))   /* for a worker that is gone */
        on_message (MPQ_CHANNEL (demo->queue), message, demo);
    }
}

/* Ctrl-C: the tasks still on the queue are taken back, the workers finish
 * the one they hold and are sent DIE; a second one kills them. */
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
  demo_note (demo, "interrupted: the workers finish the task they hold and leave "
             "(again to kill them)");
  if (demo->phase == PHASE_WORKING)
    take_back_tasks (demo);
  demo_stop (demo);
  demo_check (demo);

  return G_SOURCE_CONTINUE;
}

/* The state machine ------------------------------------------------------- */

static void
demo_stop (Demo *demo)
{
  demo->phase = PHASE_STOPPING;
  g_clear_handle_id (&demo->ready_timeout_id, g_source_remove);
  g_clear_handle_id (&demo->kill_timeout_id, g_source_remove);
}

/* Called after every event: puts the tasks once every worker is ready,
 * says DIE once every task is answered (or nobody is left to answer), and
 * ends the loop once every worker is gone. */
static void
demo_check (Demo *demo)
{
  guint active = count_active_workers (demo, FALSE);
  guint i;

  if (demo->phase == PHASE_STARTING)
    {
      if (active == 0)
        {
          demo_note (demo, "no worker is left, and none got to work");
          demo->failed = TRUE;
          demo_stop (demo);
        }
      else if (count_active_workers (demo, TRUE) == active)
        put_tasks (demo);
    }

  if (demo->phase == PHASE_WORKING)
    {
      if (demo->tasks_done == (guint) demo->n_tasks)
        demo_stop (demo);
      else if (active == 0)
        {
          progress_update (demo, TRUE);
          demo_note (demo, "no worker is left; %u of %d tasks were not done",
                     demo->n_tasks - demo->tasks_done, demo->n_tasks);
          demo->failed = TRUE;
          demo_stop (demo);
        }
    }

  if (demo->phase != PHASE_STOPPING)
    return;

  /* One DIE per worker, addressed to it. */
  for (i = 0; i < demo->workers->len; i++)
    {
      Worker *w = g_ptr_array_index (demo->workers, i);

      if (worker_is_active (w) && !w->die_sent)
        worker_send_die (w);
    }

  if (demo->exit_timeout_id == 0)
    demo->exit_timeout_id = g_timeout_add_seconds (EXIT_TIMEOUT_SECONDS, on_exit_timeout, demo);

  for (i = 0; i < demo->workers->len; i++)
    if (!((Worker *) g_ptr_array_index (demo->workers, i))->exited)
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
  g_autoptr(GSubprocess) process = NULL;
  Worker *w;

  if (!build_argv (demo, lang, builder, error))
    return NULL;
  argv = g_strv_builder_end (builder);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  /* Python and GJS find Mpq-1.0.typelib and the library in the build tree
   * without any setup by the user. */
  prepend_to_env (launcher, "GI_TYPELIB_PATH", DEMO_LIBRARY_DIR);
  prepend_to_env (launcher, "LD_LIBRARY_PATH", DEMO_LIBRARY_DIR);

  process = mpq_queue_spawn_with_launcher (demo->queue, launcher,
                                           (const char * const *) argv, error);
  if (process == NULL)
    return NULL;

  w = g_new0 (Worker, 1);
  w->demo = demo;
  w->lang = lang;
  w->number = demo->workers->len + 1;
  w->process = g_steal_pointer (&process);
  w->pid = atoi (g_subprocess_get_identifier (w->process));

  g_hash_table_insert (demo->workers_by_pid, GINT_TO_POINTER (w->pid), w);
  g_subprocess_wait_async (w->process, NULL, on_exited, w);

  return w;
}

static void
worker_free (Worker *w)
{
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
  guint64 primes_by_lang[N_LANGS] = { 0 };
  guint64 all_primes = 0;
  guint64 all_busy_us = 0;
  g_autofree char *all_text = NULL;
  guint i;

  for (i = 0; i < demo->workers->len; i++)
    all_primes += ((Worker *) g_ptr_array_index (demo->workers, i))->primes;

  g_print ("\n  #  worker      pid  tasks           primes   share      busy\n");
  for (i = 0; i < demo->workers->len; i++)
    {
      Worker *w = g_ptr_array_index (demo->workers, i);
      g_autofree char *primes = format_count (w->primes);
      g_autoptr(GString) note = g_string_new (NULL);

      if (w->victim)
        g_string_append (note, "  killed mid-task (--kill-worker)");
      else if (w->lost)
        g_string_append (note, "  LOST");
      if (w->repeats > 0)
        g_string_append_printf (note, "  +%u done again", w->repeats);

      primes_by_lang[w->lang] += w->primes;
      all_busy_us += w->busy_us;
      g_print ("%3u  %-6s %8d  %5u  %15s  %5.1f%%  %6.2f s%s\n",
               w->number, lang_names[w->lang].name, w->pid, w->tasks_done, primes,
               all_primes > 0 ? 100.0 * w->primes / all_primes : 0.0,
               w->busy_us / (double) G_USEC_PER_SEC, note->str);
    }

  all_text = format_count (all_primes);
  g_print ("     total           %6u  %15s  %5.1f%%  %6.2f s\n\n", demo->tasks_done, all_text,
           all_primes > 0 ? 100.0 : 0.0, all_busy_us / (double) G_USEC_PER_SEC);

  g_print ("Share of the primes by language:");
  for (i = 0; i < N_LANGS; i++)
    if (demo->n_workers[i] > 0)
      g_print ("  %s %.1f%%", lang_names[i].name,
               all_primes > 0 ? 100.0 * primes_by_lang[i] / all_primes : 0.0);
  g_print ("\n");

  if (demo->work_started != 0)
    {
      gint64 end = demo->work_ended != 0 ? demo->work_ended : g_get_monotonic_time ();
      double work = seconds_between (demo->work_started, end);

      g_print ("Wall time %.2f s: workers ready after %.2f s, %u tasks answered in %.2f s "
               "(%.1f tasks/s)\n", wall_seconds,
               seconds_between (demo->started, demo->work_started), demo->tasks_done, work,
               work > 0 ? demo->tasks_done / work : 0.0);
    }
  else
    g_print ("Wall time %.2f s: the work never started\n", wall_seconds);

  g_print ("Messages on the queue: %u put by the parent (%u DO, %u DIE), "
           "%u taken by it (%u FINISHED, %u READY",
           demo->sent_do + demo->sent_die, demo->sent_do, demo->sent_die,
           demo->got_finished + demo->got_ready + demo->got_other + demo->taken_back,
           demo->got_finished, demo->got_ready);
  if (demo->taken_back > 0)
    g_print (", %u DO taken back", demo->taken_back);
  if (demo->got_other > 0)
    g_print (", %u unexpected", demo->got_other);
  g_print (")\n");

  if (demo->kill_done)
    for (i = 0; i < demo->workers->len; i++)
      {
        Worker *w = g_ptr_array_index (demo->workers, i);
        g_autofree char *who = NULL;

        if (!w->victim)
          continue;

        who = worker_describe (w);
        g_print ("%c%s was killed with %u of %d tasks answered; %u more were answered after "
                 "that, the one it held included%s\n", g_ascii_toupper (who[0]), who + 1,
                 demo->tasks_done_at_kill, demo->n_tasks,
                 demo->tasks_done - demo->tasks_done_at_kill,
                 demo->tasks_done == (guint) demo->n_tasks ? ": no task was lost" : "");
      }
}

/* Setup -------------------------------------------------------------------- */

static gint
count_workers (Demo *demo)
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
      "Kill worker N (numbered C, Python, GJS) with SIGKILL in the middle of a task, "
      "to show that the queue hands its task to another worker", "N" },
    { NULL }
  };
  g_autoptr(GOptionContext) context = NULL;
  gint total_workers;
  Lang lang;

  context = g_option_context_new ("- count primes with workers in C, Python and JavaScript "
                                  "sharing one queue");
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
  total_workers = count_workers (demo);

  if (total_workers == 0)
    g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "no workers");
  else if (demo->limit < 2 || (guint64) demo->limit > MAX_LIMIT)
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--limit must be between 2 and %" G_GUINT64_FORMAT, MAX_LIMIT);
  else if (demo->n_tasks < 1 || demo->n_tasks > demo->limit || demo->n_tasks > MAX_TASKS)
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--tasks must be between 1 and the limit, and at most %d", MAX_TASKS);
  else if (demo->kill_worker < 0 || demo->kill_worker > total_workers)
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--kill-worker must be between 1 and the number of workers (%d)",
                 total_workers);
  else if (demo->kill_worker > 0 && total_workers < 2)
    g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                         "--kill-worker needs another worker to take over");
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
    }
}

static void
print_header (Demo *demo)
{
  g_autofree char *limit = format_count (demo->limit);
  g_autofree char *size = format_count (demo->limit / demo->n_tasks);
  gint n = 0;
  Lang lang;

  g_print ("Counting the primes below %s with %d workers (", limit, count_workers (demo));
  for (lang = 0; lang < N_LANGS; lang++)
    if (demo->n_workers[lang] > 0)
      g_print ("%s%d %s", n++ > 0 ? ", " : "", demo->n_workers[lang], lang_names[lang].name);
  g_print (") sharing one MpqQueue: %d tasks of ~%s numbers\n", demo->n_tasks, size);
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
  demo->workers_by_pid = g_hash_table_new (NULL, NULL);
  demo->tasks = g_array_new (FALSE, TRUE, sizeof (Task));
  demo->join_cancellable = g_cancellable_new ();
  demo->loop = g_main_loop_new (NULL, FALSE);
  demo->tty = isatty (STDOUT_FILENO);
}

static void
demo_clear (Demo *demo)
{
  g_clear_handle_id (&demo->ready_timeout_id, g_source_remove);
  g_clear_handle_id (&demo->kill_timeout_id, g_source_remove);
  g_clear_handle_id (&demo->exit_timeout_id, g_source_remove);
  g_clear_handle_id (&demo->progress_id, g_source_remove);
  g_clear_object (&demo->queue);
  g_clear_pointer (&demo->workers_by_pid, g_hash_table_unref);
  g_clear_pointer (&demo->workers, g_ptr_array_unref);
  g_clear_pointer (&demo->tasks, g_array_unref);
  g_clear_object (&demo->join_cancellable);
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

static gboolean
on_join_cancel_timeout (gpointer user_data)
{
  gboolean *timed_out = user_data;

  *timed_out = TRUE;
  return G_SOURCE_REMOVE;
}

/* Every worker is gone: what is left on the queue is looked at, the join
 * is cancelled, and the queue is closed. */
static void
finish_queue (Demo *demo)
{
  MpqChannel *channel = MPQ_CHANNEL (demo->queue);

  /* What dispatch handed the parent and it did not handle yet goes back to
   * the queue, to be taken with the rest. */
  mpq_channel_stop (channel);
  take_back_tasks (demo);

  if (demo->join_pending)
    {
      gboolean timed_out = FALSE;
      guint timeout_id = g_timeout_add_seconds (EXIT_TIMEOUT_SECONDS, on_join_cancel_timeout,
                                                &timed_out);

      g_cancellable_cancel (demo->join_cancellable);
      while (demo->join_pending && !timed_out)
        g_main_context_iteration (NULL, TRUE);

      if (demo->join_pending)
        {
          demo_note (demo, "the cancelled join did not finish within "
                     G_STRINGIFY (EXIT_TIMEOUT_SECONDS) " s");
          demo->failed = TRUE;
        }
      else
        g_source_remove (timeout_id);
    }

  g_signal_handlers_disconnect_by_data (demo->queue, demo);
  mpq_channel_close (channel);
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
  demo->started = g_get_monotonic_time ();

  demo->queue = mpq_queue_new (0, &error);
  if (demo->queue == NULL)
    {
      g_printerr ("mpq-demo: %s\n", error->message);
      return EXIT_FAILURE;
    }
  demo->pid = mpq_channel_get_pid (MPQ_CHANNEL (demo->queue));

  g_signal_connect (demo->queue, "message-received::" MPQ_REQ_FINISHED,
                    G_CALLBACK (on_finished), demo);
  g_signal_connect (demo->queue, "message-received::" REQ_READY, G_CALLBACK (on_ready), demo);
  g_signal_connect (demo->queue, "message-received", G_CALLBACK (on_message), demo);
  g_signal_connect (demo->queue, "closed", G_CALLBACK (on_queue_closed), demo);
  mpq_channel_start (MPQ_CHANNEL (demo->queue));

  interrupt_id = g_unix_signal_add (SIGINT, on_interrupt, demo);
  terminate_id = g_unix_signal_add (SIGTERM, on_interrupt, demo);

  if (!spawn_workers (demo, &error))
    {
      demo_note (demo, "%s", error->message);
      demo->failed = TRUE;
      demo_stop (demo);
    }
  else
    demo->ready_timeout_id = g_timeout_add_seconds (READY_TIMEOUT_SECONDS, on_ready_timeout,
                                                    demo);

  demo_check (demo);
  if (demo->workers->len > 0)
    g_main_loop_run (demo->loop);

  wall = elapsed_seconds (demo);
  g_source_remove (interrupt_id);
  g_source_remove (terminate_id);
  progress_end (demo);
  finish_queue (demo);

  print_summary (demo, wall);

  for (i = 0; i < demo->tasks->len; i++)
    total += g_array_index (demo->tasks, Task, i).primes;

  if (demo->kill_worker > 0 && !demo->kill_done && !demo->interrupted)
    {
      demo_note (demo, "worker %d could not be killed in the middle of a task: the work was "
                 "done first (try more tasks)", demo->kill_worker);
      demo->failed = TRUE;
    }

  if (demo->tasks_done < (guint) demo->n_tasks)
    {
      g_autofree char *total_text = format_count (total);

      g_print ("Only %u of %d tasks were done: the %s primes found are not checked.\n",
               demo->tasks_done, demo->n_tasks, total_text);
      if (!demo->interrupted)
        demo->failed = TRUE;
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
