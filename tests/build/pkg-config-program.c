/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Built against pymulproc-1.0.pc by check-pkg-config.sh, from the build dir
 * (meson-uninstalled) and from an installed copy: the include form the
 * README shows works in both, and the program links and runs. */

#include <pymulproc/pymulproc.h>

#include <stdio.h>
#include <string.h>

int
main (void)
{
  g_autoptr(MpqMessage) message = mpq_message_new (MPQ_REQ_DO, 12, 34, NULL);
  g_autofree char *line = mpq_message_to_json (message, NULL);
  const char *expected = "[\"DO\",12,34,null]";

  if (line == NULL || strcmp (line, expected) != 0)
    {
      fprintf (stderr, "to_json gave %s, not %s\n", line != NULL ? line : "NULL", expected);
      return 1;
    }

  printf ("pymulproc %s: %s\n", MPQ_VERSION_S, line);
  return 0;
}
