/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "mpq-channel.h"
#include "mpq-error.h"
#include "mpq-pool-private.h"
#include "mpq-protocol.h"
#include "mpq-source-private.h"
#include "mpq-worker-private.h"

/**
 * MpqWorker:
 *
 * The worker's side of an [class@Mpq.Pool], in the shape of
 * `GDBusMethodInvocation`: each task is a [signal@Mpq.Worker::task] with
 * an [class@Mpq.Invocation] to answer, now or later.
 *
 * A worker works on one task at a time: the next `task` is emitted once
 * the invocation before it was answered (or dropped, which answers it
 * with an error). [method@Mpq.Worker.run] serves until the pool tells the
 * worker to die or the pool's process is gone; programs with their own
 * main loop call [method@Mpq.Worker.start] and hear of either through
 * [signal@Mpq.Worker::closed].
 *
 * A worker is used from one thread; its signals are emitted in the
 * thread-default main context of the thread that started it.
 *
 * Since: 1.2
 */

/* A task handed to the worker, or a batch of them (a pool's map): one
 * invocation per item, one answer for the batch. */
typedef struct
{
  guint64    id;
  char      *request;
  JsonNode  *data;       /* a task's */
  JsonArray *items;      /* a batch's, or NULL */
  guint      next_item;  /* the next to hand out */
  GString   *results;    /* the batch's answers so far: "[r0,r1" */
  gboolean   cancelled;
} Frame;

struct _MpqWorker
{
  GObject       parent_instance;

  MpqQueue     *queue;          /* NULL: not made by new_for_child () */
  gint          pid;
  gint          parent_pid;
  GQueue        frames;         /* Frame: tasks not started, in order */
  gboolean      busy;           /* an invocation is out */
  guint64       current_id;
  GCancellable *current_cancellable;
  gboolean      started;
  gboolean      ready_sent;
  gboolean      told_to_die;
  gboolean      closed;
  GMainContext *context;        /* where it was started */
  GSource      *next;           /* emits the next task */
  gboolean      in_batch;       /* next_cb emits a batch's items */
};

enum
{
  SIGNAL_TASK,
  SIGNAL_CLOSED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (MpqWorker, mpq_worker, G_TYPE_OBJECT)

static void
frame_free (Frame *frame)
{
  g_free (frame->request);
  g_clear_pointer (&frame->data, json_node_unref);
  g_clear_pointer (&frame->items, json_array_unref);
  if (frame->results != NULL)
    g_string_free (frame->results, TRUE);
  g_free (frame);
}

static void
mpq_worker_dispose (GObject *object)
{
  MpqWorker *self = MPQ_WORKER (object);

  if (self->queue != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->queue, self);
      mpq_channel_flush (MPQ_CHANNEL (self->queue), MPQ_DEFAULT_SEND_TIMEOUT, NULL);
      mpq_channel_close (MPQ_CHANNEL (self->queue));
      g_clear_object (&self->queue);
    }
  g_queue_clear_full (&self->frames, (GDestroyNotify) frame_free);
  g_clear_object (&self->current_cancellable);
  _mpq_clear_source (&self->next);
  g_clear_pointer (&self->context, g_main_context_unref);

  G_OBJECT_CLASS (mpq_worker_parent_class)->dispose (object);
}

