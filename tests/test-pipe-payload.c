/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Binary payloads on pipes (issue 11; docs/design-decisions.md,
 * "Payloads by descriptor"): mpq_channel_send_bytes(),
 * mpq_message_new_with_bytes() and mpq_message_get_bytes(), inline and by
 * descriptor, within a process and to a child that uses the library. What
 * a hostile or plain peer sends is in tests/python/test_pipe_payload.py. */
#include <pymulproc/pymulproc.h>

#define MIB (1024 * 1024)

static GBytes *
pattern (gsize size,
         guint seed)
{
  guint8 *data = g_malloc (MAX (size, 1));

  for (gsize i = 0; i < size; i++)
    data[i] = (guint8) (i * 31 + seed + i / 65536);
  return g_bytes_new_take (data, size);
}

static void
pair (MpqPipe **parent,
      MpqPipe **child)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (mpq_pipe_new_pair (parent, child, &error));
  g_assert_no_error (error);
}

static MpqMessage *
receive_ok (MpqPipe *pipe)
{
  g_autoptr(GError) error = NULL;
  MpqMessage *message = mpq_channel_receive (MPQ_CHANNEL (pipe), -1, NULL, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (message);
  return message;
}

/* Every size arrives whole: inline below the threshold, by descriptor
 * above it; a payload of 16 MiB through a line limit of 4 KiB can only
 * have come by descriptor. */
static void
test_pair_sizes (void)
{
  const gsize sizes[] = { 0, 1, 100, MPQ_PAYLOAD_INLINE_MAX, MPQ_PAYLOAD_INLINE_MAX + 1, 16 * MIB };
  g_autoptr(MpqPipe) parent = NULL;
  g_autoptr(MpqPipe) child = NULL;

  pair (&parent, &child);
  mpq_channel_set_max_message_size (MPQ_CHANNEL (parent), 4096);
  mpq_channel_set_max_message_size (MPQ_CHANNEL (child), 4096);

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autoptr(GBytes) sent = pattern (sizes[i], i);
      g_autoptr(MpqMessage) got = NULL;
      g_autoptr(GError) error = NULL;

      g_assert_true (mpq_channel_send_bytes (MPQ_CHANNEL (parent), "BLOB", 0, 0, sent, &error));
      g_assert_no_error (error);
      got = receive_ok (child);
      g_assert_cmpstr (mpq_message_get_request (got), ==, "BLOB");
      g_assert_null (mpq_message_get_data (got));
      g_assert_nonnull (mpq_message_get_bytes (got));
      g_assert_true (g_bytes_equal (sent, mpq_message_get_bytes (got)));
    }
}

/* JSON data and a payload together, and a message received by descriptor
 * sent on (back) as it is. */
static void
test_pair_data_and_forward (void)
{
  g_autoptr(MpqPipe) parent = NULL;
  g_autoptr(MpqPipe) child = NULL;
  g_autoptr(GBytes) sent = pattern (3 * MIB, 7);
  g_autoptr(JsonNode) data = json_from_string ("{\"name\":\"frame.png\",\"w\":640}", NULL);
  g_autoptr(MpqMessage) message = mpq_message_new_with_bytes ("DO", 0, 0, data, sent);
  g_autoptr(MpqMessage) got = NULL;
  g_autoptr(MpqMessage) back = NULL;
  g_autoptr(GError) error = NULL;

  pair (&parent, &child);
  g_assert_true (mpq_channel_send_message (MPQ_CHANNEL (parent), message, &error));
  g_assert_no_error (error);
  got = receive_ok (child);
  g_assert_true (json_node_equal (data, mpq_message_get_data (got)));
  g_assert_true (g_bytes_equal (sent, mpq_message_get_bytes (got)));

  g_assert_true (mpq_channel_send_message (MPQ_CHANNEL (child), got, &error));
  g_assert_no_error (error);
  back = receive_ok (parent);
  g_assert_true (g_bytes_equal (sent, mpq_message_get_bytes (back)));
  g_assert_true (json_node_equal (data, mpq_message_get_data (back)));
}

