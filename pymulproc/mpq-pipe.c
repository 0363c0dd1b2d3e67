/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mpq-channel-private.h"
#include "mpq-codec-private.h"
#include "mpq-debug-private.h"
#include "mpq-error.h"
#include "mpq-line-reader-private.h"
#include "mpq-pipe.h"
#include "mpq-source-private.h"
#include "mpq-spawn-private.h"
#include "mpq-writer-private.h"

/**
 * MpqPipe:
 *
 * A 1:1 full-duplex channel between a parent and one child it spawned.
 *
 * The parent makes the pipe and spawns the child; the child inherits its end
 * as a descriptor named by the `MPQ_CHANNEL_FD` environment variable and
 * opens it with [ctor@Mpq.Pipe.new_for_child].
 *
 * ```c
 * g_autoptr(MpqPipe) pipe = mpq_pipe_new (&error);
 * const char *argv[] = { "./worker", NULL };
 * g_autoptr(GSubprocess) child = mpq_pipe_spawn (pipe, argv, &error);
 *
 * mpq_channel_send (MPQ_CHANNEL (pipe), MPQ_REQ_DO, 0, 0, data, &error);
 * reply = mpq_channel_receive (MPQ_CHANNEL (pipe), -1, NULL, NULL, &error);
 * ```
 *
 * Messages are never lost or reordered. A child that dies is seen at once:
 * what it sent before dying is still delivered, then
 * [method@Mpq.Channel.receive] fails with `MPQ_ERROR_CLOSED` and
 * [signal@Mpq.Channel::closed] is emitted.
 *
 * Sending writes straight to the socket. When the peer stops reading and the
 * socket is full, [method@Mpq.Channel.send] waits for room at most
 * [property@Mpq.Pipe:send-timeout] milliseconds and then fails with
 * `MPQ_ERROR_TIMED_OUT`, having sent nothing of that message. If a message
 * was partly written when the time ran out, its rest is kept and written
 * first by the next send, by the main loop once the pipe is started, or at
 * close: a message is sent whole or not at all.
 *
 * A pipe is a [iface@Gio.Initable]: `Mpq.Pipe()` from a binding, or
 * g_object_new(), makes a parent's pipe (or, with `role` `MPQ_ROLE_CHILD`,
 * a child's), opened by g_initable_init() or, if nobody called it, by
 * its first call, whose error (`MPQ_ERROR_NOT_A_CHILD`, say) every call
 * then returns.
 */

struct _MpqPipe
{
  GObject        parent_instance;

  GMainContext  *context;     /* thread-default of the first consumer, or NULL */
  MpqReadSources sources;    /* on @context while someone wants messages */
  GSource       *closed_idle; /* emits ::closed, or NULL */
  GSource       *flush;       /* writes out before @context waits, or NULL */
  GIOChannel    *io_channel;

  GQueue         inbox;       /* MpqMessage, read but not taken, oldest first */
  GQueue         raw;         /* RawLine, for receive_json; only while @inbox is empty */
  GQueue         waiters;     /* GTask per pending receive_async, oldest first */
  GError        *read_error;  /* why reading stopped, reported once after inbox */
  MpqLineReader  reader;
  GString       *line;        /* scratch for encoding */
  MpqWriter     *writer;      /* coalesces what we send, or NULL once closed */

  gsize          max_message_size;
  gint           send_timeout;
  int            fd;          /* our end, -1 once closed */
  int            child_fd;    /* the end to hand to a child, -1 once spawned */
  MpqRole        role;
  MpqInitOnce    init;        /* GInitable: the descriptor, made or claimed */

  guint          started : 1;
  guint          read_done : 1;   /* EOF or read_error seen: nothing more to read */
  guint          eos_taken : 1;   /* ... and reported, after the last message */
  guint          closed : 1;      /* closed by us, or the peer hung up and all was taken */
  guint          closed_emitted : 1;
  guint          wait_first : 1;  /* the last blocking receive had to wait */
  guint          json_mode : 1;   /* the consumer takes lines (receive_json) */
};

