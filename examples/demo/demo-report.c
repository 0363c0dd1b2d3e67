/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* mpq-demo: what it prints. Events on stdout, problems on stderr, both on
 * a line of their own even while a terminal's progress line is redrawn;
 * then the summary: who did what. */

#include "demo.h"

#include <stdio.h>
#include <string.h>

#define PROGRESS_WIDTH       30
#define PROGRESS_INTERVAL_MS 200

/* 1234567 -> "1,234,567": the numbers here are too long to read bare. */
char *
demo_format_count (guint64 n)
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

double
demo_seconds_between (gint64 from,
                      gint64 to)
{
  return (to - from) / (double) G_USEC_PER_SEC;
}

/* A tty progress line being redrawn gets its end first. */
static void
end_progress_line (Demo *demo)
{
  if (demo->progress_shown)
    {
      g_print ("\n");
      demo->progress_shown = FALSE;
    }
}

/* An event (a worker started, died, was killed) on stdout, or a problem on
 * stderr. */
static void
print_line (Demo       *demo,
            gboolean    problem,
            const char *format,
            va_list     args)
{
  g_autofree char *text = g_strdup_vprintf (format, args);

  end_progress_line (demo);
  fflush (stdout);
  if (problem)
    g_printerr ("mpq-demo: %s\n", text);
  else
    {
      g_print ("%s\n", text);
      fflush (stdout);
    }
}

void
demo_say (Demo       *demo,
          const char *format,
          ...)
{
  va_list args;

  va_start (args, format);
  print_line (demo, FALSE, format, args);
  va_end (args);
}

void
demo_note (Demo       *demo,
           const char *format,
           ...)
{
  va_list args;

  va_start (args, format);
  print_line (demo, TRUE, format, args);
  va_end (args);
}

/* Progress ------------------------------------------------------------------ */

/* [=========>     ]  37/100 tasks  1.21 G numbers/s     3.0 s  C:20  Py:7  JS:10
 * The bar and the rate count the numbers sieved, those of the tasks still
 * running included, as their workers report them. */
static void
progress_print (Demo       *demo,
                const char *end)
{
  g_autoptr(GString) line = g_string_new ("[");
  g_autofree char *rate = NULL;
  guint64 numbers = demo->numbers_done + demo_numbers_in_flight (demo);
  guint filled = MIN (numbers * PROGRESS_WIDTH / demo->limit, PROGRESS_WIDTH);
  gint64 now = demo->work_ended != 0 ? demo->work_ended : g_get_monotonic_time ();
  double seconds = demo_seconds_between (demo->started, now);
  char digits[16];
  int width;
  Lang lang;
  guint i;

  for (i = 0; i < PROGRESS_WIDTH; i++)
    g_string_append_c (line, i < filled ? '=' : i == filled ? '>' : ' ');

  /* Counts keep their width, so the line does not jitter. */
  width = g_snprintf (digits, sizeof digits, "%d", demo->n_tasks);
  g_string_append_printf (line, "] %*u/%d tasks", width, demo->tasks_done, demo->n_tasks);

  rate = format_rate (seconds > 0 ? numbers / seconds : 0);
  g_string_append_printf (line, "  %s numbers/s  %6.1f s", rate, seconds);

  for (lang = 0; lang < N_LANGS; lang++)
    if (demo->pools[lang].pool != NULL)
      g_string_append_printf (line, "  %s:%u", demo_lang_names[lang].tag,
                              demo->pools[lang].tasks_done);

  g_print ("%s%s", line->str, end);
  fflush (stdout);
}

/* On a terminal, one line redrawn in place (at most every few hundredths
 * of a second, unless @force); in a log, a line every tenth of the tasks. */
void
demo_progress_update (Demo     *demo,
                      gboolean  force)
{
  guint tenth = (guint64) demo->tasks_done * 10 / demo->n_tasks;
  gint64 now = g_get_monotonic_time ();

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
  Demo *demo = user_data;

  if (!demo->stopping)
    demo_progress_update (demo, TRUE);
  return G_SOURCE_CONTINUE;
}

void
demo_progress_start (Demo *demo)
{
  if (demo->tty)
    demo->progress_id = g_timeout_add (PROGRESS_INTERVAL_MS, on_progress_tick, demo);
}

void
demo_progress_end (Demo *demo)
{
  g_clear_handle_id (&demo->progress_id, g_source_remove);
  if (demo->progress_shown)
    {
      g_print ("\r");
      progress_print (demo, "\033[K\n");
    }
  demo->progress_shown = FALSE;
}

/* Header and summary ------------------------------------------------------- */

void
demo_print_header (Demo *demo)
{
  g_autofree char *limit = demo_format_count (demo->limit);
  g_autofree char *size = demo_format_count (demo->limit / demo->n_tasks);
  gint n_workers = demo_count_workers (demo);
  gint n = 0;
  Lang lang;

  g_print ("Counting the primes below %s in %d tasks of ~%s numbers with %d worker%s in "
           "one MpqPool per language (", limit, demo->n_tasks, size, n_workers,
           n_workers == 1 ? "" : "s");
  for (lang = 0; lang < N_LANGS; lang++)
    if (demo->n_workers[lang] > 0)
      g_print ("%s%d %s", n++ > 0 ? ", " : "", demo->n_workers[lang],
               demo_lang_names[lang].name);
  g_print (")%s\n", demo->poison_task ? ", and one poison task" : "");
}

