/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* mpq-demo: checking the workers' total, against the published value of
 * pi(limit) or, for other limits, against the parent's own recount. */

#include "demo.h"

#include <string.h>

/* Numbers per pass of the parent's recount: the flags stay in the cache. */
#define RECOUNT_BLOCK (G_GUINT64_CONSTANT (1) << 20)

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

/* Recounts every counting task in this process, and names the workers that
 * got one wrong. Returns the total. */
static guint64
recount_tasks (Demo *demo)
{
  g_autoptr(GArray) odd_primes = odd_primes_up_to (isqrt_u64 (demo->limit));
  g_autofree guint8 *is_prime = g_malloc (RECOUNT_BLOCK / 2 + 1);
  guint64 total = 0;
  guint i;

  for (i = 0; i < (guint) demo->n_tasks; i++)
    {
      DemoTask *task = g_ptr_array_index (demo->tasks, i);
      guint64 primes = count_primes_in_range (task->lo, task->hi, odd_primes, is_prime);

      total += primes;
      if (task->done_by != NULL && task->primes != primes)
        {
          g_autofree char *who = demo_worker_describe (task->done_by);

          demo_note (demo, "%s counted %" G_GUINT64_FORMAT " primes in task %u [%"
                     G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT "), not %" G_GUINT64_FORMAT,
                     who, task->primes, i, task->lo, task->hi, primes);
        }
    }

  return total;
}

/* Prints the verdict on @total; returns whether it is right. */
gboolean
demo_check_total (Demo    *demo,
                  guint64  total)
{
  g_autofree char *total_text = demo_format_count (total);
  g_autofree char *limit_text = demo_format_count (demo->limit);
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
      g_autofree char *expected_text = demo_format_count (k >= 0 ? known_counts[k].primes
                                                                 : expected);

      g_print ("Primes below %s: %s, but there are %s. WRONG\n",
               limit_text, total_text, expected_text);
      return FALSE;
    }
}
