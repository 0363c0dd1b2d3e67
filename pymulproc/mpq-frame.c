/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "mpq-codec-private.h"
#include "mpq-error.h"
#include "mpq-frame-private.h"
#include "mpq-debug-private.h"
#include "mpq-json-private.h"
#include "mpq-protocol.h"

/* The frame table: every op's name and the members it carries, in the
 * order its writer takes them. The parser and the writers both use it, so
 * no op or member name is spelled anywhere else. */
typedef enum
{
  MEMBER_END,
  MEMBER_ID,
  MEMBER_TAG,
  MEMBER_TIMEOUT,
  MEMBER_PREFETCH,
  MEMBER_N,
  MEMBER_PID,
  MEMBER_CREDIT,
  MEMBER_US,
  MEMBER_MAX,
  MEMBER_VALUE,    /* the booleans, from here on; the others are integers */
  MEMBER_FDS,
} Member;

static const struct { const char *name; gsize offset; } members[] = {
  [MEMBER_ID] = { "id", G_STRUCT_OFFSET (MpqFrame, id) },
  [MEMBER_TAG] = { "tag", G_STRUCT_OFFSET (MpqFrame, tag) },
  [MEMBER_TIMEOUT] = { "timeout", G_STRUCT_OFFSET (MpqFrame, timeout) },
  [MEMBER_PREFETCH] = { "prefetch", G_STRUCT_OFFSET (MpqFrame, prefetch) },
  [MEMBER_N] = { "n", G_STRUCT_OFFSET (MpqFrame, n) },
  [MEMBER_PID] = { "pid", G_STRUCT_OFFSET (MpqFrame, pid) },
  [MEMBER_CREDIT] = { "credit", G_STRUCT_OFFSET (MpqFrame, credit) },
  [MEMBER_US] = { "us", G_STRUCT_OFFSET (MpqFrame, us) },
  [MEMBER_MAX] = { "max", G_STRUCT_OFFSET (MpqFrame, max) },
  [MEMBER_VALUE] = { "value", G_STRUCT_OFFSET (MpqFrame, value) },
  [MEMBER_FDS] = { "fds", G_STRUCT_OFFSET (MpqFrame, fds) },
};

static const struct { const char *name; Member members[4]; } ops[] = {
  [MPQ_FRAME_HELLO] = { "hello", { MEMBER_PID, MEMBER_FDS, MEMBER_CREDIT, MEMBER_MAX } },
  [MPQ_FRAME_MSG] = { "msg", { MEMBER_END } },   /* _mpq_frame_write_msg () */
  [MPQ_FRAME_NONE] = { "none", { MEMBER_ID } },
  [MPQ_FRAME_EMPTY] = { "empty", { MEMBER_ID, MEMBER_VALUE } },
  [MPQ_FRAME_JOINED] = { "joined", { MEMBER_ID, MEMBER_VALUE } },
  [MPQ_FRAME_CREDIT] = { "credit", { MEMBER_N } },
  [MPQ_FRAME_STOPPED] = { "stopped", { MEMBER_ID } },
  [MPQ_FRAME_GET] = { "get", { MEMBER_ID, MEMBER_TIMEOUT } },
  [MPQ_FRAME_WANT] = { "want", { MEMBER_ID, MEMBER_TIMEOUT } },
  [MPQ_FRAME_CANCEL] = { "cancel", { MEMBER_ID } },
  [MPQ_FRAME_START] = { "start", { MEMBER_PREFETCH } },
  [MPQ_FRAME_STOP] = { "stop", { MEMBER_ID } },
  [MPQ_FRAME_ACK] = { "ack", { MEMBER_TAG, MEMBER_US } },
  [MPQ_FRAME_BACK] = { "back", { MEMBER_TAG } },
  [MPQ_FRAME_UNDO] = { "undo", { MEMBER_TAG } },
  [MPQ_FRAME_JOIN] = { "join", { MEMBER_ID, MEMBER_TIMEOUT } },
  [MPQ_FRAME_LIMITS] = { "limits", { MEMBER_MAX } },
};

static gboolean
frame_error (GError     **error,
             const char  *message)
{
  if (error != NULL && *error == NULL)
    g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL, "Bad control frame: %s", message);
  return FALSE;
}

/* Reads a string, a member name or an op, into @buf when it is shorter
 * than @size bytes, else as "" (which names nothing). Names without
 * escapes, all of ours, are copied from where they lie: no allocation per
 * member on the path every ack takes. */