/* receive_json gives a payload inline, whichever way it came. */
static void
test_receive_json_inlines (void)
{
  g_autoptr(MpqPipe) parent = NULL;
  g_autoptr(MpqPipe) child = NULL;
  g_autoptr(GBytes) sent = pattern (MPQ_PAYLOAD_INLINE_MAX * 2, 3);
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  g_autofree char *expected = NULL;
  g_autoptr(MpqMessage) again = NULL;

  pair (&parent, &child);
  g_assert_true (mpq_channel_send_json (MPQ_CHANNEL (parent), "PLAIN", 0, 0, "1", &error));
  g_assert_true (mpq_channel_send_bytes (MPQ_CHANNEL (parent), "BLOB", 0, 0, sent, &error));
  g_assert_no_error (error);

  line = mpq_channel_receive_json (MPQ_CHANNEL (child), -1, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (line, "[\"PLAIN\","));
  g_clear_pointer (&line, g_free);

  line = mpq_channel_receive_json (MPQ_CHANNEL (child), -1, &error);
  g_assert_no_error (error);
  expected = g_base64_encode (g_bytes_get_data (sent, NULL), g_bytes_get_size (sent));
  g_assert_nonnull (strstr (line, expected));
  again = mpq_message_new_from_json (line, -1, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (sent, mpq_message_get_bytes (again)));
}

/* A child that uses the library takes descriptors: 16 MiB there and back
 * through a line limit of 4 KiB. */
static void
test_child_echoes_by_descriptor (void)
{
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-test-child", NULL);
  const char *argv[] = { path, "echo", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqPipe) pipe = mpq_pipe_new (&error);
  g_autoptr(GSubprocess) child = NULL;

  g_assert_no_error (error);
  mpq_channel_set_max_message_size (MPQ_CHANNEL (pipe), 4096);
  child = mpq_pipe_spawn (pipe, argv, &error);
  g_assert_no_error (error);

  for (guint i = 0; i < 4; i++)
    {
      g_autoptr(GBytes) sent = pattern (i == 0 ? 100 : 16 * MIB - i, i);
      g_autoptr(MpqMessage) answer = NULL;

      g_assert_true (mpq_channel_send_bytes (MPQ_CHANNEL (pipe), MPQ_REQ_DO, 0, 0, sent, &error));
      g_assert_no_error (error);
      answer = receive_ok (pipe);
      g_assert_cmpstr (mpq_message_get_request (answer), ==, MPQ_REQ_FINISHED);
      g_assert_true (g_bytes_equal (sent, mpq_message_get_bytes (answer)));
    }

  g_assert_true (mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_DIE, 0, 0, NULL, &error));
  g_subprocess_wait_check (child, NULL, &error);
  g_assert_no_error (error);
}

/* A queue's own parent takes back what it put, payloads whole: inline,
 * and by descriptor past a line limit of 4 KiB. */
static void
test_queue_parent (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqQueue) queue = mpq_queue_new (0, &error);
  const gsize sizes[] = { 1000, 3 * MIB };

  g_assert_no_error (error);
  mpq_channel_set_max_message_size (MPQ_CHANNEL (queue), 4096);
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autoptr(GBytes) sent = pattern (sizes[i], i);
      g_autoptr(MpqMessage) got = NULL;

      g_assert_true (mpq_channel_send_bytes (MPQ_CHANNEL (queue), "BLOB", 0, 0, sent, &error));
      g_assert_no_error (error);
      got = mpq_channel_receive (MPQ_CHANNEL (queue), 0, NULL, NULL, &error);
      g_assert_no_error (error);
      g_assert_true (g_bytes_equal (sent, mpq_message_get_bytes (got)));
    }
  g_assert_true (mpq_queue_is_empty (queue, &error));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/Mpq/Payload/pair-sizes", test_pair_sizes);
  g_test_add_func ("/Mpq/Payload/pair-data-and-forward", test_pair_data_and_forward);
  g_test_add_func ("/Mpq/Payload/receive-json-inlines", test_receive_json_inlines);
  g_test_add_func ("/Mpq/Payload/child-echoes-by-descriptor", test_child_echoes_by_descriptor);
  g_test_add_func ("/Mpq/Payload/queue-parent", test_queue_parent);

  return g_test_run ();
}
