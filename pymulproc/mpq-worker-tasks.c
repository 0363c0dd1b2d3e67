/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "mpq-channel.h"
#include "mpq-error.h"
#include "mpq-json-private.h"
#include "mpq-pool-private.h"
#include "mpq-protocol.h"
#include "mpq-source-private.h"
#include "mpq-worker-private.h"

/* The worker's side of the frames (docs/protocol.md "Pools"): what the
 * pool hands it waits in line, and goes to the handlers one at a time, in
 * order, from an idle of its own. The thread the worker is used from. */

/* A task handed to the worker, or a batch of them (a pool's map). The
 * data stays the compact text that came: a batch handler takes it as it
 * is, and nothing is built before someone asks. */
typedef struct
{
  guint64    id;
  char      *request;
  char      *text;        /* the task's data, the batch's items; NULL: null */
  gsize      length;
  gboolean   is_batch;
  guint      n_items;     /* a batch's */
  JsonArray *items;       /* a batch's, built when its items go one by one */
  guint      next_item;   /* the next of them to hand out */
  GString   *results;     /* their answers so far: "[r0,r1" */
  GBytes    *payload;     /* what came with the task, or NULL */
  gboolean   cancelled;
} Frame;

static void
frame_free (Frame *frame)
{
  g_free (frame->request);
  g_free (frame->text);
  g_clear_pointer (&frame->items, json_array_unref);
  if (frame->results != NULL)
    g_string_free (frame->results, TRUE);
  g_clear_pointer (&frame->payload, g_bytes_unref);
  g_free (frame);
}

void
_mpq_worker_clear_frames (MpqWorker *self)
{
  g_queue_clear_full (&self->frames, (GDestroyNotify) frame_free);
}

/* Sends @frame to the pool. */
gboolean
_mpq_worker_send (MpqWorker   *self,
                  const char  *request,
                  const char  *frame,
                  GError     **error)
{
  if (self->queue == NULL)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_CLOSED, "The worker is closed");
      return FALSE;
    }
  return mpq_channel_send_json (MPQ_CHANNEL (self->queue), request, self->pid,
                                self->parent_pid, frame, error);
}

/* What was sent, out of this process before the next task starts: an
 * answer still in a send buffer when the next task crashes the worker
 * would be lost, and the pool would count the death against the task it
 * answered (or, for a cancelled one, not against the task that crashed
 * it: that one would be tried once more than max-attempts). */
static gboolean
flush_answers (MpqWorker  *self,
               GError    **error)
{
  return mpq_channel_flush (MPQ_CHANNEL (self->queue), MPQ_DEFAULT_SEND_TIMEOUT, error);
}

/* Sends the answer of a task, or of a batch, with @payload (nullable). */
static gboolean
send_answer (MpqWorker   *self,
             guint64      id,
             gboolean     finished,
             const char  *field,
             const char  *json_or_text,
             gboolean     compact,
             GBytes      *payload,
             GError     **error)
{
  g_autofree char *compacted = NULL;
  g_autofree char *frame = NULL;

  if (finished && !compact && json_or_text != NULL)
    {
      /* Checked JSON, maybe with spaces (Python's json.dumps () writes
       * ", "): made compact here in one pass, where the channel would
       * parse it, a JsonNode per value, and write it again. */
      gsize length = strlen (json_or_text);
      GString *out = g_string_sized_new (length);

      _mpq_pool_append_compact (out, json_or_text, length);
      json_or_text = compacted = g_string_free (out, FALSE);
      compact = TRUE;
    }
  frame = finished ? _mpq_pool_frame_task (id, field, json_or_text)
                   : _mpq_pool_frame_error (id, json_or_text);

  if (self->queue == NULL)
    return _mpq_worker_send (self, MPQ_REQ_FAILED, frame, error);   /* says it is closed */
  return _mpq_pool_send_frame (self->queue, finished ? MPQ_REQ_FINISHED : MPQ_REQ_FAILED,
                               self->pid, self->parent_pid, frame, finished && compact,
                               finished ? payload : NULL, error) &&
         flush_answers (self, error);
}

/* Tasks a turn of next_cb starts at most, when each is answered at once. */
#define MPQ_WORKER_TASKS_PER_TURN 64

/* A batch's items, one `task` after the other while their handlers
 * answer at once (the frame stays first in line until its last item is
 * answered; the items share its cancellable). */
static void
emit_items (MpqWorker *self,
            Frame     *frame)
{
  guint64 id = frame->id;

  if (frame->items == NULL)
    {
      /* Checked when it came: it parses. */
      g_autoptr(JsonNode) items = _mpq_json_parse (frame->text, frame->length, MPQ_MAX_DEPTH, NULL);

      g_assert (items != NULL && JSON_NODE_HOLDS_ARRAY (items));
      frame->items = json_array_ref (json_node_get_array (items));
    }
  do
    {
      MpqInvocation *invocation = _mpq_invocation_new (self, id, frame->request,
                                                       self->current_cancellable);

      _mpq_invocation_set_data (invocation, json_array_get_element (frame->items,
                                                                   frame->next_item++));
      self->busy = TRUE;
      _mpq_worker_emit_task (self, invocation);
      /* Dropped unanswered, it answers itself now. */
      g_object_unref (invocation);
    }
  while (!self->busy && !self->closed &&
         g_queue_peek_head (&self->frames) == frame && frame->next_item < frame->n_items);
}