enum
{
  PROP_SEND_TIMEOUT = MPQ_CHANNEL_N_PROPS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void mpq_pipe_channel_iface_init (MpqChannelInterface *iface);
static void mpq_pipe_initable_iface_init (GInitableIface *iface);
static void update_sources (MpqPipe *self);

G_DEFINE_FINAL_TYPE_WITH_CODE (MpqPipe, mpq_pipe, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (MPQ_TYPE_CHANNEL,
                                                      mpq_pipe_channel_iface_init)
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      mpq_pipe_initable_iface_init))

static gboolean pipe_open (GInitable  *initable,
                           GError    **error);

/* Every public call starts here: a pipe a binding made with
 * g_object_new() is opened on first use (see MpqInitOnce). A pipe closed
 * before that stays closed, unopened. Owner's thread. */
static inline gboolean
ensure_open (MpqPipe  *self,
             GError  **error)
{
  if (G_LIKELY ((self->init.done && self->init.error == NULL) || self->closed))
    return TRUE;
  return _mpq_init_once (&self->init, G_INITABLE (self), pipe_open, error);
}

static void
set_closed_error (GError **error)
{
  g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_CLOSED, "The pipe is closed");
}

/* ::closed -------------------------------------------------------------- */

static gboolean
emit_closed_cb (gpointer user_data)
{
  MpqPipe *self = user_data;

  g_clear_pointer (&self->closed_idle, g_source_unref);
  _mpq_channel_emit_closed (MPQ_CHANNEL (self));

  return G_SOURCE_REMOVE;
}

/* Queues ::closed once, from an idle on the consumer's context (or the
 * caller's), never re-entrantly from the call that noticed it. */
static void
schedule_closed (MpqPipe *self)
{
  g_autoptr(GMainContext) context = NULL;

  if (self->closed_emitted)
    return;

  self->closed_emitted = TRUE;
  context = self->context != NULL ? g_main_context_ref (self->context)
                                   : g_main_context_ref_thread_default ();
  self->closed_idle = _mpq_source_attach (g_idle_source_new (), context,
                                          "[mpq] pipe closed", emit_closed_cb, self);
}

/* Reading --------------------------------------------------------------- */

static void
stop_reading (MpqPipe *self,
              GError  *error)
{
  g_assert (!self->read_done);

  self->read_done = TRUE;
  self->read_error = error;
  _mpq_line_reader_clear (&self->reader);
}

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

static void
reading_failed (MpqPipe *self,
                GError  *error)
{
  if (!self->read_done)
    stop_reading (self, error);
  else
    {
      g_clear_error (&self->read_error);
      self->read_error = error;
    }
}

/* Decodes the raw lines into the inbox, in order; a bad line ends the
 * stream there (what came after it is dropped), as in parse_lines(). */
