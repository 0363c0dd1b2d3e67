/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* A peer's message line, as the pipe and the queue read it.
 *
 * - _mpq_codec_decode () (what the queue decodes) and _mpq_codec_check ()
 *   (what the queue's thread runs on every child line) give the same
 *   verdict, the same error and the same recipient;
 * - a payload (inline) writes and reads back the same bytes;
 * - a line that decodes has data that reads back as a JsonNode; that node
 *   encodes (through the JSON writer, not the text that came), and the
 *   encoding decodes to an equal message: decode(encode(decode(x))) equals
 *   decode(x), and encoding that again gives the same text. */

#include "config.h"

#include <pymulproc/pymulproc.h>

#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"
#include "mpq-codec-private.h"

static gboolean
nodes_equal (JsonNode *a,
             JsonNode *b)
{
  if (a == NULL || b == NULL)
    return a == b;
  return json_node_equal (a, b);
}

/* The message's data re-encoded by the writer: a new message from the
 * data's JsonNode keeps no text. */
static char *
encode_from_node (MpqMessage *message,
                  JsonNode   *data)
{
  g_autoptr(MpqMessage) copy = NULL;

  copy = mpq_message_new (mpq_message_get_request (message),
                          mpq_message_get_sender_pid (message),
                          mpq_message_get_recipient_pid (message),
                          data);
  return mpq_message_to_json (copy, NULL);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  const char *line = (const char *) data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) check_error = NULL;
  g_autoptr(MpqMessage) message = NULL;
  g_autoptr(MpqMessage) again = NULL;
  g_autofree char *as_came = NULL;
  g_autofree char *encoded = NULL;
  g_autofree char *encoded_again = NULL;
  JsonNode *node;
  gint recipient = -1;
  gboolean checked;

  /* One line, as the line reader hands them out: no newline inside. */
  if (memchr (line, '\n', size) != NULL)
    return 0;

  message = _mpq_codec_decode (line, size, &error);
  checked = _mpq_codec_check (line, size, &recipient, &check_error);

  if (message == NULL)
    {
      FUZZ_CHECK (!checked);
      FUZZ_CHECK (g_error_matches (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL));
      FUZZ_CHECK (g_error_matches (check_error, MPQ_ERROR, MPQ_ERROR_PROTOCOL));
      FUZZ_CHECK (g_str_equal (error->message, check_error->message));
      return 0;
    }

  FUZZ_CHECK (error == NULL && checked && check_error == NULL);
  FUZZ_CHECK (recipient == mpq_message_get_recipient_pid (message));
  FUZZ_CHECK (mpq_message_get_sender_pid (message) > 0);
  FUZZ_CHECK (mpq_message_get_request (message)[0] != '\0');

  /* A payload (inline: base64) writes and reads back the same bytes. */
  if (mpq_message_get_bytes (message) != NULL)
    {
      g_autofree char *text = mpq_message_to_json (message, NULL);
      g_autoptr(MpqMessage) back = NULL;

      FUZZ_CHECK (text != NULL);
      back = mpq_message_new_from_json (text, -1, NULL);
      FUZZ_CHECK (back != NULL);
      FUZZ_CHECK (g_bytes_equal (mpq_message_get_bytes (back), mpq_message_get_bytes (message)));
    }

  /* As it came (compact data is kept as its text). */
  as_came = mpq_message_to_json (message, NULL);
  FUZZ_CHECK (as_came != NULL);

  node = mpq_message_get_data (message);
  encoded = encode_from_node (message, node);
  FUZZ_CHECK (encoded != NULL);

  again = mpq_message_new_from_json (encoded, -1, &error);
  FUZZ_CHECK (again != NULL && error == NULL);
  FUZZ_CHECK (g_str_equal (mpq_message_get_request (again), mpq_message_get_request (message)));
  FUZZ_CHECK (mpq_message_get_sender_pid (again) == mpq_message_get_sender_pid (message));
  FUZZ_CHECK (mpq_message_get_recipient_pid (again) == mpq_message_get_recipient_pid (message));
  FUZZ_CHECK (nodes_equal (mpq_message_get_data (again), node));

  encoded_again = encode_from_node (again, mpq_message_get_data (again));
  FUZZ_CHECK (encoded_again != NULL && g_str_equal (encoded_again, encoded));

  /* The text as it came decodes to the same message too. */
  {
    g_autoptr(MpqMessage) from_text = mpq_message_new_from_json (as_came, -1, &error);

    FUZZ_CHECK (from_text != NULL && error == NULL);
    FUZZ_CHECK (nodes_equal (mpq_message_get_data (from_text), node));
  }

  return 0;
}
