/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mpq-channel-private.h"
#include "mpq-debug-private.h"
#include "mpq-error.h"
#include "mpq-frame-private.h"
#include "mpq-line-reader-private.h"
#include "mpq-protocol.h"
#include "mpq-queue-client-private.h"
#include "mpq-spawn-private.h"
#include "mpq-source-private.h"
#include "mpq-writer-private.h"

/* The hello is written before the child starts; this is only a bound on
 * a descriptor that is not a queue's at all. */
#define HELLO_TIMEOUT_MS 10000

/* A receive_async or join_async waiting for its answer. */
typedef struct
{
  GTask    *task;
  gint64    id;
  gboolean  cancelled;  /* told the server; the answer still comes */
  gboolean  abandoned;  /* task already returned; drop the answer */
} AsyncOp;

struct _MpqQueueClient
{
  gint           refs;         /* the queue, and each result in flight */
  MpqChannel    *channel;      /* unowned: owns us; NULL once detached */
  int            fd;
  MpqWriter     *writer;
  gint           parent_pid;
  gint           credit;       /* -1: unbounded */
  gboolean       asked_credit;
  MpqLineReader  reader;
  gsize          own_max;      /* max-message-size as set on this end */
  gsize          parent_max;   /* ... as the parent's hello or limits said */
  gint64         next_id;
  GQueue         replies;      /* MpqFrame with an id, not yet claimed */
  GQueue         pushed;       /* MpqFrame pushed by dispatch */
  GQueue         ops;          /* AsyncOp */
  GString       *answers;      /* acks not yet written */
  GString       *scratch;
  guint          stops_pending;
  gint64         in_hand_tag;  /* pushed message whose handlers run, or 0 */
  gboolean       started;
  gboolean       delivering;  /* in deliver (), maybe in a handler */
  gboolean       read_done;
  GError        *read_error;
  gboolean       closed;
  gboolean       closed_emitted;
  GMainContext  *context;
  GIOChannel    *io;
  MpqReadSources sources;
  GSource       *closed_idle;  /* emits ::closed found by a blocking call */
  GSource       *flush;        /* writes out before @context waits */
};

static void update_sources (MpqQueueClient *client);

static void
set_closed_error (GError **error)
{
  g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_CLOSED, "The queue is closed");
}

static void schedule_closed (MpqQueueClient *client);

/* One limit per queue, the parent's: this end may only lower it. */
static gsize
effective_max (MpqQueueClient *client)
{
  return MIN (client->own_max, client->parent_max);
}

/* A frame line carries a message line and some room around it. */
static void
apply_max (MpqQueueClient *client)
{
  if (!client->read_done)
    client->reader.max_line = effective_max (client) + MPQ_FRAME_OVERHEAD;
}

/* Writing: whole lines, gathered under load (mpq-writer.c), waiting for
 * room as long as it takes: the server is a thread that always reads. */
static gboolean
write_all (MpqQueueClient  *client,
           const char      *data,
           gsize            length,
           GError         **error)
{
  if (client->closed || client->fd < 0)
    {
      set_closed_error (error);
      return FALSE;
    }

  if (!_mpq_writer_send (client->writer, data, length, -1, error))
    {
      /* The parent is gone: say so, as a read would. */
      schedule_closed (client);
      return FALSE;
    }
  return TRUE;
}

/* Before waiting for the server, what we sent must have reached it. */
static void
flush_before_wait (MpqQueueClient *client)
{
  if (client->writer != NULL)
    _mpq_writer_flush (client->writer, -1, NULL);
}

static gboolean
flush_answers (MpqQueueClient  *client,
               GError         **error)
{
  gboolean ok;

  if (client->answers->len == 0)
    return TRUE;
  ok = write_all (client, client->answers->str, client->answers->len, error);
  g_string_truncate (client->answers, 0);
  return ok;
}

static gboolean
write_frame (MpqQueueClient  *client,
             GString         *frame,
             GError         **error)
{
  /* Answers for what was handled go first: the server's count stays true. */
  g_string_prepend_len (frame, client->answers->str, client->answers->len);
  g_string_truncate (client->answers, 0);
  return write_all (client, frame->str, frame->len, error);
}

