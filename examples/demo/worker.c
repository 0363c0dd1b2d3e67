/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The C worker of the pymulproc demo: an MpqWorker.
 *
 * One of the processes of mpq-demo's C pool (mpq_pool_new). It serves
 * tasks with an MpqWorker, one at a time, until the pool tells it to die:
 *
 *   count  {"lo", "hi"}  counts the primes in [lo, hi) with a segmented
 *                        sieve of Eratosthenes, reporting progress
 *                        {"done", "primes"} at every tenth of the range
 *                        (mpq_invocation_send_progress_json), and answers
 *                        {"primes", "us"}, "us" being the microseconds it
 *                        took;
 *   crash                the poison task of --poison-task: the worker
 *                        crashes with SIGSEGV, as a worker with a bug
 *                        would. The pool replaces it and hands the task to
 *                        another worker, until it gave up on it.
 *
 * The pool matches each answer to its task: the worker never names the
 * task it answers. worker.py and worker.js are the same program in Python
 * and JavaScript.
 */

#include <pymulproc/pymulproc.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Numbers sieved in one pass: their flags fit in a typical L2 cache. */
#define BLOCK_SIZE (256 * 1024)

typedef struct
{
  GArray  *base_primes;  /* guint32: every prime <= base_bound, ascending */
  guint64  base_bound;
  guint8  *block;        /* BLOCK_SIZE flags, one per number of the block */
} Sieve;

/* Largest r with r * r <= n, by Newton's method: no libm, exact for 64 bits. */
static guint64
isqrt_u64 (guint64 n)
{
  guint64 x = n;
  guint64 y = n / 2 + 1;

  if (n < 2)
    return n;

  while (y < x)
    {
      x = y;
      y = (x + n / x) / 2;
    }

  return x;
}

/* Makes sure every prime up to @bound is known. Grows geometrically, so a
 * run whose tasks climb towards the limit sieves the small primes only a few
 * times. */
static void
ensure_base_primes (Sieve   *self,
                    guint64  bound)
{
  g_autofree guint8 *composite = NULL;
  guint64 i;

  if (bound <= self->base_bound)
    return;

  bound = MAX (bound, self->base_bound * 2);
  composite = g_malloc0 (bound + 1);
  g_array_set_size (self->base_primes, 0);

  for (i = 2; i <= bound; i++)
    {
      guint32 p = (guint32) i;
      guint64 m;

      if (composite[i])
        continue;

      g_array_append_val (self->base_primes, p);
      for (m = i * i; m <= bound; m += i)
        composite[m] = 1;
    }

  self->base_bound = bound;
}

/* Counts the primes n with lo <= n < hi, hi - lo <= BLOCK_SIZE. */
static guint64
count_block (Sieve   *self,
             guint64  lo,
             guint64  hi)
{
  guint8 *flags = self->block;
  guint64 size = hi - lo;
  guint64 count = 0;
  guint64 n;
  guint i;

  memset (flags, 1, size);

  /* 0 and 1 are not primes. */
  for (n = lo; n < MIN (hi, 2); n++)
    flags[n - lo] = 0;

  for (i = 0; i < self->base_primes->len; i++)
    {
      guint64 p = g_array_index (self->base_primes, guint32, i);
      guint64 m;

      if (p * p >= hi)
        break;

      /* Smaller multiples of p were crossed out by smaller primes. */
      m = MAX (p * p, (lo + p - 1) / p * p);
      for (; m < hi; m += p)
        flags[m - lo] = 0;
    }

  for (n = 0; n < size; n++)
    count += flags[n];

  return count;
}

static void
send_progress (MpqInvocation *invocation,
               guint64        done,
               guint64        primes)
{
  g_autofree char *json = g_strdup_printf ("{\"done\":%" G_GUINT64_FORMAT
                                           ",\"primes\":%" G_GUINT64_FORMAT "}", done, primes);

  /* Progress is a courtesy: a pool that is gone will not read the answer
   * either, and the worker hears of it by its closed signal. */
  mpq_invocation_send_progress_json (invocation, json, NULL);
}

