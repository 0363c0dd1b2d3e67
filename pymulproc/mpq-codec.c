/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "mpq-codec-private.h"
#include "mpq-error.h"
#include "mpq-message-private.h"
#include "mpq-protocol.h"

/*
 * json-glib 1.6's parser recurses once per level of nesting and has no
 * limit, so a line of 100,000 "[" would smash the stack. This scan bounds the
 * depth before the parser sees the line. It only has to track strings well
 * enough to ignore brackets inside them; the parser judges the rest.
 */
gboolean
_mpq_codec_check_depth (const char  *text,
                        gsize        length,
                        guint        max_depth,
                        GError     **error)
{
  const char *p = text;
  const char *end = text + length;
  guint depth = 0;

  while (p < end)
    {
      switch (*p)
        {
        case '"':
          for (p++; p < end && *p != '"'; p++)
            {
              if (*p == '\\')
                p++;
            }
          break;

        case '[':
        case '{':
          if (++depth > max_depth)
            {
              g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                           "Message nests deeper than %u levels", max_depth);
              return FALSE;
            }
          break;

        case ']':
        case '}':
          if (depth > 0)
            depth--;
          break;

        default:
          break;
        }

      p++;
    }

  return TRUE;
}

static gboolean
read_pid (JsonArray   *array,
          guint        index,
          gboolean     nullable,
          gint        *pid,
          GError     **error)
{
  JsonNode *node = json_array_get_element (array, index);
  const char *what = index == MPQ_S_PID_OFFSET ? "sender" : "recipient";
  gint64 value;

  if (nullable && JSON_NODE_HOLDS_NULL (node))
    {
      *pid = 0;
      return TRUE;
    }

  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                   "The %s pid is not an integer%s", what, nullable ? " or null" : "");
      return FALSE;
    }

  value = json_node_get_int (node);
  if (value <= 0 || value > G_MAXINT)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                   "The %s pid %" G_GINT64_FORMAT " is not a positive pid", what, value);
      return FALSE;
    }

  *pid = (gint) value;
  return TRUE;
}

MpqMessage *
_mpq_codec_decode (JsonParser  *parser,
                   const char  *line,
                   gsize        length,
                   GError     **error)
{
  g_autoptr(JsonParser) own_parser = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(GError) local_error = NULL;
  JsonArray *array;
  JsonNode *request_node;
  JsonNode *data_node;
  const char *request;
  gint sender_pid;
  gint recipient_pid;

  if (length == 0)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL, "Empty message line");
      return NULL;
    }

  if (!g_utf8_validate_len (line, length, NULL))
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                           "Message line is not valid UTF-8");
      return NULL;
    }

  if (!_mpq_codec_check_depth (line, length, MPQ_MAX_DEPTH, error))
    return NULL;

  if (parser == NULL)
    parser = own_parser = json_parser_new ();

  if (!json_parser_load_from_data (parser, line, length, &local_error))
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                   "Message line is not JSON: %s", local_error->message);
      return NULL;
    }

  root = json_parser_steal_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_ARRAY (root)
      || json_array_get_length (json_node_get_array (root)) != 4)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                           "Message is not an array of 4 elements");
      return NULL;
    }

  array = json_node_get_array (root);
  request_node = json_array_get_element (array, MPQ_S_PID_OFFSET - 1);
  if (!JSON_NODE_HOLDS_VALUE (request_node)
      || json_node_get_value_type (request_node) != G_TYPE_STRING
      || (request = json_node_get_string (request_node)) == NULL
      || request[0] == '\0')
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                           "The request is not a non-empty string");
      return NULL;
    }

  if (!read_pid (array, MPQ_S_PID_OFFSET, FALSE, &sender_pid, error) ||
      !read_pid (array, MPQ_R_PID_OFFSET, TRUE, &recipient_pid, error))
    return NULL;

  data_node = json_array_get_element (array, MPQ_S_PID_OFFSET + 2);

  return _mpq_message_new_take (g_strdup (request),
                                sender_pid,
                                recipient_pid,
                                JSON_NODE_HOLDS_NULL (data_node) ? NULL : json_node_copy (data_node));
}

void
_mpq_codec_append_string (GString    *out,
                          const char *str)
{
  static const char hex[] = "0123456789abcdef";
  const char *p;

  g_string_append_c (out, '"');
  for (p = str; *p != '\0'; p++)
    {
      guchar c = (guchar) *p;

      switch (c)
        {
        case '"':  g_string_append_len (out, "\\\"", 2); break;
        case '\\': g_string_append_len (out, "\\\\", 2); break;
        case '\n': g_string_append_len (out, "\\n", 2); break;
        case '\r': g_string_append_len (out, "\\r", 2); break;
        case '\t': g_string_append_len (out, "\\t", 2); break;
        default:
          if (c < 0x20)
            {
              g_string_append_len (out, "\\u00", 4);
              g_string_append_c (out, hex[c >> 4]);
              g_string_append_c (out, hex[c & 0xf]);
            }
          else
            g_string_append_c (out, (char) c);
          break;
        }
    }
  g_string_append_c (out, '"');
}

void
_mpq_codec_encode (MpqMessage *message,
                   GString    *out)
{
  JsonNode *data = mpq_message_get_data (message);
  gint recipient_pid = mpq_message_get_recipient_pid (message);

  g_string_append_c (out, '[');
  _mpq_codec_append_string (out, mpq_message_get_request (message));
  g_string_append_printf (out, ",%d,", mpq_message_get_sender_pid (message));
  if (recipient_pid > 0)
    g_string_append_printf (out, "%d,", recipient_pid);
  else
    g_string_append (out, "null,");

  if (data != NULL)
    {
      g_autofree char *text = json_to_string (data, FALSE);

      g_string_append (out, text);
    }
  else
    g_string_append (out, "null");

  g_string_append_c (out, ']');
}
