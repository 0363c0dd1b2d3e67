/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "mpq-channel-private.h"
#include "mpq-enum-types.h"
#include "mpq-error.h"
#include "mpq-message-private.h"
#include "mpq-protocol.h"

/**
 * MpqChannel:
 *
 * What [class@Mpq.Pipe] and the queue have in common: send messages, take
 * them with [method@Mpq.Channel.receive], or have them delivered as
 * [signal@Mpq.Channel::message-received] in a main loop. A worker that
 * answers each `DO` until its `DIE`, from `examples/tutorial/dispatch.py`:
 *
 * ```python
 *     queue.connect('message-received::DO', on_do)
 *     queue.connect('message-received::DIE', lambda *_: loop.quit())
 *     queue.connect('closed', lambda *_: loop.quit())
 *     queue.start()
 *     loop.run()
 * ```
 *
 * `timeout_ms` in [method@Mpq.Channel.receive] is pymulproc's `block`:
 * 0 polls and returns at once, -1 waits for as long as it takes, a positive
 * value waits at most that many milliseconds.
 */

G_DEFINE_INTERFACE (MpqChannel, mpq_channel, G_TYPE_OBJECT)

enum { MESSAGE_RECEIVED, CLOSED, N_SIGNALS };
static guint signals[N_SIGNALS];

/* A channel with one peer routes nothing: what comes is for this end. */
static MpqMessage *
mpq_channel_real_receive_for_me (MpqChannel  *self,
                                 gint         timeout_ms,
                                 GError     **error)
{
  return MPQ_CHANNEL_GET_IFACE (self)->receive (self, timeout_ms, NULL, NULL, error);
}

/* The protocol's own requests, as details of ::message-received: found
 * without g_quark_try_string(), which takes GLib's global quark lock and
 * hashes the string for every message. Filled once in default_init,
 * before any channel exists; read-only after. */
static struct
{
  const char *request;
  GQuark      quark;
} known_requests[] = {
  { MPQ_REQ_DO }, { MPQ_REQ_FINISHED }, { MPQ_REQ_DIE }, { MPQ_REQ_READY },
  { MPQ_REQ_FAILED }, { MPQ_REQ_PROGRESS }, { MPQ_REQ_CANCEL },
};

static GQuark
request_detail (const char *request)
{
  for (gsize i = 0; i < G_N_ELEMENTS (known_requests); i++)
    if (request[0] == known_requests[i].request[0] &&
        strcmp (request, known_requests[i].request) == 0)
      return known_requests[i].quark;
  return g_quark_try_string (request);
}

