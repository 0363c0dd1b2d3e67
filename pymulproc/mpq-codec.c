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
  if (reader->p < reader->end && *reader->p >= '1' && *reader->p <= '9')
    {
      const char *p = reader->p;
      gint64 fast = 0;

      while (p < reader->end && *p >= '0' && *p <= '9' && fast <= G_MAXINT)
        fast = fast * 10 + (*p++ - '0');
      if (p < reader->end && fast <= G_MAXINT &&
          (*p == ',' || *p == ']' || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        {
          reader->p = p;
          *pid = (gint) fast;
          return TRUE;
        }
    }

  node = _mpq_json_read_value (reader);

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

/* Reads one message array where @reader stands and leaves it after the
 * closing bracket; the caller checks what follows. Depth is counted from
 * the array, as on a message line. */
MpqMessage *
_mpq_codec_read_message (MpqJsonReader  *reader,
                         GError        **error)
{
  g_autofree char *request = NULL;
  const char *data_start;
  gsize data_length;
  gint sender_pid;
  gint recipient_pid;

  if (!_mpq_json_expect (reader, '['))
    goto not_an_array;
  reader->depth = 1;

  _mpq_json_skip_ws (reader);
  if (reader->p >= reader->end || *reader->p != '"')
    return protocol_error (error, "The request is not a non-empty string"), NULL;
  request = _mpq_json_read_string (reader);
  if (request == NULL)
    return NULL;
  if (request[0] == '\0')
    return protocol_error (error, "The request is not a non-empty string"), NULL;

  if (!_mpq_json_expect (reader, ','))
    goto not_an_array;
  if (!read_pid (reader, FALSE, &sender_pid, error))
    return NULL;

  if (!_mpq_json_expect (reader, ','))
    goto not_an_array;
  if (!read_pid (reader, TRUE, &recipient_pid, error))
    return NULL;

  if (!_mpq_json_expect (reader, ','))
    goto not_an_array;

  /* The data is checked here and kept as text; its JsonNode is built
   * only if someone asks for it (see MpqMessage). */
  _mpq_json_skip_ws (reader);
  data_start = reader->p;
  reader->spaced = FALSE;
  if (!_mpq_json_skip_value (reader))
    return NULL;
  data_length = reader->p - data_start;

  if (reader->spaced)
    {
      /* Not compact: built now, written compact when sent on. */
      JsonNode *data = _mpq_json_parse (data_start, data_length, reader->max_depth - 1, error);

      if (data == NULL)
        return NULL;
      if (!_mpq_json_expect (reader, ']'))
        {
          json_node_unref (data);
          goto not_an_array;
        }
      if (JSON_NODE_HOLDS_NULL (data))
        g_clear_pointer (&data, json_node_unref);
      return _mpq_message_new_take (g_steal_pointer (&request), sender_pid, recipient_pid, data);
    }

  if (!_mpq_json_expect (reader, ']'))
    goto not_an_array;

  if (*data_start == 'n')
    return _mpq_message_new_take (g_steal_pointer (&request), sender_pid, recipient_pid, NULL);
  return _mpq_message_new_take_text (g_steal_pointer (&request), sender_pid, recipient_pid,
                                     g_strndup (data_start, data_length), data_length);

not_an_array:
  protocol_error (error, "Message is not an array of 4 elements");
  return NULL;
}

MpqMessage *
_mpq_codec_decode (const char  *line,
                   gsize        length,
                   GError     **error)
{
  MpqJsonReader reader;
  MpqMessage *message;

  if (length == 0)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL, "Empty message line");
      return NULL;
    }

  /* Once for the whole line; also refuses NUL bytes. */
  if (!g_utf8_validate_len (line, length, NULL))
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                           "Message line is not valid UTF-8");
      return NULL;
    }

  _mpq_json_reader_init (&reader, line, length, MPQ_MAX_DEPTH, error);
  message = _mpq_codec_read_message (&reader, error);
  if (message != NULL && !_mpq_json_at_end (&reader))
    {
      g_clear_object (&message);
      protocol_error (error, "Trailing text after the message");
    }
  _mpq_json_reader_clear (&reader);

  return message;
}

gboolean
_mpq_codec_encode (MpqMessage  *message,
                   GString     *out,
                   GError     **error)
{
  gint recipient_pid = mpq_message_get_recipient_pid (message);
  gsize text_length;
  const char *text = _mpq_message_peek_data_text (message, &text_length);
  JsonNode *data = text == NULL ? mpq_message_get_data (message) : NULL;

  g_string_append_c (out, '[');
  _mpq_json_write_string (out, mpq_message_get_request (message));
  g_string_append_c (out, ',');
  _mpq_json_write_int (out, mpq_message_get_sender_pid (message));
  g_string_append_c (out, ',');
  if (recipient_pid > 0)
    _mpq_json_write_int (out, recipient_pid);
  else
    g_string_append_len (out, "null", 4);
  g_string_append_c (out, ',');

  if (text != NULL)
    g_string_append_len (out, text, text_length);
  else if (data == NULL)
    g_string_append_len (out, "null", 4);
  else if (!_mpq_json_write (out, data, MPQ_MAX_DEPTH - 1, error))
    return FALSE;

  g_string_append_c (out, ']');
  return TRUE;
}
