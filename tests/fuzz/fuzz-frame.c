/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* A queue control frame, as the queue's thread and a child read it
 * (_mpq_frame_parse, which reads in place without building nodes).
 *
 * An accepted frame must be what the plain reading says: a JSON object
 * (read with the JSON reader and built) with a string "op"; each integer
 * member it carries ("id", "tag", "timeout": the last one wins) holds the
 * value the frame took; a "msg" member decodes as a message with the same
 * request, pids and data. A refused frame has a protocol error. */

#include "config.h"

#include <pymulproc/pymulproc.h>

#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"
#include "mpq-codec-private.h"
#include "mpq-frame-private.h"
#include "mpq-json-private.h"

static void
check_int_member (JsonObject *object,
                  const char *name,
                  gint64      taken,
                  gint64      absent)
{
  JsonNode *node = json_object_get_member (object, name);

  if (node == NULL)
    {
      FUZZ_CHECK (taken == absent);
      return;
    }
  FUZZ_CHECK (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_INT64);
  FUZZ_CHECK (json_node_get_int (node) == taken);
}

static void
check_msg_member (JsonObject *object,
                  MpqMessage *taken)
{
  JsonNode *node = json_object_get_member (object, "msg");
  g_autoptr(GString) line = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) plain = NULL;
  JsonNode *a, *b;

  if (node == NULL)
    {
      FUZZ_CHECK (taken == NULL);
      return;
    }

  FUZZ_CHECK (taken != NULL);
  FUZZ_CHECK (_mpq_json_write (line, node, MPQ_MAX_DEPTH, &error));
  plain = _mpq_codec_decode (line->str, line->len, &error);
  FUZZ_CHECK (plain != NULL && error == NULL);
  FUZZ_CHECK (g_str_equal (mpq_message_get_request (plain), mpq_message_get_request (taken)));
  FUZZ_CHECK (mpq_message_get_sender_pid (plain) == mpq_message_get_sender_pid (taken));
  FUZZ_CHECK (mpq_message_get_recipient_pid (plain) == mpq_message_get_recipient_pid (taken));
  a = mpq_message_get_data (plain);
  b = mpq_message_get_data (taken);
  FUZZ_CHECK (a == NULL ? b == NULL : b != NULL && json_node_equal (a, b));
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  const char *line = (const char *) data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) plain = NULL;
  JsonObject *object;
  JsonNode *op;
  MpqFrame frame;

  if (memchr (line, '\n', size) != NULL)
    return 0;

  if (!_mpq_frame_parse (line, size, NULL, &frame, &error))
    {
      FUZZ_CHECK (g_error_matches (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL));
      FUZZ_CHECK (frame.message == NULL);
      return 0;
    }
  FUZZ_CHECK (error == NULL);

  /* The frame object is level 1 and a "msg" array counts as level 1 too,
   * as on a message line: one level more for the plain reading. */
  FUZZ_CHECK (_mpq_utf8_validate_len (line, size));
  plain = _mpq_json_parse (line, size, MPQ_MAX_DEPTH + 1, &error);
  FUZZ_CHECK (plain != NULL && error == NULL);
  FUZZ_CHECK (JSON_NODE_HOLDS_OBJECT (plain));
  object = json_node_get_object (plain);

  op = json_object_get_member (object, "op");
  FUZZ_CHECK (op != NULL && JSON_NODE_HOLDS_VALUE (op));
  FUZZ_CHECK (json_node_get_value_type (op) == G_TYPE_STRING);

  check_int_member (object, "id", frame.id, 0);
  check_int_member (object, "tag", frame.tag, 0);
  check_int_member (object, "timeout", frame.timeout, -1);
  check_msg_member (object, frame.message);

  _mpq_frame_clear (&frame);
  return 0;
}