static void
mpq_channel_default_init (MpqChannelInterface *iface)
{
  iface->receive_for_me = mpq_channel_real_receive_for_me;

  /**
   * MpqChannel:role: (getter get_role)
   *
   * Which end of the channel this object is.
   */
  g_object_interface_install_property (iface,
    g_param_spec_enum ("role", NULL, NULL,
                       MPQ_TYPE_ROLE, MPQ_ROLE_PARENT,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));

  /**
   * MpqChannel:pid: (getter get_pid)
   *
   * The pid of this process, the sender pid of what it sends.
   */
  g_object_interface_install_property (iface,
    g_param_spec_int ("pid", NULL, NULL,
                      0, G_MAXINT, 0,
                      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * MpqChannel:max-message-size: (getter get_max_message_size) (setter set_max_message_size)
   *
   * The longest message line, in bytes without its newline, that the
   * channel sends or accepts. A longer line from the peer is
   * `MPQ_ERROR_TOO_LARGE` and drops the peer; memory kept for a peer's
   * unfinished line never exceeds it. Defaults to
   * [const@Mpq.DEFAULT_MAX_MESSAGE_SIZE] (1 MiB).
   */
  g_object_interface_install_property (iface,
    g_param_spec_uint64 ("max-message-size", NULL, NULL,
                         64, G_MAXINT32, MPQ_DEFAULT_MAX_MESSAGE_SIZE,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS));

  /**
   * MpqChannel::message-received:
   * @self: the channel
   * @message: the message
   *
   * Emitted, once [method@Mpq.Channel.start] was called, for each message
   * this process takes, in the thread-default main context of the caller of
   * `start`. The detail is the request, so `message-received::DIE` is
   * emitted for `DIE` only.
   */
  for (gsize i = 0; i < G_N_ELEMENTS (known_requests); i++)
    known_requests[i].quark = g_quark_from_static_string (known_requests[i].request);
  signals[MESSAGE_RECEIVED] =
    g_signal_new ("message-received",
                  G_TYPE_FROM_INTERFACE (iface),
                  G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, MPQ_TYPE_MESSAGE);

  /**
   * MpqChannel::closed:
   * @self: the channel
   *
   * Emitted once, from an idle callback, when the peer hung up, sent
   * something that is not a message, or the channel was closed.
   */
  signals[CLOSED] =
    g_signal_new ("closed",
                  G_TYPE_FROM_INTERFACE (iface),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 0);
}

/* Any thread that runs the channel's consumer context. */
void
_mpq_channel_emit_message_received (MpqChannel *self,
                                    MpqMessage *message)
{
  g_signal_emit (self, signals[MESSAGE_RECEIVED],
                 request_detail (mpq_message_get_request (message)), message);
}

void
_mpq_channel_emit_closed (MpqChannel *self)
{
  g_signal_emit (self, signals[CLOSED], 0);
}

/**
 * mpq_channel_send:
 * @self: a channel
 * @request: what the message asks, a non-empty UTF-8 string
 * @sender_pid: the sender pid, or 0 for this process
 * @recipient_pid: the recipient pid, or 0 for none
 * @data: (nullable): the data, any JSON value
 * @error: return location for an error
 *
 * Sends one message, pymulproc's `send()`.
 *
 * Returns: %TRUE once the whole message is handed over
 */
gboolean
mpq_channel_send (MpqChannel  *self,
                  const char  *request,
                  gint         sender_pid,
                  gint         recipient_pid,
                  JsonNode    *data,
                  GError     **error)
{
  g_autoptr(MpqMessage) message = NULL;
  MpqSendResult result;

  g_return_val_if_fail (MPQ_IS_CHANNEL (self), FALSE);
  g_return_val_if_fail (request != NULL && request[0] != '\0', FALSE);
  g_return_val_if_fail (sender_pid >= 0 && recipient_pid >= 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  result = _mpq_channel_send_outgoing (self, request, sender_pid, recipient_pid, data, NULL, 0,
                                       error);
  if (result != MPQ_SEND_NOT_OURS)
    return result == MPQ_SEND_SENT;

  message = mpq_message_new (request, sender_pid, recipient_pid, data);
  if (message == NULL)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_FAILED, "Invalid message");
      return FALSE;
    }

  return MPQ_CHANNEL_GET_IFACE (self)->send_message (self, message, error);
}

/**
 * mpq_channel_send_json:
 * @self: a channel
 * @request: what the message asks, a non-empty UTF-8 string
 * @sender_pid: the sender pid, or 0 for this process
 * @recipient_pid: the recipient pid, or 0 for none
 * @data_json: (nullable): the data as JSON text, or %NULL for none
 * @error: return location for an error
 *
 * Sends one message whose data is JSON text, as made by Python's
 * `json.dumps()` or JavaScript's `JSON.stringify()`.
 *
 * Returns: %TRUE once the whole message is handed over; %FALSE with
 *   `MPQ_ERROR_PROTOCOL` if @data_json is not JSON
 */
gboolean
mpq_channel_send_json (MpqChannel  *self,
                       const char  *request,
                       gint         sender_pid,
                       gint         recipient_pid,
                       const char  *data_json,
                       GError     **error)
{
  g_autoptr(MpqMessage) message = NULL;
  gsize length;
  MpqSendResult result;

  g_return_val_if_fail (MPQ_IS_CHANNEL (self), FALSE);
  g_return_val_if_fail (request != NULL && request[0] != '\0', FALSE);
  g_return_val_if_fail (sender_pid >= 0 && recipient_pid >= 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* Compact JSON goes out as it is; anything else (whitespace, errors
   * to word) through a message. */
  length = data_json != NULL ? strlen (data_json) : 0;
  if (data_json == NULL ||
      (_mpq_utf8_validate_len (data_json, length) &&
       _mpq_data_json_is_compact (data_json, length)))
    {
      const char *text = data_json != NULL && data_json[0] != 'n' ? data_json : NULL;

      result = _mpq_channel_send_outgoing (self, request, sender_pid, recipient_pid, NULL,
                                           text, length, error);
      if (result != MPQ_SEND_NOT_OURS)
        return result == MPQ_SEND_SENT;
    }

  message = mpq_message_new_with_data_json (request, sender_pid, recipient_pid,
                                            data_json, error);
  if (message == NULL)
    return FALSE;

  return MPQ_CHANNEL_GET_IFACE (self)->send_message (self, message, error);
}

/**
 * mpq_channel_send_message:
 * @self: a channel
 * @message: the message
 * @error: return location for an error
 *
 * Sends a message that is already built.
 *
 * Returns: %TRUE once the whole message is handed over
 */
gboolean
mpq_channel_send_message (MpqChannel  *self,
                          MpqMessage  *message,
                          GError     **error)
{
  g_return_val_if_fail (MPQ_IS_CHANNEL (self), FALSE);
  g_return_val_if_fail (MPQ_IS_MESSAGE (message), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return MPQ_CHANNEL_GET_IFACE (self)->send_message (self, message, error);
}

/**
 * mpq_channel_send_bytes:
 * @self: a channel
 * @request: what the message asks, a non-empty UTF-8 string
 * @sender_pid: the sender pid, or 0 for this process
 * @recipient_pid: the recipient pid, or 0 for none
 * @payload: binary data: a file's contents, an image, an array's buffer
 * @error: return location for an error
 *
 * Sends one message whose data is null and which carries @payload, read
 * back with [method@Mpq.Message.get_bytes]. To send JSON data too, build
 * the message with [ctor@Mpq.Message.new_with_bytes].
 *
 * On an [class@Mpq.Pipe], a payload of more than
 * [const@Mpq.PAYLOAD_INLINE_MAX] bytes travels as a sealed memory file
 * passed with the message, when the peer takes descriptors (a child that
 * uses this library does): it is copied once into the file, never through
 * the line, and [property@Mpq.Channel:max-message-size] does not count
 * it. Smaller payloads, and any to a peer that does not take descriptors,
 * travel inline as base64 (docs/protocol.md), within
 * [property@Mpq.Channel:max-message-size]. A payload received by
 * descriptor and sent on goes as the same file, without a copy. An
 * [class@Mpq.Queue] does the same: its server holds the file with the
 * message and passes it to the child that takes it (inline to a worker
 * that does not take descriptors).
 *
 * Returns: %TRUE once the whole message is handed over
 */
gboolean
mpq_channel_send_bytes (MpqChannel  *self,
                        const char  *request,
                        gint         sender_pid,
                        gint         recipient_pid,
                        GBytes      *payload,
                        GError     **error)
{
  g_autoptr(MpqMessage) message = NULL;

  g_return_val_if_fail (MPQ_IS_CHANNEL (self), FALSE);
  g_return_val_if_fail (request != NULL && request[0] != '\0', FALSE);
  g_return_val_if_fail (sender_pid >= 0 && recipient_pid >= 0, FALSE);
  g_return_val_if_fail (payload != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  message = mpq_message_new_with_bytes (request, sender_pid, recipient_pid, NULL, payload);
  return MPQ_CHANNEL_GET_IFACE (self)->send_message (self, message, error);
}

/**
 * mpq_channel_receive:
 * @self: a channel
 * @timeout_ms: 0 to poll, -1 to wait forever, or the longest wait in
 *   milliseconds
 * @filter: (nullable) (scope call) (closure user_data): decides whether to
 *   take the message at the front
 * @user_data: data for @filter
 * @error: return location for an error
 *
 * Takes one message, pymulproc's `receive()`. If @filter rejects the message
 * at the front, %NULL is returned at once and the message is left for
 * others: first in line on a pipe, at the back of a queue.
 *
 * Messages that arrived before the peer hung up are all taken first; after
 * them, this fails with `MPQ_ERROR_CLOSED`.
 *
 * Returns: (transfer full) (nullable): the message, or %NULL if none was
 *   taken in time (without @error set) or on error
 */
MpqMessage *
mpq_channel_receive (MpqChannel        *self,
                     gint               timeout_ms,
                     MpqMessageFilter   filter,
                     gpointer           user_data,
                     GError           **error)
{
  g_return_val_if_fail (MPQ_IS_CHANNEL (self), NULL);
  g_return_val_if_fail (timeout_ms >= -1, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return MPQ_CHANNEL_GET_IFACE (self)->receive (self, timeout_ms, filter, user_data, error);
}

/**
 * mpq_channel_receive_json:
 * @self: a channel
 * @timeout_ms: 0 to poll, -1 to wait forever, or the longest wait in
 *   milliseconds
 * @error: return location for an error
 *
 * Takes one message, as [method@Mpq.Channel.receive] does without a
 * filter, and returns it as its wire line: compact JSON text of
 * `[request, sender_pid, recipient_pid, data]`. From Python,
 * `json.loads (channel.receive_json (-1))` gives pymulproc's own message,
 * a list, in one call and without a [class@Mpq.Message] wrapper.
 *
 * Returns: (transfer full) (nullable): the message as JSON, or %NULL if
 *   none was taken in time (without @error set) or on error
 */
char *
mpq_channel_receive_json (MpqChannel  *self,
                          gint         timeout_ms,
                          GError     **error)
{
  const MpqChannelPrivateVfuncs *vfuncs;
  g_autoptr(MpqMessage) message = NULL;

  g_return_val_if_fail (MPQ_IS_CHANNEL (self), NULL);
  g_return_val_if_fail (timeout_ms >= -1, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  vfuncs = _mpq_channel_get_private (self);
  if (vfuncs != NULL && vfuncs->receive_json != NULL)
    return vfuncs->receive_json (self, timeout_ms, error);

  message = MPQ_CHANNEL_GET_IFACE (self)->receive (self, timeout_ms, NULL, NULL, error);
  if (message == NULL)
    return NULL;

  /* A message read from the wire holds JSON that writes back. */
  return mpq_message_to_json (message, NULL);
}

/**
 * mpq_channel_receive_for_me:
 * @self: a channel
 * @timeout_ms: 0 to poll, -1 to wait forever, or the longest wait in
 *   milliseconds
 * @error: return location for an error
 *
 * Takes the next message addressed to this process or to nobody, waiting
 * as [method@Mpq.Channel.receive] does: the synchronous twin of
 * [method@Mpq.Channel.receive_async], for a process without a main loop.
 *
 * On a queue, messages addressed to other processes stay where they are,
 * and so do the messages for nobody that this process put itself (a
 * parent that puts `DO` tasks for anyone and collects the `FINISHED`
 * answers does not get its tasks back); what it addressed to itself is
 * returned. Nothing is put back: where [method@Mpq.Channel.receive] with
 * a filter would send a refused message to the back of the queue, this
 * leaves every other message in its place. On a pipe, which has one peer,
 * it is [method@Mpq.Channel.receive] without a filter.
 *
 * Call it from the thread that uses the channel.
 *
 * Returns: (transfer full) (nullable): the message, or %NULL if none came
 *   in time (without @error set) or on error (`MPQ_ERROR_CLOSED` once the
 *   channel is closed or its peer hung up)
 *
 * Since: 1.2
 */
MpqMessage *
mpq_channel_receive_for_me (MpqChannel  *self,
                            gint         timeout_ms,
                            GError     **error)
{
  g_return_val_if_fail (MPQ_IS_CHANNEL (self), NULL);
  g_return_val_if_fail (timeout_ms >= -1, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return MPQ_CHANNEL_GET_IFACE (self)->receive_for_me (self, timeout_ms, error);
}

/**
 * mpq_channel_receive_async:
 * @self: a channel
 * @cancellable: (nullable): a cancellable
 * @callback: (scope async): called once a message for this process arrives
 * @user_data: data for @callback
 *
 * Waits for the next message for this process, in the thread-default main
 * context of the caller. Pending calls are served in the order they were
 * made, before [signal@Mpq.Channel::message-received] is emitted.
 *
 * Finish with [method@Mpq.Channel.receive_finish].
 */
void
mpq_channel_receive_async (MpqChannel          *self,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  g_return_if_fail (MPQ_IS_CHANNEL (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  MPQ_CHANNEL_GET_IFACE (self)->receive_async (self, cancellable, callback, user_data);
}

/**
 * mpq_channel_receive_finish:
 * @self: a channel
 * @result: the result given to the callback
 * @error: return location for an error
 *
 * Completes [method@Mpq.Channel.receive_async].
 *
 * Returns: (transfer full): the message, or %NULL with @error set
 */
MpqMessage *
mpq_channel_receive_finish (MpqChannel    *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (MPQ_IS_CHANNEL (self), NULL);
  g_return_val_if_fail (G_IS_ASYNC_RESULT (result), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return MPQ_CHANNEL_GET_IFACE (self)->receive_finish (self, result, error);
}

/**
 * mpq_channel_start:
 * @self: a channel
 *
 * Starts emitting [signal@Mpq.Channel::message-received] for every message
 * this process takes, in the thread-default main context of the caller,
 * waiting ones first (`MPQ_DEBUG=1` tells of a channel never started nor read).
 */
void
mpq_channel_start (MpqChannel *self)
{
  g_return_if_fail (MPQ_IS_CHANNEL (self));

  MPQ_CHANNEL_GET_IFACE (self)->start (self);
}

/**
 * mpq_channel_stop:
 * @self: a channel
 *
 * Stops emitting [signal@Mpq.Channel::message-received]. Messages that
 * arrive meanwhile wait for [method@Mpq.Channel.receive] or the next
 * [method@Mpq.Channel.start]. Safe to call from a signal handler.
 */
void
mpq_channel_stop (MpqChannel *self)
{
  g_return_if_fail (MPQ_IS_CHANNEL (self));

  MPQ_CHANNEL_GET_IFACE (self)->stop (self);
}

/**
 * mpq_channel_flush:
 * @self: a channel
 * @timeout_ms: how long to wait for a peer that is not reading: -1 for as
 *   long as it takes, 0 not at all
 * @error: return location for an error
 *
 * Makes sure that everything sent so far has left this process.
 *
 * A send writes at once when it follows a pause; sends that follow each
 * other quickly are gathered and written together by a thread of the
 * library within microseconds, many messages per system call. Everything
 * is written out anyway before the library waits for an answer, at close,
 * and when the process exits normally. Call this before a process may be
 * killed or crash, or before `_exit()`, if the last messages it sent must
 * arrive.
 *
 * Returns: %TRUE once everything was written; %FALSE with
 *   `MPQ_ERROR_TIMED_OUT` if the peer did not read in time, or
 *   `MPQ_ERROR_CLOSED`
 */
gboolean
mpq_channel_flush (MpqChannel  *self,
                   gint         timeout_ms,
                   GError     **error)
{
  g_return_val_if_fail (MPQ_IS_CHANNEL (self), FALSE);
  g_return_val_if_fail (timeout_ms >= -1, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return MPQ_CHANNEL_GET_IFACE (self)->flush (self, timeout_ms, error);
}

/**
 * mpq_channel_close:
 * @self: a channel
 *
 * Closes the channel; the peer sees it hang up. Later calls fail with
 * `MPQ_ERROR_CLOSED` and pending [method@Mpq.Channel.receive_async] calls
 * complete with it. Closing twice does nothing.
 */
void
mpq_channel_close (MpqChannel *self)
{
  g_return_if_fail (MPQ_IS_CHANNEL (self));

  MPQ_CHANNEL_GET_IFACE (self)->close (self);
}

/**
 * mpq_channel_get_role: (get-property role)
 * @self: a channel
 *
 * Gets which end of the channel this is.
 *
 * Returns: the role
 */
MpqRole
mpq_channel_get_role (MpqChannel *self)
{
  MpqRole role;

  g_return_val_if_fail (MPQ_IS_CHANNEL (self), MPQ_ROLE_PARENT);

  g_object_get (self, "role", &role, NULL);
  return role;
}

/**
 * mpq_channel_get_pid: (get-property pid)
 * @self: a channel
 *
 * Gets the pid of this process, the one its messages are sent with.
 *
 * Returns: the pid
 */
gint
mpq_channel_get_pid (MpqChannel *self)
{
  gint pid;

  g_return_val_if_fail (MPQ_IS_CHANNEL (self), 0);

  g_object_get (self, "pid", &pid, NULL);
  return pid;
}

/**
 * mpq_channel_get_max_message_size: (get-property max-message-size)
 * @self: a channel
 *
 * Gets the longest message line the channel sends or accepts.
 *
 * Returns: the size in bytes
 */
gsize
mpq_channel_get_max_message_size (MpqChannel *self)
{
  guint64 size;

  g_return_val_if_fail (MPQ_IS_CHANNEL (self), 0);

  g_object_get (self, "max-message-size", &size, NULL);
  return (gsize) size;
}

/**
 * mpq_channel_set_max_message_size: (set-property max-message-size)
 * @self: a channel
 * @max_message_size: the size in bytes, at least 64
 *
 * Sets the longest message line the channel sends or accepts.
 */
void
mpq_channel_set_max_message_size (MpqChannel *self,
                                  gsize       max_message_size)
{
  g_return_if_fail (MPQ_IS_CHANNEL (self));
  g_return_if_fail (max_message_size >= 64 && max_message_size <= G_MAXINT32);

  g_object_set (self, "max-message-size", (guint64) max_message_size, NULL);
}
