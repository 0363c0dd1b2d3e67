/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "mpq-channel-private.h"
#include "mpq-error.h"
#include "mpq-json-private.h"
#include "mpq-message-private.h"
#include "mpq-pool-private.h"
#include "mpq-protocol.h"

/* The frames a pool and its workers exchange over the queue: the data of
 * ordinary messages, so that a worker with only a JSON library can serve
 * (docs/protocol.md, "Pools"):
 *
 *   parent → worker  [request, parent, worker, {"task": id, "data": x}]
 *                    ["CANCEL", parent, worker, {"task": id}]
 *                    ["DIE", parent, worker, null]
 *   worker → parent  ["READY", worker, parent, null]
 *                    ["FINISHED", worker, parent, {"task": id, "result": x}]
 *                    ["FAILED", worker, parent, {"task": id, "error": "text"}]
 *                    ["PROGRESS", worker, parent, {"task": id, "progress": x}]
 *
 * Any thread: these only build and read values. */

/* Whether @data_json (nullable: null) is one JSON value. Checked before it
 * is spliced into a frame: "1,\"task\":2" would make a valid frame that
 * says something else. */
gboolean
_mpq_pool_check_json (const char  *data_json,
                      GError     **error)
{
  MpqJsonReader reader;
  GError *local_error = NULL;
  gsize length;
  gboolean ok;

  if (data_json == NULL)
    return TRUE;
  length = strlen (data_json);
  if (!_mpq_utf8_validate_len (data_json, length))
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                           "The data is not valid UTF-8");
      return FALSE;
    }
  _mpq_json_reader_init (&reader, data_json, length, MPQ_MAX_DEPTH - 2, &local_error);
  ok = _mpq_json_skip_value (&reader) && _mpq_json_at_end (&reader);
  _mpq_json_reader_clear (&reader);
  if (!ok)
    {
      if (local_error != NULL)
        g_propagate_prefixed_error (error, local_error, "The data is not JSON: ");
      else
        g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                             "The data is not one JSON value");
      return FALSE;
    }
  return TRUE;
}

/* {"task": @id, @field: @value_json}; @value_json (nullable: null) must
 * have passed _mpq_pool_check_json (). */
char *
_mpq_pool_frame_task (guint64     id,
                      const char *field,
                      const char *value_json)
{
  gsize length = value_json != NULL ? strlen (value_json) : 4;
  GString *frame = g_string_sized_new (length + strlen (field) + 32);

  /* Not printf: a batch's %s of 100 KiB would be copied twice. */
  g_string_append (frame, "{\"task\":");
  _mpq_json_write_int (frame, (gint64) id);
  g_string_append (frame, ",\"");
  g_string_append (frame, field);
  g_string_append (frame, "\":");
  g_string_append_len (frame, value_json != NULL ? value_json : "null", length);
  g_string_append_c (frame, '}');
  return g_string_free (frame, FALSE);
}

/* {"task": @id, "error": @text}, or {"task": @id} without @text. */
char *
_mpq_pool_frame_error (guint64     id,
                       const char *text)
{
  GString *out = g_string_new (NULL);

  g_string_append_printf (out, "{\"task\":%" G_GUINT64_FORMAT, id);
  if (text != NULL)
    {
      g_string_append (out, ",\"error\":");
      _mpq_json_write_string (out, text);
    }
  g_string_append_c (out, '}');
  return g_string_free (out, FALSE);
}

/* Reading frames ------------------------------------------------------------
 *
 * A map's batch or its results may hold thousands of values: a frame is
 * read where it stands in the message's text (checked already when the
 * message came), and only the member wanted is built, if at all. */

static const char *const member_names[MPQ_POOL_N_MEMBERS] = {
  [MPQ_POOL_MEMBER_TASK] = "task",
  [MPQ_POOL_MEMBER_DATA] = "data",
  [MPQ_POOL_MEMBER_BATCH] = "batch",
  [MPQ_POOL_MEMBER_RESULT] = "result",
  [MPQ_POOL_MEMBER_RESULTS] = "results",
  [MPQ_POOL_MEMBER_ERROR] = "error",
  [MPQ_POOL_MEMBER_PROGRESS] = "progress",
  [MPQ_POOL_MEMBER_PID] = "pid",
  [MPQ_POOL_MEMBER_FORMAT] = "format",
};

/* The element where @reader stands, checked, to @item. Plain integers,
 * most of a map's items and results, take the short way. */
