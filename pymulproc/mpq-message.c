/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "mpq-codec-private.h"
#include "mpq-json-private.h"
#include "mpq-error.h"
#include "mpq-message-private.h"
#include "mpq-protocol.h"
#include "mpq-spawn-private.h"

/**
 * MpqMessage:
 *
 * One pymulproc message: `[request, sender_pid, recipient_pid, data]`.
 *
 * A message is immutable once built. On the wire it is one line of compact
 * JSON:
 *
 * ```json
 * ["DO",1234,null,{"value":20}]
 * ```
 *
 * Made from JSON text (any JSON: it is checked, and kept compact), from
 * `tests/test-message.c`:
 *
 * ```c
 *   message = mpq_message_new_with_data_json (MPQ_REQ_DO, 3, 0, " {\"a\": [1, 2.5, \"x\"]} ", &error);
 * ```
 *
 * From Python or JavaScript, pass and read the data as JSON text with
 * [ctor@Mpq.Message.new_with_data_json] and [method@Mpq.Message.dup_data_json].
 *
 * Its properties are read-only: a message is made with one of its
 * constructors, never with g_object_new() and properties. GObject sets
 * every construct property of every new object through a #GValue, which
 * cost each message received some 1,100 instructions, more than its
 * `g_object_new()` does without them (docs/performance.md).
 */

/* A message read from the wire keeps its data as the compact JSON text
 * that came, checked already; the JsonNode is built from it the first
 * time someone asks (bindings that take the text never need it). */
struct _MpqMessage
{
  GObject   parent_instance;

  char     *request;
  JsonNode *data;           /* NULL when the wire says null, or not built yet */
  char     *data_text;      /* or NULL */
  gsize     data_length;
  gint      sender_pid;
  gint      recipient_pid;  /* 0 when the wire says null */
  GBytes   *payload;        /* or NULL */
  gint      origin_pid;     /* who put it in the parent's queue, as the
                             * queue saw it (not what it says); 0: unknown */
};