/* Starts the next task (or batch), if none is out: FALSE when none
 * started or it is still out, TRUE when it was answered at once. */
static gboolean
start_next (MpqWorker *self)
{
  MpqInvocation *invocation;
  Frame *frame;

  if (self->busy || self->closed || (frame = g_queue_peek_head (&self->frames)) == NULL)
    return FALSE;

  self->busy = TRUE;
  self->current_id = frame->id;
  g_clear_object (&self->current_cancellable);
  self->current_cancellable = g_cancellable_new ();

  if (frame->is_batch && frame->n_items == 0)
    {
      /* An empty batch: answered as it is. */
      frame_free (g_queue_pop_head (&self->frames));
      send_answer (self, self->current_id, TRUE, "results", "[]", TRUE, NULL, NULL);
      self->busy = FALSE;
    }
  else if (frame->is_batch && !_mpq_worker_takes_batches (self))
    emit_items (self, frame);
  else
    {
      /* A task, or a batch for the `batch` handler: one invocation. */
      g_queue_pop_head (&self->frames);
      invocation = _mpq_invocation_new (self, frame->id, frame->request,
                                        self->current_cancellable);
      _mpq_invocation_set_text (invocation, frame->text, frame->length,
                                frame->is_batch ? frame->n_items : 0);
      if (frame->payload != NULL)
        _mpq_invocation_set_payload (invocation, frame->payload);
      if (frame->is_batch)
        _mpq_worker_emit_batch (self, invocation);
      else
        _mpq_worker_emit_task (self, invocation);
      g_object_unref (invocation);
      frame_free (frame);
    }
  return !self->busy;
}

/* While handlers run, the pool's death kills this process: a handler
 * that never returns (a loop, a wait on something gone) would otherwise
 * outlive its pool, as nothing hears the hang-up while it runs. Only
 * then: an idle worker hears the hang-up and leaves by itself, cleanly
 * (atexit handlers, logs). Returns FALSE when the pool is gone already
 * (this process has another parent than when it was made): its tasks
 * can no longer be answered. */
static gboolean
arm_parent_death (MpqWorker *self)
{
  if (self->os_parent <= 1)
    return TRUE;
  if (prctl (PR_SET_PDEATHSIG, SIGKILL) != 0)
    return TRUE;
  return getppid () == self->os_parent;
}

static void
disarm_parent_death (MpqWorker *self)
{
  if (self->os_parent > 1)
    prctl (PR_SET_PDEATHSIG, 0);
}

static gboolean
next_cb (gpointer user_data)
{
  MpqWorker *self = user_data;
  guint n = 0;

  g_clear_pointer (&self->next, g_source_unref);
  if (!arm_parent_death (self))
    {
      disarm_parent_death (self);
      _mpq_worker_close (self);
      return G_SOURCE_REMOVE;
    }
  g_object_ref (self);
  /* Tasks answered at once follow each other in this one turn: an idle
   * each cost small tasks more than their work. A bounded turn, so that
   * the queue's dispatch runs between two. */
  self->in_turn = TRUE;
  while (start_next (self) && ++n < MPQ_WORKER_TASKS_PER_TURN)
    ;
  self->in_turn = FALSE;
  disarm_parent_death (self);
  _mpq_worker_run_next (self);
  g_object_unref (self);
  return G_SOURCE_REMOVE;
}

/* The next task, if none is out: one at a time, in the order handed.
 * From an idle of its own, not from the queue's dispatch: a handler that
 * runs the main context while it works (to hear it was cancelled, say)
 * must still get the queue's messages. */
void
_mpq_worker_run_next (MpqWorker *self)
{
  if (self->next != NULL || self->busy || self->closed || self->context == NULL ||
      self->in_turn || g_queue_is_empty (&self->frames))
    return;
  self->next = g_idle_source_new ();
  g_source_set_callback (self->next, next_cb, self, NULL);
  g_source_set_static_name (self->next, "[mpq] worker next task");
  g_source_attach (self->next, self->context);
}

/* The invocation of @id was answered (or dropped): @json_or_text is the
 * result (nullable: null) when @finished, else the error's text; a whole
 * batch's (@n_items > 0) is the array of its results. A batch's item,
 * handed on its own, adds to the batch's answer. Then the next may
 * start. */
