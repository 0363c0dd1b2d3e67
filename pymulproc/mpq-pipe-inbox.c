/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "mpq-codec-private.h"
#include "mpq-error.h"
#include "mpq-pipe-private.h"
#include "mpq-source-private.h"
#include "mpq-spawn-private.h"

/* A pipe's inbox: what the endpoint read, until receive, receive_json,
 * receive_async or ::message-received takes it. Everything here runs in
 * the pipe's owner's thread, its sources included (mpq-endpoint.c). */

/* A line kept as it came, for a consumer that takes lines: receive_json
 * hands it over without making a message of it. */
typedef struct
{
  gsize length;
  char  text[];
} RawLine;

static gboolean
has_buffered (MpqPipe *self)
{
  return self->inbox.length > 0 || self->raw.length > 0;
}

void
_mpq_pipe_clear_inbox (MpqPipe *self)
{
  g_queue_clear_full (&self->inbox, g_object_unref);
  g_queue_clear_full (&self->raw, g_free);
}

static void
reading_failed (MpqPipe *self,
                GError  *error)
{
  if (!self->ep.read_done)
    _mpq_endpoint_stop_reading (&self->ep, error);
  else
    {
      g_clear_error (&self->ep.read_error);
      self->ep.read_error = error;
    }
}

/* Decodes the raw lines into the inbox, in order; a bad line ends the
 * stream there (what came after it is dropped), as in pipe_line(). */
static void
decode_raw (MpqPipe *self)
{
  RawLine *line;

  while ((line = g_queue_pop_head (&self->raw)) != NULL)
    {
      GError *error = NULL;
      MpqMessage *message = _mpq_codec_decode_full (line->text, line->length, self->ep.fds,
                                                    &error);

      g_free (line);
      if (message == NULL)
        {
          g_queue_clear_full (&self->raw, g_free);
          reading_failed (self, error);
          return;
        }
      g_queue_push_tail (&self->inbox, message);
    }
}

/* The endpoint read a line: a message at the back of the inbox (or the
 * line itself, for a consumer that takes lines). A bad line stops reading
 * from this peer for good: the messages before it are kept. */
static gboolean
pipe_line (gpointer     owner,
           const char  *line,
           gsize        length,
           GError     **error)
{
  MpqPipe *self = owner;
  MpqMessage *message;

  /* A child's first line may say that it takes payloads by descriptor:
   * the only frame a pipe knows, and only from a child, only first. */
  if (!self->lines_seen)
    {
      self->lines_seen = TRUE;
      if (self->role == MPQ_ROLE_PARENT && length == strlen (MPQ_PIPE_HELLO_FDS) &&
          memcmp (line, MPQ_PIPE_HELLO_FDS, length) == 0)
        {
          self->peer_fds = TRUE;
          return TRUE;
        }
    }

  if (self->json_mode && self->inbox.length == 0)
    {
      RawLine *raw = g_malloc (sizeof (RawLine) + length);

      raw->length = length;
      memcpy (raw->text, line, length);
      g_queue_push_tail (&self->raw, raw);
      return TRUE;
    }

  message = _mpq_codec_decode_full (line, length, self->ep.fds, error);
  if (message == NULL)
    return FALSE;
  g_queue_push_tail (&self->inbox, message);
  return TRUE;
}

/* Nothing more is read while messages wait: memory stays bounded. */
static gboolean
pipe_holding (gpointer owner)
{
  return has_buffered (owner);
}

/* Once everything read has been taken and reading stopped, the pipe is
 * closed for receiving. Returns the error to report for that, once. */
static void
take_end_of_stream (MpqPipe  *self,
                    GError  **error)
{
  g_assert (self->ep.read_done && !has_buffered (self));

  self->eos_taken = TRUE;

  if (self->ep.read_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&self->ep.read_error));
      /* A peer that sent garbage is dropped: it sees us hang up. */
      if (self->ep.fd >= 0)
        shutdown (self->ep.fd, SHUT_RDWR);
    }
  else
    _mpq_endpoint_set_closed_error (&self->ep, error);

  _mpq_endpoint_schedule_closed (&self->ep);
}

/* Delivery to async waiters and ::message-received ---------------------- */

void
_mpq_pipe_fail_waiters (MpqPipe *self,
                        GError  *error)
{
  GTask *task;

  while ((task = g_queue_pop_head (&self->waiters)) != NULL)
    {
      _mpq_task_unwatch_cancel (task);
      g_task_return_error (task, g_error_copy (error));
      g_object_unref (task);
    }

  g_error_free (error);
}

