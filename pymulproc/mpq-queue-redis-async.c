/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-channel-private.h"
#include "mpq-error.h"
#include "mpq-queue-redis-thread-private.h"
#include "mpq-source-private.h"

/* The user's side of a queue on Redis's thread (mpq-queue-redis-thread.c):
 * receive_async and join_async, their results in the task's own context,
 * and dispatch (start, stop, ::message-received) in the context of
 * mpq_channel_start()'s caller. A message handed over is in this
 * process's hand, held on the server, until it is done with: a
 * receive_async's until its finish takes it, dispatch's until its
 * handlers returned; one that is not taken (a result dropped, a call
 * cancelled, dispatch stopped, the queue closed) goes back to the front,
 * as in a local queue. */

/* A receive_async's result: the message, in our hand until finish. */
typedef struct
{
  MpqRedisThread *thread;    /* a reference */
  MpqRedisTaken  *taken;
} Held;

/* Any thread: a result nobody finished goes back to the front. */
static void
held_release (gpointer data)
{
  Held *held = data;
  MpqRedisThread *thread = held->thread;

  if (held->taken != NULL)
    {
      _mpq_mutex_lock (&thread->lock);
      _mpq_redis_thread_settle_locked (thread, held->taken->seq, thread->undos);
      _mpq_mutex_unlock (&thread->lock);
      _mpq_redis_thread_wake (thread);
      _mpq_redis_taken_free (held->taken);
    }
  _mpq_redis_thread_unref (thread);
  g_free (held);
}

/* The user's thread: takes the message a receive_async was handed, for
 * good; MPQ_ERROR_CLOSED when the queue was closed first (it went back
 * to the front then). */
MpqMessage *
_mpq_redis_thread_finish_want (GTask   *task,
                               GError **error)
{
  Held *held = g_task_propagate_pointer (task, error);
  MpqRedisThread *thread;
  MpqRedisTaken *taken;
  MpqMessage *message = NULL;
  gboolean ours;

  if (held == NULL)
    return NULL;

  thread = held->thread;
  taken = g_steal_pointer (&held->taken);
  _mpq_mutex_lock (&thread->lock);
  ours = _mpq_redis_thread_settle_locked (thread, taken->seq, thread->acks);
  _mpq_mutex_unlock (&thread->lock);
  _mpq_redis_thread_wake (thread);

  if (!ours)
    g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_CLOSED,
                         "The queue was closed before the message was taken");
  else if (taken->message == NULL)
    g_propagate_error (error, g_steal_pointer (&taken->error));
  else
    message = g_steal_pointer (&taken->message);
  _mpq_redis_taken_free (taken);
  held_release (held);
  return message;
}

/* A result on its way to its task's context. */
typedef struct
{
  MpqRedisThread *thread;   /* a reference */
  GTask          *task;     /* a reference */
  MpqRedisTaken  *taken;    /* a receive_async's message, or NULL */
  GError         *error;
  gint            published; /* atomic: set once the fields above are */
} Completion;

/* The task's context. */
static gboolean
complete_cb (gpointer user_data)
{
  Completion *completion = user_data;
  GTask *task;

  /* The idle orders it already (GLib's context lock), out of the sight of
   * ThreadSanitizer: this acquire pairs with the release below, as in
   * mpq-queue-local.c. */
  g_assert (g_atomic_int_get (&completion->published));
  task = completion->task;
  _mpq_task_unwatch_cancel (task);
  if (completion->error != NULL)
    g_task_return_error (task, g_steal_pointer (&completion->error));
  else if (completion->taken == NULL)
    g_task_return_boolean (task, TRUE);
  else
    {
      Held *held = g_new0 (Held, 1);

      held->thread = _mpq_redis_thread_ref (completion->thread);
      held->taken = g_steal_pointer (&completion->taken);
      if (g_task_return_error_if_cancelled (task))
        /* Cancelled meanwhile: it goes back now. */
        held_release (held);
      else
        g_task_return_pointer (task, held, held_release);
    }
  g_object_unref (task);
  _mpq_redis_thread_unref (completion->thread);
  g_free (completion);
  return G_SOURCE_REMOVE;
}