static gboolean
read_name (MpqJsonReader *reader,
           char          *buf,
           gsize          size)
{
  g_autofree char *escaped = NULL;
  const char *start;
  const char *q;
  gsize length;

  _mpq_json_skip_ws (reader);
  if (reader->p >= reader->end || *reader->p != '"')
    return frame_error (reader->error, "expected a string");

  start = reader->p + 1;
  for (q = start; q < reader->end && *q != '"' && *q != '\\' && (guchar) *q >= 0x20; q++)
    ;

  if (q < reader->end && *q == '"')
    {
      length = q - start;
      reader->p = q + 1;
    }
  else
    {
      /* Escapes, or text the reader refuses: it says which. */
      escaped = _mpq_json_read_string (reader);
      if (escaped == NULL)
        return FALSE;
      start = escaped;
      length = strlen (escaped);
    }

  if (length >= size)
    length = 0;
  memcpy (buf, start, length);
  buf[length] = '\0';
  return TRUE;
}

static gboolean
read_op (MpqJsonReader *reader,
         MpqFrame      *frame,
         gboolean      *seen_op)
{
  char name[16];

  _mpq_json_skip_ws (reader);
  if (reader->p >= reader->end || *reader->p != '"')
    return frame_error (reader->error, "\"op\" is not a string");
  if (!read_name (reader, name, sizeof name))
    return FALSE;

  for (guint i = 0; i < G_N_ELEMENTS (ops); i++)
    if (g_str_equal (name, ops[i].name))
      {
        frame->op = i;
        *seen_op = TRUE;
        return TRUE;
      }

  return frame_error (reader->error, "unknown \"op\"");
}

static gint64 *
int_member (MpqFrame   *frame,
            const char *key)
{
  for (guint i = MEMBER_ID; i < MEMBER_VALUE; i++)
    if (g_str_equal (key, members[i].name))
      return G_STRUCT_MEMBER_P (frame, members[i].offset);

  return NULL;
}

/* Reads the value of @key into @frame; unknown members are checked and
 * dropped, so frames can grow without breaking older peers. */
static gboolean *
bool_member (MpqFrame   *frame,
             const char *key)
{
  for (guint i = MEMBER_VALUE; i < G_N_ELEMENTS (members); i++)
    if (g_str_equal (key, members[i].name))
      return G_STRUCT_MEMBER_P (frame, members[i].offset);

  return NULL;
}

static gboolean
read_member (MpqJsonReader *reader,
             MpqFrame      *frame,
             GArray        *fds,
             const char    *key,
             gboolean      *seen_op)
{
  g_autoptr(JsonNode) node = NULL;
  gboolean *boolean;
  gint64 *member;

  if (g_str_equal (key, "op"))
    return read_op (reader, frame, seen_op);

  if (g_str_equal (key, "msg"))
    {
      const char *start;

      g_clear_object (&frame->message);
      _mpq_json_skip_ws (reader);
      start = reader->p;
      frame->message = _mpq_codec_read_message (reader, fds, reader->error);
      frame->msg_length = reader->p - start;
      return frame->message != NULL;
    }

  /* The usual case, a plain integer, is read in place. */
  member = int_member (frame, key);
  _mpq_json_skip_ws (reader);
  if (member != NULL && _mpq_json_try_plain_int (reader, member))
    return TRUE;

  reader->depth = 1;
  boolean = bool_member (frame, key);
  if (member == NULL && boolean == NULL)
    return _mpq_json_skip_value (reader);

  /* Anything else is built, and its kind decides. */
  node = _mpq_json_read_value (reader);
  if (node == NULL)
    return FALSE;

  if (boolean != NULL)
    {
      if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
        return frame_error (reader->error, "a member is not a boolean");
      *boolean = json_node_get_boolean (node);
      return TRUE;
    }

  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return frame_error (reader->error, "a member is not an integer");
  *member = json_node_get_int (node);
  return TRUE;
}