static void
mpq_worker_class_init (MpqWorkerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = mpq_worker_dispose;

  /**
   * MpqWorker::task:
   * @self: the worker
   * @invocation: the task: answer it with
   *   [method@Mpq.Invocation.return_json] or
   *   [method@Mpq.Invocation.return_error], now or later (keep a
   *   reference)
   *
   * The pool handed this worker a task (or a broadcast, whose answer the
   * pool drops). An invocation dropped unanswered fails its task.
   *
   * Since: 1.2
   */
  signals[SIGNAL_TASK] =
    g_signal_new ("task", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, MPQ_TYPE_INVOCATION);
  /**
   * MpqWorker::closed:
   * @self: the worker
   *
   * The pool told the worker to die, or its process is gone: no task
   * comes any more. Emitted once.
   *
   * Since: 1.2
   */
  signals[SIGNAL_CLOSED] =
    g_signal_new ("closed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
mpq_worker_init (MpqWorker *self)
{
  g_queue_init (&self->frames);
}

static gboolean send_answer (MpqWorker   *self,
                             guint64      id,
                             gboolean     finished,
                             const char  *field,
                             const char  *json_or_text,
                             GError     **error);
static void     run_next    (MpqWorker   *self);

/* The next task, if none is out: one at a time, in the order handed.
 * From an idle of its own, not from the queue's dispatch: a handler that
 * runs the main context while it works (to hear it was cancelled, say)
 * must still get the queue's messages. */
static void
emit_task (MpqWorker  *self,
           guint64     id,
           const char *request,
           JsonNode   *data)
{
  MpqInvocation *invocation = _mpq_invocation_new (self, id, request, data,
                                                   self->current_cancellable);

  g_signal_emit (self, signals[SIGNAL_TASK], 0, invocation);
  /* Dropped unanswered, it answers itself now. */
  g_object_unref (invocation);
}

static gboolean
next_cb (gpointer user_data)
{
  MpqWorker *self = user_data;
  Frame *frame;

  g_clear_pointer (&self->next, g_source_unref);
  if (self->busy || self->closed || (frame = g_queue_peek_head (&self->frames)) == NULL)
    return G_SOURCE_REMOVE;

  g_object_ref (self);
  self->busy = TRUE;
  self->current_id = frame->id;
  g_clear_object (&self->current_cancellable);
  self->current_cancellable = g_cancellable_new ();
  if (frame->items != NULL && json_array_get_length (frame->items) == 0)
    {
      /* An empty batch: answered as it is. */
      send_answer (self, frame->id, TRUE, "results", "[]", NULL);
      frame_free (g_queue_pop_head (&self->frames));
      self->busy = FALSE;
      run_next (self);
      g_object_unref (self);
      return G_SOURCE_REMOVE;
    }

  if (frame->items == NULL)
    {
      g_queue_pop_head (&self->frames);
      emit_task (self, frame->id, frame->request, frame->data);
      frame_free (frame);
    }
  else
    {
      guint64 id = frame->id;

      /* A batch's items, one after the other while their handlers answer
       * at once (the batch's frame stays first in line until its last
       * item is answered; the items share its cancellable). */
      self->in_batch = TRUE;
      do
        {
          self->busy = TRUE;
          emit_task (self, id, frame->request,
                     json_array_get_element (frame->items, frame->next_item++));
        }
      while (!self->busy && !self->closed &&
             g_queue_peek_head (&self->frames) == frame &&
             frame->next_item < json_array_get_length (frame->items));
      self->in_batch = FALSE;
      run_next (self);
    }
  g_object_unref (self);
  return G_SOURCE_REMOVE;
}

static void
run_next (MpqWorker *self)
{
  if (self->next != NULL || self->busy || self->closed || self->context == NULL ||
      self->in_batch || g_queue_is_empty (&self->frames))
    return;
  self->next = g_idle_source_new ();
  g_source_set_callback (self->next, next_cb, self, NULL);
  g_source_set_static_name (self->next, "[mpq] worker next task");
  g_source_attach (self->next, self->context);
}

static void
close_once (MpqWorker *self)
{
  if (self->closed)
    return;
  self->closed = TRUE;
  g_signal_emit (self, signals[SIGNAL_CLOSED], 0);
}

/* Sends @frame to the pool; any thread the worker is used from. */
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

/* Sends the answer of a task, or of a batch once its last item is
 * answered or one failed. */
static gboolean
send_answer (MpqWorker   *self,
             guint64      id,
             gboolean     finished,
             const char  *field,
             const char  *json_or_text,
             GError     **error)
{
  g_autofree char *frame = finished ? _mpq_pool_frame_task (id, field, json_or_text)
                                    : _mpq_pool_frame_error (id, json_or_text);

  /* Out of this process before the next task starts: an answer still in
   * a send buffer when the next task crashes the worker would be lost,
   * and the pool would count the death against the task it answered. */
  return _mpq_worker_send (self, finished ? MPQ_REQ_FINISHED : MPQ_REQ_FAILED, frame, error) &&
         mpq_channel_flush (MPQ_CHANNEL (self->queue), MPQ_DEFAULT_SEND_TIMEOUT, error);
}

/* The invocation of @id was answered (or dropped): @json_or_text is the
 * result (nullable: null) when @finished, else the error's text. A
 * batch's item adds to the batch's answer. Then the next may start. */
gboolean
_mpq_worker_answer (MpqWorker   *self,
                    guint64      id,
                    gboolean     finished,
                    const char  *json_or_text,
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

  if (batch != NULL && batch->id == id && batch->items != NULL)
    {
      gboolean last = batch->next_item >= json_array_get_length (batch->items);

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
                              finished ? batch->results->str : json_or_text, error);
          frame_free (g_queue_pop_head (&self->frames));
        }
    }
  else
    sent = send_answer (self, id, finished, "result", json_or_text, error);

  self->busy = FALSE;
  if (g_queue_peek_head (&self->frames) != batch || batch == NULL || batch->items == NULL)
    g_clear_object (&self->current_cancellable);
  run_next (self);
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
          /* Answered all the same: the pool counts what it handed. */
          _mpq_worker_send (self, MPQ_REQ_FAILED, text, NULL);
          return;
        }
    }
}