/* Reading --------------------------------------------------------------- */

static void
stop_reading (MpqQueueClient *client,
              GError         *error)
{
  if (client->read_done)
    {
      g_clear_error (&error);
      return;
    }
  client->read_done = TRUE;
  client->read_error = error;
  _mpq_line_reader_clear (&client->reader);
}

static gboolean
take_frame (MpqQueueClient  *client,
            MpqFrame        *frame,
            GError         **error)
{
  switch (frame->op)
    {
    case MPQ_FRAME_MSG:
      if (frame->message == NULL || frame->tag <= 0)
        break;
      if (frame->msg_length > effective_max (client))
        {
          g_set_error (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE,
                       "Message line of %" G_GSIZE_FORMAT " bytes is longer than %" G_GSIZE_FORMAT,
                       frame->msg_length, effective_max (client));
          return FALSE;
        }
      if (frame->id > 0)
        g_queue_push_tail (&client->replies, _mpq_frame_copy (frame));
      else if (client->stops_pending == 0)
        g_queue_push_tail (&client->pushed, _mpq_frame_copy (frame));
      /* else: pushed before our stop reached the server, which took it back. */
      return TRUE;

    case MPQ_FRAME_NONE:
    case MPQ_FRAME_EMPTY:
    case MPQ_FRAME_JOINED:
      if (frame->id <= 0)
        break;
      g_queue_push_tail (&client->replies, _mpq_frame_copy (frame));
      return TRUE;

    case MPQ_FRAME_CREDIT:
      if (frame->n <= 0 || client->credit < 0)
        break;
      client->credit += (gint) MIN (frame->n, G_MAXINT - client->credit);
      client->asked_credit = FALSE;
      return TRUE;

    case MPQ_FRAME_STOPPED:
      if (client->stops_pending > 0)
        client->stops_pending--;
      return TRUE;

    case MPQ_FRAME_LIMITS:
      if (frame->max <= 0)
        break;
      client->parent_max = MIN ((guint64) frame->max, G_MAXSIZE - MPQ_FRAME_OVERHEAD);
      apply_max (client);
      return TRUE;

    default:
      break;
    }

  g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                       "The queue's server sent an unexpected frame");
  return FALSE;
}

/* Reads once without blocking and sorts what came. Returns FALSE when
 * there was nothing to read. */
static void take_lines (MpqQueueClient *client);

static gboolean
read_some (MpqQueueClient *client)
{
  GError *error = NULL;

  if (client->read_done || client->fd < 0)
    return FALSE;

  switch (_mpq_line_reader_fill (&client->reader, client->fd, &error))
    {
    case MPQ_READ_DATA:
      break;
    case MPQ_READ_AGAIN:
      return FALSE;
    case MPQ_READ_EOF:
    default:
      stop_reading (client, error);
      return TRUE;
    }

  take_lines (client);
  return TRUE;
}

/* Sorts the whole lines buffered. */
static void
take_lines (MpqQueueClient *client)
{
  GError *error = NULL;
  const char *line;
  gsize length;

  while (_mpq_line_reader_next (&client->reader, &line, &length, &error))
    {
      MpqFrame frame;

      MPQ_DEBUG_LINE ("<", line, length);
      if (!_mpq_frame_parse (line, length, &frame, &error))
        break;
      if (!take_frame (client, &frame, &error))
        {
          _mpq_frame_clear (&frame);
          break;
        }
      _mpq_frame_clear (&frame);
    }

  if (error != NULL)
    stop_reading (client, error);
}

static MpqFrame *
claim_reply (MpqQueueClient *client,
             gint64          id)
{
  for (GList *l = client->replies.head; l != NULL; l = l->next)
    {
      MpqFrame *frame = l->data;

      if (frame->id == id)
        {
          g_queue_delete_link (&client->replies, l);
          return frame;
        }
    }
  return NULL;
}

