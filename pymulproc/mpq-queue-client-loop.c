/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-channel-private.h"
#include "mpq-error.h"
#include "mpq-queue-client-private.h"
#include "mpq-source-private.h"

/* A queue child's main loop side: receive_async and join_async waiting for
 * their answers, and dispatch (start, stop, ::message-received). The
 * connection and the blocking calls are in mpq-queue-client.c. Everything
 * here runs in the queue's owner's thread, where its consumer's main
 * context runs (see the struct in mpq-queue-client-private.h). */

/* A receive_async or join_async waiting for its answer. */
typedef struct
{
  GTask    *task;
  gint64    id;
  gboolean  cancelled;  /* told the server; the answer still comes */
  gboolean  abandoned;  /* task already returned; drop the answer */
} AsyncOp;

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

  if (held->tag != 0 && !client->ep.closed)
    {
      _mpq_queue_client_answer (client, MPQ_FRAME_UNDO, held->tag);
      _mpq_queue_client_flush_answers (client, NULL);
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
  if (!client->ep.closed)
    {
      _mpq_queue_client_answer (client, MPQ_FRAME_ACK, held->tag);
      _mpq_queue_client_flush_answers (client, NULL);
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
          _mpq_queue_client_answer (client, MPQ_FRAME_UNDO, frame->tag);
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

void
_mpq_queue_client_fail_ops (MpqQueueClient *client)
{
  AsyncOp *op;

  while ((op = g_queue_pop_head (&client->ops)) != NULL)
    {
      if (!op->abandoned)
        {
          GError *error = NULL;

          _mpq_queue_client_closed_error (client, &error);
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
      g_autoptr(MpqFrame) frame = _mpq_queue_client_claim_reply (client, op->id);

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

/* The endpoint's read source ran (mpq-source.c). */
static void
client_deliver (gpointer owner)
{
  MpqQueueClient *client = owner;
  MpqChannel *channel = g_object_ref (client->channel);

  deliver_replies (client);

  /* What is in hand, as a batch: a handler that quits the loop on DIE
   * leaves the rest for others (the server takes them back at close). */
  if (has_pushed_to_deliver (client) && client->ep.writer != NULL)
    {
      MpqWriter *held = _mpq_writer_hold (client->ep.writer);
      MpqDispatchBatch batch;

      client->delivering = TRUE;
      _mpq_dispatch_batch_init (&batch);
      while (client->started && client->pushed.length > 0 && !client->ep.closed && !batch.over)
        {
          g_autoptr(MpqFrame) frame = g_queue_pop_head (&client->pushed);
          gint64 work_us;

          client->in_hand_tag = frame->tag;
          if (client->pushed.length == 0)
            _mpq_writer_hold_last (held);
          work_us = _mpq_dispatch_batch_emit (&batch, channel, frame->message);
          /* A stop in a handler answered for it already. The time the
           * handlers took tells the server how much to hand us ahead. */
          if (client->in_hand_tag != 0 && !client->ep.closed)
            _mpq_frame_write (client->answers, MPQ_FRAME_ACK, client->in_hand_tag, work_us);
          client->in_hand_tag = 0;
        }

      client->delivering = FALSE;
      if (!client->ep.closed)
        _mpq_queue_client_flush_answers (client, NULL);
      _mpq_writer_release (held);
    }

  if (!client->ep.closed)
    _mpq_queue_client_flush_answers (client, NULL);

  if (client->ep.read_done && !client->ep.closed)
    {
      _mpq_queue_client_fail_ops (client);
      client->started = FALSE;
      _mpq_endpoint_emit_closed (&client->ep);
    }

  _mpq_queue_client_update_sources (client);
  g_object_unref (channel);
}

static gboolean
has_deliverable (MpqQueueClient *client)
{
  if (client->ep.read_done || has_pushed_to_deliver (client))
    return TRUE;

  for (GList *l = client->ops.head; l != NULL; l = l->next)
    for (GList *r = client->replies.head; r != NULL; r = r->next)
      if (((AsyncOp *) l->data)->id == ((MpqFrame *) r->data)->id)
        return TRUE;
  return FALSE;
}

void
_mpq_queue_client_update_sources (MpqQueueClient *client)
{
  gboolean wanted = client->started || client->ops.length > 0;

  _mpq_endpoint_update_sources (&client->ep, wanted, wanted && has_deliverable (client));
}

static void
client_closed (gpointer owner)
{
  MpqQueueClient *client = owner;

  if (client->channel != NULL)
    _mpq_channel_emit_closed (client->channel);
}

/* A child reads every frame as it comes: the server bounds what it pushes
 * (the window) and what it answers (one answer per request). */
const MpqEndpointClass _mpq_queue_client_endpoint_class = {
  .source_name = "[mpq] queue read",
  .type_name = "MpqQueue",
  .closed_text = "The queue is closed",
  .line_overhead = MPQ_FRAME_OVERHEAD,
  .line = _mpq_queue_client_take_line,
  .holding = NULL,
  .deliver = client_deliver,
  .closed = client_closed,
};

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
  _mpq_queue_client_write_all (client, client->scratch->str, client->scratch->len, NULL);
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

  if (client->ep.closed || client->ep.read_done)
    {
      _mpq_queue_client_closed_error (client, &error);
      g_task_return_error (task, error);
      return;
    }
  if (!_mpq_endpoint_acquire_context (&client->ep))
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
  if (!_mpq_queue_client_write_frame (client, frame, &error))
    {
      g_task_return_error (task, error);
      g_object_unref (op->task);
      g_free (op);
      return;
    }

  _mpq_task_watch_cancel (task, client->ep.context, op_cancel_source_cb, op);

  g_queue_push_tail (&client->ops, op);
  _mpq_queue_client_update_sources (client);
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

  if (client->started || client->ep.closed || !_mpq_endpoint_acquire_context (&client->ep))
    return;

  _mpq_frame_write (frame, MPQ_FRAME_START, MAX (prefetch, 1));
  if (!_mpq_queue_client_write_frame (client, frame, NULL) && !client->ep.read_done)
    return;

  client->started = TRUE;
  _mpq_queue_client_update_sources (client);
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
      _mpq_queue_client_answer (client, MPQ_FRAME_ACK, client->in_hand_tag);
      client->in_hand_tag = 0;
    }
  g_queue_clear_full (&client->pushed, (GDestroyNotify) _mpq_frame_free);
  _mpq_frame_write (frame, MPQ_FRAME_STOP, ++client->next_id);
  if (_mpq_queue_client_write_frame (client, frame, NULL))
    client->stops_pending++;
  _mpq_queue_client_update_sources (client);
}

