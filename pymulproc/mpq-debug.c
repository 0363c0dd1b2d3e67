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

/* This process's name, as ps shows it (/proc/self/comm, read once:
 * GLib's prgname is unset in most programs). */
static const char *
process_name (void)
{
  static gsize initialized = 0;
  static char *name;

  if (g_once_init_enter (&initialized))
    {
      if (!g_file_get_contents ("/proc/self/comm", &name, NULL, NULL))
        name = g_strdup ("?");
      g_strchomp (name);
      g_once_init_leave (&initialized, 1);
    }
  return name;
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
