/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The process tests/test-debug-idle.c runs (with or without MPQ_DEBUG) to
 * see MPQ_DEBUG's idle check from outside: it makes a channel, spawns
 * itself as the child at the other end, and leaves what the child sent
 * unread, or reads or starts first. It exits 0 when all went as planned.
 *
 *   mpq-debug-idle-helper MODE [SECONDS]
 *
 * SECONDS (default 60) bounds how long it waits for the test: the modes
 * that leave something unread run until their stdin ends or that long,
 * and make another channel nobody reads (a pipe, or a queue child) for
 * each line the test writes. On stdout it says "pipe ADDRESS" for each
 * pipe it makes, "child-exited" once a child's message was sent, and
 * "canary PID" for a child that never reads, whose line the converse
 * tests wait for. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib-unix.h>
#include <pymulproc/pymulproc.h>

static const char *self_path;
static int window_s = 60;

#define CHECK_NO_ERROR(error) \
  G_STMT_START { \
    if ((error) != NULL) \
      { \
        g_printerr ("mpq-debug-idle-helper: line %d: %s\n", __LINE__, (error)->message); \
        exit (2); \
      } \
  } G_STMT_END

static void
say_out (const char *format,
         ...) G_GNUC_PRINTF (1, 2);

static void
say_out (const char *format,
         ...)
{
  va_list args;

  va_start (args, format);
  vprintf (format, args);
  va_end (args);
  fflush (stdout);
}

/* Without a main loop: TRUE when the test wrote (it asks for another
 * channel), FALSE once stdin ended or the window passed. */
static gboolean
read_stdin (void)
{
  struct pollfd in = { .fd = 0, .events = POLLIN };
  char buffer[64];

  return poll (&in, 1, window_s * 1000) > 0 && read (0, buffer, sizeof buffer) > 0;
}

/* The child's end ------------------------------------------------------------ */

/* What the polled child's receive takes (the ballast) goes back. */
static gboolean
reject_cb (MpqMessage *message,
           gpointer    user_data)
{
  return FALSE;
}

static int
child_main (const char *mode)
{
  g_autoptr(GError) error = NULL;

  if (g_str_equal (mode, "child-pipe-send"))
    {
      g_autoptr(MpqPipe) pipe = mpq_pipe_new_for_child (&error);

      CHECK_NO_ERROR (error);
      mpq_channel_send_json (MPQ_CHANNEL (pipe), MPQ_REQ_DO, 0, 0, "1", &error);
      CHECK_NO_ERROR (error);
      mpq_channel_close (MPQ_CHANNEL (pipe));
      return 0;
    }

  if (g_str_equal (mode, "child-queue-send"))
    {
      g_autoptr(MpqQueue) queue = mpq_queue_new_for_child (&error);

      CHECK_NO_ERROR (error);
      mpq_channel_send_json (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0,
                             mpq_queue_get_parent_pid (queue), "1", &error);
      CHECK_NO_ERROR (error);
      mpq_channel_close (MPQ_CHANNEL (queue));
      return 0;
    }

  if (g_str_equal (mode, "child-queue-hold") || g_str_equal (mode, "child-queue-polled"))
    {
      g_autoptr(MpqQueue) queue = mpq_queue_new_for_child (&error);

      /* A canary may start after its line was said (slowly, under
       * valgrind) and the parent closed the queue: nothing to do. */
      if (queue == NULL && g_str_equal (mode, "child-queue-hold"))
        return 0;
      CHECK_NO_ERROR (error);
      /* A poll is a receive (its filter gives back what it took): this
       * child asked before anything was addressed to it, and says so to
       * the parent after. */
      if (g_str_equal (mode, "child-queue-polled"))
        {
          g_autoptr(MpqMessage) none = mpq_channel_receive (MPQ_CHANNEL (queue), 0, reject_cb,
                                                             NULL, &error);

          CHECK_NO_ERROR (error);
          g_assert (none == NULL);
          mpq_channel_send (MPQ_CHANNEL (queue), "READY", 0, mpq_queue_get_parent_pid (queue),
                            NULL, &error);
          CHECK_NO_ERROR (error);
        }
      /* Reads nothing more until the parent closes the queue: the
       * parent's ballast keeps the join waiting until then. */
      mpq_queue_join (queue, -1, &error);
      g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
      return 0;
    }

  g_printerr ("mpq-debug-idle-helper: unknown mode %s\n", mode);
  return 2;
}

