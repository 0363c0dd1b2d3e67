/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <unistd.h>

#include "mpq-error.h"
#include "mpq-queue-server-private.h"
#include "mpq-spawn-private.h"
#include "mpq-source-private.h"

/* The parent's own calls on its queue: send, receive, join and is_empty
 * (its dispatch: mpq-queue-local-dispatch.c). They run in the caller's thread and work on the state under
 * its lock, without a round trip through the queue's thread; the parent
 * is a peer of the state like each child (local_class below). */

/* A message handed to the parent's receive_async: in its hand until
 * _mpq_queue_server_finish_want() takes it; back to the front if the
 * result is never taken (cancelled, or nobody called finish). */
typedef struct
{
  MpqQueueServer *server;
  MpqQueueEntry  *entry;
} Held;

/* A routed receive of the parent's, waiting in server->local_wants
 * (oldest first, guarded by the lock): receive_async's (@task, a
 * reference, with this struct allocated), or receive_for_me's (@task
 * NULL, on its caller's stack: the caller waits on the condition until
 * @served is set). One line for both, so that they are served in the
 * order they were made. */
typedef struct
{
  GTask         *task;
  MpqQueueEntry *served;
} LocalWant;

/* An async result, returned in the caller's main context: the task's last
 * reference, and with it perhaps the queue's, must not go in our thread. */
typedef struct
{
  GTask *task;
  Held  *held;       /* NULL for a join */
  gint   published;  /* atomic: set once the fields above are */
} Completion;

/* Any thread: a message in hand goes back to the front, unless the queue
 * was closed meanwhile. */
static void
held_release (gpointer data)
{
  Held *held = data;
  MpqQueueServer *server = held->server;

  if (held->entry != NULL)
    {
      _mpq_mutex_lock (&server->lock);
      if (server->closed)
        _mpq_queue_entry_free (held->entry);
      else
        {
          _mpq_queue_push_head_locked (server, held->entry);
          _mpq_queue_kick_locked (server);
        }
      _mpq_mutex_unlock (&server->lock);
    }
  _mpq_queue_server_unref (server);
  g_free (held);
}

/* Any thread, with the lock: @task's result (@entry, or NULL for a join)
 * is returned once the lock is let go (_mpq_queue_unlock_and_complete). */
void
_mpq_queue_complete_later_locked (MpqQueueServer *server,
                                  GTask          *task,
                                  MpqQueueEntry  *entry)
{
  Held *held = NULL;

  if (entry != NULL)
    {
      held = g_new (Held, 1);
      held->server = server;
      held->entry = entry;
      g_atomic_int_inc (&server->refs);
    }
  g_queue_push_tail (&server->completed, task);
  g_queue_push_tail (&server->completed, held);
}

/* The task's main context. */
static gboolean
complete_cb (gpointer user_data)
{
  Completion *completion = user_data;

  /* The idle that brings it here orders it already (GLib's context lock),
   * but out of the sight of ThreadSanitizer: this acquire pairs with the
   * release in _mpq_queue_unlock_and_complete (). */
  g_assert (g_atomic_int_get (&completion->published));
  if (completion->held == NULL)
    g_task_return_boolean (completion->task, TRUE);
  else if (g_cancellable_is_cancelled (g_task_get_cancellable (completion->task)))
    {
      /* Cancelled meanwhile: the message goes back now, not whenever a
       * garbage collector drops the result. */
      held_release (completion->held);
      g_task_return_error_if_cancelled (completion->task);
    }
  else
    g_task_return_pointer (completion->task, completion->held, held_release);
  g_object_unref (completion->task);
  g_free (completion);
  return G_SOURCE_REMOVE;
}

/* Any thread, with the lock, which it lets go: returns the async results
 * decided under it, each in its task's context. */
void
_mpq_queue_unlock_and_complete (MpqQueueServer *server)
{
  GQueue completed = server->completed;

  g_queue_init (&server->completed);
  _mpq_mutex_unlock (&server->lock);

  while (completed.length > 0)
    {
      Completion *completion = g_new0 (Completion, 1);
      GMainContext *context;

      completion->task = g_queue_pop_head (&completed);
      completion->held = g_queue_pop_head (&completed);
      context = g_task_get_context (completion->task);
      /* Last touch before another thread may take it. */
      g_atomic_int_set (&completion->published, 1);
      g_source_unref (_mpq_source_attach (g_idle_source_new (), context,
                                          "[mpq] queue result", complete_cb, completion));
    }
}

/* The parent as a peer ---------------------------------------------------- */

