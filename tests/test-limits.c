/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A queue child's limits and its end of the stream, seen from a fake parent: the test holds the
 * parent's end of the socket and speaks the protocol by hand
 * (docs/protocol.md), so it can send what the library's server never
 * would. The child is tests/mpq-test-child in "queue" mode, which says on
 * stdout how each step went. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pymulproc/pymulproc.h>

/* The descriptor number the child gets its end under. */
#define CHILD_FD 3

typedef struct
{
  GSubprocess      *child;
  GDataInputStream *out;    /* the child's stdout */
  int               fd;     /* the fake parent's end */
} FakeParent;

/* Spawns the child with its end of a socket pair, as mpq_queue_spawn
 * would, and the steps it is to take. */
static void
fake_parent_spawn (FakeParent         *parent,
                   const char * const *steps)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *fd_text = g_strdup_printf ("%d", CHILD_FD);
  int fds[2];

  g_assert_no_errno (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
  parent->fd = fds[0];

  g_ptr_array_add (argv, g_test_build_filename (G_TEST_BUILT, "mpq-test-child", NULL));
  g_ptr_array_add (argv, (char *) "queue");
  for (guint i = 0; steps != NULL && steps[i] != NULL; i++)
    g_ptr_array_add (argv, (char *) steps[i]);
  g_ptr_array_add (argv, NULL);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_setenv (launcher, "MPQ_CHANNEL_FD", fd_text, TRUE);
  g_subprocess_launcher_setenv (launcher, "MPQ_CHANNEL_KIND", "queue", TRUE);
  g_subprocess_launcher_take_fd (launcher, fds[1], CHILD_FD);
  parent->child = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata,
                                                &error);
  g_free (argv->pdata[0]);
  g_assert_no_error (error);
  g_subprocess_launcher_close (launcher);

  parent->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (parent->child));
}

/* Writes @length bytes of @text, or until the child hangs up: returns
 * how many went. */
static gsize
fake_parent_write_len (FakeParent *parent,
                       const char *text,
                       gsize       length)
{
  gsize sent = 0;

  while (sent < length)
    {
      gssize n = send (parent->fd, text + sent, length - sent, MSG_NOSIGNAL);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          g_assert_true (errno == EPIPE || errno == ECONNRESET);
          break;
        }
      sent += n;
    }
  return sent;
}

static void
fake_parent_write (FakeParent *parent,
                   const char *text)
{
  fake_parent_write_len (parent, text, strlen (text));
}

/* The next line the child says, which must start with @prefix; returns
 * what follows it. */
static char *
fake_parent_expect (FakeParent *parent,
                    const char *prefix)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *line = g_data_input_stream_read_line (parent->out, NULL, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (line);
  if (!g_str_has_prefix (line, prefix))
    g_error ("the child said \"%s\", expected \"%s…\"", line, prefix);
  return g_strdup (line + strlen (prefix));
}

static void
fake_parent_finish (FakeParent *parent)
{
  g_autoptr(GError) error = NULL;

  close (parent->fd);
  g_subprocess_wait_check (parent->child, NULL, &error);
  g_assert_no_error (error);
  g_clear_object (&parent->out);
  g_clear_object (&parent->child);
}

/* Reads from the parent's end until @needle has come (frames the child
 * sends); fails if the child hangs up first. */
static void
fake_parent_read_until (FakeParent *parent,
                        const char *needle)
{
  g_autoptr(GString) got = g_string_new (NULL);

  while (strstr (got->str, needle) == NULL)
    {
      char buf[4096];
      gssize n = recv (parent->fd, buf, sizeof buf, 0);

      if (n < 0 && errno == EINTR)
        continue;
      g_assert_cmpint (n, >, 0);
      g_string_append_len (got, buf, n);
    }
}

/* A first line that never ends is given up at the reader's bound (one
 * line of max-message-size and a frame's room): the child's queue fails
 * and its memory does not grow with what the parent sends. */