static gboolean
next_element (MpqJsonReader *reader,
              MpqPoolItem   *item)
{
  gint64 value;

  _mpq_json_skip_ws (reader);
  item->text = reader->p;
  if (!_mpq_json_try_plain_int (reader, &value) && !_mpq_json_skip_value (reader))
    return FALSE;
  item->length = reader->p - item->text;
  return TRUE;
}

/* The array where @reader stands: its elements counted, and (@spans not
 * NULL) where each is, as MpqPoolItems. */
static gboolean
walk_array (MpqJsonReader *reader,
            GArray        *spans,
            guint         *n_elements)
{
  guint n = 0;

  if (!_mpq_json_expect (reader, '['))
    return FALSE;
  if (!_mpq_json_expect (reader, ']'))
    {
      do
        {
          MpqPoolItem item;

          if (!next_element (reader, &item))
            return FALSE;
          if (spans != NULL)
            g_array_append_val (spans, item);
          n++;
        }
      while (_mpq_json_expect (reader, ','));
      if (!_mpq_json_expect (reader, ']'))
        return FALSE;
    }
  *n_elements = n;
  return TRUE;
}

/* Reads @message's data as a frame: FALSE when it is not a JSON object.
 * Clear @frame with _mpq_pool_frame_clear () whatever it returns. */
gboolean
_mpq_pool_frame_read (MpqPoolFrame *frame,
                      MpqMessage   *message)
{
  MpqJsonReader reader;
  const char *text;
  gsize length;
  gboolean ok = FALSE;

  memset (frame, 0, sizeof *frame);
  frame->message = g_object_ref (message);
  text = _mpq_message_peek_data_text (message, &length);
  if (text == NULL)
    {
      /* Built by this process, or sent with spaces: written once. */
      if (mpq_message_get_data (message) == NULL ||
          (frame->owned = mpq_message_dup_data_json (message)) == NULL)
        return FALSE;
      text = frame->owned;
      length = strlen (text);
    }

  _mpq_json_reader_init (&reader, text, length, MPQ_MAX_DEPTH, NULL);
  if (!_mpq_json_expect (&reader, '{'))
    goto out;
  if (_mpq_json_expect (&reader, '}'))
    {
      ok = TRUE;
      goto out;
    }
  do
    {
      g_autofree char *name = _mpq_json_read_string (&reader);
      guint member = 0;
      const char *start;

      if (name == NULL || !_mpq_json_expect (&reader, ':'))
        goto out;
      while (member < MPQ_POOL_N_MEMBERS && !g_str_equal (name, member_names[member]))
        member++;
      _mpq_json_skip_ws (&reader);
      start = reader.p;
      if (member < MPQ_POOL_N_MEMBERS && *start == '[')
        {
          /* A batch, or its results: counted on the way. */
          if (!walk_array (&reader, NULL, &frame->n_elements[member]))
            goto out;
          frame->is_array[member] = TRUE;
        }
      else if (!_mpq_json_skip_value (&reader))
        goto out;
      else if (member < MPQ_POOL_N_MEMBERS)
        frame->is_array[member] = FALSE;
      if (member < MPQ_POOL_N_MEMBERS)
        {
          frame->value[member] = start;
          frame->length[member] = reader.p - start;
        }
    }
  while (_mpq_json_expect (&reader, ','));
  ok = _mpq_json_expect (&reader, '}');

out:
  _mpq_json_reader_clear (&reader);
  return ok;
}

void
_mpq_pool_frame_clear (MpqPoolFrame *frame)
{
  g_clear_object (&frame->message);
  g_clear_pointer (&frame->owned, g_free);
}

/* A reader on @member's value (which must be there). */
static void
member_reader (MpqPoolFrame  *frame,
               MpqPoolMember  member,
               MpqJsonReader *reader)
{
  _mpq_json_reader_init (reader, frame->value[member], frame->length[member],
                         MPQ_MAX_DEPTH, NULL);
}

/* Where @member's value is in its message's data text: FALSE when the
 * frame was read from a text of its own (@owned), not the message's. */
gboolean
_mpq_pool_frame_offset (MpqPoolFrame  *frame,
                        MpqPoolMember  member,
                        gsize         *offset)
{
  gsize length;
  const char *text = _mpq_message_peek_data_text (frame->message, &length);

  if (frame->owned != NULL || text == NULL || frame->value[member] == NULL)
    return FALSE;
  g_assert (frame->value[member] >= text &&
            frame->value[member] + frame->length[member] <= text + length);
  *offset = frame->value[member] - text;
  return TRUE;
}