static void
closed_error (MpqQueueClient  *client,
              GError         **error)
{
  if (client->read_done)
    schedule_closed (client);
  if (client->read_error != NULL)
    g_propagate_error (error, g_error_copy (client->read_error));
  else
    set_closed_error (error);
}

/* Blocks until the answer to request @id comes. What else comes is kept
 * for the main loop. */
static MpqFrame *
wait_reply (MpqQueueClient  *client,
            gint64           id,
            GError         **error)
{
  MpqFrame *frame;

  while ((frame = claim_reply (client, id)) == NULL)
    {
      if (client->read_done)
        {
          closed_error (client, error);
          update_sources (client);
          return NULL;
        }
      if (!read_some (client))
        {
          flush_before_wait (client);
          _mpq_wait_fd (client->fd, POLLIN, -1);
        }
    }

  update_sources (client);
  return frame;
}

static MpqFrame *
request (MpqQueueClient  *client,
         MpqFrameOp       op,
         gint64           timeout,
         GError         **error)
{
  g_autoptr(GString) frame = g_string_new (NULL);
  gint64 id = ++client->next_id;

  /* get and join carry a time-out; empty has none. */
  _mpq_frame_writev (frame, op, (const gint64[]) { id, timeout }, op == MPQ_FRAME_EMPTY ? 1 : 2);
  if (!write_frame (client, frame, error))
    return NULL;
  return wait_reply (client, id, error);
}

/* The main loop side ---------------------------------------------------- */

static void
emit_closed_once (MpqQueueClient *client)
{
  if (client->closed_emitted || client->channel == NULL)
    return;
  client->closed_emitted = TRUE;
  _mpq_channel_emit_closed (client->channel);
}

static gboolean
emit_closed_cb (gpointer user_data)
{
  MpqQueueClient *client = user_data;

  g_clear_pointer (&client->closed_idle, g_source_unref);
  emit_closed_once (client);
  return G_SOURCE_REMOVE;
}

/* A blocking call found the parent gone: ::closed goes to the main
 * context, as it does for a pipe. */
static void
schedule_closed (MpqQueueClient *client)
{
  g_autoptr(GMainContext) context = NULL;

  if (client->closed_emitted || client->closed_idle != NULL)
    return;

  context = client->context != NULL ? g_main_context_ref (client->context)
                                    : g_main_context_ref_thread_default ();
  client->closed_idle = _mpq_source_attach (g_idle_source_new (), context,
                                            "[mpq] queue closed", emit_closed_cb, client);
}

static void
answer (MpqQueueClient *client,
        MpqFrameOp      op,
        gint64          tag)
{
  _mpq_frame_write (client->answers, op, tag);
}

/* A message handed to a receive_async: in our hand until the caller's
 * finish takes it (ack), back to the front if the result is dropped
 * (undo), as when the call was cancelled. */
typedef struct
{
  MpqQueueClient *client;
  gint64          tag;
  MpqMessage     *message;
} Held;

static void
held_release (gpointer data)
{
  Held *held = data;
  MpqQueueClient *client = held->client;

  if (held->tag != 0 && !client->closed)
    {
      answer (client, MPQ_FRAME_UNDO, held->tag);
      flush_answers (client, NULL);
    }
  g_clear_object (&held->message);
  _mpq_queue_client_unref (client);
  g_free (held);
}

MpqMessage *
_mpq_queue_client_finish_want (GTask   *task,
                               GError **error)
{
  Held *held = g_task_propagate_pointer (task, error);
  MpqQueueClient *client;
  MpqMessage *message;

  if (held == NULL)
    return NULL;

  client = held->client;
  if (!client->closed)
    {
      answer (client, MPQ_FRAME_ACK, held->tag);
      flush_answers (client, NULL);
    }
  held->tag = 0;
  message = g_steal_pointer (&held->message);
  held_release (held);
  return message;
}