/* Whether a waiter or a handler takes the next message now. A handler
 * that runs a main loop of its own is not handed the next message inside
 * it: messages are handled one handler at a time, in order. Its
 * receive_async calls are answered there. */
static gboolean
has_taker (MpqPipe *self)
{
  return self->waiters.length > 0 || (self->started && !self->emitting);
}

static void
pipe_deliver (gpointer owner)
{
  MpqPipe *self = g_object_ref (owner);
  MpqWriter *held = self->ep.writer != NULL ? _mpq_writer_hold (self->ep.writer) : NULL;
  gboolean nested = self->emitting;

  self->json_mode = FALSE;
  decode_raw (self);

  /* All that came, in one go: a pipe has one reader, nobody else could
   * take the rest. */
  while (self->inbox.length > 0 && has_taker (self))
    {
      g_autoptr(MpqMessage) message = NULL;
      GTask *task = g_queue_pop_head (&self->waiters);

      /* A waiter cancelled before its cancel source ran gets no message. */
      if (task != NULL && g_task_return_error_if_cancelled (task))
        {
          _mpq_task_unwatch_cancel (task);
          g_object_unref (task);
          continue;
        }

      message = g_queue_pop_head (&self->inbox);
      if (held != NULL && self->inbox.length == 0)
        _mpq_writer_hold_last (held);
      if (task != NULL)
        {
          _mpq_task_unwatch_cancel (task);
          g_task_return_pointer (task, g_steal_pointer (&message), g_object_unref);
          g_object_unref (task);
        }
      else
        {
          self->emitting = TRUE;
          _mpq_channel_emit_message_received (MPQ_CHANNEL (self), message);
          self->emitting = nested;
        }
    }

  if (!self->ep.closed && self->ep.read_done && !self->eos_taken && !has_buffered (self))
    {
      GError *error = NULL;

      take_end_of_stream (self, &error);
      if (self->waiters.length > 0)
        _mpq_pipe_fail_waiters (self, error);
      else
        {
          /* Signal users only see ::closed; say why for MPQ_DEBUG-less
           * debugging (G_MESSAGES_DEBUG=Mpq). */
          g_debug ("Pipe closed: %s", error->message);
          g_error_free (error);
        }
    }

  _mpq_pipe_update_sources (self);
  if (held != NULL)
    _mpq_writer_release (held);
  g_object_unref (self);
}

static void
pipe_closed (gpointer owner)
{
  _mpq_channel_emit_closed (MPQ_CHANNEL (owner));
}

const MpqEndpointClass _mpq_pipe_endpoint_class = {
  .source_name = "[mpq] pipe read",
  .type_name = "MpqPipe",
  .closed_text = "The pipe is closed",
  .line_overhead = 0,
  .idle_what = "pipe",
  .line = pipe_line,
  .holding = pipe_holding,
  .deliver = pipe_deliver,
  .closed = pipe_closed,
};

/* Keeps the sources the state calls for. */
void
_mpq_pipe_update_sources (MpqPipe *self)
{
  _mpq_endpoint_update_sources (&self->ep, self->started || self->waiters.length > 0,
                                has_buffered (self) ? has_taker (self)
                                                    : self->ep.read_done && !self->eos_taken);
}

/* receive --------------------------------------------------------------- */

/* Reads until something is buffered, waiting until @timeout_ms. Returns
 * FALSE when nothing came (with @error set if it is not just the time). */
static gboolean
wait_for_buffered (MpqPipe  *self,
                   gint      timeout_ms,
                   GError  **error)
{
  gint64 deadline = _mpq_deadline_from_timeout (timeout_ms);

  if (!_mpq_pipe_ensure_open (self, error))
    return FALSE;
  /* A receive of any kind: MPQ_DEBUG's idle check has nothing to say. */
  _mpq_debug_idle_stop (&self->ep.idle);
  if (self->ep.closed || (self->eos_taken && !has_buffered (self)))
    {
      _mpq_endpoint_set_closed_error (&self->ep, error);
      return FALSE;
    }

  if (!has_buffered (self))
    {
      gboolean waited = FALSE;

      /* The peer has nothing queued for us: we are answering, and what
       * we send next is an answer that should leave at once. */
      _mpq_writer_expect_reply (self->ep.writer);

      while (!has_buffered (self))
        {
          if (self->ep.read_done)
            {
              take_end_of_stream (self, error);
              return FALSE;
            }

          /* A peer that made us wait last time will likely again: wait
           * first rather than make a read that finds nothing. */
          if ((waited || !self->wait_first || deadline == 0) && _mpq_endpoint_read_some (&self->ep))
            continue;

          /* What we sent goes out before we wait for the answer. */
          if (deadline != 0)
            _mpq_writer_flush (self->ep.writer, self->send_timeout, NULL);
          if (deadline == 0 || !_mpq_wait_fd (self->ep.fd, POLLIN, deadline))
            return FALSE;
          waited = TRUE;
        }
      self->wait_first = waited;
    }

  return TRUE;
}

