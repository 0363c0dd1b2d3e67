/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The library's private wire codec, linked in from its objects: the queue's
 * thread only checks the lines children send (_mpq_codec_check) and the
 * parent decodes them later (_mpq_codec_decode, or from the shape the
 * check noted: _mpq_codec_decode_checked), so all must give the same
 * verdict, the same error, the same recipient and the same message for
 * every line.
 *
 * The queue's control frames are read without building JSON nodes
 * (_mpq_frame_parse); here they are also read the plain way, every member
 * built into a JsonNode and looked at, and both must agree. */

#include "config.h"

#include <pymulproc/pymulproc.h>

#include <fcntl.h>
#include <glib-unix.h>
#include <string.h>
#include <unistd.h>

#include "mpq-codec-private.h"
#include "mpq-frame-private.h"
#include "mpq-json-private.h"
#include "mpq-line-reader-private.h"
#include "mpq-test-fuzz.h"

static void
test_check_agrees_with_decode (void)
{
  static const char * const seeds[] = {
    "[\"DO\",1234,null,{\"value\":20,\"payload\":\"abcdefghijklmnop\"}]",
    "[\"FINISHED\",5,6,[1,-2.5e3,true,false,null,\"\\u00e9\\n\",{\"a\":[[{}]]}]]",
    "[ \"X\" , 7 , 8 , { \"k\" : [ 1 , 2 ] } ]",
    "[\"\\u0044O\",99,null,null]",
  };
  GRand *rand = g_rand_new_with_seed (99);
  guint iterations = mpq_test_fuzz_iterations ();
  guint accepted = 0;
  guint plain = 0;

  for (guint i = 0; i < iterations; i++)
    {
      g_autoptr(GString) line = mpq_test_fuzz_case (rand, seeds, G_N_ELEMENTS (seeds), i);
      g_autoptr(GError) check_error = NULL;
      g_autoptr(GError) decode_error = NULL;
      g_autoptr(MpqMessage) message = NULL;
      gint recipient = -1;
      gboolean checked;

      checked = _mpq_codec_check (line->str, line->len, &recipient, &check_error);
      message = _mpq_codec_decode (line->str, line->len, &decode_error);

      if (message == NULL)
        {
          g_assert_false (checked);
          g_assert_error (check_error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
          g_assert_error (decode_error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
          g_assert_cmpstr (check_error->message, ==, decode_error->message);
          continue;
        }

      g_assert_true (checked);
      g_assert_no_error (check_error);
      g_assert_cmpint (recipient, ==, mpq_message_get_recipient_pid (message));
      accepted++;

      /* The queue decodes a line its thread checked from its shape,
       * without a second parse: the same message. */
      {
        g_autoptr(MpqMessage) shaped = NULL;
        g_autofree char *expected = NULL;
        g_autofree char *got = NULL;
        MpqLineShape shape;

        g_assert_true (_mpq_codec_check_full (line->str, line->len, FALSE, &shape, NULL, NULL));
        shaped = _mpq_codec_decode_checked (line->str, line->len, &shape);
        expected = mpq_message_to_json (message, NULL);
        got = mpq_message_to_json (shaped, NULL);
        g_assert_cmpstr (got, ==, expected);
        plain += shape.plain;
      }
    }

  g_assert_cmpuint (accepted, >, iterations / 20);
  /* Both ways were taken: from the shape, and in full. */
  g_assert_cmpuint (plain, >, 0);
  g_assert_cmpuint (plain, <, accepted);
  g_rand_free (rand);
}

/* What a frame means, read the plain way: the member names as strings,
 * each value as a JsonNode, members in order. Errors say only "bad". */
static gboolean
reference_member (MpqJsonReader *reader,
                  MpqFrame      *frame,
                  const char    *key,
                  gboolean      *seen_op)
{
  static const char * const ops[] = {
    "hello", "msg", "none", "empty", "joined", "credit", "stopped", "get",
    "want", "cancel", "start", "stop", "ack", "back", "undo", "join",
  };
  static const char * const ints[] = { "id", "tag", "timeout", "prefetch", "n", "pid", "credit", "us" };
  gint64 *fields[] = { &frame->id, &frame->tag, &frame->timeout, &frame->prefetch,
                       &frame->n, &frame->pid, &frame->credit, &frame->us };
  g_autoptr(JsonNode) node = NULL;

  if (g_str_equal (key, "msg"))
    {
      g_clear_object (&frame->message);
      frame->message = _mpq_codec_read_message (reader, NULL, NULL);
      return frame->message != NULL;
    }

  reader->depth = 1;
  node = _mpq_json_read_value (reader);
  if (node == NULL)
    return FALSE;

  if (g_str_equal (key, "op"))
    {
      if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
        return FALSE;
      for (guint i = 0; i < G_N_ELEMENTS (ops); i++)
        if (g_str_equal (json_node_get_string (node), ops[i]))
          {
            frame->op = i;
            *seen_op = TRUE;
            return TRUE;
          }
      return FALSE;
    }

  if (g_str_equal (key, "value") || g_str_equal (key, "fds"))
    {
      if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
        return FALSE;
      *(g_str_equal (key, "fds") ? &frame->fds : &frame->value) = json_node_get_boolean (node);
      return TRUE;
    }

  for (guint i = 0; i < G_N_ELEMENTS (ints); i++)
    if (g_str_equal (key, ints[i]))
      {
        if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
          return FALSE;
        *fields[i] = json_node_get_int (node);
      }
  return TRUE;
}

static gboolean
reference_frame (const char *line,
                 gsize       length,
                 MpqFrame   *frame)
{
  MpqJsonReader reader;
  gboolean seen_op = FALSE;
  gboolean ok = FALSE;

  memset (frame, 0, sizeof *frame);
  frame->timeout = -1;
  frame->us = -1;
  if (!g_utf8_validate_len (line, length, NULL))
    return FALSE;

  _mpq_json_reader_init (&reader, line, length, 128, NULL);
  if (!_mpq_json_expect (&reader, '{'))
    goto out;
  if (!_mpq_json_expect (&reader, '}'))
    {
      do
        {
          g_autofree char *key = NULL;

          _mpq_json_skip_ws (&reader);
          if (reader.p >= reader.end || *reader.p != '"')
            goto out;
          key = _mpq_json_read_string (&reader);
          if (key == NULL || !_mpq_json_expect (&reader, ':')
              || !reference_member (&reader, frame, key, &seen_op))
            goto out;
        }
      while (_mpq_json_expect (&reader, ','));
      if (!_mpq_json_expect (&reader, '}'))
        goto out;
    }
  ok = _mpq_json_at_end (&reader) && seen_op;

out:
  _mpq_json_reader_clear (&reader);
  if (!ok)
    _mpq_frame_clear (frame);
  return ok;
}

static void
test_frame_agrees_with_reference (void)
{
  static const char * const seeds[] = {
    "{\"op\":\"ack\",\"tag\":12,\"us\":3}",
    "{\"op\":\"msg\",\"tag\":4294967295,\"id\":9,\"msg\":[\"DO\",1234,null,{\"value\":20}]}",
    "{ \"op\" : \"joined\" , \"id\" : -9223372036854775808 , \"value\" : true }",
    "{\"op\":\"empty\",\"id\":1,\"value\":false,\"extra\":[1,{\"a\":null}]}",
    "{\"\\u006fp\":\"get\",\"id\":9223372036854775807,\"timeout\":-1}",
    "{\"op\":\"start\",\"prefetch\":8,\"longer-than-fifteen-bytes\":1}",
    "{\"op\":\"hello\",\"pid\":77,\"n\":0,\"credit\":5}",
    "{\"op\":\"ack\",\"tag\":999999999999999999,\"us\":-0}",
    "{\"op\":\"ack\",\"tag\":1000000000000000000,\"us\":-12}",
  };
  GRand *rand = g_rand_new_with_seed (7);
  guint iterations = mpq_test_fuzz_iterations ();
  guint accepted = 0;

  for (guint i = 0; i < iterations; i++)
    {
      g_autoptr(GString) line = mpq_test_fuzz_case (rand, seeds, G_N_ELEMENTS (seeds), i);
      g_autoptr(GError) error = NULL;
      MpqFrame frame, expected;
      gboolean ok, expected_ok;

      ok = _mpq_frame_parse (line->str, line->len, NULL, &frame, &error);
      expected_ok = reference_frame (line->str, line->len, &expected);
      g_assert_cmpint (ok, ==, expected_ok);

      if (!ok)
        {
          g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
          continue;
        }

      g_assert_no_error (error);
      g_assert_cmpint (frame.op, ==, expected.op);
      g_assert_cmpint (frame.id, ==, expected.id);
      g_assert_cmpint (frame.tag, ==, expected.tag);
      g_assert_cmpint (frame.timeout, ==, expected.timeout);
      g_assert_cmpint (frame.prefetch, ==, expected.prefetch);
      g_assert_cmpint (frame.n, ==, expected.n);
      g_assert_cmpint (frame.pid, ==, expected.pid);
      g_assert_cmpint (frame.credit, ==, expected.credit);
      g_assert_cmpint (frame.us, ==, expected.us);
      g_assert_cmpint (frame.value, ==, expected.value);
      g_assert_cmpint (frame.fds, ==, expected.fds);
      g_assert_cmpint (frame.message != NULL, ==, expected.message != NULL);
      if (frame.message != NULL)
        {
          g_autofree char *got = mpq_message_to_json (frame.message, NULL);
          g_autofree char *want = mpq_message_to_json (expected.message, NULL);

          g_assert_cmpstr (got, ==, want);
        }
      _mpq_frame_clear (&frame);
      _mpq_frame_clear (&expected);
      accepted++;
    }

  g_assert_cmpuint (accepted, >, iterations / 20);
  g_rand_free (rand);
}

/* Pids, tags and ids are read in place when they are plain integers of at
 * most 18 digits; longer ones go to the general reader. A 19th digit used
 * to be read into the gint64 before the length was checked: signed
 * overflow (undefined behaviour, reported by UBSan) for any 19-digit value
 * of 2^63 or more, which a peer can send as any pid or frame integer. */
static void
test_plain_int_digits (void)
{
  static const struct
  {
    const char *text;
    gboolean    plain;
    gint64      value;
  } cases[] = {
    { "123456789012345678,", TRUE, G_GINT64_CONSTANT (123456789012345678) },
    { "-999999999999999999]", TRUE, G_GINT64_CONSTANT (-999999999999999999) },
    { "0}", TRUE, 0 },
    { "-0 ", TRUE, 0 },
    { "7\n", TRUE, 7 },
    { "9999999999999999999,", FALSE, 0 },
    { "-9223372036854775808,", FALSE, 0 },
    { "9223372036854775807}", FALSE, 0 },
    { "18446744073709551616]", FALSE, 0 },
    { "1234567890123456789012345678901234567890,", FALSE, 0 },
    { "01,", FALSE, 0 },
    { "1.5,", FALSE, 0 },
    { "1e3,", FALSE, 0 },
    { "-,", FALSE, 0 },
    { "12", FALSE, 0 },
    { "", FALSE, 0 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      MpqJsonReader reader;
      gint64 value = -42;
      gboolean plain;

      _mpq_json_reader_init (&reader, cases[i].text, strlen (cases[i].text), 8, NULL);
      plain = _mpq_json_try_plain_int (&reader, &value);
      g_assert_cmpint (plain, ==, cases[i].plain);
      if (plain)
        {
          g_assert_cmpint (value, ==, cases[i].value);
          g_assert_true (strchr (",]} \n", *reader.p) != NULL);
        }
      else
        {
          g_assert_true (reader.p == cases[i].text);
          g_assert_cmpint (value, ==, -42);
        }
      _mpq_json_reader_clear (&reader);
    }
}

/* The same 19-digit integers, where a peer puts them. */
static void
test_long_integers_from_peers (void)
{
  static const struct
  {
    const char *line;
    const char *error;
  } lines[] = {
    { "[\"DO\",9999999999999999999,null,null]",
      "Invalid JSON: integer out of 64-bit range" },
    { "[\"DO\",9223372036854775807,null,null]",
      "The sender pid 9223372036854775807 is not a positive pid" },
    { "[\"DO\",1,-9223372036854775808,null]",
      "The recipient pid -9223372036854775808 is not a positive pid" },
    { "[\"DO\",1,99999999999999999999,null]",
      "Invalid JSON: integer out of 64-bit range" },
  };
  static const char frame_line[] =
    "{\"op\":\"ack\",\"tag\":-9223372036854775808,\"id\":9223372036854775807,\"us\":1000000000000000000}";
  g_autoptr(GError) error = NULL;
  MpqFrame frame;

  for (guint i = 0; i < G_N_ELEMENTS (lines); i++)
    {
      g_autoptr(GError) check_error = NULL;
      g_autoptr(MpqMessage) message = NULL;
      gint recipient;

      message = _mpq_codec_decode (lines[i].line, strlen (lines[i].line), &error);
      g_assert_null (message);
      g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
      g_assert_cmpstr (error->message, ==, lines[i].error);
      g_clear_error (&error);

      g_assert_false (_mpq_codec_check (lines[i].line, strlen (lines[i].line),
                                        &recipient, &check_error));
      g_assert_error (check_error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
      g_assert_cmpstr (check_error->message, ==, lines[i].error);
    }

  g_assert_true (_mpq_frame_parse (frame_line, strlen (frame_line), NULL, &frame, &error));
  g_assert_no_error (error);
  g_assert_cmpint (frame.op, ==, MPQ_FRAME_ACK);
  g_assert_cmpint (frame.tag, ==, G_MININT64);
  g_assert_cmpint (frame.id, ==, G_MAXINT64);
  g_assert_cmpint (frame.us, ==, G_GINT64_CONSTANT (1000000000000000000));
  _mpq_frame_clear (&frame);
}

/* Writes @text into @fd and reads it into @reader as the pipe and the queue
 * do: fill until nothing is left to read. */
static void
feed (MpqLineReader *reader,
      int            fds[2],
      const char    *text)
{
  g_autoptr(GError) error = NULL;
  gsize length = strlen (text);
  MpqReadStatus status;

  g_assert_cmpint (write (fds[1], text, length), ==, (gssize) length);
  do
    status = _mpq_line_reader_fill (reader, fds[0], NULL, &error);
  while (status == MPQ_READ_DATA);
  g_assert_no_error (error);
  g_assert_cmpint (status, ==, MPQ_READ_AGAIN);
}

static void
assert_next_line (MpqLineReader *reader,
                  const char    *expected)
{
  g_autoptr(GError) error = NULL;
  const char *line = NULL;
  gsize length = 0;

  g_assert_true (_mpq_line_reader_next (reader, &line, &length, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (line, length, expected, strlen (expected));
}

static void
assert_no_line (MpqLineReader *reader)
{
  g_autoptr(GError) error = NULL;
  const char *line = NULL;
  gsize length = 0;

  g_assert_false (_mpq_line_reader_next (reader, &line, &length, &error));
  g_assert_no_error (error);
  g_assert_null (line);
}

/* A reader asked for a line before it read anything has no buffer yet:
 * every queue child's hello loop does this. Taking reader->data +
 * reader->start there was arithmetic on a NULL pointer (clang's UBSan
 * reports it). The same after the buffer is emptied and after a clear. */
static void
test_line_reader_before_read (void)
{
  g_autoptr(GError) error = NULL;
  MpqLineReader reader;
  const char *line = NULL;
  gsize length = 0;
  int fds[2];

  g_unix_open_pipe (fds, FD_CLOEXEC, &error);
  g_assert_no_error (error);
  g_unix_set_fd_nonblocking (fds[0], TRUE, &error);
  g_assert_no_error (error);
  _mpq_line_reader_init (&reader, 16);

  assert_no_line (&reader);
  g_assert_false (_mpq_line_reader_has_partial (&reader));

  feed (&reader, fds, "one\ntw");
  assert_next_line (&reader, "one");
  assert_no_line (&reader);
  g_assert_true (_mpq_line_reader_has_partial (&reader));
  feed (&reader, fds, "o\n\nthree\n");
  assert_next_line (&reader, "two");
  assert_next_line (&reader, "");
  assert_next_line (&reader, "three");
  assert_no_line (&reader);
  g_assert_false (_mpq_line_reader_has_partial (&reader));

  /* Longer than max_line (16), whole or not. */
  feed (&reader, fds, "0123456789abcdefX");
  g_assert_false (_mpq_line_reader_next (&reader, &line, &length, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE);
  g_clear_error (&error);

  _mpq_line_reader_clear (&reader);
  assert_no_line (&reader);
  feed (&reader, fds, "0123456789abcdef\n");
  assert_next_line (&reader, "0123456789abcdef");

  _mpq_line_reader_clear (&reader);
  assert_no_line (&reader);
  g_assert_no_errno (close (fds[0]));
  g_assert_no_errno (close (fds[1]));
}

/* Lines are checked as UTF-8 a word at a time, then byte by byte from the
 * first word with a byte >= 0x80 or a NUL: the same verdict as GLib's. */
static void
test_utf8_agrees_with_glib (void)
{
  static const guchar odd[] = { 0x00, 0x80, 0xbf, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0xff, 0xed, 0xa0 };
  GRand *rand = g_rand_new_with_seed (3);
  guint iterations = mpq_test_fuzz_iterations () * 4;

  for (guint i = 0; i < iterations; i++)
    {
      gsize length = g_rand_int_range (rand, 0, 40);
      g_autofree char *text = g_malloc (length + 1);

      for (gsize j = 0; j < length; j++)
        text[j] = g_rand_int_range (rand, 0, 30) == 0 ? (char) odd[g_rand_int_range (rand, 0, G_N_ELEMENTS (odd))]
                                                      : (char) g_rand_int_range (rand, 1, 0x80);
      text[length] = '\0';
      g_assert_cmpint (_mpq_utf8_validate_len (text, length), ==, g_utf8_validate_len (text, length, NULL));
    }
  g_rand_free (rand);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/Mpq/Codec/check-agrees-with-decode", test_check_agrees_with_decode);
  g_test_add_func ("/Mpq/Codec/frame-agrees-with-reference", test_frame_agrees_with_reference);
  g_test_add_func ("/Mpq/Codec/utf8-agrees-with-glib", test_utf8_agrees_with_glib);
  g_test_add_func ("/Mpq/Codec/plain-int-digits", test_plain_int_digits);
  g_test_add_func ("/Mpq/Codec/long-integers-from-peers", test_long_integers_from_peers);
  g_test_add_func ("/Mpq/Codec/line-reader-before-read", test_line_reader_before_read);

  return g_test_run ();
}