static gboolean
finish_op (MpqQueueClient *client,
           AsyncOp        *op,
           MpqFrame       *frame)
{
  GTask *task = op->task;

  if (op->abandoned)
    ;
  else if (frame->op == MPQ_FRAME_MSG)
    {
      if (g_task_return_error_if_cancelled (task))
        {
          /* Handed over before the cancel got there: not wanted now. */
          answer (client, MPQ_FRAME_UNDO, frame->tag);
        }
      else
        {
          Held *held = g_new (Held, 1);

          held->client = client;
          held->tag = frame->tag;
          held->message = g_steal_pointer (&frame->message);
          g_atomic_int_inc (&client->refs);
          g_task_return_pointer (task, held, held_release);
        }
    }
  else if (frame->op == MPQ_FRAME_JOINED)
    g_task_return_boolean (task, frame->value);
  else if (!g_task_return_error_if_cancelled (task))
    g_task_return_new_error (task, MPQ_ERROR, MPQ_ERROR_FAILED, "No answer");

  _mpq_task_unwatch_cancel (task);
  g_object_unref (task);
  g_free (op);
  return TRUE;
}

static void
fail_ops (MpqQueueClient *client)
{
  AsyncOp *op;

  while ((op = g_queue_pop_head (&client->ops)) != NULL)
    {
      if (!op->abandoned)
        {
          GError *error = NULL;

          closed_error (client, &error);
          g_task_return_error (op->task, error);
        }
      _mpq_task_unwatch_cancel (op->task);
      g_object_unref (op->task);
      g_free (op);
    }
}

static gboolean
deliver_replies (MpqQueueClient *client)
{
  gboolean any = FALSE;

  for (GList *l = client->ops.head; l != NULL;)
    {
      GList *next = l->next;
      AsyncOp *op = l->data;
      g_autoptr(MpqFrame) frame = claim_reply (client, op->id);

      if (frame != NULL)
        {
          g_queue_delete_link (&client->ops, l);
          finish_op (client, op, frame);
          any = TRUE;
        }
      l = next;
    }
  return any;
}

/* Pushed messages wait while a handler runs a main loop of its own: what
 * is in hand is handled in order, one handler at a time. */
static gboolean
has_pushed_to_deliver (MpqQueueClient *client)
{
  return client->started && !client->delivering && client->pushed.length > 0;
}

static void
deliver (MpqQueueClient *client)
{
  MpqChannel *channel = g_object_ref (client->channel);

  deliver_replies (client);

  /* What is in hand, as a batch: a handler that quits the loop on DIE
   * leaves the rest for others (the server takes them back at close). */
  if (has_pushed_to_deliver (client) && client->writer != NULL)
    {
      MpqWriter *held = _mpq_writer_hold (client->writer);
      MpqDispatchBatch batch;

      client->delivering = TRUE;
      _mpq_dispatch_batch_init (&batch);
      while (client->started && client->pushed.length > 0 && !client->closed && !batch.over)
        {
          g_autoptr(MpqFrame) frame = g_queue_pop_head (&client->pushed);
          gint64 work_us;

          client->in_hand_tag = frame->tag;
          work_us = _mpq_dispatch_batch_emit (&batch, channel, frame->message);
          /* A stop in a handler answered for it already. The time the
           * handlers took tells the server how much to hand us ahead. */
          if (client->in_hand_tag != 0 && !client->closed)
            _mpq_frame_write (client->answers, MPQ_FRAME_ACK, client->in_hand_tag, work_us);
          client->in_hand_tag = 0;
        }

      client->delivering = FALSE;
      if (!client->closed)
        flush_answers (client, NULL);
      _mpq_writer_release (held);
    }

  if (!client->closed)
    flush_answers (client, NULL);

  if (client->read_done && !client->closed)
    {
      fail_ops (client);
      client->started = FALSE;
      emit_closed_once (client);
    }

  update_sources (client);
  g_object_unref (channel);
}

static gboolean
watch_cb (gpointer user_data)
{
  MpqQueueClient *client = user_data;

  read_some (client);
  deliver (client);
  return G_SOURCE_CONTINUE;
}