static void
local_assign (MpqQueuePeer  *peer,
              MpqQueueEntry *entry)
{
  MpqQueueServer *server = G_STRUCT_MEMBER_P (peer, -G_STRUCT_OFFSET (MpqQueueServer, local));
  LocalWant *want = g_queue_pop_head (&server->local_wants);

  if (want != NULL)
    {
      peer->n_wants--;
      if (want->task == NULL)
        {
          want->served = entry;
          _mpq_cond_broadcast (&server->cond);
          return;
        }
      _mpq_queue_complete_later_locked (server, want->task, entry);
      g_free (want);
      return;
    }

  _mpq_queue_slots_take (&peer->slots, entry->recipient);
  g_queue_push_tail_link (&server->local_inbox, &entry->all_link);
  g_source_set_ready_time (server->local_wake, 0);
}

static void
local_serve_get (MpqQueuePeer    *peer,
                 MpqQueuePending *get,
                 MpqQueueEntry   *entry)
{
  MpqQueueServer *server = G_STRUCT_MEMBER_P (peer, -G_STRUCT_OFFSET (MpqQueueServer, local));

  get->served = entry;
  _mpq_cond_broadcast (&server->cond);
}

static void
local_settle (MpqQueuePeer *peer)
{
  /* The parent's joins are completed when the count reaches zero. */
}

static const MpqQueuePeerClass local_class = {
  local_assign,
  local_serve_get,
  local_settle,
};

void
_mpq_queue_local_init (MpqQueueServer *server)
{
  server->local.klass = &local_class;
  server->local.pid = server->pid;
  server->local.slots.prefetch = 1;
  g_ptr_array_add (server->peers, &server->local);
}

/* At close, once the thread is gone. A receive_for_me still waiting
 * (closed from another thread) sees it is no longer in line. */
void
_mpq_queue_local_clear (MpqQueueServer *server)
{
  GQueue wants;
  GQueue joins;
  LocalWant *want;
  GTask *task;

  _mpq_mutex_lock (&server->lock);
  wants = server->local_wants;
  joins = server->local_joins;
  g_queue_init (&server->local_wants);
  g_queue_init (&server->local_joins);
  server->local.n_wants = 0;
  _mpq_mutex_unlock (&server->lock);

  while ((want = g_queue_pop_head (&wants)) != NULL)
    {
      if (want->task == NULL)
        continue;
      g_task_return_new_error (want->task, MPQ_ERROR, MPQ_ERROR_CLOSED, "The queue is closed");
      g_object_unref (want->task);
      g_free (want);
    }
  while ((task = g_queue_pop_head (&joins)) != NULL)
    {
      g_task_return_new_error (task, MPQ_ERROR, MPQ_ERROR_CLOSED, "The queue is closed");
      g_object_unref (task);
    }
  _mpq_mutex_lock (&server->lock);
  _mpq_queue_unlock_and_complete (server);

  while (server->local_inbox.length > 0)
    _mpq_queue_entry_free (_mpq_queue_pop_entry_head (&server->local_inbox));
  g_clear_pointer (&server->local_wake, g_source_unref);
}

/* The parent's calls: the caller's thread ---------------------------------- */

gboolean
_mpq_queue_server_put (MpqQueueServer  *server,
                       MpqMessage      *message,
                       GString         *line,
                       int              pass_fd,
                       gint             recipient,
                       gint             put_timeout_ms,
                       guint            put_attempts,
                       GError         **error)
{
  MpqQueueEntry *entry;
  guint attempt = 0;

  /* Whatever happens, @pass_fd is closed: by the entry, or here. */

  _mpq_mutex_lock (&server->lock);
  while (_mpq_queue_is_full_locked (server))
    {
      gint64 deadline;

      if (attempt++ >= put_attempts)
        {
          _mpq_mutex_unlock (&server->lock);
          g_set_error (error, MPQ_ERROR, MPQ_ERROR_FULL,
                       "The queue is full (%u messages); nothing was put", server->max_size);
          if (pass_fd >= 0)
            close (pass_fd);
          return FALSE;
        }

      deadline = g_get_monotonic_time () + (gint64) MAX (put_timeout_ms, 0) * 1000;
      while (_mpq_queue_is_full_locked (server) && !server->closed &&
             _mpq_queue_wait_locked (server, deadline))
        ;
      if (server->closed)
        {
          _mpq_mutex_unlock (&server->lock);
          g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_CLOSED, "The queue is closed");
          if (pass_fd >= 0)
            close (pass_fd);
          return FALSE;
        }
    }

  entry = _mpq_queue_entry_new (line->str, line->len,
                                message != NULL ? g_object_ref (message) : NULL,
                                recipient, server->pid);
  if (pass_fd >= 0)
    _mpq_queue_entry_set_fd (entry, pass_fd, g_bytes_get_size (mpq_message_get_bytes (message)),
                             NULL);
  _mpq_queue_put_locked (server, entry);
  if (server->room_left)
    _mpq_queue_kick_locked (server);
  _mpq_mutex_unlock (&server->lock);
  return TRUE;
}

