/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The README's C parent, as it shows it: run from this directory, it
 * spawns child.py beside it (test_tutorial.py runs it). */
#include <pymulproc/pymulproc.h>

int
main (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqPipe) pipe = mpq_pipe_new (&error);
  const char *argv[] = { "/usr/bin/python3", "child.py", NULL };
  g_autoptr(GSubprocess) child = mpq_pipe_spawn (pipe, argv, &error);
  g_autoptr(MpqMessage) answer = NULL;
  g_autofree char *data = NULL;

  mpq_channel_send_json (MPQ_CHANNEL (pipe), MPQ_REQ_DO, 0, 0, "{\"value\":7}", &error);
  answer = mpq_channel_receive (MPQ_CHANNEL (pipe), -1, NULL, NULL, &error);
  data = mpq_message_dup_data_json (answer);
  g_print ("%s from %d: %s\n", mpq_message_get_request (answer),
           mpq_message_get_sender_pid (answer), data);
  mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_DIE, 0, 0, NULL, &error);
  return g_subprocess_wait_check (child, NULL, &error) ? 0 : 1;
}