static gboolean
idle_cb (gpointer user_data)
{
  deliver (user_data);
  return G_SOURCE_CONTINUE;
}

static gboolean
has_deliverable (MpqQueueClient *client)
{
  if (client->read_done || has_pushed_to_deliver (client))
    return TRUE;

  for (GList *l = client->ops.head; l != NULL; l = l->next)
    for (GList *r = client->replies.head; r != NULL; r = r->next)
      if (((AsyncOp *) l->data)->id == ((MpqFrame *) r->data)->id)
        return TRUE;
  return FALSE;
}

static void
update_sources (MpqQueueClient *client)
{
  gboolean wanted = !client->closed && client->context != NULL &&
                    (client->started || client->ops.length > 0);
  MpqReadState state = {
    .wanted = wanted,
    .readable = !client->read_done,
    .buffered = wanted && has_deliverable (client),
  };

  _mpq_read_sources_update (&client->sources, state, client->context, client->io,
                            "[mpq] queue read", watch_cb, idle_cb, client);

  if (!wanted && client->ops.length == 0 && !client->started)
    {
      _mpq_clear_source (&client->flush);
      g_clear_pointer (&client->context, g_main_context_unref);
    }
}

static gboolean
acquire_context (MpqQueueClient *client)
{
  g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();

  if (client->context == NULL)
    {
      client->context = g_steal_pointer (&context);
      if (client->writer != NULL)
        {
          client->flush = _mpq_writer_flush_source_new (client->writer);
          g_source_attach (client->flush, client->context);
        }
    }
  else if (client->context != context)
    {
      g_critical ("MpqQueue is already in use from another main context");
      return FALSE;
    }
  return TRUE;
}

/* Calls ----------------------------------------------------------------- */

MpqQueueClient *
_mpq_queue_client_new (MpqChannel  *channel,
                       int          fd,
                       gsize        max_message_size,
                       GError     **error)
{
  MpqQueueClient *client = g_new0 (MpqQueueClient, 1);
  gint64 deadline = _mpq_deadline_from_timeout (HELLO_TIMEOUT_MS);
  g_autoptr(GString) hello = g_string_new (NULL);
  GError *local_error = NULL;
  MpqFrame frame;
  const char *line;
  gsize length;

  client->refs = 1;
  client->channel = channel;
  client->fd = fd;
  client->writer = _mpq_writer_new (fd);
  client->answers = g_string_new (NULL);
  client->scratch = g_string_new (NULL);
  client->own_max = MIN (max_message_size, G_MAXSIZE - MPQ_FRAME_OVERHEAD);
  client->parent_max = G_MAXSIZE - MPQ_FRAME_OVERHEAD;
  _mpq_line_reader_init (&client->reader, effective_max (client) + MPQ_FRAME_OVERHEAD);
  _mpq_fd_set_nonblocking (fd);
  client->io = g_io_channel_unix_new (fd);

  /* The server's hello says who the parent is and whether puts need credit.
   * A first line that never ends, or is too long, fails at the reader's
   * bound (one line); one that comes too slowly, at the deadline. */
  while (!_mpq_line_reader_next (&client->reader, &line, &length, &local_error))
    {
      MpqReadStatus status;

      if (local_error != NULL)
        goto bad_hello;
      status = _mpq_line_reader_fill (&client->reader, fd, &local_error);
      if (status == MPQ_READ_EOF)
        goto not_a_queue;
      if (status == MPQ_READ_AGAIN && !_mpq_wait_fd (fd, POLLIN, deadline))
        goto not_a_queue;
      if (g_get_monotonic_time () >= deadline)
        goto not_a_queue;
    }
  if (!_mpq_frame_parse (line, length, &frame, NULL))
    goto not_a_queue;
  _mpq_frame_clear (&frame);
  if (frame.op != MPQ_FRAME_HELLO || frame.pid <= 0 || frame.pid > G_MAXINT)
    goto not_a_queue;

  client->parent_pid = (gint) frame.pid;
  client->credit = frame.credit < 0 ? -1 : (gint) MIN (frame.credit, G_MAXINT);
  if (frame.max > 0)
    {
      client->parent_max = MIN ((guint64) frame.max, G_MAXSIZE - MPQ_FRAME_OVERHEAD);
      apply_max (client);
    }

  /* What came with the hello (a limits frame, say) is not left waiting
   * for more to read. */
  take_lines (client);

  _mpq_frame_write (hello, MPQ_FRAME_HELLO, _mpq_own_pid ());
  if (!write_all (client, hello->str, hello->len, error))
    {
      client->fd = -1;
      _mpq_queue_client_detach (client);
      _mpq_queue_client_unref (client);
      return NULL;
    }
  return client;

bad_hello:
  g_propagate_prefixed_error (error, g_steal_pointer (&local_error), "The queue's hello: ");
  goto fail;

not_a_queue:
  g_clear_error (&local_error);
  g_set_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD,
               "Descriptor %d does not lead to a queue's parent", fd);
