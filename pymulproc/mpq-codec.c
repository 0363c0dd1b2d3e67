/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "mpq-codec-private.h"
#include "mpq-error.h"
#include "mpq-json-private.h"
#include "mpq-message-private.h"
#include "mpq-protocol.h"

static gboolean
protocol_error (GError     **error,
                const char  *message)
{
  if (error != NULL && *error == NULL)
    g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL, message);
  return FALSE;
}

/* A pid is a JSON integer in 1 … G_MAXINT; the recipient may be null (0). */
static gboolean
read_pid (MpqJsonReader  *reader,
          gboolean        nullable,
          gint           *pid,
          GError        **error)
{
  const char *what = nullable ? "The recipient pid" : "The sender pid";
  g_autoptr(JsonNode) node = NULL;
  gint64 value;

  /* Fast path for the usual plain positive integer; anything else takes
   * the general reader, which words the errors. */
  _mpq_json_skip_ws (reader);
  {
    const char *start = reader->p;

    if (_mpq_json_try_plain_int (reader, &value) && value > 0 && value <= G_MAXINT)
      {
        *pid = (gint) value;
        return TRUE;
      }
    reader->p = start;
  }

  /* The general reader builds, whatever the caller's mode: a pid is a
   * number, cheap to build, and its kind decides the error. */
  {
    gboolean build = reader->build;

    reader->build = TRUE;
    node = _mpq_json_read_value (reader);
    reader->build = build;
  }

  if (node == NULL)
    return FALSE;

  if (nullable && JSON_NODE_HOLDS_NULL (node))
    {
      *pid = 0;
      return TRUE;
    }

  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL, "%s is not an integer%s",
                   what, nullable ? " or null" : "");
      return FALSE;
    }

  value = json_node_get_int (node);
  if (value <= 0 || value > G_MAXINT)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                   "%s %" G_GINT64_FORMAT " is not a positive pid", what, value);
      return FALSE;
    }

  *pid = (gint) value;
  return TRUE;
}

/* A message line read in place: @data_text points into the line (NULL
 * for null data); @spaced tells that it holds whitespace. */
typedef struct
{
  char       *request;       /* owned; NULL when only checked */
  gint        sender_pid;
  gint        recipient_pid;
  const char *data_text;
  gsize       data_length;
  gboolean    spaced;
} MpqParts;

/* Reads one message array where @reader stands and leaves it after the
 * closing bracket; the caller checks what follows. Depth is counted from
 * the array, as on a message line. With reader->build off, everything is
 * checked and nothing built (parts->request stays NULL). */
static gboolean
read_parts (MpqJsonReader  *reader,
            MpqParts       *parts,
            GError        **error)
{
  memset (parts, 0, sizeof *parts);

  if (!_mpq_json_expect (reader, '['))
    goto not_an_array;
  reader->depth = 1;

  _mpq_json_skip_ws (reader);
  if (reader->end - reader->p < 2 || reader->p[0] != '"' || reader->p[1] == '"')
    return protocol_error (error, "The request is not a non-empty string");
  parts->request = _mpq_json_read_string (reader);
  if (parts->request == NULL)
    return FALSE;
  if (!reader->build)
    parts->request = NULL;

  if (!_mpq_json_expect (reader, ','))
    goto not_an_array;
  if (!read_pid (reader, FALSE, &parts->sender_pid, error))
    goto failed;

  if (!_mpq_json_expect (reader, ','))
    goto not_an_array;
  if (!read_pid (reader, TRUE, &parts->recipient_pid, error))
    goto failed;

  if (!_mpq_json_expect (reader, ','))
    goto not_an_array;

  /* The data is checked here and kept as text; its JsonNode is built
   * only if someone asks for it (see MpqMessage). */
  _mpq_json_skip_ws (reader);
  parts->data_text = reader->p;
  reader->spaced = FALSE;
  if (!_mpq_json_skip_value (reader))
    goto failed;
  parts->data_length = reader->p - parts->data_text;
  parts->spaced = reader->spaced;

  if (!_mpq_json_expect (reader, ']'))
    goto not_an_array;

  if (*parts->data_text == 'n')
    {
      parts->data_text = NULL;
      parts->data_length = 0;
    }
  return TRUE;

not_an_array:
  protocol_error (error, "Message is not an array of 4 elements");
failed:
  g_clear_pointer (&parts->request, g_free);
  return FALSE;
}