static void
decode_raw (MpqPipe *self)
{
  RawLine *line;

  while ((line = g_queue_pop_head (&self->raw)) != NULL)
    {
      GError *error = NULL;
      MpqMessage *message = _mpq_codec_decode (line->text, line->length, &error);

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

/* Splits what is buffered into messages at the back of the inbox (or
 * lines, for a consumer that takes lines). A bad line stops reading from
 * this peer for good: the messages before it are kept. */
static void
parse_lines (MpqPipe *self)
{
  const char *line;
  gsize length;

  while (!self->read_done)
    {
      GError *error = NULL;
      MpqMessage *message;

      if (!_mpq_line_reader_next (&self->reader, &line, &length, &error))
        {
          if (error != NULL)
            stop_reading (self, error);
          return;
        }

      MPQ_DEBUG_LINE ("<", line, length);

      if (self->json_mode && self->inbox.length == 0)
        {
          RawLine *raw = g_malloc (sizeof (RawLine) + length);

          raw->length = length;
          memcpy (raw->text, line, length);
          g_queue_push_tail (&self->raw, raw);
          continue;
        }

      message = _mpq_codec_decode (line, length, &error);
      if (message == NULL)
        {
          stop_reading (self, error);
          return;
        }

      g_queue_push_tail (&self->inbox, message);
    }
}

/* Reads once, without blocking, and parses what came. Returns FALSE when
 * nothing was there to read. */
static gboolean
read_some (MpqPipe *self)
{
  GError *error = NULL;

  g_assert (!self->read_done && self->fd >= 0);

  switch (_mpq_line_reader_fill (&self->reader, self->fd, &error))
    {
    case MPQ_READ_DATA:
      parse_lines (self);
      return TRUE;

    case MPQ_READ_AGAIN:
      return FALSE;

    case MPQ_READ_EOF:
    default:
      if (error == NULL && _mpq_line_reader_has_partial (&self->reader))
        g_set_error_literal (&error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                             "The peer hung up in the middle of a message");
      stop_reading (self, error);
      return TRUE;
    }
}

/* Once everything read has been taken and reading stopped, the pipe is
 * closed for receiving. Returns the error to report for that, once. */
static void
take_end_of_stream (MpqPipe  *self,
                    GError  **error)
{
  g_assert (self->read_done && !has_buffered (self));

  self->eos_taken = TRUE;

  if (self->read_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&self->read_error));
      /* A peer that sent garbage is dropped: it sees us hang up. */
      if (self->fd >= 0)
        shutdown (self->fd, SHUT_RDWR);
    }
  else
    set_closed_error (error);

  schedule_closed (self);
}

/* Delivery to async waiters and ::message-received ---------------------- */

static void
fail_waiters (MpqPipe *self,
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

static void
deliver (MpqPipe *self)
{
  MpqWriter *held = self->writer != NULL ? _mpq_writer_hold (self->writer) : NULL;

  g_object_ref (self);
  self->json_mode = FALSE;
  decode_raw (self);

  /* All that came, in one go: a pipe has one reader, nobody else could
   * take the rest. */
  while (self->inbox.length > 0 && (self->waiters.length > 0 || self->started))
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
      if (task != NULL)
        {
          _mpq_task_unwatch_cancel (task);
          g_task_return_pointer (task, g_steal_pointer (&message), g_object_unref);
          g_object_unref (task);
        }
      else
        _mpq_channel_emit_message_received (MPQ_CHANNEL (self), message);
    }

  if (!self->closed && self->read_done && !self->eos_taken && !has_buffered (self))
    {
      GError *error = NULL;

      take_end_of_stream (self, &error);
      if (self->waiters.length > 0)
        fail_waiters (self, error);
      else
        {
          /* Signal users only see ::closed; say why for MPQ_DEBUG-less
           * debugging (G_MESSAGES_DEBUG=Mpq). */
          g_debug ("Pipe closed: %s", error->message);
          g_error_free (error);
        }
    }

  update_sources (self);
  if (held != NULL)
    _mpq_writer_release (held);
  g_object_unref (self);
}

static gboolean
watch_cb (gpointer user_data)
{
  MpqPipe *self = user_data;

  /* Nothing more is read while messages wait: memory stays bounded. */
  if (!self->read_done && self->fd >= 0 && !has_buffered (self))
    read_some (self);

  deliver (self);

  return G_SOURCE_CONTINUE;
}

static gboolean
idle_cb (gpointer user_data)
{
  deliver (user_data);

  return G_SOURCE_CONTINUE;
}

/* Keeps the sources the state calls for (see MpqReadSources). */
static void
update_sources (MpqPipe *self)
{
  gboolean wanted = !self->closed && (self->started || self->waiters.length > 0);
  MpqReadState state = {
    .wanted = wanted,
    .readable = !self->read_done,
    .buffered = has_buffered (self) || (self->read_done && !self->eos_taken),
  };

  _mpq_read_sources_update (&self->sources, state, self->context, self->io_channel,
                            "[mpq] pipe read", watch_cb, idle_cb, self);

  if (!wanted && self->waiters.length == 0)
    {
      _mpq_clear_source (&self->flush);
      g_clear_pointer (&self->context, g_main_context_unref);
    }
}