/* Any thread, without the lock: the task's last reference, and with it
 * perhaps the queue's, must not go in the library's thread. */
void
_mpq_redis_complete_later (MpqRedisThread *thread,
                           GTask          *task,
                           MpqRedisTaken  *taken,
                           GError         *error)
{
  Completion *completion = g_new0 (Completion, 1);

  completion->thread = _mpq_redis_thread_ref (thread);
  completion->task = task;
  completion->taken = taken;
  completion->error = error;
  g_atomic_int_set (&completion->published, 1);
  g_source_unref (_mpq_source_attach (g_idle_source_new (), g_task_get_context (task),
                                      "[mpq] redis queue result", complete_cb, completion));
}

/* The task's context: a call still waiting is answered now; one whose
 * answer is on its way gets it (a message goes back then). */
static gboolean
cancelled_cb (GCancellable *cancellable,
              gpointer      user_data)
{
  GTask *task = user_data;
  MpqRedisThread *thread = g_task_get_task_data (task);
  gboolean removed;

  _mpq_mutex_lock (&thread->lock);
  removed = g_queue_remove (&thread->wants, task) || g_queue_remove (&thread->joins, task);
  _mpq_mutex_unlock (&thread->lock);

  if (removed)
    {
      _mpq_task_unwatch_cancel (task);
      g_task_return_error_if_cancelled (task);
      g_object_unref (task);
    }
  return G_SOURCE_REMOVE;
}

/* The user's thread: @task waits in @line (wants or joins). */
static void
enqueue (MpqRedisThread *thread,
         GQueue         *line,
         GTask          *task)
{
  gboolean lost;

  g_task_set_task_data (task, _mpq_redis_thread_ref (thread),
                        (GDestroyNotify) _mpq_redis_thread_unref);
  _mpq_mutex_lock (&thread->lock);
  lost = thread->lost;
  if (!lost)
    g_queue_push_tail (line, g_object_ref (task));
  _mpq_mutex_unlock (&thread->lock);

  if (lost)
    {
      g_task_return_new_error (task, MPQ_ERROR, MPQ_ERROR_CLOSED, "Lost the Redis server");
      return;
    }
  _mpq_task_watch_cancel (task, g_task_get_context (task), cancelled_cb, task);
  _mpq_redis_thread_wake (thread);
}

void
_mpq_redis_thread_want_async (MpqRedisThread *thread,
                              GTask          *task)
{
  enqueue (thread, &thread->wants, task);
}

void
_mpq_redis_thread_join_async (MpqRedisThread *thread,
                              GTask          *task)
{
  enqueue (thread, &thread->joins, task);
}

/* Dispatch ----------------------------------------------------------------- */

/* Dispatch's source, in the context of start ()'s caller: emits what is
 * in the inbox, as a batch; each message is done with once its handlers
 * returned (a stop in a handler counts it handled). */
static gboolean
deliver_cb (gpointer user_data)
{
  MpqRedisThread *thread = user_data;
  MpqChannel *channel;
  MpqDispatchBatch batch;
  gboolean more, lost;

  /* A handler's own main loop: what follows waits for it. */
  if (thread->delivering)
    return G_SOURCE_CONTINUE;

  channel = g_object_ref (thread->channel);
  thread->delivering = TRUE;
  _mpq_dispatch_batch_init (&batch);
  while (!batch.over)
    {
      MpqRedisTaken *taken;
      gint64 work_us;

      _mpq_mutex_lock (&thread->lock);
      taken = thread->slots.started ? _mpq_redis_inbox_pop_locked (thread) : NULL;
      _mpq_mutex_unlock (&thread->lock);
      if (taken == NULL)
        break;

      work_us = _mpq_dispatch_batch_emit (&batch, channel, taken->message);

      _mpq_mutex_lock (&thread->lock);
      _mpq_queue_slots_release (&thread->slots, taken->recipient);
      if (taken->recipient == 0)
        _mpq_queue_slots_done (&thread->slots, work_us);
      _mpq_redis_thread_settle_locked (thread, taken->seq, thread->acks);
      _mpq_mutex_unlock (&thread->lock);
      _mpq_redis_taken_free (taken);
    }
  thread->delivering = FALSE;
  _mpq_redis_thread_wake (thread);

  _mpq_mutex_lock (&thread->lock);
  more = thread->slots.started && thread->inbox.length > 0;
  lost = thread->lost;
  if (more)
    g_source_set_ready_time (thread->deliver, 0);
  _mpq_mutex_unlock (&thread->lock);

  /* The server is gone (no reconnection yet): the queue closes. */
  if (lost)
    mpq_channel_close (channel);
  g_object_unref (channel);
  return G_SOURCE_CONTINUE;
}