static void
test_endless_hello (void)
{
  FakeParent parent = { 0 };
  g_autofree char *chunk = g_strnfill (64 * 1024, 'x');
  g_autofree char *result = NULL;
  g_autofree char *growth = NULL;
  gsize sent = 0;

  fake_parent_spawn (&parent, NULL);

  /* 24 MiB, or until the child hangs up. */
  while (sent < 24 * 1024 * 1024)
    {
      gsize n = fake_parent_write_len (&parent, chunk, 64 * 1024);

      sent += n;
      if (n < 64 * 1024)
        break;
    }

  result = fake_parent_expect (&parent, "new ");
  g_assert_cmpstr (result, ==, "error too-large");
  growth = fake_parent_expect (&parent, "growth-kb ");
  g_test_message ("sent %" G_GSIZE_FORMAT " bytes, the child grew by %s kB", sent, growth);
  /* One line of 1 MiB and a read of 64 KiB, in steps of doubling; far
   * below the 24 MiB sent (valgrind's own shadow counts too). */
  g_assert_cmpint (g_ascii_strtoll (growth, NULL, 10), <, 8 * 1024);
  fake_parent_finish (&parent);
}

/* A first line that is too long but ends is not skipped for the next
 * one: the queue fails. */
static void
test_long_hello (void)
{
  FakeParent parent = { 0 };
  g_autofree char *line = g_strnfill (2 * 1024 * 1024, ' ');
  g_autofree char *result = NULL;
  g_autofree char *growth = NULL;

  fake_parent_spawn (&parent, NULL);
  /* Spaces are JSON whitespace: once the hello below, the line is one. */
  fake_parent_write (&parent, line);
  fake_parent_write (&parent, "{\"op\":\"hello\",\"pid\":1,\"credit\":-1}\n"
                              "{\"op\":\"hello\",\"pid\":1,\"credit\":-1}\n");

  result = fake_parent_expect (&parent, "new ");
  g_assert_cmpstr (result, ==, "error too-large");
  growth = fake_parent_expect (&parent, "growth-kb ");
  fake_parent_finish (&parent);
}

/* The hello's max is the child's limit: a send over it fails in the child
 * with MPQ_ERROR_TOO_LARGE (the parent would drop a child for it) and the
 * queue stays open. */
static void
test_hello_max (void)
{
  const char * const steps[] = { "send:101", "send:100", NULL };
  FakeParent parent = { 0 };
  g_autofree char *result = NULL;
  g_autofree char *growth = NULL;

  fake_parent_spawn (&parent, steps);
  fake_parent_write (&parent, "{\"op\":\"hello\",\"pid\":1,\"credit\":-1,\"max\":100}\n");

  result = fake_parent_expect (&parent, "new ");
  g_assert_cmpstr (result, ==, "ok");
  growth = fake_parent_expect (&parent, "growth-kb ");
  g_clear_pointer (&result, g_free);
  result = fake_parent_expect (&parent, "send:101 ");
  g_assert_cmpstr (result, ==, "error too-large");
  g_clear_pointer (&result, g_free);
  result = fake_parent_expect (&parent, "send:100 ");
  g_assert_cmpstr (result, ==, "ok");
  /* The line of 100 bytes reached the parent. */
  fake_parent_read_until (&parent, "\"DO\"");
  fake_parent_finish (&parent);
}

/* A limits frame lowers the child's limit, and its own setting can lower
 * it further but never raise it past the parent's; the property reads the
 * limit in force. */