MpqMessage *
_mpq_codec_read_message (MpqJsonReader  *reader,
                         GError        **error)
{
  MpqParts parts;
  JsonNode *data;

  if (!read_parts (reader, &parts, error))
    return NULL;

  if (parts.data_text == NULL)
    return _mpq_message_new_take (parts.request, parts.sender_pid, parts.recipient_pid, NULL);
  if (!parts.spaced)
    return _mpq_message_new_take_text (parts.request, parts.sender_pid, parts.recipient_pid,
                                       g_strndup (parts.data_text, parts.data_length),
                                       parts.data_length);

  /* Not compact: built now, written compact when sent on. */
  data = _mpq_json_parse (parts.data_text, parts.data_length, reader->max_depth - 1, NULL);
  g_assert (data != NULL);
  return _mpq_message_new_take (parts.request, parts.sender_pid, parts.recipient_pid, data);
}

static gboolean
check_line (const char  *line,
            gsize        length,
            GError     **error)
{
  if (length == 0)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL, "Empty message line");
      return FALSE;
    }

  /* Once for the whole line; also refuses NUL bytes. */
  if (!_mpq_utf8_validate_len (line, length))
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                           "Message line is not valid UTF-8");
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_at_end (MpqJsonReader  *reader,
              GError        **error)
{
  if (_mpq_json_at_end (reader))
    return TRUE;
  protocol_error (error, "Trailing text after the message");
  return FALSE;
}

MpqMessage *
_mpq_codec_decode (const char  *line,
                   gsize        length,
                   GError     **error)
{
  MpqJsonReader reader;
  MpqMessage *message;

  if (!check_line (line, length, error))
    return NULL;

  _mpq_json_reader_init (&reader, line, length, MPQ_MAX_DEPTH, error);
  message = _mpq_codec_read_message (&reader, error);
  if (message != NULL && !check_at_end (&reader, error))
    g_clear_object (&message);
  _mpq_json_reader_clear (&reader);

  return message;
}

/* Checks a line as _mpq_codec_decode() would decode it, building nothing;
 * gives its recipient pid. */
gboolean
_mpq_codec_check (const char  *line,
                  gsize        length,
                  gint        *recipient_pid,
                  GError     **error)
{
  MpqJsonReader reader;
  MpqParts parts;
  gboolean ok;

  if (!check_line (line, length, error))
    return FALSE;

  _mpq_json_reader_init (&reader, line, length, MPQ_MAX_DEPTH, error);
  reader.build = FALSE;
  ok = read_parts (&reader, &parts, error) && check_at_end (&reader, error);
  _mpq_json_reader_clear (&reader);

  *recipient_pid = parts.recipient_pid;
  return ok;
}

gboolean
_mpq_codec_encode_outgoing (const MpqOutgoing  *outgoing,
                            GString            *out,
                            GError            **error)
{
  g_string_append_c (out, '[');
  _mpq_json_write_string (out, outgoing->request);
  g_string_append_c (out, ',');
  _mpq_json_write_int (out, outgoing->sender_pid);
  g_string_append_c (out, ',');
  if (outgoing->recipient_pid > 0)
    _mpq_json_write_int (out, outgoing->recipient_pid);
  else
    g_string_append_len (out, "null", 4);
  g_string_append_c (out, ',');

  if (outgoing->data_text != NULL)
    g_string_append_len (out, outgoing->data_text, outgoing->data_length);
  else if (outgoing->data == NULL)
    g_string_append_len (out, "null", 4);
  else if (!_mpq_json_write (out, outgoing->data, MPQ_MAX_DEPTH - 1, error))
    return FALSE;

  g_string_append_c (out, ']');
  return TRUE;
}

gboolean
_mpq_codec_encode (MpqMessage  *message,
                   GString     *out,
                   GError     **error)
{
  MpqOutgoing outgoing = {
    .request = mpq_message_get_request (message),
    .sender_pid = mpq_message_get_sender_pid (message),
    .recipient_pid = mpq_message_get_recipient_pid (message),
  };

  outgoing.data_text = _mpq_message_peek_data_text (message, &outgoing.data_length);
  if (outgoing.data_text == NULL)
    outgoing.data = mpq_message_get_data (message);
  return _mpq_codec_encode_outgoing (&outgoing, out, error);
}