/* @member as an id (or a pid): a non-negative integer. */
gboolean
_mpq_pool_frame_get_id (MpqPoolFrame  *frame,
                        MpqPoolMember  member,
                        guint64       *id)
{
  const char *p = frame->value[member];
  gsize length = frame->length[member];
  guint64 value = 0;

  /* Plain digits, no leading zero: ids are counted from 1, far below
   * 10^18. Anything else (1.0, -1, 1e3, "1") is no id. */
  if (p == NULL || length == 0 || length > 18 || (p[0] == '0' && length > 1))
    return FALSE;
  for (gsize i = 0; i < length; i++)
    {
      if (p[i] < '0' || p[i] > '9')
        return FALSE;
      value = value * 10 + (guint64) (p[i] - '0');
    }
  *id = value;
  return TRUE;
}

gboolean
_mpq_pool_frame_is_true (MpqPoolFrame  *frame,
                         MpqPoolMember  member)
{
  return frame->length[member] == 4 && memcmp (frame->value[member], "true", 4) == 0;
}

/* @member as a string, or NULL when it is not one. */
char *
_mpq_pool_frame_dup_string (MpqPoolFrame  *frame,
                            MpqPoolMember  member)
{
  MpqJsonReader reader;
  char *str;

  if (frame->value[member] == NULL || frame->value[member][0] != '"')
    return NULL;
  member_reader (frame, member, &reader);
  str = _mpq_json_read_string (&reader);
  _mpq_json_reader_clear (&reader);
  return str;
}

/* The elements of the JSON array @text: how many, where each is (@spans
 * not NULL), and whether @text is compact (no whitespace). Each element
 * nests at most as deep as a batch's item or result may (three levels
 * go to the message, the frame and the batch). FALSE with @error set
 * when @text is not one such array. */
gboolean
_mpq_pool_read_array (const char  *text,
                      gsize        length,
                      GArray      *spans,
                      guint       *n_elements,
                      gboolean    *compact,
                      GError     **error)
{
  MpqJsonReader reader;
  gboolean ok;

  *n_elements = 0;
  _mpq_json_reader_init (&reader, text, length, MPQ_MAX_DEPTH - 3, error);
  ok = walk_array (&reader, spans, n_elements) && _mpq_json_at_end (&reader);
  if (compact != NULL)
    *compact = !reader.spaced;
  _mpq_json_reader_clear (&reader);
  if (!ok && error != NULL && *error == NULL)
    g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL, "Not one JSON array");
  return ok;
}

/* A map's items, taken one after the other: the spans of an array, or
 * the elements of a JSON array's text that _mpq_pool_read_array ()
 * checked, found as they are taken (100,000 spans would be 1.6 MB of
 * fresh memory to fault in; the text is read again instead). */
void
_mpq_pool_items_init_spans (MpqPoolItems      *items,
                            const MpqPoolItem *spans,
                            guint              n_items)
{
  memset (items, 0, sizeof *items);
  items->spans = spans;
  items->n_items = n_items;
}

void
_mpq_pool_items_init_text (MpqPoolItems *items,
                           const char   *text,
                           gsize         length,
                           guint         n_items)
{
  memset (items, 0, sizeof *items);
  items->n_items = n_items;
  _mpq_json_reader_init (&items->reader, text, length, MPQ_MAX_DEPTH - 3, NULL);
  if (!_mpq_json_expect (&items->reader, '['))
    g_assert_not_reached ();
}

/* The next item to @item, or FALSE when all were taken. */
gboolean
_mpq_pool_items_next (MpqPoolItems *items,
                      MpqPoolItem  *item)
{
  if (items->next == items->n_items)
    return FALSE;
  if (items->spans != NULL)
    *item = items->spans[items->next];
  else if ((items->next > 0 && !_mpq_json_expect (&items->reader, ',')) ||
           !next_element (&items->reader, item))
    g_assert_not_reached ();
  items->next++;
  return TRUE;
}

void
_mpq_pool_items_clear (MpqPoolItems *items)
{
  if (items->spans == NULL)
    _mpq_json_reader_clear (&items->reader);
}

/* Appends the @length bytes of checked JSON at @text to @out without the
 * whitespace between its tokens: the same value, as compact text (a
 * batch that is compact goes out as it is, not parsed and written again
 * by the channel). */