static gboolean
read_frame (MpqJsonReader *reader,
            MpqFrame      *frame,
            GArray        *fds)
{
  gboolean seen_op = FALSE;

  if (!_mpq_json_expect (reader, '{'))
    return frame_error (reader->error, "not an object");

  if (!_mpq_json_expect (reader, '}'))
    {
      do
        {
          char key[16];

          _mpq_json_skip_ws (reader);
          if (reader->p >= reader->end || *reader->p != '"')
            return frame_error (reader->error, "expected a member name");
          if (!read_name (reader, key, sizeof key))
            return FALSE;
          if (!_mpq_json_expect (reader, ':'))
            return frame_error (reader->error, "expected ':'");
          if (!read_member (reader, frame, fds, key, &seen_op))
            return FALSE;
        }
      while (_mpq_json_expect (reader, ','));

      if (!_mpq_json_expect (reader, '}'))
        return frame_error (reader->error, "expected ',' or '}'");
    }

  if (!_mpq_json_at_end (reader))
    return frame_error (reader->error, "trailing text");
  if (!seen_op)
    return frame_error (reader->error, "no \"op\"");

  return TRUE;
}

/* Parses one frame line. On failure @frame is cleared and @error set to
 * MPQ_ERROR_PROTOCOL. A "msg" frame's payload may come by descriptor, the
 * oldest in @fds (NULL: none may), which it takes. */
gboolean
_mpq_frame_parse (const char  *line,
                  gsize        length,
                  GArray      *fds,
                  MpqFrame    *frame,
                  GError     **error)
{
  MpqJsonReader reader;
  gboolean ok;

  memset (frame, 0, sizeof *frame);
  frame->timeout = -1;
  frame->us = -1;

  if (!_mpq_utf8_validate_len (line, length))
    return frame_error (error, "not valid UTF-8");

  _mpq_json_reader_init (&reader, line, length, MPQ_MAX_DEPTH, error);
  ok = read_frame (&reader, frame, fds);
  _mpq_json_reader_clear (&reader);

  if (!ok)
    {
      _mpq_frame_clear (frame);
      frame_error (error, "not JSON");
    }

  return ok;
}

void
_mpq_frame_clear (MpqFrame *frame)
{
  g_clear_object (&frame->message);
}

MpqFrame *
_mpq_frame_copy (const MpqFrame *frame)
{
  MpqFrame *copy = g_new (MpqFrame, 1);

  *copy = *frame;
  if (copy->message != NULL)
    g_object_ref (copy->message);
  return copy;
}

void
_mpq_frame_free (MpqFrame *frame)
{
  _mpq_frame_clear (frame);
  g_free (frame);
}

/* Appends one frame line, newline included: @op and its first @n_values
 * members from the table, with @values (the boolean members as true or
 * false). Use the _mpq_frame_write () macro. Any thread. */
void
_mpq_frame_writev (GString       *out,
                   MpqFrameOp     op,
                   const gint64  *values,
                   guint          n_values)
{
  gsize start = out->len;

  g_assert (op < G_N_ELEMENTS (ops) && op != MPQ_FRAME_MSG);
  g_assert (n_values <= G_N_ELEMENTS (ops[op].members));

  g_string_append_len (out, "{\"op\":\"", 7);
  g_string_append (out, ops[op].name);
  g_string_append_c (out, '"');
  for (guint i = 0; i < n_values; i++)
    {
      Member member = ops[op].members[i];

      g_assert (member != MEMBER_END);
      g_string_append_len (out, ",\"", 2);
      g_string_append (out, members[member].name);
      g_string_append_len (out, "\":", 2);
      if (member >= MEMBER_VALUE)
        g_string_append (out, values[i] ? "true" : "false");
      else
        _mpq_json_write_int (out, values[i]);
    }
  g_string_append_len (out, "}\n", 2);
  /* The control frames, as they are made (on both sides of a queue). */
  MPQ_DEBUG_LINE (">", out->str + start, out->len - start - 1);
}

/* Appends {"op":"msg","tag":…,"id":…,"msg":…} around a message line; no
 * "id" when @id is 0 (a pushed message). Any thread. */
void
_mpq_frame_write_msg (GString    *out,
                      guint32     tag,
                      gint64      id,
                      const char *line,
                      gsize       length)
{
  gsize start = out->len;

  g_string_append_len (out, "{\"op\":\"msg\",\"tag\":", 18);
  _mpq_json_write_int (out, tag);
  if (id > 0)
    {
      g_string_append_len (out, ",\"id\":", 6);
      _mpq_json_write_int (out, id);
    }
  g_string_append_len (out, ",\"msg\":", 7);
  g_string_append_len (out, line, length);
  g_string_append_len (out, "}\n", 2);
  MPQ_DEBUG_LINE (">", out->str + start, out->len - start - 1);
}
