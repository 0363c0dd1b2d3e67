/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define _GNU_SOURCE 1   /* program_invocation_short_name */
#include "config.h"

#include <errno.h>
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

/* This process's name: what it was run as (argv[0]'s last part, which is
 * also right under valgrind, where /proc/self/comm names the tool). */
static const char *
process_name (void)
{
  return program_invocation_short_name;
}

void
_mpq_debug_line (const char *direction,
                 const char *line,
                 gsize       length)
{
  gint64 now = g_get_real_time ();
  gint64 in_day = now % (G_GINT64_CONSTANT (86400) * G_USEC_PER_SEC);

  /* One fprintf per line keeps lines from several processes whole. The
   * time is UTC, to the microsecond: lines of parent and children sort. */
  fprintf (stderr, "mpq %02d:%02d:%02d.%06d %s[%d] %s %.*s\n",
           (int) (in_day / (G_GINT64_CONSTANT (3600) * G_USEC_PER_SEC)),
           (int) (in_day / (G_GINT64_CONSTANT (60) * G_USEC_PER_SEC) % 60),
           (int) (in_day / G_USEC_PER_SEC % 60),
           (int) (in_day % G_USEC_PER_SEC),
           process_name (), _mpq_own_pid (), direction, (int) length, line);
}