fail:
  client->fd = -1;
  _mpq_queue_client_detach (client);
  _mpq_queue_client_unref (client);
  return NULL;
}

void
_mpq_queue_client_close (MpqQueueClient *client)
{
  if (client->closed)
    return;

  /* Closing in a handler: that message was handled. */
  if (client->in_hand_tag != 0)
    {
      answer (client, MPQ_FRAME_ACK, client->in_hand_tag);
      client->in_hand_tag = 0;
    }
  if (client->fd >= 0)
    {
      flush_answers (client, NULL);
      flush_before_wait (client);
    }
  g_clear_pointer (&client->writer, _mpq_writer_free);
  client->closed = TRUE;
  client->started = FALSE;
  if (!client->read_done)
    stop_reading (client, NULL);
  fail_ops (client);
  g_queue_clear_full (&client->replies, (GDestroyNotify) _mpq_frame_free);
  g_queue_clear_full (&client->pushed, (GDestroyNotify) _mpq_frame_free);
  if (client->fd >= 0)
    {
      close (client->fd);
      client->fd = -1;
    }
  update_sources (client);
  schedule_closed (client);
}

/* The queue object goes: no signal may reach it any more. */
void
_mpq_queue_client_detach (MpqQueueClient *client)
{
  client->closed_emitted = TRUE;
  if (client->closed_idle != NULL)
    {
      g_source_destroy (client->closed_idle);
      g_clear_pointer (&client->closed_idle, g_source_unref);
    }
  _mpq_queue_client_close (client);
  client->channel = NULL;
}

void
_mpq_queue_client_unref (MpqQueueClient *client)
{
  if (!g_atomic_int_dec_and_test (&client->refs))
    return;

  g_assert (client->closed && client->channel == NULL);
  _mpq_read_sources_clear (&client->sources);
  g_clear_pointer (&client->io, g_io_channel_unref);
  g_clear_error (&client->read_error);
  _mpq_line_reader_clear (&client->reader);
  g_string_free (client->answers, TRUE);
  g_string_free (client->scratch, TRUE);
  g_clear_pointer (&client->context, g_main_context_unref);
  g_free (client);
}

gboolean
_mpq_queue_client_is_closed (MpqQueueClient *client)
{
  return client->closed;
}

gint
_mpq_queue_client_get_parent_pid (MpqQueueClient *client)
{
  return client->parent_pid;
}

/* Sets this end's own limit; the parent's still bounds it. */
void
_mpq_queue_client_set_max_message_size (MpqQueueClient *client,
                                        gsize           size)
{
  client->own_max = MIN (size, G_MAXSIZE - MPQ_FRAME_OVERHEAD);
  apply_max (client);
}

/* The limit in force: the lower of this end's and the parent's. */
gsize
_mpq_queue_client_get_max_message_size (MpqQueueClient *client)
{
  return effective_max (client);
}

/* Waits for credit to put into a bounded queue: @attempts times
 * @timeout_ms, then MPQ_ERROR_FULL. */