gboolean
_mpq_worker_answer (MpqWorker   *self,
                    guint64      id,
                    guint        n_items,
                    gboolean     finished,
                    const char  *json_or_text,
                    gboolean     compact,
                    GBytes      *payload,
                    GError     **error)
{
  Frame *batch = g_queue_peek_head (&self->frames);
  gboolean sent = TRUE;

  if (!self->busy || id != self->current_id)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_FAILED,
                           "The worker is not working on this task");
      return FALSE;
    }

  if (batch == NULL || batch->id != id)
    {
      batch = NULL;
      sent = send_answer (self, id, finished, n_items > 0 ? "results" : "result",
                          json_or_text, compact, payload, error);
    }
  else
    {
      gboolean last = batch->next_item >= batch->n_items;

      if (batch->cancelled)
        {
          finished = FALSE;
          json_or_text = "The task was cancelled";
        }
      if (finished)
        {
          if (batch->results->len > 1)
            g_string_append_c (batch->results, ',');
          g_string_append (batch->results, json_or_text != NULL ? json_or_text : "null");
        }
      if (!finished || last)
        {
          g_string_append_c (batch->results, ']');
          sent = send_answer (self, id, finished, "results",
                              finished ? batch->results->str : json_or_text, FALSE, NULL,
                              error);
          frame_free (g_queue_pop_head (&self->frames));
          batch = NULL;
        }
    }

  self->busy = FALSE;
  /* The items of a batch not done yet share its cancellable. */
  if (batch == NULL)
    g_clear_object (&self->current_cancellable);
  _mpq_worker_run_next (self);
  return sent;
}

static void
cancel_task (MpqWorker *self,
             guint64    id)
{
  Frame *head = g_queue_peek_head (&self->frames);

  if (self->busy && self->current_id == id)
    {
      /* A batch's items not started are skipped. */
      if (head != NULL && head->id == id)
        head->cancelled = TRUE;
      g_cancellable_cancel (self->current_cancellable);
      return;
    }
  for (GList *l = self->frames.head; l != NULL; l = l->next)
    {
      Frame *frame = l->data;

      if (frame->id == id)
        {
          g_autofree char *text = _mpq_pool_frame_error (id, "The task was cancelled");

          g_queue_delete_link (&self->frames, l);
          frame_free (frame);
          /* Answered all the same: the pool counts what it handed, and
           * keeps the task's place in the worker's window until then. */
          if (_mpq_worker_send (self, MPQ_REQ_FAILED, text, NULL))
            flush_answers (self, NULL);
          return;
        }
    }
}

static void
take_frame (MpqWorker    *self,
            MpqPoolFrame *pool_frame,
            guint64       id,
            MpqPoolMember member,
            guint         n_items)
{
  Frame *frame = g_new0 (Frame, 1);
  const char *request = mpq_message_get_request (pool_frame->message);

  frame->id = id;
  frame->request = g_strdup (request);
  frame->is_batch = member == MPQ_POOL_MEMBER_BATCH;
  frame->n_items = n_items;
  if (frame->is_batch)
    frame->results = g_string_new ("[");
  if (!_mpq_pool_json_is_null (pool_frame->value[member], pool_frame->length[member]))
    frame->text = _mpq_pool_frame_dup_text (pool_frame, member, &frame->length);
  if (mpq_message_get_bytes (pool_frame->message) != NULL)
    frame->payload = g_bytes_ref (mpq_message_get_bytes (pool_frame->message));
  g_queue_push_tail (&self->frames, frame);
  _mpq_worker_run_next (self);
}

/* The queue's dispatch: what the pool sends. */
void
_mpq_worker_on_message (MpqWorker  *self,
                        MpqMessage *message)
{
  const char *request = mpq_message_get_request (message);
  g_auto(MpqPoolFrame) frame = { 0 };
  gboolean is_frame;
  guint64 id = 0;
  guint n_items = 0;

  if (mpq_message_get_sender_pid (message) != self->parent_pid)
    {
      g_debug ("Worker: dropping %s from %d", request, mpq_message_get_sender_pid (message));
      return;
    }

  is_frame = _mpq_pool_frame_read (&frame, message) &&
             _mpq_pool_frame_get_id (&frame, MPQ_POOL_MEMBER_TASK, &id);
  /* A frame with "data" is a task whatever its request: a pool may be
   * asked for tasks called "DIE" or "CANCEL". */
  if (is_frame && frame.value[MPQ_POOL_MEMBER_DATA] != NULL)
    take_frame (self, &frame, id, MPQ_POOL_MEMBER_DATA, 0);
  else if (is_frame && _mpq_pool_frame_count (&frame, MPQ_POOL_MEMBER_BATCH, &n_items))
    take_frame (self, &frame, id, MPQ_POOL_MEMBER_BATCH, n_items);
  else if (is_frame && g_str_equal (request, MPQ_REQ_CANCEL))
    cancel_task (self, id);
  else if (g_str_equal (request, MPQ_REQ_DIE))
    {
      self->told_to_die = TRUE;
      _mpq_worker_close (self);
    }
  else
    g_debug ("Worker: dropping a %s that is no pool frame", request);
}