/* After wait_for_buffered(): the next message, decoded, left first in
 * line; or NULL, the stream ended by a line that is no message. */
static MpqMessage *
peek_decoded (MpqPipe  *self,
              GError  **error)
{
  decode_raw (self);
  if (self->inbox.length == 0)
    {
      take_end_of_stream (self, error);
      return NULL;
    }
  return g_queue_peek_head (&self->inbox);
}

MpqMessage *
_mpq_pipe_receive (MpqChannel        *channel,
                   gint               timeout_ms,
                   MpqMessageFilter   filter,
                   gpointer           user_data,
                   GError           **error)
{
  MpqPipe *self = MPQ_PIPE (channel);
  MpqMessage *head;

  self->json_mode = FALSE;
  if (!wait_for_buffered (self, timeout_ms, error))
    return NULL;

  head = peek_decoded (self, error);
  if (head == NULL || (filter != NULL && !filter (head, user_data)))
    return NULL;

  return g_queue_pop_head (&self->inbox);
}

/* receive_json: lines are kept as they come and a line that checks out
 * is handed over as it is, without making a message of it. */
char *
_mpq_pipe_receive_json (MpqChannel  *channel,
                        gint         timeout_ms,
                        GError     **error)
{
  MpqPipe *self = MPQ_PIPE (channel);
  g_autoptr(MpqMessage) message = NULL;
  RawLine *line;
  gint recipient;

  self->json_mode = TRUE;
  if (!wait_for_buffered (self, timeout_ms, error))
    return NULL;

  line = g_queue_peek_head (&self->raw);
  if (self->inbox.length == 0 &&
      _mpq_codec_check (line->text, line->length, &recipient, NULL))
    {
      char *text = g_strndup (line->text, line->length);

      g_free (g_queue_pop_head (&self->raw));
      return text;
    }

  if (peek_decoded (self, error) == NULL)
    return NULL;
  message = g_queue_pop_head (&self->inbox);
  return mpq_message_to_json (message, NULL);
}

static void
cancelled_cb (GCancellable *cancellable,
              gpointer      user_data)
{
  GTask *task = user_data;
  MpqPipe *self = g_task_get_source_object (task);

  if (g_queue_remove (&self->waiters, task))
    {
      g_task_return_error_if_cancelled (task);
      g_object_unref (task);
      _mpq_pipe_update_sources (self);
    }
}

static gboolean
cancel_source_cb (GCancellable *cancellable,
                  gpointer      user_data)
{
  cancelled_cb (cancellable, user_data);

  return G_SOURCE_REMOVE;
}

void
_mpq_pipe_receive_async (MpqChannel          *channel,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  MpqPipe *self = MPQ_PIPE (channel);
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, _mpq_pipe_receive_async);

  if (!_mpq_pipe_ensure_open (self, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  if (self->ep.closed || (self->eos_taken && !has_buffered (self)))
    {
      g_task_return_new_error (task, MPQ_ERROR, MPQ_ERROR_CLOSED, "The pipe is closed");
      return;
    }

  if (!_mpq_endpoint_acquire_context (&self->ep))
    {
      g_task_return_new_error (task, MPQ_ERROR, MPQ_ERROR_FAILED,
                               "The pipe is in use from another main context");
      return;
    }

  /* Cancellation is noticed in our context, where the waiters live. */
  _mpq_task_watch_cancel (task, self->ep.context, cancel_source_cb, task);

  g_queue_push_tail (&self->waiters, g_steal_pointer (&task));
  _mpq_pipe_update_sources (self);
}

MpqMessage *
_mpq_pipe_receive_finish (MpqChannel    *channel,
                          GAsyncResult  *result,
                          GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, channel), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == _mpq_pipe_receive_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}
