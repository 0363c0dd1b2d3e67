/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "mpq-codec-private.h"
#include "mpq-error.h"
#include "mpq-json-private.h"
#include "mpq-line-reader-private.h"
#include "mpq-message-private.h"
#include "mpq-payload-private.h"
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

typedef enum { PAYLOAD_NONE, PAYLOAD_BASE64, PAYLOAD_FD } PayloadKind;

/* A message line read in place: @data_text points into the line (NULL
 * for null data); @spaced tells that it holds whitespace. A fifth
 * element is a payload (docs/protocol.md): inline as base64 text, or the
 * size of a memfd that came with the line. */
typedef struct
{
  const char *request_text;  /* the request's text in the line, between */
  gsize       request_length; /* its quotes, escapes unread */
  char       *request;       /* owned; NULL when only checked */
  gint        sender_pid;
  gint        recipient_pid;
  const char *data_text;
  gsize       data_length;
  gboolean    spaced;
  PayloadKind payload;
  char       *base64;        /* owned; NULL when only checked */
  gsize       fd_size;
} MpqParts;

static void
parts_clear (MpqParts *parts)
{
  g_clear_pointer (&parts->request, g_free);
  g_clear_pointer (&parts->base64, g_free);
}

/* Strict base64 (RFC 4648, padded): g_base64_decode() skips what it does
 * not know, which would let a broken peer's bytes pass for a payload. */
static gboolean
is_base64 (const char *text)
{
  gsize length = strlen (text);
  gsize pad = 0;

  if (length % 4 != 0)
    return FALSE;
  while (pad < 2 && pad < length && text[length - 1 - pad] == '=')
    pad++;
  for (gsize i = 0; i < length - pad; i++)
    if (!g_ascii_isalnum (text[i]) && text[i] != '+' && text[i] != '/')
      return FALSE;
  return TRUE;
}

/* The fifth element: {"base64":"..."} or {"fd":N}, N > 0. */
static gboolean
read_payload (MpqJsonReader  *reader,
              MpqParts       *parts,
              gboolean        fds_ok,
              GError        **error)
{
  gboolean build = reader->build;
  g_autofree char *name = NULL;
  gint64 size;

  if (!_mpq_json_expect (reader, '{'))
    return protocol_error (error, "A message's payload is not an object");
  reader->build = TRUE;
  name = _mpq_json_read_string (reader);
  reader->build = build;
  if (name == NULL || !_mpq_json_expect (reader, ':'))
    return protocol_error (error, "A message's payload is not an object");

  if (g_str_equal (name, "base64"))
    {
      reader->build = TRUE;
      parts->base64 = _mpq_json_read_string (reader);
      reader->build = build;
      if (parts->base64 == NULL || !is_base64 (parts->base64))
        return protocol_error (error, "A message's payload is not base64");
      parts->payload = PAYLOAD_BASE64;
      if (!build)
        g_clear_pointer (&parts->base64, g_free);
    }
  else if (g_str_equal (name, "fd"))
    {
      if (!fds_ok)
        return protocol_error (error, "A payload by descriptor cannot come this way");
      _mpq_json_skip_ws (reader);
      if (!_mpq_json_try_plain_int (reader, &size) || size <= 0)
        return protocol_error (error, "A payload's size is not a positive integer");
      parts->payload = PAYLOAD_FD;
      parts->fd_size = (gsize) size;
    }
  else
    return protocol_error (error, "A message's payload is neither base64 nor fd");

  if (!_mpq_json_expect (reader, '}'))
    return protocol_error (error, "A message's payload has more than one member");
  return TRUE;
}

/* Reads one message array where @reader stands and leaves it after the
 * closing bracket; the caller checks what follows. Depth is counted from
 * the array, as on a message line. With reader->build off, everything is
 * checked and nothing built (parts->request stays NULL). */
static gboolean
read_parts (MpqJsonReader  *reader,
            MpqParts       *parts,
            gboolean        fds_ok,
            GError        **error)
{
  memset (parts, 0, sizeof *parts);

  if (!_mpq_json_expect (reader, '['))
    goto not_an_array;
  reader->depth = 1;

  _mpq_json_skip_ws (reader);
  if (reader->end - reader->p < 2 || reader->p[0] != '"' || reader->p[1] == '"')
    return protocol_error (error, "The request is not a non-empty string");
  parts->request_text = reader->p + 1;
  parts->request = _mpq_json_read_string (reader);
  if (parts->request == NULL)
    return FALSE;
  parts->request_length = reader->p - 1 - parts->request_text;
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

  _mpq_json_skip_ws (reader);
  if (reader->p < reader->end && *reader->p == ',')
    {
      reader->p++;
      if (!read_payload (reader, parts, fds_ok, error))
        goto failed;
    }

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
  parts_clear (parts);
  return FALSE;
}

