/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The libFuzzer entry point every target in tests/fuzz defines. Built with
 * -Dfuzzing=true, libFuzzer calls it; otherwise replay.c's main() calls it
 * once for each file of a corpus, and the suite runs the corpora. */
int LLVMFuzzerTestOneInput (const uint8_t *data,
                            size_t         size);

/* Fails the input as a finding (abort (), which libFuzzer and the replay
 * both report with the input). */
#define FUZZ_CHECK(cond) \
  G_STMT_START { \
    if (G_UNLIKELY (!(cond))) \
      { \
        g_printerr ("%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        abort (); \
      } \
  } G_STMT_END
