/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The child program the C tests spawn through MpqPipe (and, in "queue"
 * mode, beside a fake queue parent). The first argument picks what it
 * does; it exits 0 when all went as planned. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pymulproc/pymulproc.h>

static MpqPipe *
open_pipe (void)
{
  g_autoptr(GError) error = NULL;
  MpqPipe *pipe = mpq_pipe_new_for_child (&error);

  if (pipe == NULL)
    {
      g_printerr ("mpq-test-child: %s\n", error->message);
      exit (2);
    }

  return pipe;
}

static JsonNode *
value_node (gint64 i)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "value");
  json_builder_add_int_value (builder, i);
  json_builder_end_object (builder);

  return json_builder_get_root (builder);
}

/* send N: sends N DO messages {"value": i} and exits. */
static int
do_send (MpqPipe *pipe,
         int      n)
{
  for (int i = 0; i < n; i++)
    {
      g_autoptr(JsonNode) data = value_node (i);
      g_autoptr(GError) error = NULL;

      if (!mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_DO, 0, 0, data, &error))
        {
          g_printerr ("mpq-test-child: send: %s\n", error->message);
          return 1;
        }
    }

  return 0;
}

/* echo: answers each message with FINISHED and the same data (and payload),
 * until DIE. */
static int
do_echo (MpqPipe *pipe)
{
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(MpqMessage) message = mpq_channel_receive (MPQ_CHANNEL (pipe), -1, NULL, NULL, &error);

      if (message == NULL)
        {
          g_printerr ("mpq-test-child: receive: %s\n", error->message);
          return 1;
        }

      if (g_str_equal (mpq_message_get_request (message), MPQ_REQ_DIE))
        return 0;

      /* A payload goes back too (the same memfd, when it came as one). */
      if (mpq_message_get_bytes (message) != NULL)
        {
          g_autoptr(MpqMessage) answer =
            mpq_message_new_with_bytes (MPQ_REQ_FINISHED, 0, mpq_message_get_sender_pid (message),
                                        mpq_message_get_data (message),
                                        mpq_message_get_bytes (message));

          if (!mpq_channel_send_message (MPQ_CHANNEL (pipe), answer, &error))
            {
              g_printerr ("mpq-test-child: send: %s\n", error->message);
              return 1;
            }
        }
      else if (!mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_FINISHED, 0,
                                  mpq_message_get_sender_pid (message),
                                  mpq_message_get_data (message), &error))
        {
          g_printerr ("mpq-test-child: send: %s\n", error->message);
          return 1;
        }
    }
}

static void
on_do (MpqChannel *channel,
       MpqMessage *message,
       gpointer    user_data)
{
  g_autoptr(GError) error = NULL;

  if (!mpq_channel_send (channel, MPQ_REQ_FINISHED, 0, mpq_message_get_sender_pid (message),
                         mpq_message_get_data (message), &error))
    g_error ("send: %s", error->message);
}

static void
on_die (MpqChannel *channel,
        MpqMessage *message,
        gpointer    user_data)
{
  g_main_loop_quit (user_data);
}

/* echo-signals: like echo, but served by ::message-received in a main loop. */
static int
do_echo_signals (MpqPipe *pipe)
{
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);

  g_signal_connect (pipe, "message-received::" MPQ_REQ_DO, G_CALLBACK (on_do), NULL);
  g_signal_connect (pipe, "message-received::" MPQ_REQ_DIE, G_CALLBACK (on_die), loop);
  g_signal_connect_swapped (pipe, "closed", G_CALLBACK (g_main_loop_quit), loop);
  mpq_channel_start (MPQ_CHANNEL (pipe));
  g_main_loop_run (loop);

  return 0;
}

/* burst N: writes N messages in a single write(), then waits for DIE without
 * writing another byte. */
static int
do_burst (MpqPipe *pipe,
          int      n,
          int      fd)
{
  g_autoptr(GString) lines = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) message = NULL;

  for (int i = 0; i < n; i++)
    g_string_append_printf (lines, "[\"DO\",%d,null,{\"value\":%d}]\n", (int) getpid (), i);

  if (write (fd, lines->str, lines->len) != (gssize) lines->len)
    return 1;

  message = mpq_channel_receive (MPQ_CHANNEL (pipe), -1, NULL, NULL, &error);
  return message != NULL && g_str_equal (mpq_message_get_request (message), MPQ_REQ_DIE) ? 0 : 1;
}

/* raw TEXT: writes TEXT ("\n" escapes allowed) to the channel without the
 * library, then exits. */
static int
do_raw (const char *text)
{
  g_autofree char *bytes = g_strcompress (text);
  int fd = atoi (g_getenv (MPQ_CHANNEL_FD_ENV));
  gsize len = strlen (bytes);

  return write (fd, bytes, len) == (gssize) len ? 0 : 1;
}

/* nest N: sends a line of N "[" without the library, then exits. */
static int
do_nest (int n)
{
  int fd = atoi (g_getenv (MPQ_CHANNEL_FD_ENV));
  g_autofree char *bytes = g_malloc (n + 1);

  memset (bytes, '[', n);
  bytes[n] = '\n';

  return write (fd, bytes, n + 1) == n + 1 ? 0 : 1;
}