static gboolean
wait_credit (MpqQueueClient  *client,
             gint             timeout_ms,
             guint            attempts,
             GError         **error)
{
  for (guint attempt = 0; client->credit == 0; attempt++)
    {
      gint64 deadline;

      if (attempt >= attempts)
        {
          g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_FULL,
                               "The queue is full; nothing was put");
          return FALSE;
        }

      if (!client->asked_credit)
        {
          g_autoptr(GString) frame = g_string_new (NULL);

          _mpq_frame_writev (frame, MPQ_FRAME_CREDIT, NULL, 0);
          if (!write_frame (client, frame, error))
            return FALSE;
          client->asked_credit = TRUE;
        }

      deadline = _mpq_deadline_from_timeout (MAX (timeout_ms, 0));
      while (client->credit == 0)
        {
          if (client->read_done)
            {
              closed_error (client, error);
              return FALSE;
            }
          if (read_some (client))
            continue;
          flush_before_wait (client);
          if (deadline == 0 || !_mpq_wait_fd (client->fd, POLLIN, deadline))
            break;
        }
    }

  update_sources (client);
  return TRUE;
}

gboolean
_mpq_queue_client_put (MpqQueueClient  *client,
                       GString         *line,
                       gint             put_timeout_ms,
                       guint            put_attempts,
                       GError         **error)
{
  if (client->closed || client->read_done)
    {
      closed_error (client, error);
      return FALSE;
    }

  /* Over the limit, the parent would drop us: refuse it here. The line
   * ends with its newline. */
  if (line->len - 1 > effective_max (client))
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE,
                   "Message of %" G_GSIZE_FORMAT " bytes is longer than %" G_GSIZE_FORMAT,
                   line->len - 1, effective_max (client));
      return FALSE;
    }

  if (client->credit == 0 && !wait_credit (client, put_timeout_ms, put_attempts, error))
    return FALSE;

  if (!write_all (client, line->str, line->len, error))
    return FALSE;
  if (client->credit > 0)
    client->credit--;
  return TRUE;
}

MpqMessage *
_mpq_queue_client_take (MpqQueueClient    *client,
                        gint               timeout_ms,
                        MpqMessageFilter   filter,
                        gpointer           user_data,
                        GError           **error)
{
  g_autoptr(MpqFrame) reply = NULL;
  g_autoptr(MpqMessage) message = NULL;
  g_autoptr(GString) frame = g_string_new (NULL);
  gboolean wanted;

  reply = request (client, MPQ_FRAME_GET, MAX (timeout_ms, -1), error);
  if (reply == NULL || reply->op != MPQ_FRAME_MSG)
    return NULL;

  message = g_steal_pointer (&reply->message);
  wanted = filter == NULL || filter (message, user_data);
  _mpq_frame_write (frame, wanted ? MPQ_FRAME_ACK : MPQ_FRAME_BACK, reply->tag);
  if (!write_frame (client, frame, error))
    return NULL;

  return wanted ? g_steal_pointer (&message) : NULL;
}

gboolean
_mpq_queue_client_is_empty (MpqQueueClient  *client,
                            GError         **error)
{
  g_autoptr(MpqFrame) reply = request (client, MPQ_FRAME_EMPTY, -1, error);

  return reply != NULL && reply->value;
}

gboolean
_mpq_queue_client_join (MpqQueueClient  *client,
                        gint             timeout_ms,
                        GError         **error)
{
  g_autoptr(MpqFrame) reply = request (client, MPQ_FRAME_JOIN, MAX (timeout_ms, -1), error);

  if (reply == NULL)
    return FALSE;
  if (!reply->value)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT,
                           "Not every message was taken in time");
      return FALSE;
    }
  return TRUE;
}