/* The parent's end ----------------------------------------------------------- */

static GSubprocess *
spawn_child (MpqChannel *channel,
             const char *mode)
{
  const char *argv[] = { self_path, mode, NULL };
  g_autoptr(GError) error = NULL;
  GSubprocess *child;

  if (MPQ_IS_PIPE (channel))
    child = mpq_pipe_spawn (MPQ_PIPE (channel), argv, &error);
  else
    child = mpq_queue_spawn (MPQ_QUEUE (channel), argv, &error);
  CHECK_NO_ERROR (error);
  return child;
}

static void
wait_child (GSubprocess *child)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_wait_check (child, NULL, &error);
  CHECK_NO_ERROR (error);
}

/* Whether the thread-default main context has nothing to wait for: no
 * descriptor but its own wake-up, no timer. Once a pipe was read or
 * started, MPQ_DEBUG's idle check keeps no source there (and a stopped
 * pipe keeps none of its own). Runs what is ready first. */
static gboolean
context_is_quiet (void)
{
  GMainContext *context = g_main_context_default ();
  GPollFD fds[8];
  gint priority;
  gint timeout;
  gint n_fds;

  while (g_main_context_iteration (context, FALSE))
    ;
  g_main_context_acquire (context);
  g_main_context_prepare (context, &priority);
  n_fds = g_main_context_query (context, G_MAXINT, &timeout, fds, G_N_ELEMENTS (fds));
  g_main_context_check (context, priority, fds, MIN (n_fds, (gint) G_N_ELEMENTS (fds)));
  g_main_context_release (context);
  if (n_fds != 1 || timeout != -1)
    g_printerr ("mpq-debug-idle-helper: the main context waits on %d descriptors, "
                "%d ms\n", n_fds, timeout);
  return n_fds == 1 && timeout == -1;
}

static gboolean
quit_cb (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_CONTINUE;
}

static void
child_exited_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_wait_check_finish (G_SUBPROCESS (source), result, &error);
  CHECK_NO_ERROR (error);
  (*(guint *) user_data)++;
  say_out ("child-exited\n");
}

typedef struct
{
  GMainLoop *loop;
  GPtrArray *pipes;     /* MpqPipe nobody reads */
  GPtrArray *children;  /* GSubprocess */
  guint      exited;    /* children reaped */
} Ignored;

/* One more pipe nobody reads, its child sending one message. */
static void
ignore_another_pipe (Ignored *ignored)
{
  g_autoptr(GError) error = NULL;
  MpqPipe *pipe = mpq_pipe_new (&error);
  GSubprocess *child;

  CHECK_NO_ERROR (error);
  say_out ("pipe %p\n", (gpointer) pipe);
  child = spawn_child (MPQ_CHANNEL (pipe), "child-pipe-send");
  g_subprocess_wait_check_async (child, NULL, child_exited_cb, &ignored->exited);
  g_ptr_array_add (ignored->pipes, pipe);
  g_ptr_array_add (ignored->children, child);
}

static gboolean
stdin_cb (gint         fd,
          GIOCondition condition,
          gpointer     user_data)
{
  Ignored *ignored = user_data;
  char buffer[64];

  /* At the end it stays readable: the caller removes this source. */
  if (read (fd, buffer, sizeof buffer) <= 0)
    g_main_loop_quit (ignored->loop);
  else
    ignore_another_pipe (ignored);
  return G_SOURCE_CONTINUE;
}

/* A pipe nobody reads, in a main loop that runs until stdin ends; one
 * more each time the test writes a line. */