enum
{
  PROP_0,
  PROP_REQUEST,
  PROP_SENDER_PID,
  PROP_RECIPIENT_PID,
  PROP_DATA,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (MpqMessage, mpq_message, G_TYPE_OBJECT)

static void
mpq_message_finalize (GObject *object)
{
  MpqMessage *self = MPQ_MESSAGE (object);

  g_clear_pointer (&self->request, g_free);
  g_clear_pointer (&self->data, json_node_unref);
  g_clear_pointer (&self->data_text, g_free);
  g_clear_pointer (&self->payload, g_bytes_unref);

  G_OBJECT_CLASS (mpq_message_parent_class)->finalize (object);
}

static void
mpq_message_get_property (GObject    *object,
                          guint       prop_id,
                          GValue     *value,
                          GParamSpec *pspec)
{
  MpqMessage *self = MPQ_MESSAGE (object);

  switch (prop_id)
    {
    case PROP_REQUEST:
      g_value_set_string (value, self->request);
      break;

    case PROP_SENDER_PID:
      g_value_set_int (value, self->sender_pid);
      break;

    case PROP_RECIPIENT_PID:
      g_value_set_int (value, self->recipient_pid);
      break;

    case PROP_DATA:
      g_value_set_boxed (value, mpq_message_get_data (self));
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
mpq_message_class_init (MpqMessageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = mpq_message_finalize;
  object_class->get_property = mpq_message_get_property;

  /**
   * MpqMessage:request: (getter get_request)
   *
   * What the message asks of its recipient, such as [const@Mpq.REQ_DO].
   */
  properties[PROP_REQUEST] =
    g_param_spec_string ("request", NULL, NULL,
                         NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * MpqMessage:sender-pid: (getter get_sender_pid)
   *
   * The pid of the process that sent the message.
   */
  properties[PROP_SENDER_PID] =
    g_param_spec_int ("sender-pid", NULL, NULL,
                      0, G_MAXINT, 0,
                      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * MpqMessage:recipient-pid: (getter get_recipient_pid)
   *
   * The pid of the process the message is for, or 0 for none.
   */
  properties[PROP_RECIPIENT_PID] =
    g_param_spec_int ("recipient-pid", NULL, NULL,
                      0, G_MAXINT, 0,
                      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * MpqMessage:data: (getter get_data)
   *
   * The data of the message, any JSON value, or %NULL for none.
   */
  properties[PROP_DATA] =
    g_param_spec_boxed ("data", NULL, NULL,
                        JSON_TYPE_NODE,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
mpq_message_init (MpqMessage *self)
{
}

MpqMessage *
_mpq_message_new_take (char     *request,
                       gint      sender_pid,
                       gint      recipient_pid,
                       JsonNode *data)
{
  MpqMessage *self = g_object_new (MPQ_TYPE_MESSAGE, NULL);

  self->request = request;
  self->sender_pid = sender_pid > 0 ? sender_pid : _mpq_own_pid ();
  self->recipient_pid = recipient_pid;
  self->data = data;

  return self;
}

/* Takes @data_text, @length bytes of compact JSON (not null) that
 * _mpq_json_skip_value() accepted at depth 1. */
MpqMessage *
_mpq_message_new_take_text (char     *request,
                            gint      sender_pid,
                            gint      recipient_pid,
                            char     *data_text,
                            gsize     length)
{
  MpqMessage *self = _mpq_message_new_take (request, sender_pid, recipient_pid, NULL);

  self->data_text = data_text;
  self->data_length = length;

  return self;
}

/* Gives a message that was just made its payload (a reference). */
void
_mpq_message_set_payload (MpqMessage *self,
                          GBytes     *payload)
{
  g_assert (self->payload == NULL);
  self->payload = g_bytes_ref (payload);
}

/* Whether @data_json, valid UTF-8, is one JSON value without whitespace
 * that a message may carry as it is (the outer message array is one level
 * of the depth limit). */
gboolean
_mpq_data_json_is_compact (const char *data_json,
                           gsize       length)
{
  MpqJsonReader reader;
  gboolean compact;

  _mpq_json_reader_init (&reader, data_json, length, MPQ_MAX_DEPTH - 1, NULL);
  compact = _mpq_json_skip_value (&reader) && !reader.spaced && reader.p == reader.end;
  _mpq_json_reader_clear (&reader);
  return compact;
}

/* The data as compact JSON text, if the message keeps it that way. */
const char *
_mpq_message_peek_data_text (MpqMessage *self,
                             gsize      *length)
{
  *length = self->data_length;
  return self->data_text;
}

/**
 * mpq_message_new:
 * @request: what the message asks, a non-empty UTF-8 string
 * @sender_pid: the sender's pid, or 0 for the calling process
 * @recipient_pid: the recipient's pid, or 0 for none
 * @data: (nullable): the data, any JSON value
 *
 * Creates a message. @data is copied if it is not %NULL.
 *
 * Returns: (transfer full): a new message
 */
MpqMessage *
mpq_message_new (const char *request,
                 gint        sender_pid,
                 gint        recipient_pid,
                 JsonNode   *data)
{
  g_return_val_if_fail (request != NULL && request[0] != '\0', NULL);
  g_return_val_if_fail (g_utf8_validate (request, -1, NULL), NULL);
  g_return_val_if_fail (sender_pid >= 0, NULL);
  g_return_val_if_fail (recipient_pid >= 0, NULL);

  return _mpq_message_new_take (g_strdup (request),
                                sender_pid,
                                recipient_pid,
                                data != NULL && !JSON_NODE_HOLDS_NULL (data)
                                  ? json_node_copy (data) : NULL);
}

/**
 * mpq_message_new_with_data_json:
 * @request: what the message asks, a non-empty UTF-8 string
 * @sender_pid: the sender's pid, or 0 for the calling process
 * @recipient_pid: the recipient's pid, or 0 for none
 * @data_json: (nullable): the data as JSON text, or %NULL for none
 * @error: return location for an error
 *
 * Creates a message whose data is given as JSON text, the easy way from
 * Python (`json.dumps()`) and JavaScript (`JSON.stringify()`).
 *
 * Returns: (transfer full): a new message, or %NULL with @error set to
 *   `MPQ_ERROR_PROTOCOL` if @data_json is not JSON
 */
MpqMessage *
mpq_message_new_with_data_json (const char  *request,
                                gint         sender_pid,
                                gint         recipient_pid,
                                const char  *data_json,
                                GError     **error)
{
  JsonNode *data = NULL;
  gsize length;

  g_return_val_if_fail (request != NULL && request[0] != '\0', NULL);
  g_return_val_if_fail (g_utf8_validate (request, -1, NULL), NULL);
  g_return_val_if_fail (sender_pid >= 0, NULL);
  g_return_val_if_fail (recipient_pid >= 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (data_json != NULL)
    {
      length = strlen (data_json);

      if (!_mpq_utf8_validate_len (data_json, length))
        {
          g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL, "Data is not valid UTF-8");
          return NULL;
        }

      /* Compact JSON is kept as it is: sent on without being built. */
      if (_mpq_data_json_is_compact (data_json, length))
        {
          if (data_json[0] == 'n')
            return _mpq_message_new_take (g_strdup (request), sender_pid, recipient_pid, NULL);
          return _mpq_message_new_take_text (g_strdup (request), sender_pid, recipient_pid,
                                             g_strndup (data_json, length), length);
        }

      /* Anything else is built (errors are worded there). */
      data = _mpq_json_parse (data_json, length, MPQ_MAX_DEPTH - 1, error);
      if (data == NULL)
        return NULL;

      if (JSON_NODE_HOLDS_NULL (data))
        g_clear_pointer (&data, json_node_unref);
    }

  return _mpq_message_new_take (g_strdup (request), sender_pid, recipient_pid, data);
}

/**
 * mpq_message_new_with_bytes:
 * @request: what the message asks, a non-empty UTF-8 string
 * @sender_pid: the sender's pid, or 0 for the calling process
 * @recipient_pid: the recipient's pid, or 0 for none
 * @data: (nullable): the data, any JSON value
 * @payload: (nullable): binary data to carry beside @data
 *
 * Creates a message that carries a binary payload beside its JSON data:
 * a file's contents, an image, a NumPy buffer. A pipe passes a large
 * payload as a sealed memory file, without copying it through the line
 * (see [method@Mpq.Channel.send_bytes]). @data is copied; @payload is
 * referenced, and must not change while the message holds it.
 *
 * Returns: (transfer full): a new message
 */
MpqMessage *
mpq_message_new_with_bytes (const char *request,
                            gint        sender_pid,
                            gint        recipient_pid,
                            JsonNode   *data,
                            GBytes     *payload)
{
  MpqMessage *self;

  g_return_val_if_fail (request != NULL && request[0] != '\0', NULL);
  g_return_val_if_fail (g_utf8_validate (request, -1, NULL), NULL);
  g_return_val_if_fail (sender_pid >= 0, NULL);
  g_return_val_if_fail (recipient_pid >= 0, NULL);

  self = mpq_message_new (request, sender_pid, recipient_pid, data);
  if (payload != NULL)
    _mpq_message_set_payload (self, payload);
  return self;
}

/**
 * mpq_message_get_bytes:
 * @self: a message
 *
 * Gets the binary payload the message carries beside its data. One that
 * came by descriptor is the sender's memory file mapped read-only: no
 * copy was made, and sending the message (or these bytes) on passes the
 * same file.
 *
 * Returns: (transfer none) (nullable): the payload, or %NULL if the
 *   message carries none
 */
GBytes *
mpq_message_get_bytes (MpqMessage *self)
{
  g_return_val_if_fail (MPQ_IS_MESSAGE (self), NULL);

  return self->payload;
}

/**
 * mpq_message_new_from_json:
 * @text: one message line, with or without its trailing newline
 * @length: length of @text in bytes, or -1 if it is nul-terminated
 * @error: return location for an error
 *
 * Decodes one wire line. Anything that is not a valid message (not an array
 * of 4, an empty or non-string request, a pid that is not a positive integer,
 * invalid UTF-8, nesting deeper than [const@Mpq.MAX_DEPTH]) fails with
 * `MPQ_ERROR_PROTOCOL`.
 *
 * Returns: (transfer full): the message, or %NULL with @error set
 */
MpqMessage *
mpq_message_new_from_json (const char  *text,
                           gssize       length,
                           GError     **error)
{
  gsize len;

  g_return_val_if_fail (text != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  len = length < 0 ? strlen (text) : (gsize) length;
  if (len > 0 && text[len - 1] == '\n')
    len--;

  if (memchr (text, '\n', len) != NULL)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                           "Text holds more than one line");
      return NULL;
    }

  return _mpq_codec_decode (text, len, error);
}

/**
 * mpq_message_to_json:
 * @self: a message
 * @length: (out) (optional): return location for the length in bytes
 *
 * Encodes the message as its wire line, compact JSON without the trailing
 * newline.
 *
 * Returns: (transfer full) (nullable): the JSON text, or %NULL if the data
 *   has no JSON form (a NaN or infinite number, a string that is not UTF-8,
 *   nesting deeper than [const@Mpq.MAX_DEPTH])
 */
char *
mpq_message_to_json (MpqMessage *self,
                     gsize      *length)
{
  g_autoptr(GString) out = NULL;

  g_return_val_if_fail (MPQ_IS_MESSAGE (self), NULL);

  out = g_string_sized_new (64);
  if (!_mpq_codec_encode (self, out, NULL))
    return NULL;

  if (length != NULL)
    *length = out->len;

  return g_string_free (g_steal_pointer (&out), FALSE);
}

/**
 * mpq_message_get_request: (get-property request)
 * @self: a message
 *
 * Gets what the message asks, such as [const@Mpq.REQ_DO].
 *
 * Returns: the request
 */
const char *
mpq_message_get_request (MpqMessage *self)
{
  g_return_val_if_fail (MPQ_IS_MESSAGE (self), NULL);

  return self->request;
}

/**
 * mpq_message_get_sender_pid: (get-property sender-pid)
 * @self: a message
 *
 * Gets the pid of the process that sent the message.
 *
 * Returns: the sender's pid, always positive
 */
gint
mpq_message_get_sender_pid (MpqMessage *self)
{
  g_return_val_if_fail (MPQ_IS_MESSAGE (self), 0);

  return self->sender_pid;
}

/**
 * mpq_message_get_recipient_pid: (get-property recipient-pid)
 * @self: a message
 *
 * Gets the pid of the process the message is for.
 *
 * Returns: the recipient's pid, or 0 if the message is for nobody in
 *   particular
 */
gint
mpq_message_get_recipient_pid (MpqMessage *self)
{
  g_return_val_if_fail (MPQ_IS_MESSAGE (self), 0);

  return self->recipient_pid;
}

/**
 * mpq_message_get_data: (get-property data)
 * @self: a message
 *
 * Gets the data of the message. It belongs to the message: do not change it.
 * A message read from the wire builds it the first time it is asked for.
 *
 * Returns: (transfer none) (nullable): the data, or %NULL if there is none
 */
JsonNode *
mpq_message_get_data (MpqMessage *self)
{
  JsonNode *data;

  g_return_val_if_fail (MPQ_IS_MESSAGE (self), NULL);

  data = g_atomic_pointer_get (&self->data);
  if (data != NULL || self->data_text == NULL)
    return data;

  /* First asked: built now, once, even if threads race for it. */
  data = _mpq_json_parse (self->data_text, self->data_length, MPQ_MAX_DEPTH - 1, NULL);
  if (data == NULL)
    {
      g_critical ("MpqMessage: data that was checked does not parse");
      return NULL;
    }
  if (!g_atomic_pointer_compare_and_exchange (&self->data, NULL, data))
    {
      json_node_unref (data);
      data = g_atomic_pointer_get (&self->data);
    }
  return data;
}

/**
 * mpq_message_dup_data_json:
 * @self: a message
 *
 * Gets the data of the message as compact JSON text, ready for Python's
 * `json.loads()` or JavaScript's `JSON.parse()`. Data that came as
 * compact text (on the wire, or given to
 * [ctor@Mpq.Message.new_with_data_json]) is returned as it came, without
 * building a JsonNode: the cheap way to read messages from bindings.
 *
 * Returns: (transfer full) (nullable): the data as JSON, `"null"` when there
 *   is none, or %NULL if the data has no JSON form (see
 *   [method@Mpq.Message.to_json])
 */
char *
mpq_message_dup_data_json (MpqMessage *self)
{
  g_autoptr(GString) out = NULL;

  g_return_val_if_fail (MPQ_IS_MESSAGE (self), NULL);

  if (self->data_text != NULL)
    return g_strndup (self->data_text, self->data_length);
  if (self->data == NULL)
    return g_strdup ("null");

  out = g_string_sized_new (64);
  if (!_mpq_json_write (out, self->data, MPQ_MAX_DEPTH - 1, NULL))
    return NULL;

  return g_string_free (g_steal_pointer (&out), FALSE);
}

/**
 * mpq_message_is_for:
 * @self: a message
 * @pid: a process id
 *
 * Checks whether the message is for @pid: addressed to it, or to nobody.
 *
 * Returns: %TRUE if the process @pid may take the message
 */
gboolean
mpq_message_is_for (MpqMessage *self,
                    gint        pid)
{
  g_return_val_if_fail (MPQ_IS_MESSAGE (self), FALSE);

  return self->recipient_pid == 0 || self->recipient_pid == pid;
}

/* Set by the parent's queue as it hands a message over: the process whose
 * socket it came from, which a pool trusts where it would not trust
 * @sender_pid (any process can write any number there). */
void
_mpq_message_set_origin (MpqMessage *self,
                         gint        origin_pid)
{
  self->origin_pid = origin_pid;
}

gint
_mpq_message_get_origin (MpqMessage *self)
{
  return self->origin_pid;
}
