/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "mpq-test-fuzz.h"

guint
mpq_test_fuzz_iterations (void)
{
  return g_test_thorough () ? 500000 : g_getenv ("MPQ_VALGRIND") != NULL ? 5000 : 50000;
}

void
mpq_test_fuzz_mutate (GRand   *rand,
                      GString *line)
{
  static const char alphabet[] = "[]{}\",:\\0123456789.eE+-truefalsnu \t\x01\xc3\xa9\xff";
  guint edits = g_rand_int_range (rand, 1, 4);

  for (guint e = 0; e < edits; e++)
    {
      guint pos = g_rand_int_range (rand, 0, line->len + 1);
      char c = alphabet[g_rand_int_range (rand, 0, sizeof alphabet - 1)];

      switch (g_rand_int_range (rand, 0, 3))
        {
        case 0: g_string_insert_c (line, pos, c); break;
        case 1: if (pos < line->len) g_string_erase (line, pos, 1); break;
        default: if (pos < line->len) line->str[pos] = c; break;
        }
    }
}

GString *
mpq_test_fuzz_case (GRand              *rand,
                    const char * const *seeds,
                    gsize               n_seeds,
                    guint               i)
{
  GString *line;

  if (i < n_seeds)
    return g_string_new (seeds[i]);

  line = g_string_new (seeds[g_rand_int_range (rand, 0, n_seeds)]);
  mpq_test_fuzz_mutate (rand, line);
  return line;
}
