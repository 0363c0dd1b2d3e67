/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* For json-diff.py: reads file paths on stdin, one a line, and for each
 * prints one line, what the library's JSON reader makes of the file:
 *
 *   OK <the value, written compact by the library's writer>
 *   ERR <the error message>
 *
 * The file is read as a message's data is (UTF-8 checked first, depth
 * bounded at MPQ_MAX_DEPTH). */

#include "config.h"

#include <pymulproc/pymulproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpq-json-private.h"

static void
canon (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) node = NULL;
  g_autoptr(GString) out = g_string_new (NULL);
  g_autofree char *contents = NULL;
  gsize length = 0;

  if (!g_file_get_contents (path, &contents, &length, &error))
    {
      g_printerr ("%s\n", error->message);
      exit (EXIT_FAILURE);
    }

  if (!_mpq_utf8_validate_len (contents, length))
    g_set_error_literal (&error, MPQ_ERROR, MPQ_ERROR_PROTOCOL, "not UTF-8");
  else
    node = _mpq_json_parse (contents, length, MPQ_MAX_DEPTH, &error);

  if (node != NULL && _mpq_json_write (out, node, MPQ_MAX_DEPTH, &error))
    printf ("OK %s\n", out->str);
  else
    printf ("ERR %s\n", error->message);
}

int
main (int   argc,
      char *argv[])
{
  char line[4096];

  while (fgets (line, sizeof line, stdin) != NULL)
    {
      line[strcspn (line, "\n")] = '\0';
      canon (line);
    }

  return fflush (stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