static void
message_received_cb (MpqChannel *channel,
                     MpqMessage *message,
                     gpointer    user_data)
{
  MpqWorker *self = user_data;
  const char *request = mpq_message_get_request (message);
  JsonNode *data = mpq_message_get_data (message);
  JsonNode *task_data = _mpq_pool_frame_get_member (data, "data");
  JsonNode *batch = _mpq_pool_frame_get_member (data, "batch");
  guint64 id;

  if (mpq_message_get_sender_pid (message) != self->parent_pid)
    {
      g_debug ("Worker: dropping %s from %d", request, mpq_message_get_sender_pid (message));
      return;
    }

  /* A frame with "data" is a task whatever its request: a pool may be
   * asked for tasks called "DIE" or "CANCEL". */
  if (task_data != NULL && _mpq_pool_frame_get_id (data, &id))
    {
      Frame *frame = g_new0 (Frame, 1);

      frame->id = id;
      frame->request = g_strdup (request);
      frame->data = json_node_ref (task_data);
      g_queue_push_tail (&self->frames, frame);
      run_next (self);
    }
  else if (batch != NULL && JSON_NODE_HOLDS_ARRAY (batch) && _mpq_pool_frame_get_id (data, &id))
    {
      Frame *frame = g_new0 (Frame, 1);

      frame->id = id;
      frame->request = g_strdup (request);
      frame->items = json_array_ref (json_node_get_array (batch));
      frame->results = g_string_new ("[");
      g_queue_push_tail (&self->frames, frame);
      run_next (self);
    }
  else if (g_str_equal (request, MPQ_REQ_CANCEL) && _mpq_pool_frame_get_id (data, &id))
    cancel_task (self, id);
  else if (g_str_equal (request, MPQ_REQ_DIE))
    {
      self->told_to_die = TRUE;
      close_once (self);
    }
  else
    g_debug ("Worker: dropping a %s that is no pool frame", request);
}

static void
queue_closed_cb (MpqChannel *channel,
                 gpointer    user_data)
{
  close_once (MPQ_WORKER (user_data));
}

/**
 * mpq_worker_new_for_child:
 * @error: return location for a #GError
 *
 * Opens, in a worker an [class@Mpq.Pool] spawned, its end of the pool.
 * Then [method@Mpq.Worker.run] (or [method@Mpq.Worker.start]) serves.
 *
 * Returns: (transfer full): the worker, or %NULL with @error set to
 *   `MPQ_ERROR_NOT_A_CHILD` when no pool spawned this process
 *
 * Since: 1.2
 */
MpqWorker *
mpq_worker_new_for_child (GError **error)
{
  g_autoptr(MpqWorker) self = NULL;
  const char *flag = g_getenv (MPQ_POOL_WORKER_ENV);

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (g_strcmp0 (flag, "1") != 0)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD,
                           "This process was not spawned by a pool (no "
                           MPQ_POOL_WORKER_ENV "=1)");
      return NULL;
    }
  self = g_object_new (MPQ_TYPE_WORKER, NULL);
  self->queue = mpq_queue_new_for_child (error);
  if (self->queue == NULL)
    return NULL;
  self->pid = mpq_channel_get_pid (MPQ_CHANNEL (self->queue));
  self->parent_pid = mpq_queue_get_parent_pid (self->queue);
  return g_steal_pointer (&self);
}