/* Counts the primes n with lo <= n < hi, a block at a time (flags that stay
 * in the cache make the sieve several times faster than one big array),
 * reporting progress at every tenth of the range but the last. */
static guint64
count_primes (Sieve         *self,
              MpqInvocation *invocation,
              guint64        lo,
              guint64        hi)
{
  guint64 count = 0;
  guint64 tenths = 0;
  guint64 start;

  if (hi > 2)
    ensure_base_primes (self, isqrt_u64 (hi - 1));

  for (start = lo; start < hi; start += BLOCK_SIZE)
    {
      guint64 end = MIN (hi, start + BLOCK_SIZE);
      guint64 now;

      count += count_block (self, start, end);
      now = (end - lo) * 10 / (hi - lo);
      if (end < hi && now > tenths)
        {
          tenths = now;
          send_progress (invocation, end - lo, count);
        }
    }

  return count;
}

static gboolean
get_range (MpqInvocation *invocation,
           gint64        *lo,
           gint64        *hi)
{
  JsonNode *data = mpq_invocation_get_data (invocation);
  JsonObject *object;

  if (data == NULL || !JSON_NODE_HOLDS_OBJECT (data))
    return FALSE;

  object = json_node_get_object (data);
  if (!json_object_has_member (object, "lo") || !json_object_has_member (object, "hi"))
    return FALSE;

  *lo = json_object_get_int_member (object, "lo");
  *hi = json_object_get_int_member (object, "hi");

  return *lo >= 0 && *lo <= *hi;
}

static void
on_task (MpqWorker     *worker,
         MpqInvocation *invocation,
         gpointer       user_data)
{
  Sieve *sieve = user_data;
  const char *request = mpq_invocation_get_request (invocation);
  g_autofree char *reply = NULL;
  gint64 lo, hi, started;
  guint64 primes;

  if (g_str_equal (request, "crash"))
    {
      /* What a bug would do. The demo's parent turned core dumps off. */
      raise (SIGSEGV);
      return;
    }

  if (!g_str_equal (request, "count") || !get_range (invocation, &lo, &hi))
    {
      g_autofree char *data = mpq_invocation_dup_data_json (invocation);
      g_autofree char *text = g_strdup_printf ("worker.c does not know %s %s", request, data);

      /* The task fails with this text: MPQ_ERROR_TASK_FAILED. */
      mpq_invocation_return_error (invocation, text, NULL);
      return;
    }

  started = g_get_monotonic_time ();
  primes = count_primes (sieve, invocation, lo, hi);
  reply = g_strdup_printf ("{\"primes\":%" G_GUINT64_FORMAT ",\"us\":%" G_GINT64_FORMAT "}",
                           primes, g_get_monotonic_time () - started);
  mpq_invocation_return_json (invocation, reply, NULL);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqWorker) worker = NULL;
  Sieve sieve = { 0 };
  int status = EXIT_SUCCESS;

  worker = mpq_worker_new_for_child (&error);
  if (worker == NULL)
    {
      g_printerr ("worker.c: %s\n", error->message);
      return EXIT_FAILURE;
    }

  sieve.base_primes = g_array_new (FALSE, FALSE, sizeof (guint32));
  sieve.block = g_malloc (BLOCK_SIZE);
  g_signal_connect (worker, "task", G_CALLBACK (on_task), &sieve);

  /* Serves until the pool says DIE (TRUE), or is gone (FALSE). */
  if (!mpq_worker_run (worker, &error))
    {
      g_printerr ("worker.c[%d]: %s\n", getpid (), error->message);
      status = EXIT_FAILURE;
    }

  g_array_unref (sieve.base_primes);
  g_free (sieve.block);

  return status;
}