static void
op_cancelled_cb (GCancellable *cancellable,
                 AsyncOp      *op)
{
  GTask *task = op->task;
  MpqQueueClient *client = g_task_get_task_data (task);

  if (op->cancelled || op->abandoned || g_task_get_completed (task))
    return;

  if (g_task_get_source_tag (task) == (gpointer) _mpq_queue_client_join_async)
    {
      /* The server keeps waiting; its answer is dropped when it comes. */
      op->abandoned = TRUE;
      g_task_return_error_if_cancelled (task);
      return;
    }

  /* The server answers "none", or the message if it was already on its way. */
  op->cancelled = TRUE;
  _mpq_frame_write (client->scratch, MPQ_FRAME_CANCEL, op->id);
  write_all (client, client->scratch->str, client->scratch->len, NULL);
  g_string_truncate (client->scratch, 0);
}

static gboolean
op_cancel_source_cb (GCancellable *cancellable,
                     gpointer      user_data)
{
  op_cancelled_cb (cancellable, user_data);
  return G_SOURCE_REMOVE;
}

static void
start_op (MpqQueueClient *client,
          GTask          *task,
          MpqFrameOp      frame_op)
{
  g_autoptr(GString) frame = g_string_new (NULL);
  GError *error = NULL;
  AsyncOp *op;

  if (client->closed || client->read_done)
    {
      closed_error (client, &error);
      g_task_return_error (task, error);
      return;
    }
  if (!acquire_context (client))
    {
      g_task_return_new_error (task, MPQ_ERROR, MPQ_ERROR_FAILED,
                               "The queue is in use from another main context");
      return;
    }

  op = g_new0 (AsyncOp, 1);
  op->task = g_object_ref (task);
  op->id = ++client->next_id;
  g_task_set_task_data (task, client, NULL);

  /* A join_async waits for as long as it takes; it has a cancellable. */
  if (frame_op == MPQ_FRAME_JOIN)
    _mpq_frame_write (frame, frame_op, op->id, -1);
  else
    _mpq_frame_write (frame, frame_op, op->id);
  if (!write_frame (client, frame, &error))
    {
      g_task_return_error (task, error);
      g_object_unref (op->task);
      g_free (op);
      return;
    }

  _mpq_task_watch_cancel (task, client->context, op_cancel_source_cb, op);

  g_queue_push_tail (&client->ops, op);
  update_sources (client);
}

void
_mpq_queue_client_want_async (MpqQueueClient *client,
                              GTask          *task)
{
  start_op (client, task, MPQ_FRAME_WANT);
}

void
_mpq_queue_client_join_async (MpqQueueClient *client,
                              GTask          *task)
{
  g_task_set_source_tag (task, _mpq_queue_client_join_async);
  start_op (client, task, MPQ_FRAME_JOIN);
}

void
_mpq_queue_client_start (MpqQueueClient *client,
                         guint           prefetch)
{
  g_autoptr(GString) frame = g_string_new (NULL);

  if (client->started || client->closed || !acquire_context (client))
    return;

  _mpq_frame_write (frame, MPQ_FRAME_START, MAX (prefetch, 1));
  if (!write_frame (client, frame, NULL) && !client->read_done)
    return;

  client->started = TRUE;
  update_sources (client);
}

void
_mpq_queue_client_stop (MpqQueueClient *client)
{
  g_autoptr(GString) frame = g_string_new (NULL);

  if (!client->started)
    return;

  client->started = FALSE;
  /* The message being handled counts as handled; what was pushed and not
   * handled is the server's again. */
  if (client->in_hand_tag != 0)
    {
      answer (client, MPQ_FRAME_ACK, client->in_hand_tag);
      client->in_hand_tag = 0;
    }
  g_queue_clear_full (&client->pushed, (GDestroyNotify) _mpq_frame_free);
  _mpq_frame_write (frame, MPQ_FRAME_STOP, ++client->next_id);
  if (write_frame (client, frame, NULL))
    client->stops_pending++;
  update_sources (client);
}

gboolean
_mpq_queue_client_flush (MpqQueueClient  *client,
                         gint             timeout_ms,
                         GError         **error)
{
  if (client->closed || client->writer == NULL)
    {
      set_closed_error (error);
      return FALSE;
    }
  if (!flush_answers (client, error))
    return FALSE;
  return _mpq_writer_flush (client->writer, timeout_ms, error);
}