/* Takes the caller's thread-default context as the one signals and async
 * results go to, unless a consumer already chose one. */
static gboolean
acquire_context (MpqPipe *self)
{
  g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();

  if (self->context == NULL)
    {
      self->context = g_steal_pointer (&context);
      if (self->writer != NULL)
        {
          self->flush = _mpq_writer_flush_source_new (self->writer);
          g_source_attach (self->flush, self->context);
        }
      return TRUE;
    }

  if (self->context != context)
    {
      g_critical ("MpqPipe is already in use from another main context");
      return FALSE;
    }

  return TRUE;
}

/* Writing --------------------------------------------------------------- */

static gboolean
check_can_send (MpqPipe  *self,
                GError  **error)
{
  if (!ensure_open (self, error))
    return FALSE;
  if (self->closed || self->fd < 0)
    {
      set_closed_error (error);
      return FALSE;
    }
  g_string_truncate (self->line, 0);
  return TRUE;
}

/* Sends what was encoded in self->line. */
static gboolean
send_line (MpqPipe  *self,
           GError  **error)
{
  if (self->line->len > self->max_message_size)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE,
                   "Message of %" G_GSIZE_FORMAT " bytes is longer than %" G_GSIZE_FORMAT,
                   self->line->len, self->max_message_size);
      return FALSE;
    }

  MPQ_DEBUG_LINE (">", self->line->str, self->line->len);
  g_string_append_c (self->line, '\n');

  return _mpq_writer_send (self->writer, self->line->str, self->line->len,
                           self->send_timeout, error);
}

static gboolean
mpq_pipe_send_message (MpqChannel  *channel,
                       MpqMessage  *message,
                       GError     **error)
{
  MpqPipe *self = MPQ_PIPE (channel);

  return check_can_send (self, error) &&
         _mpq_codec_encode (message, self->line, error) &&
         send_line (self, error);
}

static gboolean
mpq_pipe_send_outgoing (MpqChannel         *channel,
                        const MpqOutgoing  *outgoing,
                        GError            **error)
{
  MpqPipe *self = MPQ_PIPE (channel);

  return check_can_send (self, error) &&
         _mpq_codec_encode_outgoing (outgoing, self->line, error) &&
         send_line (self, error);
}

