/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* mpq-demo: the parent of the pymulproc demo (see README.md).
 *
 * It counts the primes below a limit with three MpqPools, one per
 * language (an MpqPool runs one command line): C workers (worker.c),
 * Python workers (worker.py) and GJS workers (worker.js). [0, limit) is
 * split into tasks; each goes to the pool with the fewest unfinished tasks
 * per worker, and a pool that ends a task gets the next, so the faster
 * pools do more. Each task is an MpqTask: its `progress` signal feeds the
 * live progress line, mpq_task_wait_async() brings its result home.
 *
 * The files:
 * - demo-main.c: options, the run from start to verdict, main ();
 * - demo-pools.c: the pools, their workers' starts and deaths,
 *   --kill-worker, Ctrl-C and the shutdown;
 * - demo-tasks.c: the tasks: splitting the range, handing them to the
 *   pools, their progress and their results, the poison task;
 * - demo-report.c: what the demo prints: notes, the progress line, the
 *   summary;
 * - demo-primes.c: checking the total against pi(limit) or a recount.
 */

#include "demo-config.h"

#include <pymulproc/pymulproc.h>

/* The request of a counting task, and of --poison-task's. */
#define DEMO_REQ_COUNT        "count"
#define DEMO_REQ_CRASH        "crash"

/* Tasks a pool holds per worker: one it works on and one waiting, as the
 * pool hands them (MpqPool's window). */
#define DEMO_TASKS_PER_WORKER 2
/* How long the workers have to leave once the work is over. */
#define DEMO_SHUTDOWN_TIMEOUT_MS 30000
#define DEMO_MAX_LIMIT        G_GUINT64_CONSTANT (1000000000000)
#define DEMO_MAX_TASKS        1000000
#define DEMO_EXIT_INTERRUPTED 130

typedef enum
{
  LANG_C,
  LANG_PYTHON,
  LANG_GJS,
  N_LANGS
} Lang;

typedef struct _Demo Demo;
typedef struct _DemoPool DemoPool;
typedef struct _DemoTask DemoTask;

/* One worker process, from its worker-started to its worker-exited. */
typedef struct
{
  DemoPool *pool;
  guint     number;        /* 1-based, as shown; replacements after the rest */
  gint      pid;
  guint     tasks_done;
  guint64   numbers;       /* numbers it sieved in the tasks it answered */
  guint64   primes;
  guint64   busy_us;       /* time spent sieving, as it reported it */
  DemoTask *current;       /* the task it last reported progress on */
  guint     replaced;      /* the number of the worker it replaced, or 0 */
  gint      wait_status;
  guint     exited : 1;
  guint     victim : 1;    /* killed by --kill-worker */
  guint     poisoned : 1;  /* died of the poison task */
  guint     lost : 1;      /* died for no reason we know: a failure */
} DemoWorker;

/* One MpqPool: the workers of one language. */
struct _DemoPool
{
  Demo    *demo;
  Lang     lang;
  MpqPool *pool;
  guint    n_workers;
  guint    first_number;   /* the number of its first worker */
  guint    unfinished;     /* tasks submitted to it that did not end */
  guint    tasks_done;
  gboolean refused;        /* submit failed: it takes no more tasks */
  GQueue   dead;           /* DemoWorker that died, to be replaced */
};

struct _DemoTask
{
  Demo       *demo;
  guint       index;       /* as shown; the poison task comes after the rest */
  guint64     lo;
  guint64     hi;
  gboolean    poison;
  DemoPool   *pool;        /* NULL until submitted */
  MpqTask    *task;
  guint64     progress;    /* numbers sieved, as last reported */
  DemoWorker *done_by;
  guint64     primes;
  guint       attempts;    /* how many times its pool handed it out */
  GError     *error;       /* it failed */
  guint       ended : 1;
};

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
  gboolean      poison_task;

  GMainLoop    *loop;
  DemoPool      pools[N_LANGS];
  GPtrArray    *workers;          /* DemoWorker, in the order they started */
  GHashTable   *workers_by_pid;   /* pid -> DemoWorker, borrowed */
  GHashTable   *first_numbers;    /* pid -> number, of the workers spawned first */
  guint         next_number;      /* for the next replacement */
  GPtrArray    *tasks;            /* DemoTask: the counting tasks, then the poison */
  DemoTask     *poison;
  guint         next_task;        /* the next one to submit */
  guint         tasks_done;       /* counting tasks answered */
  guint         tasks_ended;      /* of every kind, the poison included */
  guint64       numbers_done;     /* in the counting tasks answered */
  guint         n_started;        /* worker-started seen of the first workers */
  guint         poison_deaths;
  guint         pools_shutting;   /* shutdowns not finished */

  gint64        started;          /* when the pools were made */
  gint64        all_ready;        /* when the first workers were all ready */
  gint64        work_ended;       /* when the last task ended */

  /* --kill-worker */
  DemoWorker   *victim;
  DemoTask     *victim_task;      /* the task it held when it was killed */
  guint         victim_percent;

  /* Progress */
  gboolean      tty;
  gboolean      progress_shown;   /* a tty progress line waits for its end */
  gint64        last_drawn;
  guint         progress_tenth;   /* last tenth printed when stdout is no tty */
  guint         progress_id;

  guint         interrupt_ids[2]; /* SIGINT, SIGTERM */
  gboolean      stopping;         /* the pools are shutting down */
  gboolean      interrupted;
  gboolean      failed;
};

/* demo-main.c */
gint         demo_count_workers      (Demo        *demo);

/* demo-pools.c */
extern const struct DemoLangName
{
  const char *tag;    /* in the progress line */
  const char *name;   /* in messages and the table */
} demo_lang_names[N_LANGS];

gboolean     demo_pools_start        (Demo        *demo,
                                      GError     **error);
void         demo_pools_shutdown     (Demo        *demo,
                                      gint         timeout_ms);
void         demo_pools_clear        (Demo        *demo);
DemoWorker  *demo_worker_for_pid     (Demo        *demo,
                                      gint         pid);
char        *demo_worker_describe    (DemoWorker  *worker);
void         demo_maybe_kill         (Demo        *demo,
                                      DemoWorker  *worker,
                                      DemoTask    *task);
void         demo_interrupt_watch    (Demo        *demo);

/* demo-tasks.c */
void         demo_tasks_make         (Demo        *demo);
void         demo_tasks_submit_more  (Demo        *demo);
void         demo_tasks_cancel_unstarted (Demo    *demo);
guint64      demo_numbers_in_flight  (Demo        *demo);
char        *demo_task_describe      (DemoTask    *task);
void         demo_check_end          (Demo        *demo);
void         demo_task_free          (DemoTask    *task);

/* demo-report.c */
char        *demo_format_count       (guint64      n);
double       demo_seconds_between    (gint64       from,
                                      gint64       to);
void         demo_say                (Demo        *demo,
                                      const char  *format,
                                      ...) G_GNUC_PRINTF (2, 3);
void         demo_note               (Demo        *demo,
                                      const char  *format,
                                      ...) G_GNUC_PRINTF (2, 3);
void         demo_progress_start     (Demo        *demo);
void         demo_progress_update    (Demo        *demo,
                                      gboolean     force);
void         demo_progress_end       (Demo        *demo);
void         demo_print_header       (Demo        *demo);
void         demo_print_summary      (Demo        *demo,
                                      double       wall_seconds);

/* demo-primes.c */
gboolean     demo_check_total        (Demo        *demo,
                                      guint64      total);