/**
 * mpq_worker_start:
 * @self: a worker
 *
 * Tells the pool the worker is ready, and emits
 * [signal@Mpq.Worker::task] for each task, in the thread-default main
 * context, until [method@Mpq.Worker.stop].
 *
 * Since: 1.2
 */
void
mpq_worker_start (MpqWorker *self)
{
  g_return_if_fail (MPQ_IS_WORKER (self));

  if (self->queue == NULL || self->started)
    return;
  self->started = TRUE;
  if (self->context == NULL)
    self->context = g_main_context_ref_thread_default ();
  g_signal_connect (self->queue, "message-received", G_CALLBACK (message_received_cb), self);
  g_signal_connect (self->queue, "closed", G_CALLBACK (queue_closed_cb), self);
  mpq_channel_start (MPQ_CHANNEL (self->queue));
  if (!self->ready_sent)
    {
      self->ready_sent = TRUE;
      /* It takes a map's items in batches (docs/protocol.md). */
      if (!_mpq_worker_send (self, MPQ_REQ_READY, "{\"batch\":true}", NULL))
        close_once (self);
    }
  run_next (self);
}

/**
 * mpq_worker_stop:
 * @self: a worker
 *
 * Stops emitting [signal@Mpq.Worker::task]; tasks handed meanwhile wait
 * for the next [method@Mpq.Worker.start].
 *
 * Since: 1.2
 */
void
mpq_worker_stop (MpqWorker *self)
{
  g_return_if_fail (MPQ_IS_WORKER (self));

  if (self->queue == NULL || !self->started)
    return;
  self->started = FALSE;
  mpq_channel_stop (MPQ_CHANNEL (self->queue));
  g_signal_handlers_disconnect_by_data (self->queue, self);
  _mpq_clear_source (&self->next);
}

static gboolean
is_closed (gpointer data)
{
  return MPQ_WORKER (data)->closed;
}

/**
 * mpq_worker_run:
 * @self: a worker
 * @error: return location for a #GError
 *
 * Serves tasks, iterating the thread-default main context, until the pool
 * tells the worker to die or the pool's process is gone; then sends what
 * is left to send.
 *
 * Returns: %TRUE when told to die, %FALSE with @error set otherwise
 *   (`MPQ_ERROR_CLOSED` when the pool is gone, `MPQ_ERROR_NOT_A_CHILD`
 *   for a worker not made by [ctor@Mpq.Worker.new_for_child])
 *
 * Since: 1.2
 */
gboolean
mpq_worker_run (MpqWorker  *self,
                GError    **error)
{
  GMainContext *context = g_main_context_ref_thread_default ();
  gboolean ok;

  g_return_val_if_fail (MPQ_IS_WORKER (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (self->queue == NULL)
    {
      g_main_context_unref (context);
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD,
                           "The worker was not made by mpq_worker_new_for_child ()");
      return FALSE;
    }
  g_object_ref (self);
  mpq_worker_start (self);
  ok = _mpq_pool_iterate_until (context, is_closed, self, -1, error);
  mpq_worker_stop (self);
  g_main_context_unref (context);
  if (ok && !mpq_channel_flush (MPQ_CHANNEL (self->queue), MPQ_DEFAULT_SEND_TIMEOUT, NULL))
    g_debug ("Worker: what was left to send could not be sent");
  if (ok && !self->told_to_die)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_CLOSED, "The pool is gone");
      ok = FALSE;
    }
  g_object_unref (self);
  return ok;
}

/**
 * mpq_worker_get_pid:
 * @self: a worker
 *
 * This worker's pid.
 *
 * Returns: this worker's pid, as the pool knows it (0 for a worker not
 *   made by [ctor@Mpq.Worker.new_for_child])
 *
 * Since: 1.2
 */
gint
mpq_worker_get_pid (MpqWorker *self)
{
  g_return_val_if_fail (MPQ_IS_WORKER (self), 0);
  return self->pid;
}