/* The payload @parts read, as bytes: decoded from base64, or mapped from
 * the oldest descriptor in @fds (which it takes). */
static GBytes *
take_payload (MpqParts  *parts,
              GArray    *fds,
              GError   **error)
{
  gsize size;
  guchar *data;
  int fd;

  if (parts->payload == PAYLOAD_BASE64)
    {
      data = g_base64_decode (parts->base64, &size);
      return g_bytes_new_take (data, size);
    }

  fd = _mpq_fds_take_oldest (fds, error);
  return fd >= 0 ? _mpq_payload_map (fd, parts->fd_size, error) : NULL;
}

static MpqMessage *
message_from_parts (MpqJsonReader  *reader,
                    MpqParts       *parts)
{
  JsonNode *data;

  if (parts->data_text == NULL)
    return _mpq_message_new_take (parts->request, parts->sender_pid, parts->recipient_pid, NULL);
  if (!parts->spaced)
    return _mpq_message_new_take_text (parts->request, parts->sender_pid, parts->recipient_pid,
                                       g_strndup (parts->data_text, parts->data_length),
                                       parts->data_length);

  /* Not compact: built now, written compact when sent on. */
  data = _mpq_json_parse (parts->data_text, parts->data_length, reader->max_depth - 1, NULL);
  g_assert (data != NULL);
  return _mpq_message_new_take (parts->request, parts->sender_pid, parts->recipient_pid, data);
}

/* A message array where @reader stands, with its payload if it has one:
 * inline, or by descriptor, the oldest in @fds (NULL: none may come). */
static MpqMessage *
read_message (MpqJsonReader  *reader,
              GArray         *fds,
              GError        **error)
{
  g_autoptr(GBytes) payload = NULL;
  MpqParts parts;
  MpqMessage *message;

  if (!read_parts (reader, &parts, fds != NULL, error))
    return NULL;

  if (parts.payload != PAYLOAD_NONE && (payload = take_payload (&parts, fds, error)) == NULL)
    {
      parts_clear (&parts);
      return NULL;
    }
  g_clear_pointer (&parts.base64, g_free);

  message = message_from_parts (reader, &parts);
  if (payload != NULL)
    _mpq_message_set_payload (message, payload);
  return message;
}

/* A line that was checked, whose payload cannot be had (out of
 * descriptors or of address space): its message without the payload. */
MpqMessage *
_mpq_codec_decode_dropping_payload (const char *line,
                                    gsize       length)
{
  MpqJsonReader reader;
  MpqParts parts;
  MpqMessage *message = NULL;

  _mpq_json_reader_init (&reader, line, length, MPQ_MAX_DEPTH, NULL);
  if (read_parts (&reader, &parts, TRUE, NULL))
    {
      g_clear_pointer (&parts.base64, g_free);
      message = message_from_parts (&reader, &parts);
    }
  _mpq_json_reader_clear (&reader);
  return message;
}

/* A message inside a queue's "msg" frame; its payload by descriptor is
 * the oldest in @fds (NULL: none may come that way). */