MpqMessage *
_mpq_queue_server_take (MpqQueueServer    *server,
                        gint               timeout_ms,
                        MpqMessageFilter   filter,
                        gpointer           user_data,
                        GError           **error)
{
  gint64 deadline = _mpq_deadline_from_timeout (timeout_ms);
  MpqQueueEntry *entry = NULL;
  MpqMessage *message;

  _mpq_mutex_lock (&server->lock);
  server->local.asked = TRUE;
  if (server->all.length == 0 && deadline == 0)
    _mpq_queue_sync_locked (server);
  if (server->all.length > 0 && server->gets.length == 0)
    entry = _mpq_queue_pop_front_locked (server);
  else if (deadline != 0)
    {
      /* In line behind the receives that came first, children's too. */
      MpqQueuePending get = { &server->local, MPQ_PENDING_GET, 0, NULL, NULL };

      g_queue_push_tail (&server->gets, &get);
      if (server->gets.length > 1)
        _mpq_queue_kick_locked (server);
      for (;;)
        {
          /* First in line and something came: take it ourselves, without
           * a round trip through the thread. */
          if (get.served == NULL && server->all.length > 0 &&
              g_queue_peek_head (&server->gets) == &get)
            {
              g_queue_pop_head (&server->gets);
              get.served = _mpq_queue_pop_front_locked (server);
              break;
            }
          if (get.served != NULL || server->closed || !_mpq_queue_wait_locked (server, deadline))
            break;
        }
      if (get.served == NULL)
        g_queue_remove (&server->gets, &get);
      entry = get.served;
    }

  if (entry == NULL)
    {
      _mpq_mutex_unlock (&server->lock);
      return NULL;
    }

  /* Without a filter it is taken for good now: one turn of the lock per
   * message, not two. */
  if (filter == NULL)
    {
      _mpq_queue_finished_locked (server);
      _mpq_queue_unlock_and_complete (server);
      message = _mpq_queue_entry_take_message (entry);
      _mpq_queue_entry_give_back (server, entry);
      return message;
    }
  _mpq_mutex_unlock (&server->lock);

  /* In our hand while the filter, user code, decides; unlocked. */
  message = _mpq_queue_entry_take_message (entry);
  if (!filter (message, user_data))
    {
      entry->message = message;
      _mpq_mutex_lock (&server->lock);
      _mpq_queue_push_tail_locked (server, entry);
      _mpq_queue_kick_locked (server);
      _mpq_mutex_unlock (&server->lock);
      return NULL;
    }

  _mpq_mutex_lock (&server->lock);
  _mpq_queue_taken_locked (server, entry);
  _mpq_queue_unlock_and_complete (server);
  return message;
}

/* receive_for_me: a routed receive in line with receive_async's, which
 * the queue's thread serves as it serves those (local_assign) and the
 * caller waits for on the condition. What it is handed is taken for good
 * at once; what it is not handed stays where it is. What is there for it
 * already is taken under the lock; otherwise, with a time-out of 0, the
 * thread makes one turn (reads what children wrote before now, and
 * routes), as receive (0) does: a poll that finds mail costs no thread
 * switch (receive_batch_json polls after its first). The caller's
 * thread. */
MpqMessage *
_mpq_queue_server_take_for_me (MpqQueueServer  *server,
                               gint             timeout_ms,
                               GError         **error)
{
  gint64 deadline = _mpq_deadline_from_timeout (timeout_ms);
  LocalWant want = { NULL, NULL };
  MpqMessage *message;
  gboolean closed;

  _mpq_mutex_lock (&server->lock);
  server->local.asked = TRUE;
  /* First in line: what can be routed to us now is ours without a turn
   * of the thread. */
  if (g_queue_is_empty (&server->local_wants))
    want.served = _mpq_queue_take_for_locked (server, &server->local);
  if (want.served == NULL)
    {
      g_queue_push_tail (&server->local_wants, &want);
      server->local.n_wants++;
      if (deadline == 0)
        _mpq_queue_sync_locked (server);
      else
        {
          _mpq_queue_kick_locked (server);
          while (want.served == NULL && !server->closed &&
                 _mpq_queue_wait_locked (server, deadline))
            ;
        }
    }

  if (want.served == NULL)
    {
      /* Nothing came: out of line (unless close took it out already). */
      if (g_queue_remove (&server->local_wants, &want))
        server->local.n_wants--;
      closed = server->closed;
      _mpq_mutex_unlock (&server->lock);
      if (closed)
        g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_CLOSED, "The queue is closed");
      return NULL;
    }

  _mpq_queue_finished_locked (server);
  _mpq_queue_unlock_and_complete (server);
  message = _mpq_queue_entry_take_message (want.served);
  _mpq_queue_entry_give_back (server, want.served);
  return message;
}

