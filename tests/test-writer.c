/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The writer thread (pymulproc/mpq-writer.c) is for streams of sends: a
 * round trip in a main loop, where each handler answers the one message
 * it was handed, is written by the handler's own thread and never wakes
 * it (each wake-up is a context switch in the middle of a round trip).
 * The thread is one per process, made when first needed: this test is
 * alone in its program so that nothing else made it first. (Before, the
 * first answer a handler sent made it, to watch over the dispatch.) A
 * stream of sends does make it, but how fast sends come is the machine's
 * business (under valgrind none comes within 50 µs of the last), so that
 * side is not asserted. */
#include <pymulproc/pymulproc.h>

/* Whether a thread of this process is called @name. */
static gboolean
has_thread (const char *name)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/task", 0, NULL);
  const char *tid;

  g_assert_nonnull (dir);
  while ((tid = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename ("/proc/self/task", tid, "comm", NULL);
      g_autofree char *comm = NULL;

      if (g_file_get_contents (path, &comm, NULL, NULL) && g_str_equal (g_strchomp (comm), name))
        return TRUE;
    }
  return FALSE;
}

typedef struct
{
  GMainLoop *loop;
  guint      left;
  gint64     next;
} Trips;

static void
send_do (MpqChannel *channel,
         gint64      value)
{
  g_autoptr(JsonNode) data = json_node_init_int (json_node_alloc (), value);
  g_autoptr(GError) error = NULL;

  g_assert_true (mpq_channel_send (channel, MPQ_REQ_DO, 0, 0, data, &error));
  g_assert_no_error (error);
}

static void
on_finished (MpqChannel *channel,
             MpqMessage *message,
             gpointer    user_data)
{
  Trips *trips = user_data;

  g_assert_cmpint (json_node_get_int (mpq_message_get_data (message)), ==, trips->next);
  if (--trips->left == 0)
    {
      g_main_loop_quit (trips->loop);
      return;
    }
  send_do (channel, ++trips->next);
}

static void
test_round_trips_leave_writer_thread_asleep (void)
{
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-test-child", NULL);
  const char *argv[] = { path, "echo-signals", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqPipe) pipe = mpq_pipe_new (&error);
  g_autoptr(GSubprocess) child = NULL;
  Trips trips = { g_main_loop_new (NULL, FALSE), 500, 0 };

  g_assert_no_error (error);
  child = mpq_pipe_spawn (pipe, argv, &error);
  g_assert_no_error (error);

  g_signal_connect (pipe, "message-received::" MPQ_REQ_FINISHED, G_CALLBACK (on_finished), &trips);
  mpq_channel_start (MPQ_CHANNEL (pipe));
  send_do (MPQ_CHANNEL (pipe), 0);
  g_main_loop_run (trips.loop);
  mpq_channel_stop (MPQ_CHANNEL (pipe));

  /* 500 answers came, each sent from a handler: none through the thread. */
  g_assert_false (has_thread ("mpq-writer"));

  g_assert_true (mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_DIE, 0, 0, NULL, &error));
  g_subprocess_wait_check (child, NULL, &error);
  g_assert_no_error (error);
  g_main_loop_unref (trips.loop);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/Mpq/Writer/round-trips-leave-thread-asleep",
                   test_round_trips_leave_writer_thread_asleep);

  return g_test_run ();
}