static int
pipe_ignore (void)
{
  Ignored ignored = {
    g_main_loop_new (NULL, FALSE),
    g_ptr_array_new_with_free_func (g_object_unref),
    g_ptr_array_new_with_free_func (g_object_unref),
    0,
  };
  guint in_id, window_id;

  ignore_another_pipe (&ignored);
  in_id = g_unix_fd_add (0, G_IO_IN | G_IO_HUP, stdin_cb, &ignored);
  window_id = g_timeout_add_seconds (window_s, quit_cb, ignored.loop);
  g_main_loop_run (ignored.loop);
  g_source_remove (in_id);
  g_source_remove (window_id);
  /* Each child sends and exits by itself. */
  while (ignored.exited < ignored.children->len)
    g_main_context_iteration (NULL, TRUE);
  for (guint i = 0; i < ignored.pipes->len; i++)
    mpq_channel_close (g_ptr_array_index (ignored.pipes, i));
  g_ptr_array_unref (ignored.pipes);
  g_ptr_array_unref (ignored.children);
  g_main_loop_unref (ignored.loop);
  return 0;
}

static void
count_cb (MpqChannel *channel,
          MpqMessage *message,
          gpointer    user_data)
{
  (*(guint *) user_data)++;
}

static void
closed_cb (MpqChannel *channel,
           gpointer    user_data)
{
  g_main_loop_quit (user_data);
}

/* Started before anything could come: no check is left, the message is
 * handed over, the child hangs up, nothing is said. */
static int
pipe_start (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqPipe) pipe = mpq_pipe_new (&error);
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  guint received = 0;

  CHECK_NO_ERROR (error);
  g_signal_connect (pipe, "message-received", G_CALLBACK (count_cb), &received);
  g_signal_connect (pipe, "closed", G_CALLBACK (closed_cb), loop);
  /* Started (and stopped): the message waits in the socket, and nothing
   * watches it; once started again, it is handed over. */
  mpq_channel_start (MPQ_CHANNEL (pipe));
  mpq_channel_stop (MPQ_CHANNEL (pipe));
  child = spawn_child (MPQ_CHANNEL (pipe), "child-pipe-send");
  wait_child (child);
  if (!context_is_quiet ())
    return 3;
  mpq_channel_start (MPQ_CHANNEL (pipe));
  g_main_loop_run (loop);
  mpq_channel_close (MPQ_CHANNEL (pipe));
  return received == 1 ? 0 : 3;
}

/* Read (a poll) before anything could come: no check is left; then the
 * message and the hang-up. */
static int
pipe_read (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqPipe) pipe = mpq_pipe_new (&error);
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(MpqMessage) none = NULL;
  g_autoptr(MpqMessage) message = NULL;
  g_autoptr(MpqMessage) end = NULL;

  CHECK_NO_ERROR (error);
  none = mpq_channel_receive (MPQ_CHANNEL (pipe), 0, NULL, NULL, &error);
  CHECK_NO_ERROR (error);
  child = spawn_child (MPQ_CHANNEL (pipe), "child-pipe-send");
  /* The message waits in the socket, and nothing watches it. */
  wait_child (child);
  if (!context_is_quiet ())
    return 3;
  message = mpq_channel_receive (MPQ_CHANNEL (pipe), -1, NULL, NULL, &error);
  CHECK_NO_ERROR (error);
  end = mpq_channel_receive (MPQ_CHANNEL (pipe), -1, NULL, NULL, &error);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  mpq_channel_close (MPQ_CHANNEL (pipe));
  return none == NULL && message != NULL ? 0 : 3;
}

/* A message for pid 1, which never takes part: it stays in the queue
 * until it is closed, so that the children's join (they wait there,
 * reading nothing) returns only then. Nobody is told it waits. */
static void
put_ballast (MpqQueue *queue)
{
  g_autoptr(GError) error = NULL;

  mpq_channel_send_json (MPQ_CHANNEL (queue), "BALLAST", 0, 1, NULL, &error);
  CHECK_NO_ERROR (error);
}

/* A child that never reads, and a message addressed to it: the queue's
 * thread says so, naming it. Returns the child. */