void
_mpq_pool_append_compact (GString    *out,
                          const char *text,
                          gsize       length)
{
  const char *end = text + length;
  const char *run = text;
  gboolean in_string = FALSE;

  for (const char *p = text; p < end; p++)
    {
      if (in_string)
        {
          /* Checked JSON: a backslash escapes one more character. */
          if (*p == '\\')
            p++;
          else if (*p == '"')
            in_string = FALSE;
        }
      else if (*p == '"')
        in_string = TRUE;
      else if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        {
          g_string_append_len (out, run, p - run);
          run = p + 1;
        }
    }
  g_string_append_len (out, run, end - run);
}

/* Whether @member is an array, and how long. */
gboolean
_mpq_pool_frame_count (MpqPoolFrame  *frame,
                       MpqPoolMember  member,
                       guint         *n_elements)
{
  *n_elements = frame->n_elements[member];
  return frame->is_array[member];
}

/* @member's compact JSON text (nullable: not there). */
char *
_mpq_pool_frame_dup_text (MpqPoolFrame  *frame,
                          MpqPoolMember  member,
                          gsize         *length)
{
  *length = frame->length[member];
  return g_strndup (frame->value[member], frame->length[member]);
}

/* Whether the @length bytes of JSON at @json (nullable) say null. */
gboolean
_mpq_pool_json_is_null (const char *json,
                        gsize       length)
{
  return json == NULL || (length == 4 && memcmp (json, "null", 4) == 0);
}

/* A message whose data is the @length bytes of compact JSON at @json
 * (nullable: null), copied, and built when someone asks for it. */
MpqMessage *
_mpq_pool_message_of_json (const char *request,
                           gint        sender,
                           gint        recipient,
                           const char *json,
                           gsize       length)
{
  if (_mpq_pool_json_is_null (json, length))
    return _mpq_message_new_take (g_strdup (request), sender, recipient, NULL);
  return _mpq_message_new_take_text (g_strdup (request), sender, recipient,
                                     g_strndup (json, length), length);
}

/* A message from the frame's sender to its recipient whose data is
 * @member (null when it is not there). */
MpqMessage *
_mpq_pool_frame_message (MpqPoolFrame  *frame,
                         MpqPoolMember  member,
                         const char    *request)
{
  return _mpq_pool_message_of_json (request, mpq_message_get_sender_pid (frame->message),
                                    mpq_message_get_recipient_pid (frame->message),
                                    frame->value[member], frame->length[member]);
}

/* Whether @results_json (JSON already) is an array of @n_items values: a
 * batch's answer. */
gboolean
_mpq_pool_check_results (const char  *results_json,
                         guint        n_items,
                         gboolean    *compact,
                         GError     **error)
{
  gsize length = results_json != NULL ? strlen (results_json) : 0;
  guint n;

  if (results_json != NULL && _mpq_utf8_validate_len (results_json, length) &&
      _mpq_pool_read_array (results_json, length, NULL, &n, compact, NULL) && n == n_items)
    return TRUE;
  g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
               "A batch of %u items must be answered with a JSON array of %u results",
               n_items, n_items);
  return FALSE;
}

/* Sends @frame from @sender to @recipient, with @payload (nullable): as
 * it is when it is known to be @compact JSON (made of checked parts),
 * else checked first. */
gboolean
_mpq_pool_send_frame (MpqQueue    *queue,
                      const char  *request,
                      gint         sender,
                      gint         recipient,
                      const char  *frame,
                      gboolean     compact,
                      GBytes      *payload,
                      GError     **error)
{
  MpqChannel *channel = MPQ_CHANNEL (queue);

  if (payload != NULL)
    {
      /* A task or answer with bytes: a few per map, built as a node. */
      g_autoptr(JsonNode) data = json_from_string (frame, error);
      g_autoptr(MpqMessage) message = NULL;

      if (data == NULL)
        return FALSE;
      message = mpq_message_new_with_bytes (request, sender, recipient, data, payload);
      return mpq_channel_send_message (channel, message, error);
    }
  if (compact)
    {
      MpqSendResult result = _mpq_channel_send_outgoing (channel, request, sender, recipient,
                                                         NULL, frame, strlen (frame), error);

      if (result != MPQ_SEND_NOT_OURS)
        return result == MPQ_SEND_SENT;
    }
  return mpq_channel_send_json (channel, request, sender, recipient, frame, error);
}
