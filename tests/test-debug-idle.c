/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* MPQ_DEBUG's idle check: a channel end that messages wait for while it
 * was never started nor read says so, once. The process under test is
 * tests/mpq-debug-idle-helper, run with MPQ_DEBUG in its environment (or
 * not); its stderr is read here. A line that must come is waited for as
 * long as the helper runs (60 s at most); a line that must not come is
 * checked without a clock: the channel under test asked before its
 * message could come, and the helper ends only after a canary's line
 * (which the queue's thread prints at the same tick as the channel's
 * would be, or later), or after the data flowed and the channel closed. */
#include <string.h>

#include <pymulproc/pymulproc.h>

#define IDLE_TEXT "but it was never started nor read: call mpq_channel_start () or receive ()"

typedef struct
{
  GSubprocess      *helper;
  GDataInputStream *out;
  GDataInputStream *err;
  GString          *err_text;
} Helper;

static void
helper_start (Helper     *helper,
              gboolean    debug,
              const char *mode,
              const char *seconds)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-debug-idle-helper", NULL);
  const char *argv[] = { path, mode, seconds, NULL };
  g_autoptr(GError) error = NULL;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE |
                                        G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_PIPE);
  if (debug)
    g_subprocess_launcher_setenv (launcher, "MPQ_DEBUG", "1", TRUE);
  else
    g_subprocess_launcher_unsetenv (launcher, "MPQ_DEBUG");
  helper->helper = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  helper->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (helper->helper));
  helper->err = g_data_input_stream_new (g_subprocess_get_stderr_pipe (helper->helper));
  helper->err_text = g_string_new (NULL);
}

static char *
read_line (GDataInputStream *in)
{
  g_autoptr(GError) error = NULL;
  char *line = g_data_input_stream_read_line_utf8 (in, NULL, NULL, &error);

  g_assert_no_error (error);
  return line;
}

/* The helper's next line on stdout that starts with @prefix, without
 * it (it writes a few short lines, so its stderr cannot fill meanwhile:
 * MPQ_DEBUG's lines fit in a pipe's buffer). */
static char *
helper_read_out (Helper     *helper,
                 const char *prefix)
{
  for (;;)
    {
      g_autofree char *line = read_line (helper->out);

      g_assert_nonnull (line);
      g_test_message ("helper's stdout: %s", line);
      if (g_str_has_prefix (line, prefix))
        return g_strdup (line + strlen (prefix));
    }
}

/* Asks the helper for one more channel nobody reads. */
static void
helper_ask_another (Helper *helper)
{
  g_autoptr(GError) error = NULL;

  g_output_stream_write_all (g_subprocess_get_stdin_pipe (helper->helper), "next\n", 5, NULL,
                             NULL, &error);
  g_assert_no_error (error);
}

/* Reads stderr until a line holds @text (TRUE) or it ends (FALSE). */
static gboolean
helper_read_err_until (Helper     *helper,
                       const char *text)
{
  for (;;)
    {
      g_autofree char *line = read_line (helper->err);

      if (line == NULL)
        return FALSE;
      g_string_append_printf (helper->err_text, "%s\n", line);
      if (text != NULL && strstr (line, text) != NULL)
        return TRUE;
    }
}

/* Ends the helper's stdin, reads the rest and checks that it exited 0.
 * Returns the idle lines it printed, in order. */
static GStrv
helper_finish (Helper *helper)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GStrvBuilder) lines = g_strv_builder_new ();
  g_auto(GStrv) all = NULL;

  g_output_stream_close (g_subprocess_get_stdin_pipe (helper->helper), NULL, &error);
  g_assert_no_error (error);
  helper_read_err_until (helper, NULL);
  g_subprocess_wait_check (helper->helper, NULL, &error);
  g_test_message ("helper's stderr:\n%s", helper->err_text->str);
  g_assert_no_error (error);

  all = g_strsplit (helper->err_text->str, "\n", -1);
  for (guint i = 0; all[i] != NULL; i++)
    if (strstr (all[i], IDLE_TEXT) != NULL)
      g_strv_builder_add (lines, all[i]);

  g_clear_object (&helper->out);
  g_clear_object (&helper->err);
  g_clear_object (&helper->helper);
  g_string_free (helper->err_text, TRUE);
  return g_strv_builder_end (lines);
}

