/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* main () for a fuzz target built without libFuzzer: runs the target once
 * on each file named, or on each file of each directory named (a corpus),
 * as libFuzzer's -runs=0 would. Any finding aborts. */

#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"

static int
compare_paths (gconstpointer a,
               gconstpointer b)
{
  return strcmp (*(char * const *) a, *(char * const *) b);
}

static gboolean
run_file (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize length = 0;

  if (!g_file_get_contents (path, &contents, &length, &error))
    {
      g_printerr ("%s\n", error->message);
      return FALSE;
    }

  LLVMFuzzerTestOneInput ((const uint8_t *) contents, length);
  return TRUE;
}

int
main (int   argc,
      char *argv[])
{
  guint n_files = 0;

  for (int i = 1; i < argc; i++)
    {
      g_autoptr(GDir) dir = NULL;
      g_autoptr(GPtrArray) names = NULL;
      const char *name;

      if (!g_file_test (argv[i], G_FILE_TEST_IS_DIR))
        {
          if (!run_file (argv[i]))
            return EXIT_FAILURE;
          n_files++;
          continue;
        }

      dir = g_dir_open (argv[i], 0, NULL);
      if (dir == NULL)
        return EXIT_FAILURE;
      names = g_ptr_array_new_with_free_func (g_free);
      while ((name = g_dir_read_name (dir)) != NULL)
        g_ptr_array_add (names, g_build_filename (argv[i], name, NULL));
      g_ptr_array_sort (names, compare_paths);

      /* Sorted, so that a failure names the same file every run. */
      for (guint j = 0; j < names->len; j++)
        {
          if (!run_file (g_ptr_array_index (names, j)))
            return EXIT_FAILURE;
          n_files++;
        }
    }

  if (n_files == 0)
    {
      g_printerr ("No input files\n");
      return EXIT_FAILURE;
    }

  g_print ("%u inputs, no finding\n", n_files);
  return EXIT_SUCCESS;
}