/* fds: sends [fd, what it points to] for each open descriptor, then exits. */
static int
do_fds (MpqPipe *pipe)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(GError) error = NULL;
  DIR *dir = opendir ("/proc/self/fd");
  struct dirent *entry;

  json_builder_begin_array (builder);
  while ((entry = readdir (dir)) != NULL)
    {
      g_autofree char *link = NULL;
      g_autofree char *target = NULL;

      if (entry->d_name[0] == '.' || atoi (entry->d_name) == dirfd (dir))
        continue;

      link = g_strconcat ("/proc/self/fd/", entry->d_name, NULL);
      target = g_file_read_link (link, NULL);
      json_builder_begin_array (builder);
      json_builder_add_int_value (builder, atoi (entry->d_name));
      json_builder_add_string_value (builder, target != NULL ? target : "?");
      json_builder_end_array (builder);
    }
  json_builder_end_array (builder);
  closedir (dir);

  root = json_builder_get_root (builder);
  return mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_FINISHED, 0, 0, root, &error) ? 0 : 1;
}

/* env NAME: sends the value of NAME and the working directory. */
static int
do_env (MpqPipe    *pipe,
        const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *cwd = g_get_current_dir ();
  g_autofree char *json = g_strdup_printf ("[\"%s\",\"%s\"]", g_getenv (name), cwd);

  return mpq_channel_send_json (MPQ_CHANNEL (pipe), MPQ_REQ_FINISHED, 0, 0, json, &error) ? 0 : 1;
}

/* The peak resident set, in kB, from /proc/self/status. */
static gint64
peak_rss_kb (void)
{
  g_autofree char *status = NULL;
  const char *hwm;

  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL) ||
      (hwm = strstr (status, "VmHWM:")) == NULL)
    return -1;
  return g_ascii_strtoll (hwm + strlen ("VmHWM:"), NULL, 10);
}

static void
say_result (const char   *what,
            const GError *error)
{
  g_autoptr(GEnumClass) codes = g_type_class_ref (MPQ_TYPE_ERROR);
  GEnumValue *code = error != NULL ? g_enum_get_value (codes, error->code) : NULL;

  if (error == NULL)
    g_print ("%s ok\n", what);
  else if (error->domain == MPQ_ERROR && code != NULL)
    g_print ("%s error %s\n", what, code->value_nick);
  else
    g_print ("%s error %s %d\n", what, g_quark_to_string (error->domain), error->code);
}

/* queue STEP…: opens a queue child's end and says on stdout, a line per
 * step, how it went ("new ok", "new error not-a-child", "growth-kb
 * 120"). Steps: "max" prints max-message-size; "set:N" sets it; "send:N"
 * sends a DO whose line is N bytes; "recv" receives, waiting. */
static int
do_queue (int          n_steps,
          char * const steps[])
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqQueue) queue = NULL;
  gint64 before = peak_rss_kb ();

  queue = mpq_queue_new_for_child (&error);
  say_result ("new", error);
  g_print ("growth-kb %" G_GINT64_FORMAT "\n", peak_rss_kb () - before);
  fflush (stdout);
  if (queue == NULL)
    return 0;

  for (int i = 0; i < n_steps; i++)
    {
      const char *step = steps[i];

      g_clear_error (&error);
      if (g_str_equal (step, "max"))
        g_print ("max %" G_GSIZE_FORMAT "\n",
                 mpq_channel_get_max_message_size (MPQ_CHANNEL (queue)));
      else if (g_str_has_prefix (step, "set:"))
        mpq_channel_set_max_message_size (MPQ_CHANNEL (queue), atoi (step + 4));
      else if (g_str_has_prefix (step, "send:"))
        {
          /* ["DO",pid,null,"xxx"]: the data pads the line to N bytes. */
          g_autofree char *head = g_strdup_printf ("[\"DO\",%d,null,\"\"]", getpid ());
          g_autofree char *pad = g_strnfill (MAX (atoi (step + 5) - (int) strlen (head), 0), 'x');
          g_autofree char *data = g_strdup_printf ("\"%s\"", pad);

          mpq_channel_send_json (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0, data, &error);
          say_result (step, error);
          mpq_channel_flush (MPQ_CHANNEL (queue), -1, NULL);
        }
      else if (g_str_equal (step, "recv"))
        {
          g_autoptr(MpqMessage) message =
            mpq_channel_receive (MPQ_CHANNEL (queue), -1, NULL, NULL, &error);

          (void) message;   /* taken and dropped: only whether it came counts */
          say_result (step, error);
        }
      fflush (stdout);
    }
  return 0;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(MpqPipe) pipe = NULL;
  const char *mode = argc > 1 ? argv[1] : "";
  int n = argc > 2 ? atoi (argv[2]) : 0;
  int status = 2;

  if (g_str_equal (mode, "raw"))
    return do_raw (argv[2]);
  if (g_str_equal (mode, "nest"))
    return do_nest (n);
  if (g_str_equal (mode, "queue"))
    return do_queue (argc - 2, argv + 2);

  pipe = open_pipe ();

  if (g_str_equal (mode, "send"))
    status = do_send (pipe, n);
  else if (g_str_equal (mode, "send-then-crash"))
    {
      do_send (pipe, n);
      /* Sends under load are gathered for a few microseconds: a process
       * about to die makes sure they left (mpq_channel_flush). */
      mpq_channel_flush (MPQ_CHANNEL (pipe), -1, NULL);
      raise (SIGKILL);
    }
  else if (g_str_equal (mode, "echo"))
    status = do_echo (pipe);
  else if (g_str_equal (mode, "echo-signals"))
    status = do_echo_signals (pipe);
  else if (g_str_equal (mode, "burst"))
    status = do_burst (pipe, n, atoi (g_getenv (MPQ_CHANNEL_FD_ENV)));
  else if (g_str_equal (mode, "fds"))
    status = do_fds (pipe);
  else if (g_str_equal (mode, "env"))
    status = do_env (pipe, argv[2]);
  else if (g_str_equal (mode, "hold"))
    {
      /* Never reads: the parent's sends fill the socket. */
      pause ();
      status = 0;
    }
  else if (g_str_equal (mode, "exit"))
    status = 0;

  return status;
}