/* "mpq HH:MM:SS.µµµµµµ mpq-debug-idle-helper[pid] ! messages wait on this
 * WHAT but it was never started nor read: ... ()TAIL" */
static void
assert_idle_line (const char *line,
                  const char *what,
                  const char *tail)
{
  g_autofree char *text = g_strdup_printf ("messages wait on this %s " IDLE_TEXT "%s", what, tail);
  g_autofree char *escaped = g_regex_escape_string (text, -1);
  g_autofree char *pattern = g_strdup_printf ("^mpq [0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\.[0-9]{6} "
                                              "mpq-debug-idle-helper\\[[0-9]+\\] ! %s$",
                                              escaped);

  g_assert_nonnull (line);
  g_assert_true (g_regex_match_simple (pattern, line, 0, 0));
}

/* Ends the helper; it said two idle lines, for @first and @second, in
 * that order. */
static void
helper_finish_two (Helper     *helper,
                   const char *first,
                   const char *second,
                   const char *tail)
{
  g_auto(GStrv) lines = helper_finish (helper);

  g_assert_cmpuint (g_strv_length (lines), ==, 2);
  assert_idle_line (lines[0], first, tail);
  assert_idle_line (lines[1], second, tail);
}

/* A pipe whose owner runs a main loop but never starts nor reads it says
 * so, once: it would say it again at its next look, a second later, and
 * a second pipe made after its line says so only at its own second
 * look, later, in the same main context. */
static void
test_pipe_ignored (void)
{
  Helper helper;
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;
  g_autofree char *first_name = NULL;
  g_autofree char *second_name = NULL;

  helper_start (&helper, TRUE, "pipe-ignore", "60");
  first = helper_read_out (&helper, "pipe ");
  first_name = g_strdup_printf ("pipe (MpqPipe %s)", first);
  g_assert_true (helper_read_err_until (&helper, first_name));
  helper_ask_another (&helper);
  second = helper_read_out (&helper, "pipe ");
  second_name = g_strdup_printf ("pipe (MpqPipe %s)", second);
  g_assert_true (helper_read_err_until (&helper, second_name));
  helper_finish_two (&helper, first_name, second_name, "");
}

/* Started, or read, before the message came: no check is left (the
 * helper checks that its main context waits for nothing), the data
 * flows, the child hangs up and the pipe closes, and nothing was said. */
static void
test_pipe_used (gconstpointer data)
{
  const char *mode = data;
  Helper helper;
  g_auto(GStrv) lines = NULL;

  helper_start (&helper, TRUE, mode, "60");
  lines = helper_finish (&helper);
  g_assert_cmpuint (g_strv_length (lines), ==, 0);
}

/* Asks for a canary, a child that never reads, and waits for its line:
 * the queue's thread prints it two looks after its message was put, so
 * every line due before (at the same look, or the one before) is out
 * too. Returns the canary's pid. */
static char *
queue_canary (Helper *helper)
{
  g_autofree char *pid = NULL;
  g_autofree char *name = NULL;

  helper_ask_another (helper);
  pid = helper_read_out (helper, "canary ");
  name = g_strdup_printf ("queue for child %s ", pid);
  g_assert_true (helper_read_err_until (helper, name));
  return g_steal_pointer (&pid);
}

/* The parent's queue, with no main loop at all: its thread sees it, and
 * says it once (not again by the time a canary's line came). */