static gboolean
mpq_pipe_flush (MpqChannel  *channel,
                gint         timeout_ms,
                GError     **error)
{
  MpqPipe *self = MPQ_PIPE (channel);

  if (!ensure_open (self, error))
    return FALSE;
  if (self->closed || self->writer == NULL)
    {
      set_closed_error (error);
      return FALSE;
    }
  return _mpq_writer_flush (self->writer, timeout_ms, error);
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

  if (!ensure_open (self, error))
    return FALSE;
  if (self->closed || (self->eos_taken && !has_buffered (self)))
    {
      set_closed_error (error);
      return FALSE;
    }

  if (!has_buffered (self))
    {
      gboolean waited = FALSE;

      /* The peer has nothing queued for us: we are answering, and what
       * we send next is an answer that should leave at once. */
      _mpq_writer_expect_reply (self->writer);

      while (!has_buffered (self))
        {
          if (self->read_done)
            {
              take_end_of_stream (self, error);
              return FALSE;
            }

          /* A peer that made us wait last time will likely again: wait
           * first rather than make a read that finds nothing. */
          if ((waited || !self->wait_first || deadline == 0) && read_some (self))
            continue;

          /* What we sent goes out before we wait for the answer. */
          if (deadline != 0)
            _mpq_writer_flush (self->writer, self->send_timeout, NULL);
          if (deadline == 0 || !_mpq_wait_fd (self->fd, POLLIN, deadline))
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

static MpqMessage *
mpq_pipe_receive (MpqChannel        *channel,
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
static char *
mpq_pipe_receive_json (MpqChannel  *channel,
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
      update_sources (self);
    }
}

static gboolean
cancel_source_cb (GCancellable *cancellable,
                  gpointer      user_data)
{
  cancelled_cb (cancellable, user_data);

  return G_SOURCE_REMOVE;
}

static void
mpq_pipe_receive_async (MpqChannel          *channel,
                        GCancellable        *cancellable,
                        GAsyncReadyCallback  callback,
                        gpointer             user_data)
{
  MpqPipe *self = MPQ_PIPE (channel);
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, mpq_pipe_receive_async);

  if (!ensure_open (self, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  if (self->closed || (self->eos_taken && !has_buffered (self)))
    {
      g_task_return_new_error (task, MPQ_ERROR, MPQ_ERROR_CLOSED, "The pipe is closed");
      return;
    }

  if (!acquire_context (self))
    {
      g_task_return_new_error (task, MPQ_ERROR, MPQ_ERROR_FAILED,
                               "The pipe is in use from another main context");
      return;
    }

  /* Cancellation is noticed in our context, where the waiters live. */
  _mpq_task_watch_cancel (task, self->context, cancel_source_cb, task);

  g_queue_push_tail (&self->waiters, g_steal_pointer (&task));
  update_sources (self);
}

static MpqMessage *
mpq_pipe_receive_finish (MpqChannel    *channel,
                         GAsyncResult  *result,
                         GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, channel), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == mpq_pipe_receive_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* start / stop / close -------------------------------------------------- */

static void
mpq_pipe_start (MpqChannel *channel)
{
  MpqPipe *self = MPQ_PIPE (channel);

  /* A pipe that cannot open has nothing to start; its calls say why. */
  if (!ensure_open (self, NULL) || self->started || self->closed)
    return;

  if (!acquire_context (self))
    return;

  self->started = TRUE;
  update_sources (self);
}

static void
mpq_pipe_stop (MpqChannel *channel)
{
  MpqPipe *self = MPQ_PIPE (channel);

  if (!self->started)
    return;

  self->started = FALSE;
  update_sources (self);
}

static void
mpq_pipe_close (MpqChannel *channel)
{
  MpqPipe *self = MPQ_PIPE (channel);
  GError *error = NULL;

  if (self->closed)
    return;

  /* What was sent goes out before hanging up. */
  if (self->writer != NULL)
    {
      _mpq_writer_flush (self->writer, self->send_timeout, NULL);
      g_clear_pointer (&self->writer, _mpq_writer_free);
    }

  self->closed = TRUE;
  self->started = FALSE;

  g_queue_clear_full (&self->inbox, g_object_unref);
  g_queue_clear_full (&self->raw, g_free);
  g_clear_error (&self->read_error);
  _mpq_line_reader_clear (&self->reader);

  if (self->fd >= 0)
    {
      close (self->fd);
      self->fd = -1;
    }
  if (self->child_fd >= 0)
    {
      close (self->child_fd);
      self->child_fd = -1;
    }

  set_closed_error (&error);
  fail_waiters (self, error);
  update_sources (self);
  schedule_closed (self);
}

/* GObject --------------------------------------------------------------- */

static void
mpq_pipe_dispose (GObject *object)
{
  MpqPipe *self = MPQ_PIPE (object);

  mpq_pipe_close (MPQ_CHANNEL (self));
  _mpq_clear_source (&self->closed_idle);
  _mpq_read_sources_clear (&self->sources);
  _mpq_clear_source (&self->flush);
  g_clear_pointer (&self->io_channel, g_io_channel_unref);
  g_clear_pointer (&self->context, g_main_context_unref);

  G_OBJECT_CLASS (mpq_pipe_parent_class)->dispose (object);
}

static void
mpq_pipe_finalize (GObject *object)
{
  MpqPipe *self = MPQ_PIPE (object);

  g_assert (self->fd == -1);
  g_assert (self->waiters.length == 0);
  g_assert (self->writer == NULL);

  g_string_free (self->line, TRUE);
  _mpq_init_once_clear (&self->init);

  G_OBJECT_CLASS (mpq_pipe_parent_class)->finalize (object);
}

static void
mpq_pipe_get_property (GObject    *object,
                       guint       prop_id,
                       GValue     *value,
                       GParamSpec *pspec)
{
  MpqPipe *self = MPQ_PIPE (object);

  switch (prop_id)
    {
    case MPQ_CHANNEL_PROP_ROLE:
      g_value_set_enum (value, self->role);
      break;

    case MPQ_CHANNEL_PROP_PID:
      g_value_set_int (value, _mpq_own_pid ());
      break;

    case MPQ_CHANNEL_PROP_MAX_MESSAGE_SIZE:
      g_value_set_uint64 (value, self->max_message_size);
      break;

    case PROP_SEND_TIMEOUT:
      g_value_set_int (value, self->send_timeout);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
mpq_pipe_set_property (GObject      *object,
                       guint         prop_id,
                       const GValue *value,
                       GParamSpec   *pspec)
{
  MpqPipe *self = MPQ_PIPE (object);

  switch (prop_id)
    {
    case MPQ_CHANNEL_PROP_ROLE:
      self->role = g_value_get_enum (value);
      break;

    case MPQ_CHANNEL_PROP_MAX_MESSAGE_SIZE:
      if (self->max_message_size != g_value_get_uint64 (value))
        {
          self->max_message_size = g_value_get_uint64 (value);
          self->reader.max_line = self->max_message_size;
          g_object_notify_by_pspec (object, pspec);
        }
      break;

    case PROP_SEND_TIMEOUT:
      mpq_pipe_set_send_timeout (self, g_value_get_int (value));
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
mpq_pipe_class_init (MpqPipeClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = mpq_pipe_dispose;
  object_class->finalize = mpq_pipe_finalize;
  object_class->get_property = mpq_pipe_get_property;
  object_class->set_property = mpq_pipe_set_property;

  _mpq_channel_install_properties (object_class);

  /**
   * MpqPipe:send-timeout: (getter get_send_timeout) (setter set_send_timeout)
   *
   * How long, in milliseconds, a send waits for a peer that is not reading
   * before it fails with `MPQ_ERROR_TIMED_OUT`: -1 waits forever, 0 never
   * waits. Defaults to [const@Mpq.DEFAULT_SEND_TIMEOUT] (10 s).
   */
  properties[PROP_SEND_TIMEOUT] =
    g_param_spec_int ("send-timeout", NULL, NULL,
                      -1, G_MAXINT, MPQ_DEFAULT_SEND_TIMEOUT,
                      G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_property (object_class, PROP_SEND_TIMEOUT,
                                   properties[PROP_SEND_TIMEOUT]);
}

static void
mpq_pipe_channel_iface_init (MpqChannelInterface *iface)
{
  static const MpqChannelPrivateVfuncs private_vfuncs = {
    .send_outgoing = mpq_pipe_send_outgoing,
    .receive_json = mpq_pipe_receive_json,
  };

  _mpq_channel_implement_private (iface, &private_vfuncs);
  iface->send_message = mpq_pipe_send_message;
  iface->receive = mpq_pipe_receive;
  iface->receive_async = mpq_pipe_receive_async;
  iface->receive_finish = mpq_pipe_receive_finish;
  iface->start = mpq_pipe_start;
  iface->stop = mpq_pipe_stop;
  iface->close = mpq_pipe_close;
  iface->flush = mpq_pipe_flush;
}

static void
mpq_pipe_init (MpqPipe *self)
{
  self->fd = -1;
  self->child_fd = -1;
  self->role = MPQ_ROLE_PARENT;
  self->max_message_size = MPQ_DEFAULT_MAX_MESSAGE_SIZE;
  self->send_timeout = MPQ_DEFAULT_SEND_TIMEOUT;
  self->line = g_string_sized_new (256);
  g_queue_init (&self->inbox);
  g_queue_init (&self->raw);
  g_queue_init (&self->waiters);
  _mpq_line_reader_init (&self->reader, self->max_message_size);
}

/* Makes @fd this pipe's end. Owner's thread. */
static void
pipe_take_fd (MpqPipe *self,
              int      fd)
{
  self->fd = fd;
  self->writer = _mpq_writer_new (fd);
  _mpq_fd_set_nonblocking (fd);
  self->io_channel = g_io_channel_unix_new (fd);
  g_io_channel_set_encoding (self->io_channel, NULL, NULL);
  g_io_channel_set_buffered (self->io_channel, FALSE);
}

/* GInitable: a parent's pipe makes its socket pair, a child's claims the
 * descriptor it inherited. Owner's thread. */
static gboolean
pipe_open (GInitable  *initable,
           GError    **error)
{
  MpqPipe *self = MPQ_PIPE (initable);
  int fds[2];
  int fd;

  if (self->role == MPQ_ROLE_CHILD)
    {
      fd = _mpq_claim_child_fd ("pipe", error);
      if (fd < 0)
        return FALSE;
      pipe_take_fd (self, fd);
      return TRUE;
    }

  if (!_mpq_socketpair (fds, error))
    return FALSE;
  pipe_take_fd (self, fds[0]);
  self->child_fd = fds[1];
  return TRUE;
}

static gboolean
mpq_pipe_initable_init (GInitable     *initable,
                        GCancellable  *cancellable,
                        GError       **error)
{
  return _mpq_init_once (&MPQ_PIPE (initable)->init, initable, pipe_open, error);
}

static void
mpq_pipe_initable_iface_init (GInitableIface *iface)
{
  iface->init = mpq_pipe_initable_init;
}

/* Public constructors --------------------------------------------------- */

/**
 * mpq_pipe_new:
 * @error: return location for an error
 *
 * Makes the parent end of a pipe. Give the other end to a child with
 * [method@Mpq.Pipe.spawn].
 *
 * The same as g_initable_new() with [property@Mpq.Channel:role]
 * `MPQ_ROLE_PARENT`. A pipe made with g_object_new(), as bindings do,
 * opens itself on first use.
 *
 * Returns: (transfer full): a new pipe, or %NULL with @error set
 */
MpqPipe *
mpq_pipe_new (GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (MPQ_TYPE_PIPE, NULL, error, "role", MPQ_ROLE_PARENT, NULL);
}

/**
 * mpq_pipe_new_for_child:
 * @error: return location for an error
 *
 * Opens, in a child spawned with [method@Mpq.Pipe.spawn], the pipe to its
 * parent. A process has one such pipe: a second call fails.
 *
 * The same as g_initable_new() with [property@Mpq.Channel:role]
 * `MPQ_ROLE_CHILD`.
 *
 * Returns: (transfer full): the child end, or %NULL with @error set to
 *   `MPQ_ERROR_NOT_A_CHILD` if this process was not spawned with a pipe
 */
MpqPipe *
mpq_pipe_new_for_child (GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (MPQ_TYPE_PIPE, NULL, error, "role", MPQ_ROLE_CHILD, NULL);
}

/* One end of a pair made in this process: opened already. */
static MpqPipe *
pipe_new_for_fd (MpqRole role,
                 int     fd)
{
  MpqPipe *self = g_object_new (MPQ_TYPE_PIPE, "role", role, NULL);

  self->init.done = TRUE;
  pipe_take_fd (self, fd);
  return self;
}

/**
 * mpq_pipe_new_pair:
 * @parent: (out) (transfer full): return location for the parent end
 * @child: (out) (transfer full): return location for the child end
 * @error: return location for an error
 *
 * Makes both ends of a pipe in this process, for threads and tests.
 *
 * Returns: %TRUE on success
 */
gboolean
mpq_pipe_new_pair (MpqPipe **parent,
                   MpqPipe **child,
                   GError  **error)
{
  int fds[2];

  g_return_val_if_fail (parent != NULL, FALSE);
  g_return_val_if_fail (child != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!_mpq_socketpair (fds, error))
    return FALSE;

  *parent = pipe_new_for_fd (MPQ_ROLE_PARENT, fds[0]);
  *child = pipe_new_for_fd (MPQ_ROLE_CHILD, fds[1]);

  return TRUE;
}

/**
 * mpq_pipe_spawn:
 * @self: the parent end of a pipe from [ctor@Mpq.Pipe.new]
 * @argv: (array zero-terminated=1) (element-type filename): the child's
 *   command line
 * @error: return location for an error
 *
 * Spawns the child that holds the other end of the pipe. It inherits the
 * parent's environment, standard streams and working directory, plus its
 * end of the pipe, named by `MPQ_CHANNEL_FD`; every other descriptor is
 * closed. A pipe has one child.
 *
 * Returns: (transfer full): the child process, or %NULL with @error set
 */
GSubprocess *
mpq_pipe_spawn (MpqPipe             *self,
                const char * const  *argv,
                GError             **error)
{
  g_return_val_if_fail (MPQ_IS_PIPE (self), NULL);
  g_return_val_if_fail (argv != NULL && argv[0] != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return mpq_pipe_spawn_with_launcher (self, NULL, argv, error);
}

/**
 * mpq_pipe_spawn_with_launcher:
 * @self: the parent end of a pipe from [ctor@Mpq.Pipe.new]
 * @launcher: (nullable): a launcher with the child's environment, working
 *   directory and standard streams
 * @argv: (array zero-terminated=1) (element-type filename): the child's
 *   command line
 * @error: return location for an error
 *
 * Like [method@Mpq.Pipe.spawn], with a launcher set up by the caller. The
 * launcher serves this one spawn: afterwards its descriptors are closed with
 * g_subprocess_launcher_close(), so that no copy of the child's end stays in
 * the parent to hide the child's death.
 *
 * Returns: (transfer full): the child process, or %NULL with @error set
 */
GSubprocess *
mpq_pipe_spawn_with_launcher (MpqPipe              *self,
                              GSubprocessLauncher  *launcher,
                              const char * const   *argv,
                              GError              **error)
{
  GSubprocess *subprocess;
  int child_fd;

  g_return_val_if_fail (MPQ_IS_PIPE (self), NULL);
  g_return_val_if_fail (launcher == NULL || G_IS_SUBPROCESS_LAUNCHER (launcher), NULL);
  g_return_val_if_fail (argv != NULL && argv[0] != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!ensure_open (self, error))
    return NULL;
  if (self->closed)
    {
      set_closed_error (error);
      return NULL;
    }

  if (self->child_fd < 0)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_FAILED,
                           self->role == MPQ_ROLE_PARENT
                             ? "This pipe has no child end to hand over: it already "
                               "has a child, or was made by mpq_pipe_new_pair()"
                             : "Only the parent end of a pipe can spawn");
      return NULL;
    }

  child_fd = self->child_fd;
  self->child_fd = -1;
  subprocess = _mpq_spawn_child (launcher, child_fd, "pipe", argv, error);

  return subprocess;
}

/**
 * mpq_pipe_get_send_timeout: (get-property send-timeout)
 * @self: a pipe
 *
 * Gets how long a send waits for a peer that is not reading.
 *
 * Returns: the time-out in milliseconds, -1 for none
 */
gint
mpq_pipe_get_send_timeout (MpqPipe *self)
{
  g_return_val_if_fail (MPQ_IS_PIPE (self), -1);

  return self->send_timeout;
}

/**
 * mpq_pipe_set_send_timeout: (set-property send-timeout)
 * @self: a pipe
 * @send_timeout_ms: the time-out in milliseconds, -1 to wait forever
 *
 * Sets how long a send waits for a peer that is not reading.
 */
void
mpq_pipe_set_send_timeout (MpqPipe *self,
                           gint     send_timeout_ms)
{
  g_return_if_fail (MPQ_IS_PIPE (self));
  g_return_if_fail (send_timeout_ms >= -1);

  if (self->send_timeout == send_timeout_ms)
    return;

  self->send_timeout = send_timeout_ms;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SEND_TIMEOUT]);
}
