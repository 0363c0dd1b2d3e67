/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The strict JSON reader (see mpq-json-private.h): one value at a time
 * from a buffer, bounded in depth, built into JsonNodes or only checked. */

#include "config.h"

#include <math.h>
#include <string.h>

#include "mpq-error.h"
#include "mpq-json-private.h"

/* What the reader returns for a value it only checked (reader->build is
 * FALSE): the grammar, the limits and the errors are the same code. */
static int skipped_value;
#define SKIPPED ((JsonNode *) &skipped_value)

static gboolean
fail (MpqJsonReader *reader,
      const char    *what)
{
  if (reader->error != NULL && *reader->error == NULL)
    g_set_error (reader->error, MPQ_ERROR, MPQ_ERROR_PROTOCOL, "Invalid JSON: %s", what);
  return FALSE;
}

void
_mpq_json_reader_init (MpqJsonReader *reader,
                       const char    *text,
                       gsize          length,
                       guint          max_depth,
                       GError       **error)
{
  reader->p = text;
  reader->end = text + length;
  reader->error = error;
  reader->depth = 0;
  reader->max_depth = max_depth;
  reader->scratch = NULL;
  reader->build = TRUE;
  reader->spaced = FALSE;
}

void
_mpq_json_reader_clear (MpqJsonReader *reader)
{
  if (reader->scratch != NULL)
    g_string_free (g_steal_pointer (&reader->scratch), TRUE);
}