static gint
compare_numbers (gconstpointer a,
                 gconstpointer b)
{
  const DemoWorker *wa = *(DemoWorker * const *) a;
  const DemoWorker *wb = *(DemoWorker * const *) b;

  return (gint) wa->number - (gint) wb->number;
}

static void
print_workers (Demo *demo)
{
  guint64 primes_by_lang[N_LANGS] = { 0 };
  guint64 all_primes = 0;
  guint64 all_busy_us = 0;
  g_autofree char *all_text = NULL;
  Lang lang;
  guint i;

  g_ptr_array_sort (demo->workers, compare_numbers);
  for (i = 0; i < demo->workers->len; i++)
    all_primes += ((DemoWorker *) g_ptr_array_index (demo->workers, i))->primes;

  g_print ("\n  #  worker      pid  tasks           primes   share      busy\n");
  for (i = 0; i < demo->workers->len; i++)
    {
      DemoWorker *w = g_ptr_array_index (demo->workers, i);
      g_autofree char *primes = demo_format_count (w->primes);
      g_autoptr(GString) note = g_string_new (NULL);

      if (w->replaced != 0)
        g_string_append_printf (note, "  in place of %u", w->replaced);
      if (w->victim)
        g_string_append (note, "  killed mid-task (--kill-worker)");
      else if (w->poisoned)
        g_string_append (note, "  died of the poison task");
      else if (w->lost)
        g_string_append (note, "  DIED UNEXPECTEDLY");

      primes_by_lang[w->pool->lang] += w->primes;
      all_busy_us += w->busy_us;
      g_print ("%3u  %-6s %8d  %5u  %15s  %5.1f%%  %6.2f s%s\n",
               w->number, demo_lang_names[w->pool->lang].name, w->pid, w->tasks_done, primes,
               all_primes > 0 ? 100.0 * w->primes / all_primes : 0.0,
               w->busy_us / (double) G_USEC_PER_SEC, note->str);
    }

  all_text = demo_format_count (all_primes);
  g_print ("     total           %6u  %15s  %5.1f%%  %6.2f s\n\n", demo->tasks_done, all_text,
           all_primes > 0 ? 100.0 : 0.0, all_busy_us / (double) G_USEC_PER_SEC);

  g_print ("Share of the primes by language:");
  for (lang = 0; lang < N_LANGS; lang++)
    if (demo->pools[lang].pool != NULL)
      g_print ("  %s %.1f%%", demo_lang_names[lang].name,
               all_primes > 0 ? 100.0 * primes_by_lang[lang] / all_primes : 0.0);
  g_print ("\n");
}

/* Tasks a pool handed out more than once: their worker died. */
static void
print_retries (Demo *demo)
{
  g_autoptr(GString) list = g_string_new (NULL);
  guint i;

  for (i = 0; i < (guint) demo->n_tasks; i++)
    {
      DemoTask *task = g_ptr_array_index (demo->tasks, i);

      if (task->attempts < 2)
        continue;
      g_string_append_printf (list, "%s task %u (", list->len > 0 ? "," : "", task->index);
      if (task->done_by != NULL)
        g_string_append_printf (list, "done by worker %u", task->done_by->number);
      else
        g_string_append (list, "not done");
      g_string_append_printf (list, ", handed out %u times)", task->attempts);
    }

  if (list->len > 0)
    g_print ("Handed out again after a worker died:%s\n", list->str);
}

static void
print_victim (Demo *demo)
{
  DemoTask *task = demo->victim_task;
  g_autofree char *who = demo_worker_describe (demo->victim);

  g_print ("%c%s was killed %u%% into task %u; ", g_ascii_toupper (who[0]), who + 1,
           demo->victim_percent, task->index);
  if (task->done_by == demo->victim)
    g_print ("it had answered it just before the kill landed.\n");
  else if (task->done_by != NULL)
    g_print ("worker %u did that task again: nothing was lost.\n", task->done_by->number);
  else
    g_print ("that task was never done.\n");
}

void
demo_print_summary (Demo   *demo,
                    double  wall_seconds)
{
  gint64 end = demo->work_ended != 0 ? demo->work_ended : g_get_monotonic_time ();
  double work = demo_seconds_between (demo->started, end);

  print_workers (demo);
  g_print ("Wall time %.2f s: %u of %d tasks answered in %.2f s (%.1f tasks/s)",
           wall_seconds, demo->tasks_done, demo->n_tasks, work,
           work > 0 ? demo->tasks_done / work : 0.0);
  if (demo->all_ready != 0)
    g_print (", every worker ready after %.2f s",
             demo_seconds_between (demo->started, demo->all_ready));
  g_print ("\n");

  print_retries (demo);
  if (demo->victim != NULL)
    print_victim (demo);
}