static GSubprocess *
spawn_canary (MpqQueue *queue)
{
  g_autoptr(GError) error = NULL;
  GSubprocess *child;
  gint pid;

  put_ballast (queue);
  child = spawn_child (MPQ_CHANNEL (queue), "child-queue-hold");
  pid = atoi (g_subprocess_get_identifier (child));
  mpq_channel_send_json (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, pid, "2", &error);
  CHECK_NO_ERROR (error);
  say_out ("canary %d\n", pid);
  return child;
}

static int
queue_main (const char *mode)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqQueue) queue = mpq_queue_new (0, &error);
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(GPtrArray) canaries = g_ptr_array_new_with_free_func (g_object_unref);

  CHECK_NO_ERROR (error);

  if (g_str_equal (mode, "queue-ignore"))
    {
      /* Nobody reads, and there is no main loop at all. */
      child = spawn_child (MPQ_CHANNEL (queue), "child-queue-send");
      wait_child (child);
      say_out ("child-exited\n");
    }
  else if (g_str_equal (mode, "queue-read") || g_str_equal (mode, "queue-start"))
    {
      /* Asked before anything could come (started and stopped at once,
       * or a poll); then a message waits for it, unread, put before any
       * canary's: its line would come at the canary's look, or before. */
      if (g_str_equal (mode, "queue-start"))
        {
          mpq_channel_start (MPQ_CHANNEL (queue));
          mpq_channel_stop (MPQ_CHANNEL (queue));
        }
      else
        {
          g_autoptr(MpqMessage) none = mpq_channel_receive (MPQ_CHANNEL (queue), 0, NULL, NULL,
                                                             &error);

          CHECK_NO_ERROR (error);
          g_assert (none == NULL);
        }
      child = spawn_child (MPQ_CHANNEL (queue), "child-queue-send");
      wait_child (child);
      /* Reads what the child wrote: its message is in the queue now. */
      g_assert_false (mpq_queue_is_empty (queue, &error));
      CHECK_NO_ERROR (error);
      say_out ("waiting\n");
    }
  else if (g_str_equal (mode, "queue-child-read"))
    {
      /* The child polled before its message was put; canaries do not. */
      g_autoptr(MpqMessage) ready = NULL;
      gint pid;

      put_ballast (queue);
      child = spawn_child (MPQ_CHANNEL (queue), "child-queue-polled");
      ready = mpq_channel_receive_for_me (MPQ_CHANNEL (queue), -1, &error);
      CHECK_NO_ERROR (error);
      pid = mpq_message_get_sender_pid (ready);
      mpq_channel_send_json (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, pid, "3", &error);
      CHECK_NO_ERROR (error);
      say_out ("waiting\n");
    }
  else if (!g_str_equal (mode, "queue-child-ignores"))
    {
      g_printerr ("mpq-debug-idle-helper: unknown mode %s\n", mode);
      return 2;
    }

  /* Each line the test writes asks for a canary. */
  while (read_stdin ())
    g_ptr_array_add (canaries, spawn_canary (queue));
  mpq_channel_close (MPQ_CHANNEL (queue));
  if (child != NULL)
    wait_child (child);
  for (guint i = 0; i < canaries->len; i++)
    wait_child (g_ptr_array_index (canaries, i));
  return 0;
}

int
main (int   argc,
      char *argv[])
{
  const char *mode;

  if (argc < 2)
    {
      g_printerr ("usage: mpq-debug-idle-helper MODE [SECONDS]\n");
      return 2;
    }
  /* A critical or a warning of the library fails the test. */
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
  self_path = argv[0];
  mode = argv[1];
  if (argc > 2)
    window_s = atoi (argv[2]);

  if (g_str_has_prefix (mode, "child-"))
    return child_main (mode);
  if (g_str_equal (mode, "pipe-ignore"))
    return pipe_ignore ();
  if (g_str_equal (mode, "pipe-start"))
    return pipe_start ();
  if (g_str_equal (mode, "pipe-read"))
    return pipe_read ();
  return queue_main (mode);
}
