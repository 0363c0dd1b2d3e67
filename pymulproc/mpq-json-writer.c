/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The compact JSON writer (see mpq-json-private.h): what the reader reads
 * back as the same JsonNode, or an error. */

#include "config.h"

#include <math.h>
#include <string.h>

#include "mpq-error.h"
#include "mpq-json-private.h"

/* printf costs more than the rest of a short message together. */
void
_mpq_json_write_int (GString *out,
                     gint64   value)
{
  char digits[24];
  char *p = digits + sizeof digits;
  guint64 magnitude = value < 0 ? -(guint64) value : (guint64) value;

  do
    *--p = '0' + magnitude % 10;
  while ((magnitude /= 10) != 0);
  if (value < 0)
    *--p = '-';
  g_string_append_len (out, p, digits + sizeof digits - p);
}

void
_mpq_json_write_string (GString    *out,
                        const char *str)
{
  static const char hex[] = "0123456789abcdef";
  const char *run = str;
  const char *p;

  g_string_append_c (out, '"');
  for (p = str; *p != '\0'; p++)
    {
      guchar c = (guchar) *p;

      if (c >= 0x20 && c != '"' && c != '\\')
        continue;

      g_string_append_len (out, run, p - run);
      run = p + 1;
      switch (c)
        {
        case '"':  g_string_append_len (out, "\\\"", 2); break;
        case '\\': g_string_append_len (out, "\\\\", 2); break;
        case '\n': g_string_append_len (out, "\\n", 2); break;
        case '\r': g_string_append_len (out, "\\r", 2); break;
        case '\t': g_string_append_len (out, "\\t", 2); break;
        case '\b': g_string_append_len (out, "\\b", 2); break;
        case '\f': g_string_append_len (out, "\\f", 2); break;
        default:
          g_string_append_len (out, "\\u00", 4);
          g_string_append_c (out, hex[c >> 4]);
          g_string_append_c (out, hex[c & 0xf]);
          break;
        }
    }
  g_string_append_len (out, run, p - run);
  g_string_append_c (out, '"');
}

static gboolean
write_fail (GError     **error,
            const char  *what)
{
  g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL, "Data cannot be sent as JSON: %s", what);
  return FALSE;
}

/* The shortest form that reads back as the same double, and always reads
 * back as a double: 3.0 stays "3.0", never "3". */
static void
write_double (GString *out,
              double   value)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  static const char *formats[] = { "%.15g", "%.16g", "%.17g" };

  for (guint i = 0; i < G_N_ELEMENTS (formats); i++)
    {
      g_ascii_formatd (buf, sizeof buf, formats[i], value);
      if (g_ascii_strtod (buf, NULL) == value)
        break;
    }

  g_string_append (out, buf);
  if (strpbrk (buf, ".eE") == NULL)
    g_string_append (out, ".0");
}

static gboolean
write_node (GString   *out,
            JsonNode  *node,
            guint      depth,
            guint      max_depth,
            GError   **error)
{
  switch (json_node_get_node_type (node))
    {
    case JSON_NODE_OBJECT:
    case JSON_NODE_ARRAY:
      if (depth + 1 > max_depth)
        {
          g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                       "Data nests deeper than %u levels", max_depth);
          return FALSE;
        }

      if (JSON_NODE_HOLDS_ARRAY (node))
        {
          JsonArray *array = json_node_get_array (node);
          guint n = json_array_get_length (array);

          g_string_append_c (out, '[');
          for (guint i = 0; i < n; i++)
            {
              if (i > 0)
                g_string_append_c (out, ',');
              if (!write_node (out, json_array_get_element (array, i), depth + 1, max_depth, error))
                return FALSE;
            }
          g_string_append_c (out, ']');
        }
      else
        {
          JsonObjectIter iter;
          const char *name;
          JsonNode *member;
          gboolean first = TRUE;

          g_string_append_c (out, '{');
          json_object_iter_init_ordered (&iter, json_node_get_object (node));
          while (json_object_iter_next_ordered (&iter, &name, &member))
            {
              if (!first)
                g_string_append_c (out, ',');
              first = FALSE;
              if (!g_utf8_validate (name, -1, NULL))
                return write_fail (error, "member name is not UTF-8");
              _mpq_json_write_string (out, name);
              g_string_append_c (out, ':');
              if (!write_node (out, member, depth + 1, max_depth, error))
                return FALSE;
            }
          g_string_append_c (out, '}');
        }
      return TRUE;

    case JSON_NODE_NULL:
      g_string_append_len (out, "null", 4);
      return TRUE;

    case JSON_NODE_VALUE:
    default:
      break;
    }

  switch (json_node_get_value_type (node))
    {
    case G_TYPE_INT64:
      _mpq_json_write_int (out, json_node_get_int (node));
      return TRUE;

    case G_TYPE_DOUBLE:
      if (!isfinite (json_node_get_double (node)))
        return write_fail (error, "NaN and infinity have no JSON form");
      write_double (out, json_node_get_double (node));
      return TRUE;

    case G_TYPE_BOOLEAN:
      if (json_node_get_boolean (node))
        g_string_append_len (out, "true", 4);
      else
        g_string_append_len (out, "false", 5);
      return TRUE;

    case G_TYPE_STRING:
      {
        const char *str = json_node_get_string (node);

        if (str == NULL)
          str = "";
        if (!g_utf8_validate (str, -1, NULL))
          return write_fail (error, "string is not UTF-8");
        _mpq_json_write_string (out, str);
        return TRUE;
      }

    default:
      return write_fail (error, g_type_name (json_node_get_value_type (node)));
    }
}

/* Appends @node as compact JSON. On error @out may hold part of it: the
 * caller truncates. */
gboolean
_mpq_json_write (GString   *out,
                 JsonNode  *node,
                 guint      max_depth,
                 GError   **error)
{
  return write_node (out, node, 0, max_depth, error);
}
