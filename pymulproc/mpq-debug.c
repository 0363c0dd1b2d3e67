/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdio.h>
#include <unistd.h>

#include "mpq-debug-private.h"
#include "mpq-spawn-private.h"

gboolean
_mpq_debug_enabled (void)
{
  static gsize initialized = 0;
  static gboolean enabled = FALSE;

  if (g_once_init_enter (&initialized))
    {
      const char *value = g_getenv ("MPQ_DEBUG");

      enabled = value != NULL && value[0] != '\0' && g_strcmp0 (value, "0") != 0;
      g_once_init_leave (&initialized, 1);
    }

  return enabled;
}

void
_mpq_debug_line (const char *direction,
                 const char *line,
                 gsize       length)
{
  /* One fprintf per line keeps lines from several processes whole. */
  fprintf (stderr, "mpq[%d] %s %.*s\n", _mpq_own_pid (), direction, (int) length, line);
}