/* The user's thread. */
void
_mpq_redis_thread_start (MpqRedisThread *thread,
                         guint           prefetch)
{
  g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();
  GSource *deliver = NULL;

  /* The source is made and dropped in the user's thread; the library's
   * thread only makes it ready, under the lock. */
  if (thread->deliver == NULL || g_source_get_context (thread->deliver) != context)
    deliver = _mpq_source_attach (_mpq_wake_source_new (), context, "[mpq] redis dispatch",
                                  deliver_cb, thread);

  _mpq_mutex_lock (&thread->lock);
  if (deliver != NULL)
    {
      if (thread->deliver != NULL)
        g_source_destroy (thread->deliver);
      g_clear_pointer (&thread->deliver, g_source_unref);
      thread->deliver = deliver;
    }
  thread->slots.prefetch = MAX (prefetch, 1);
  thread->slots.started = TRUE;
  if (thread->inbox.length > 0 || thread->lost)
    g_source_set_ready_time (thread->deliver, 0);
  _mpq_mutex_unlock (&thread->lock);
  _mpq_redis_thread_wake (thread);
}

/* With the lock: what dispatch handed us and we did not emit goes back to
 * the front (undo keeps each message's place). */
static void
stop_locked (MpqRedisThread *thread)
{
  MpqRedisTaken *taken;

  thread->slots.started = FALSE;
  while ((taken = _mpq_redis_inbox_pop_locked (thread)) != NULL)
    {
      _mpq_queue_slots_release (&thread->slots, taken->recipient);
      _mpq_redis_thread_settle_locked (thread, taken->seq, thread->undos);
      _mpq_redis_taken_free (taken);
    }
}

/* The user's thread. */
void
_mpq_redis_thread_stop (MpqRedisThread *thread)
{
  _mpq_mutex_lock (&thread->lock);
  stop_locked (thread);
  _mpq_mutex_unlock (&thread->lock);
  _mpq_redis_thread_wake (thread);
}

/* The user's thread: the thread puts back what we hold and ends; what
 * waits fails with MPQ_ERROR_CLOSED. */
void
_mpq_redis_thread_close (MpqRedisThread *thread)
{
  GQueue tasks = G_QUEUE_INIT;
  GTask *task;

  _mpq_mutex_lock (&thread->lock);
  stop_locked (thread);
  thread->quit = TRUE;
  while ((task = g_queue_pop_head (&thread->wants)) != NULL)
    g_queue_push_tail (&tasks, task);
  while ((task = g_queue_pop_head (&thread->joins)) != NULL)
    g_queue_push_tail (&tasks, task);
  _mpq_mutex_unlock (&thread->lock);

  _mpq_redis_thread_wake (thread);
  g_thread_join (g_steal_pointer (&thread->thread));

  while ((task = g_queue_pop_head (&tasks)) != NULL)
    {
      _mpq_task_unwatch_cancel (task);
      g_task_return_new_error (task, MPQ_ERROR, MPQ_ERROR_CLOSED, "The queue is closed");
      g_object_unref (task);
    }
  _mpq_clear_source (&thread->deliver);
  _mpq_redis_thread_unref (thread);
}