/* Takes the message a receive_async was handed: it is taken for good. */
MpqMessage *
_mpq_queue_server_finish_want (GTask   *task,
                               GError **error)
{
  Held *held = g_task_propagate_pointer (task, error);
  MpqQueueServer *server;
  MpqMessage *message;

  if (held == NULL)
    return NULL;

  server = held->server;
  message = _mpq_queue_entry_take_message (held->entry);
  _mpq_mutex_lock (&server->lock);
  if (server->closed)
    _mpq_queue_entry_free (held->entry);
  else
    _mpq_queue_taken_locked (server, held->entry);
  held->entry = NULL;
  _mpq_queue_unlock_and_complete (server);

  held_release (held);
  return message;
}

gboolean
_mpq_queue_server_is_empty (MpqQueueServer *server)
{
  gboolean empty;

  _mpq_mutex_lock (&server->lock);
  if (server->all.length == 0)
    _mpq_queue_sync_locked (server);
  empty = server->all.length == 0;
  _mpq_mutex_unlock (&server->lock);
  return empty;
}

/* Makes sure that what children wrote before now is in the queue. The
 * caller's thread. */
void
_mpq_queue_server_sync (MpqQueueServer *server)
{
  _mpq_mutex_lock (&server->lock);
  _mpq_queue_sync_locked (server);
  _mpq_mutex_unlock (&server->lock);
}

/* Drops what waits for @pid, a process gone for good. The caller's
 * thread. */
void
_mpq_queue_server_forget_pid (MpqQueueServer *server,
                              gint            pid)
{
  _mpq_mutex_lock (&server->lock);
  _mpq_queue_drop_for_locked (server, pid);
  _mpq_queue_unlock_and_complete (server);
}

gboolean
_mpq_queue_server_join (MpqQueueServer  *server,
                        gint             timeout_ms,
                        GError         **error)
{
  gint64 deadline = _mpq_deadline_from_timeout (timeout_ms);

  _mpq_mutex_lock (&server->lock);
  if (server->unfinished == 0)
    _mpq_queue_sync_locked (server);
  while (server->unfinished > 0)
    {
      if (deadline == 0 || (!_mpq_queue_wait_locked (server, deadline) && server->unfinished > 0))
        {
          guint unfinished = server->unfinished;

          _mpq_mutex_unlock (&server->lock);
          g_set_error (error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT,
                       "%u messages were not taken in time", unfinished);
          return FALSE;
        }
    }
  _mpq_mutex_unlock (&server->lock);
  return TRUE;
}

void
_mpq_queue_server_join_async (MpqQueueServer *server,
                              GTask          *task)
{
  _mpq_mutex_lock (&server->lock);
  if (server->unfinished == 0)
    _mpq_queue_complete_later_locked (server, g_object_ref (task), NULL);
  else
    g_queue_push_tail (&server->local_joins, g_object_ref (task));
  _mpq_queue_unlock_and_complete (server);
}

void
_mpq_queue_server_want_async (MpqQueueServer *server,
                              GTask          *task)
{
  LocalWant *want = g_new0 (LocalWant, 1);

  want->task = g_object_ref (task);
  _mpq_mutex_lock (&server->lock);
  server->local.asked = TRUE;
  g_queue_push_tail (&server->local_wants, want);
  server->local.n_wants++;
  _mpq_queue_kick_locked (server);
  _mpq_mutex_unlock (&server->lock);
}

/* Takes @task back if it is still waiting, and with it the reference the
 * server held; FALSE when its result is already decided. */
gboolean
_mpq_queue_server_cancel_task (MpqQueueServer *server,
                               GTask          *task)
{
  gboolean removed = FALSE;

  _mpq_mutex_lock (&server->lock);
  for (GList *l = server->local_wants.head; l != NULL && !removed; l = l->next)
    {
      LocalWant *want = l->data;

      if (want->task == task)
        {
          g_queue_delete_link (&server->local_wants, l);
          server->local.n_wants--;
          g_free (want);
          removed = TRUE;
        }
    }
  if (!removed)
    removed = g_queue_remove (&server->local_joins, task);
  _mpq_mutex_unlock (&server->lock);

  return removed;
}