MpqMessage *
_mpq_codec_read_message (MpqJsonReader  *reader,
                         GArray         *fds,
                         GError        **error)
{
  return read_message (reader, fds, error);
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

/* Decodes one message line, with its payload if it has one: inline, or
 * as a descriptor, the oldest in @fds (NULL: none may come), which it
 * takes. */
MpqMessage *
_mpq_codec_decode_full (const char  *line,
                        gsize        length,
                        GArray      *fds,
                        GError     **error)
{
  MpqJsonReader reader;
  MpqMessage *message;

  if (!check_line (line, length, error))
    return NULL;

  _mpq_json_reader_init (&reader, line, length, MPQ_MAX_DEPTH, error);
  message = read_message (&reader, fds, error);
  if (message != NULL && !check_at_end (&reader, error))
    g_clear_object (&message);
  _mpq_json_reader_clear (&reader);

  return message;
}

/* Decodes one message line as _mpq_codec_check() checks it: a payload
 * inline only (what a queue carries, and mpq_message_new_from_json()). */
MpqMessage *
_mpq_codec_decode (const char  *line,
                   gsize        length,
                   GError     **error)
{
  return _mpq_codec_decode_full (line, length, NULL, error);
}

/* What @parts, read from @line, tell a later decode. */
static void
shape_from_parts (const char   *line,
                  MpqParts     *parts,
                  MpqLineShape *shape)
{
  shape->sender_pid = parts->sender_pid;
  shape->recipient_pid = parts->recipient_pid;
  shape->plain = parts->payload == PAYLOAD_NONE && !parts->spaced &&
                 memchr (parts->request_text, '\\', parts->request_length) == NULL &&
                 parts->data_length <= G_MAXUINT32;
  shape->request_start = (guint32) (parts->request_text - line);
  shape->request_length = (guint32) parts->request_length;
  shape->data_start = parts->data_text != NULL ? (guint32) (parts->data_text - line) : 0;
  shape->data_length = (guint32) parts->data_length;
}

/* Checks a line as _mpq_codec_decode_full() would decode it, building
 * nothing; gives its @shape (its pids, and where its parts are) and, in
 * @fd_size, the size of a payload that comes by descriptor (0: none;
 * such a payload is allowed only if @fds_ok). */
gboolean
_mpq_codec_check_full (const char    *line,
                       gsize          length,
                       gboolean       fds_ok,
                       MpqLineShape  *shape,
                       gsize         *fd_size,
                       GError       **error)
{
  MpqJsonReader reader;
  MpqParts parts;
  gboolean ok;

  if (!check_line (line, length, error))
    return FALSE;

  _mpq_json_reader_init (&reader, line, length, MPQ_MAX_DEPTH, error);
  reader.build = FALSE;
  ok = read_parts (&reader, &parts, fds_ok, error) && check_at_end (&reader, error);
  _mpq_json_reader_clear (&reader);
  parts_clear (&parts);

  if (ok)
    shape_from_parts (line, &parts, shape);
  else
    memset (shape, 0, sizeof *shape);
  if (fd_size != NULL)
    *fd_size = parts.payload == PAYLOAD_FD ? parts.fd_size : 0;
  return ok;
}

/* Checks a line as _mpq_codec_decode() would decode it. */
gboolean
_mpq_codec_check (const char  *line,
                  gsize        length,
                  gint        *recipient_pid,
                  GError     **error)
{
  MpqLineShape shape;
  gboolean ok = _mpq_codec_check_full (line, length, FALSE, &shape, NULL, error);

  *recipient_pid = shape.recipient_pid;
  return ok;
}

/* Decodes @line, @length bytes that _mpq_codec_check_full () checked
 * and shaped as @shape says (inline payloads only). A plain line is not
 * read again: its request and data are copied from where they are. */
MpqMessage *
_mpq_codec_decode_checked (const char         *line,
                           gsize               length,
                           const MpqLineShape *shape)
{
  char *request;

  if (!shape->plain)
    return _mpq_codec_decode (line, length, NULL);

  request = g_strndup (line + shape->request_start, shape->request_length);
  if (shape->data_length == 0)
    return _mpq_message_new_take (request, shape->sender_pid, shape->recipient_pid, NULL);
  return _mpq_message_new_take_text (request, shape->sender_pid, shape->recipient_pid,
                                     g_strndup (line + shape->data_start, shape->data_length),
                                     shape->data_length);
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

  if (outgoing->payload != NULL && outgoing->payload_by_fd)
    g_string_append_printf (out, ",{\"fd\":%" G_GSIZE_FORMAT "}",
                            g_bytes_get_size (outgoing->payload));
  else if (outgoing->payload != NULL)
    {
      gsize size;
      const guchar *data = g_bytes_get_data (outgoing->payload, &size);
      g_autofree char *text = g_base64_encode (data, size);

      g_string_append (out, ",{\"base64\":\"");
      g_string_append (out, text);
      g_string_append (out, "\"}");
    }

  g_string_append_c (out, ']');
  return TRUE;
}

gboolean
_mpq_codec_encode (MpqMessage  *message,
                   GString     *out,
                   GError     **error)
{
  return _mpq_codec_encode_full (message, FALSE, out, error);
}

/* @payload_by_fd: the message's payload is said to come as a memfd. */
gboolean
_mpq_codec_encode_full (MpqMessage  *message,
                        gboolean     payload_by_fd,
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
  outgoing.payload = mpq_message_get_bytes (message);
  outgoing.payload_by_fd = payload_by_fd;
  return _mpq_codec_encode_outgoing (&outgoing, out, error);
}