void
_mpq_json_skip_ws (MpqJsonReader *reader)
{
  const char *p = reader->p;

  while (p < reader->end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
    p++;
  if (p != reader->p)
    {
      reader->spaced = TRUE;
      reader->p = p;
    }
}

gboolean
_mpq_json_expect (MpqJsonReader *reader,
                  char           c)
{
  _mpq_json_skip_ws (reader);
  if (reader->p < reader->end && *reader->p == c)
    {
      reader->p++;
      return TRUE;
    }
  return FALSE;
}

gboolean
_mpq_json_at_end (MpqJsonReader *reader)
{
  _mpq_json_skip_ws (reader);
  return reader->p == reader->end;
}

/* The integer where @reader stands, when it is plainly one: -?[0-9]+ of
 * at most 18 digits without a leading zero, then a delimiter. Then @reader
 * moves past it; otherwise it stays and the general reader decides (and
 * words the error). Pids, tags and ids take this path. */
gboolean
_mpq_json_try_plain_int (MpqJsonReader *reader,
                         gint64        *value)
{
  const char *p = reader->p;
  const char *digits;
  gboolean negative = FALSE;
  gint64 magnitude = 0;

  if (p < reader->end && *p == '-')
    {
      negative = TRUE;
      p++;
    }
  digits = p;
  /* 18 digits at most fit a gint64 whatever they are; a 19th digit is not
   * a delimiter, so such a number goes to the general reader. */
  while (p < reader->end && p - digits < 18 && *p >= '0' && *p <= '9')
    magnitude = magnitude * 10 + (*p++ - '0');

  if (p == digits || (*digits == '0' && p - digits > 1) || p >= reader->end)
    return FALSE;
  if (*p != ',' && *p != ']' && *p != '}' && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
    return FALSE;

  reader->p = p;
  *value = negative ? -magnitude : magnitude;
  return TRUE;
}

/* g_utf8_validate_len () goes byte by byte; lines are nearly always
 * ASCII, which is checked here eight bytes at a time first. NUL bytes
 * are refused, as g_utf8_validate_len () refuses them. */
gboolean
_mpq_utf8_validate_len (const char *text,
                        gsize       length)
{
  const guint64 high = G_GUINT64_CONSTANT (0x8080808080808080);
  const guint64 ones = G_GUINT64_CONSTANT (0x0101010101010101);
  gsize i = 0;

  for (; i + 8 <= length; i += 8)
    {
      guint64 word;

      memcpy (&word, text + i, 8);
      /* A byte >= 0x80, or a zero byte (the classic has-zero test). */
      if ((word & high) != 0 || ((word - ones) & ~word & high) != 0)
        break;
    }

  return g_utf8_validate_len (text + i, length - i, NULL);
}

static gboolean
read_literal (MpqJsonReader *reader,
              const char    *word)
{
  gsize len = strlen (word);

  if ((gsize) (reader->end - reader->p) < len || memcmp (reader->p, word, len) != 0)
    return fail (reader, "unexpected character");

  reader->p += len;
  return TRUE;
}

static int
hex_digit (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static gboolean
read_hex4 (MpqJsonReader *reader,
           gunichar      *value)
{
  *value = 0;
  if (reader->end - reader->p < 4)
    return fail (reader, "short \\u escape");

  for (int i = 0; i < 4; i++)
    {
      int d = hex_digit (*reader->p++);

      if (d < 0)
        return fail (reader, "bad \\u escape");
      *value = (*value << 4) | (gunichar) d;
    }

  return TRUE;
}

static gboolean
read_escape (MpqJsonReader *reader,
             GString       *out)
{
  gunichar c;

  if (reader->p >= reader->end)
    return fail (reader, "unterminated string");

  switch (*reader->p++)
    {
    case '"':  g_string_append_c (out, '"'); return TRUE;
    case '\\': g_string_append_c (out, '\\'); return TRUE;
    case '/':  g_string_append_c (out, '/'); return TRUE;
    case 'b':  g_string_append_c (out, '\b'); return TRUE;
    case 'f':  g_string_append_c (out, '\f'); return TRUE;
    case 'n':  g_string_append_c (out, '\n'); return TRUE;
    case 'r':  g_string_append_c (out, '\r'); return TRUE;
    case 't':  g_string_append_c (out, '\t'); return TRUE;
    case 'u':
      if (!read_hex4 (reader, &c))
        return FALSE;

      if (c >= 0xD800 && c <= 0xDBFF)
        {
          gunichar low;

          if (reader->end - reader->p < 2 || reader->p[0] != '\\' || reader->p[1] != 'u')
            return fail (reader, "lone surrogate in \\u escape");
          reader->p += 2;
          if (!read_hex4 (reader, &low))
            return FALSE;
          if (low < 0xDC00 || low > 0xDFFF)
            return fail (reader, "lone surrogate in \\u escape");
          c = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00);
        }
      else if (c >= 0xDC00 && c <= 0xDFFF)
        return fail (reader, "lone surrogate in \\u escape");

      /* C strings end at NUL: "a\u0000b" cannot be kept whole, so it is
       * refused rather than cut to "a". */
      if (c == 0)
        return fail (reader, "\\u0000 is not supported in strings");

      g_string_append_unichar (out, c);
      return TRUE;

    default:
      return fail (reader, "bad escape in string");
    }
}

/* Reads a string; the opening quote is next. The text is valid UTF-8
 * already (checked once for the whole line). Without reader->build, the
 * string is checked and a non-NULL dummy returned (not to be freed). */
char *
_mpq_json_read_string (MpqJsonReader *reader)
{
  const char *start;

  if (!_mpq_json_expect (reader, '"'))
    {
      fail (reader, "expected a string");
      return NULL;
    }

  start = reader->p;
  while (reader->p < reader->end)
    {
      guchar c = (guchar) *reader->p;

      if (c == '"')
        {
          reader->p++;
          return reader->build ? g_strndup (start, reader->p - 1 - start) : (char *) SKIPPED;
        }
      if (c == '\\')
        break;
      if (c < 0x20)
        {
          fail (reader, "control character in string");
          return NULL;
        }
      reader->p++;
    }

  /* Escapes: the slow path. */
  if (reader->scratch == NULL)
    reader->scratch = g_string_sized_new (64);
  g_string_truncate (reader->scratch, 0);
  g_string_append_len (reader->scratch, start, reader->p - start);

  while (reader->p < reader->end)
    {
      guchar c = (guchar) *reader->p++;

      if (c == '"')
        return reader->build ? g_strndup (reader->scratch->str, reader->scratch->len)
                             : (char *) SKIPPED;
      if (c == '\\')
        {
          if (!read_escape (reader, reader->scratch))
            return NULL;
        }
      else if (c < 0x20)
        {
          fail (reader, "control character in string");
          return NULL;
        }
      else
        g_string_append_c (reader->scratch, (char) c);
    }

  fail (reader, "unterminated string");
  return NULL;
}

static JsonNode *
read_number (MpqJsonReader *reader)
{
  const char *start = reader->p;
  const char *p = reader->p;
  const char *end = reader->end;
  gboolean integer = TRUE;
  char stack_buf[64];
  g_autofree char *heap_buf = NULL;
  char *buf;
  gsize len;

  /* -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)? */
  if (p < end && *p == '-')
    p++;
  if (p < end && *p == '0')
    p++;
  else if (p < end && *p >= '1' && *p <= '9')
    while (p < end && g_ascii_isdigit (*p))
      p++;
  else
    return fail (reader, "bad number"), NULL;

  if (p < end && *p == '.')
    {
      integer = FALSE;
      p++;
      if (p >= end || !g_ascii_isdigit (*p))
        return fail (reader, "bad number"), NULL;
      while (p < end && g_ascii_isdigit (*p))
        p++;
    }

  if (p < end && (*p == 'e' || *p == 'E'))
    {
      integer = FALSE;
      p++;
      if (p < end && (*p == '+' || *p == '-'))
        p++;
      if (p >= end || !g_ascii_isdigit (*p))
        return fail (reader, "bad number"), NULL;
      while (p < end && g_ascii_isdigit (*p))
        p++;
    }

  reader->p = p;
  len = p - start;
  buf = len < sizeof stack_buf ? stack_buf : (heap_buf = g_malloc (len + 1));
  memcpy (buf, start, len);
  buf[len] = '\0';

  if (integer)
    {
      gboolean negative = buf[0] == '-';
      guint64 value = 0;

      /* Past 64 bits a number would change silently; it is refused. */
      for (const char *d = buf + negative; *d != '\0'; d++)
        {
          guint digit = *d - '0';

          if (value > (G_MAXUINT64 - digit) / 10)
            return fail (reader, "integer out of 64-bit range"), NULL;
          value = value * 10 + digit;
        }

      if (negative ? value > (guint64) G_MAXINT64 + 1 : value > (guint64) G_MAXINT64)
        return fail (reader, "integer out of 64-bit range"), NULL;

      if (!reader->build)
        return SKIPPED;
      return json_node_init_int (json_node_alloc (),
                                 negative ? (gint64) (0 - value) : (gint64) value);
    }
  else
    {
      double value = g_ascii_strtod (buf, NULL);

      if (!isfinite (value))
        return fail (reader, "number out of range"), NULL;

      if (!reader->build)
        return SKIPPED;
      return json_node_init_double (json_node_alloc (), value);
    }
}

static JsonNode *
read_array (MpqJsonReader *reader)
{
  JsonArray *array = reader->build ? json_array_new () : NULL;
  JsonNode *node = array != NULL ? json_node_init_array (json_node_alloc (), array) : SKIPPED;

  g_clear_pointer (&array, json_array_unref);
  if (_mpq_json_expect (reader, ']'))
    return node;

  do
    {
      JsonNode *element = _mpq_json_read_value (reader);

      if (element == NULL)
        goto failed;
      if (node != SKIPPED)
        json_array_add_element (json_node_get_array (node), element);
    }
  while (_mpq_json_expect (reader, ','));

  if (_mpq_json_expect (reader, ']'))
    return node;

  fail (reader, "expected , or ] in array");

failed:
  if (node != SKIPPED)
    json_node_unref (node);
  return NULL;
}

static JsonNode *
read_object (MpqJsonReader *reader)
{
  JsonObject *object = reader->build ? json_object_new () : NULL;
  JsonNode *node = object != NULL ? json_node_init_object (json_node_alloc (), object) : SKIPPED;

  g_clear_pointer (&object, json_object_unref);
  if (_mpq_json_expect (reader, '}'))
    return node;

  do
    {
      char *name = _mpq_json_read_string (reader);
      JsonNode *member;

      if (name == NULL)
        goto failed;
      if (!_mpq_json_expect (reader, ':'))
        {
          if (node != SKIPPED)
            g_free (name);
          fail (reader, "expected : in object");
          goto failed;
        }
      member = _mpq_json_read_value (reader);
      if (member != NULL && node != SKIPPED)
        json_object_set_member (json_node_get_object (node), name, member);
      if (node != SKIPPED)
        g_free (name);
      if (member == NULL)
        goto failed;
    }
  while (_mpq_json_expect (reader, ','));

  if (_mpq_json_expect (reader, '}'))
    return node;

  fail (reader, "expected , or } in object");

failed:
  if (node != SKIPPED)
    json_node_unref (node);
  return NULL;
}

JsonNode *
_mpq_json_read_value (MpqJsonReader *reader)
{
  JsonNode *node = NULL;

  _mpq_json_skip_ws (reader);
  if (reader->p >= reader->end)
    return fail (reader, "unexpected end"), NULL;

  switch (*reader->p)
    {
    case '{':
    case '[':
      if (++reader->depth > reader->max_depth)
        {
          g_set_error (reader->error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                       "JSON nests deeper than %u levels", reader->max_depth);
          return NULL;
        }
      reader->p++;
      node = *(reader->p - 1) == '[' ? read_array (reader) : read_object (reader);
      reader->depth--;
      return node;

    case '"':
      {
        char *str = _mpq_json_read_string (reader);

        if (str == NULL || !reader->build)
          return (JsonNode *) str;
        node = json_node_init_string (json_node_alloc (), str);
        g_free (str);
        return node;
      }

    case 't':
      if (!read_literal (reader, "true"))
        return NULL;
      return reader->build ? json_node_init_boolean (json_node_alloc (), TRUE) : SKIPPED;

    case 'f':
      if (!read_literal (reader, "false"))
        return NULL;
      return reader->build ? json_node_init_boolean (json_node_alloc (), FALSE) : SKIPPED;

    case 'n':
      if (!read_literal (reader, "null"))
        return NULL;
      return reader->build ? json_node_init_null (json_node_alloc ()) : SKIPPED;

    default:
      return read_number (reader);
    }
}

/* Checks one value where @reader stands, as _mpq_json_read_value() would
 * read it, without building it. */
gboolean
_mpq_json_skip_value (MpqJsonReader *reader)
{
  gboolean build = reader->build;
  JsonNode *node;

  reader->build = FALSE;
  node = _mpq_json_read_value (reader);
  reader->build = build;

  g_assert (node == NULL || node == SKIPPED);
  return node != NULL;
}

/* Parses @text, valid UTF-8 already, as exactly one JSON value. */
JsonNode *
_mpq_json_parse (const char  *text,
                 gsize        length,
                 guint        max_depth,
                 GError     **error)
{
  MpqJsonReader reader;
  JsonNode *node;

  _mpq_json_reader_init (&reader, text, length, max_depth, error);
  node = _mpq_json_read_value (&reader);
  if (node != NULL && !_mpq_json_at_end (&reader))
    {
      fail (&reader, "trailing text after the value");
      g_clear_pointer (&node, json_node_unref);
    }
  _mpq_json_reader_clear (&reader);

  return node;
}