static void
test_queue_ignored (void)
{
  Helper helper;
  g_autofree char *canary = NULL;
  g_autofree char *canary_name = NULL;
  g_auto(GStrv) lines = NULL;

  helper_start (&helper, TRUE, "queue-ignore", "60");
  g_assert_true (helper_read_err_until (&helper, IDLE_TEXT));
  canary = queue_canary (&helper);
  canary_name = g_strdup_printf ("queue for child %s", canary);

  lines = helper_finish (&helper);
  g_assert_cmpuint (g_strv_length (lines), ==, 2);
  assert_idle_line (lines[0], "queue", "");
  assert_idle_line (lines[1], canary_name, " in it");
}

/* The parent's line names a child that never reads; once. */
static void
test_queue_child_ignoring (void)
{
  Helper helper;
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;
  g_autofree char *first_name = NULL;
  g_autofree char *second_name = NULL;

  helper_start (&helper, TRUE, "queue-child-ignores", "60");
  first = queue_canary (&helper);
  second = queue_canary (&helper);
  first_name = g_strdup_printf ("queue for child %s", first);
  second_name = g_strdup_printf ("queue for child %s", second);
  helper_finish_two (&helper, first_name, second_name, " in it");
}

/* The parent, or a child, asked (a poll; a start and a stop) before its
 * message was put, which then waits unread: only the canary is named. */
static void
test_queue_used (gconstpointer data)
{
  const char *mode = data;
  Helper helper;
  g_autofree char *canary = NULL;
  g_autofree char *canary_name = NULL;
  g_autofree char *ready = NULL;
  g_auto(GStrv) lines = NULL;

  helper_start (&helper, TRUE, mode, "60");
  /* Its message waits (for the parent, or the child that polled). */
  ready = helper_read_out (&helper, "waiting");
  canary = queue_canary (&helper);
  canary_name = g_strdup_printf ("queue for child %s", canary);

  lines = helper_finish (&helper);
  g_assert_cmpuint (g_strv_length (lines), ==, 1);
  assert_idle_line (lines[0], canary_name, " in it");
}

/* Without MPQ_DEBUG there is no check at all: nothing is said in the
 * seconds after the message came (the check would speak after one or
 * two), and no debug line at all. */
static void
test_off (gconstpointer data)
{
  const char *mode = data;
  Helper helper;
  g_autofree char *exited = NULL;
  g_auto(GStrv) lines = NULL;

  helper_start (&helper, FALSE, mode, "3");
  exited = helper_read_out (&helper, "child-exited");
  /* It ends by itself, its window past. */
  helper_read_err_until (&helper, NULL);
  /* No debug line (valgrind may say things there). */
  g_assert_false (g_regex_match_simple ("^mpq ", helper.err_text->str, G_REGEX_MULTILINE, 0));
  lines = helper_finish (&helper);
  g_assert_cmpuint (g_strv_length (lines), ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/Mpq/DebugIdle/pipe-ignored-says-once", test_pipe_ignored);
  g_test_add_data_func ("/Mpq/DebugIdle/pipe-started-says-nothing", "pipe-start", test_pipe_used);
  g_test_add_data_func ("/Mpq/DebugIdle/pipe-read-says-nothing", "pipe-read", test_pipe_used);
  g_test_add_func ("/Mpq/DebugIdle/queue-ignored-says-once", test_queue_ignored);
  g_test_add_func ("/Mpq/DebugIdle/queue-child-ignoring-says-once", test_queue_child_ignoring);
  g_test_add_data_func ("/Mpq/DebugIdle/queue-read-says-nothing", "queue-read", test_queue_used);
  g_test_add_data_func ("/Mpq/DebugIdle/queue-started-says-nothing", "queue-start",
                        test_queue_used);
  g_test_add_data_func ("/Mpq/DebugIdle/queue-child-read-says-nothing", "queue-child-read",
                        test_queue_used);
  g_test_add_data_func ("/Mpq/DebugIdle/pipe-off-says-nothing", "pipe-ignore", test_off);
  g_test_add_data_func ("/Mpq/DebugIdle/queue-off-says-nothing", "queue-ignore", test_off);

  return g_test_run ();
}
