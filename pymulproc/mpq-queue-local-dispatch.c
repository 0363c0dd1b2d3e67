/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-queue-server-private.h"

/* Dispatch to the parent itself: the state hands it messages (its
 * local_inbox, filled by local_assign in mpq-queue-local.c) and makes its
 * wake source ready; the owner pops them and reports each one done after
 * its handlers. The caller's thread, under the server's lock. */

/* The parent asks the thread for more once it holds no more than this:
 * asking after every message it handles would wake the thread for every
 * message while a backlog drains. */
#define LOCAL_REFILL_AT (MPQ_QUEUE_ADDRESSED_WINDOW / 4)

void
_mpq_queue_server_start_local (MpqQueueServer *server,
                               GSource        *wake,
                               guint           prefetch)
{
  _mpq_mutex_lock (&server->lock);
  if (server->local_wake != wake)
    {
      g_clear_pointer (&server->local_wake, g_source_unref);
      server->local_wake = g_source_ref (wake);
    }
  server->local.slots.prefetch = MAX (prefetch, 1);
  server->local.slots.started = TRUE;
  server->local.asked = TRUE;
  if (server->local_inbox.length > 0)
    g_source_set_ready_time (wake, 0);
  _mpq_queue_kick_locked (server);
  _mpq_mutex_unlock (&server->lock);
}

/* What dispatch handed the parent and it has not handled goes back to the
 * front, in order. */
void
_mpq_queue_server_stop_local (MpqQueueServer *server)
{
  _mpq_mutex_lock (&server->lock);
  server->local.slots.started = FALSE;
  while (server->local_inbox.length > 0)
    {
      MpqQueueEntry *entry = _mpq_queue_pop_entry_tail (&server->local_inbox);

      _mpq_queue_slots_release (&server->local.slots, entry->recipient);
      _mpq_queue_push_head_locked (server, entry);
    }
  _mpq_queue_kick_locked (server);
  _mpq_mutex_unlock (&server->lock);
}

/* The next message dispatch handed the parent, or NULL; @more tells
 * whether others wait. Until _mpq_queue_server_local_done() it is in the
 * parent's hand. */
MpqMessage *
_mpq_queue_server_pop_local (MpqQueueServer *server,
                             gboolean       *more)
{
  MpqMessage *message = NULL;
  MpqQueueEntry *entry;

  _mpq_mutex_lock (&server->lock);
  entry = server->local.slots.started ? _mpq_queue_pop_entry_head (&server->local_inbox) : NULL;
  *more = server->local_inbox.length > 0;
  _mpq_mutex_unlock (&server->lock);

  if (entry != NULL)
    {
      message = _mpq_queue_entry_take_message (entry);
      _mpq_queue_entry_give_back (server, entry);
    }
  return message;
}

void
_mpq_queue_server_local_done (MpqQueueServer *server,
                              gint            recipient,
                              gint64          work_us)
{
  _mpq_mutex_lock (&server->lock);
  _mpq_queue_slots_release (&server->local.slots, recipient);
  if (recipient == 0)
    _mpq_queue_slots_done (&server->local.slots, work_us);
  _mpq_queue_finished_locked (server);
  /* Room for one more: worth waking the thread only if one is there, and
   * only once what the parent holds runs low. */
  if (server->local_inbox.length <= LOCAL_REFILL_AT &&
      _mpq_queue_pick_locked (server, &server->local) != NULL)
    _mpq_queue_kick_locked (server);
  _mpq_queue_unlock_and_complete (server);
}