static void
test_limits_frame (void)
{
  const char * const steps[] = {
    "max", "recv", "max", "send:501", "send:500", "set:300", "max", "send:301", "send:300",
    "set:10000", "max", "send:501", "send:500", NULL
  };
  const char * const expected[] = {
    "new ok", NULL, "max 500", "recv ok", "max 500", "send:501 error too-large", "send:500 ok",
    "max 300", "send:301 error too-large", "send:300 ok", "max 500", "send:501 error too-large",
    "send:500 ok",
  };
  FakeParent parent = { 0 };

  fake_parent_spawn (&parent, steps);
  /* The limits frame comes with the hello and applies at once. The
   * child's receive is request 1: its answer comes after the limits. */
  fake_parent_write (&parent, "{\"op\":\"hello\",\"pid\":1,\"credit\":-1,\"max\":2000}\n"
                              "{\"op\":\"limits\",\"max\":500}\n"
                              "{\"op\":\"msg\",\"tag\":1,\"id\":1,\"msg\":[\"DO\",1,null,null]}\n");

  for (guint i = 0; i < G_N_ELEMENTS (expected); i++)
    {
      g_autofree char *line = fake_parent_expect (&parent, "");

      if (expected[i] != NULL)
        g_assert_cmpstr (line, ==, expected[i]);
    }
  fake_parent_finish (&parent);
}

/* A message line longer than the limit, from the parent, breaks the
 * protocol: the child's receive fails with MPQ_ERROR_TOO_LARGE. */
static void
test_limit_on_reading (void)
{
  const char * const steps[] = { "recv", NULL };
  FakeParent parent = { 0 };
  g_autofree char *data = g_strnfill (300, 'x');
  g_autofree char *frame = g_strdup_printf ("{\"op\":\"msg\",\"tag\":1,\"id\":1,"
                                            "\"msg\":[\"DO\",1,null,\"%s\"]}\n", data);
  g_autofree char *result = NULL;
  g_autofree char *growth = NULL;

  fake_parent_spawn (&parent, steps);
  /* The frame's overhead (256 bytes) is allowed past the limit; the
   * message line itself is not. */
  fake_parent_write (&parent, "{\"op\":\"hello\",\"pid\":1,\"credit\":-1,\"max\":100}\n");
  fake_parent_write (&parent, frame);

  result = fake_parent_expect (&parent, "new ");
  g_assert_cmpstr (result, ==, "ok");
  growth = fake_parent_expect (&parent, "growth-kb ");
  g_clear_pointer (&result, g_free);
  result = fake_parent_expect (&parent, "recv ");
  g_assert_cmpstr (result, ==, "error too-large");
  fake_parent_finish (&parent);
}

/* A parent that hangs up in the middle of a line sent a bad line: the
 * child's call fails with MPQ_ERROR_PROTOCOL, as a pipe's does, not with
 * a plain MPQ_ERROR_CLOSED. */
static void
test_hung_up_mid_line (void)
{
  const char * const steps[] = { "recv", NULL };
  FakeParent parent = { 0 };
  g_autofree char *result = NULL;
  g_autofree char *growth = NULL;

  fake_parent_spawn (&parent, steps);
  fake_parent_write (&parent, "{\"op\":\"hello\",\"pid\":1,\"credit\":-1}\n"
                              "{\"op\":\"msg\",\"tag\":1,\"id\":1,\"msg\":[\"DO\"");
  shutdown (parent.fd, SHUT_WR);

  result = fake_parent_expect (&parent, "new ");
  g_assert_cmpstr (result, ==, "ok");
  growth = fake_parent_expect (&parent, "growth-kb ");
  g_clear_pointer (&result, g_free);
  result = fake_parent_expect (&parent, "recv ");
  g_assert_cmpstr (result, ==, "error protocol");
  fake_parent_finish (&parent);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/Mpq/Limits/endless-hello", test_endless_hello);
  g_test_add_func ("/Mpq/Limits/long-hello", test_long_hello);
  g_test_add_func ("/Mpq/Limits/hello-max", test_hello_max);
  g_test_add_func ("/Mpq/Limits/limits-frame", test_limits_frame);
  g_test_add_func ("/Mpq/Limits/limit-on-reading", test_limit_on_reading);
  g_test_add_func ("/Mpq/Limits/hung-up-mid-line", test_hung_up_mid_line);

  return g_test_run ();
}
