/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

/* What the fuzz tests of test-message and test-codec share. */

/* How many mutations to try: fewer under valgrind (~50 times slower), more
 * with -m thorough. */
guint mpq_test_fuzz_iterations (void);

/* One to three random edits of JSON-ish characters in @line. */
void     mpq_test_fuzz_mutate  (GRand   *rand,
                                GString *line);

/* Case @i of a fuzz run: each seed as it is first, then a random seed
 * mutated. */
GString *mpq_test_fuzz_case    (GRand             *rand,
                                const char * const *seeds,
                                gsize              n_seeds,
                                guint              i);
