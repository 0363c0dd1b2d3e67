/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "mpq-queue-state-private.h"
#include "mpq-source-private.h"

/* The queue's state: the FIFO, routes, windows, credit and the join count.
 * Every function here runs with MpqQueueServer.lock held (the _locked
 * ones) or on an entry its caller owns, in any thread; none does I/O.
 * Participants get messages through their MpqQueuePeerClass. */

/* The window for anyone is about WORK_AHEAD_US of the process's own work,
 * as its handlers have been taking (the time they took comes with each
 * ack; without it, the time from hand-over to ack): one message at a time
 * while they take long (nobody sits on tasks others could do), up to its
 * prefetch while they are quick (it never waits for the next). It starts
 * at one. */
#define WORK_AHEAD_US 20000

/* The most credit one child is lent at a time. */
#define MAX_CREDIT_GRANT 1024

/* Messages waiting for one recipient pid; or, for anyone, put by one
 * origin (a process is never handed work for anyone that it put itself). */
struct _MpqQueueRoute
{
  gint     key;      /* the recipient pid, or the origin pid */
  gboolean anyone;
  GQueue   entries;  /* MpqQueueEntry, by route_link */
};

/* Windows ---------------------------------------------------------------- */

void
_mpq_queue_slots_take (MpqQueueSlots *slots,
                       gint           recipient)
{
  slots->pushed++;
  if (recipient != 0)
    return;
  if (slots->pushed_any++ == 0)
    slots->busy_since = g_get_monotonic_time ();
}

void
_mpq_queue_slots_release (MpqQueueSlots *slots,
                          gint           recipient)
{
  slots->pushed--;
  if (recipient == 0)
    slots->pushed_any--;
}

/* A message for anyone was handled in @work_us (-1: unknown, then the
 * time since the previous one or since it was handed over counts). The
 * estimate follows the last eight or so: a slow start (code paged in,
 * caches cold) is soon forgotten, and so is a change of pace. */
void
_mpq_queue_slots_done (MpqQueueSlots *slots,
                       gint64         work_us)
{
  gint64 now = g_get_monotonic_time ();
  gint64 sample = work_us >= 0 ? work_us : now - slots->busy_since;

  slots->busy_since = now;
  if (slots->done == 0)
    slots->work_us = sample;
  else
    slots->work_us += (sample - slots->work_us) / 8;
  if (slots->done < G_MAXUINT)
    slots->done++;
}

static guint
slots_window (MpqQueueSlots *slots)
{
  gint64 window;

  if (slots->done == 0)
    return 1;
  window = WORK_AHEAD_US / MAX (slots->work_us, 1);
  return (guint) CLAMP (window, 1, (gint64) slots->prefetch);
}

/* Whether dispatch may hand one more message: one addressed to the
 * process, or, with @anyone, one for anyone too. */
gboolean
_mpq_queue_slots_have_room (MpqQueueSlots *slots,
                            gboolean       anyone)
{
  return slots->started && slots->pushed < MPQ_QUEUE_ADDRESSED_WINDOW &&
         (!anyone || slots->pushed_any < slots_window (slots));
}

/* How many dispatch may hand now: in all (*@addressed, those addressed
 * to the process), and of them for anyone (*@anyone). */
void
_mpq_queue_slots_room (MpqQueueSlots *slots,
                       guint         *addressed,
                       guint         *anyone)
{
  guint window = slots_window (slots);

  *addressed = slots->started && slots->pushed < MPQ_QUEUE_ADDRESSED_WINDOW
               ? MPQ_QUEUE_ADDRESSED_WINDOW - slots->pushed : 0;
  *anyone = slots->pushed_any < window ? MIN (window - slots->pushed_any, *addressed) : 0;
}

static gboolean
peer_has_room (MpqQueuePeer *peer)
{
  return peer->n_wants > 0 || _mpq_queue_slots_have_room (&peer->slots, TRUE);
}

/* Routes ----------------------------------------------------------------- */

static MpqQueueRoute *
route_for (MpqQueueServer *server,
           MpqQueueEntry  *entry)
{
  MpqQueueRoute *route;

  if (entry->recipient != 0)
    {
      route = g_hash_table_lookup (server->by_pid, GINT_TO_POINTER (entry->recipient));
      if (route == NULL)
        {
          route = g_new0 (MpqQueueRoute, 1);
          route->key = entry->recipient;
          g_hash_table_insert (server->by_pid, GINT_TO_POINTER (route->key), route);
        }
      return route;
    }

  for (guint i = 0; i < server->anyone->len; i++)
    {
      route = g_ptr_array_index (server->anyone, i);
      if (route->key == entry->origin)
        return route;
    }
  route = g_new0 (MpqQueueRoute, 1);
  route->key = entry->origin;
  route->anyone = TRUE;
  g_ptr_array_add (server->anyone, route);
  return route;
}

/* Routes live while they hold messages. */
static void
route_release (MpqQueueServer *server,
               MpqQueueRoute  *route)
{
  if (route->entries.length > 0)
    return;
  if (route->anyone)
    g_ptr_array_remove_fast (server->anyone, route);
  else
    g_hash_table_remove (server->by_pid, GINT_TO_POINTER (route->key));
  g_free (route);
}

/* The oldest message for @pid, or (if @anyone) for nobody and put by
 * someone else. */
static MpqQueueEntry *
candidate_locked (MpqQueueServer *server,
                  gint            pid,
                  gboolean        anyone)
{
  MpqQueueRoute *mine = g_hash_table_lookup (server->by_pid, GINT_TO_POINTER (pid));
  MpqQueueEntry *best = mine != NULL ? g_queue_peek_head (&mine->entries) : NULL;

  for (guint i = 0; anyone && i < server->anyone->len; i++)
    {
      MpqQueueRoute *route = g_ptr_array_index (server->anyone, i);
      MpqQueueEntry *head;

      if (route->key == pid)
        continue;
      head = g_queue_peek_head (&route->entries);
      if (best == NULL || head->seq < best->seq)
        best = head;
    }
  return best;
}

/* The FIFO --------------------------------------------------------------- */

void
_mpq_queue_state_init (MpqQueueServer *server,
                       guint           max_size)
{
  _mpq_mutex_init (&server->lock);
  _mpq_cond_init (&server->cond);
  server->max_size = max_size;
  server->by_pid = g_hash_table_new (NULL, NULL);
  server->anyone = g_ptr_array_new ();
  server->peers = g_ptr_array_new ();
}

/* Once nobody else can reach the server: drops what is queued. */
void
_mpq_queue_state_clear (MpqQueueServer *server)
{
  while (server->all.length > 0)
    _mpq_queue_entry_free (_mpq_queue_pop_front_locked (server));
  _mpq_queue_free_spent (server);
  g_clear_pointer (&server->peers, g_ptr_array_unref);
  g_clear_pointer (&server->by_pid, g_hash_table_unref);
  g_clear_pointer (&server->anyone, g_ptr_array_unref);
  _mpq_cond_clear (&server->cond);
  _mpq_mutex_clear (&server->lock);
}

void
_mpq_queue_wake_waiters_locked (MpqQueueServer *server)
{
  /* While a batch of lines is applied, one wake-up at the end does. */
  if (server->batching)
    {
      server->wake_pending = TRUE;
      return;
    }
  if (server->waiters > 0)
    _mpq_cond_broadcast (&server->cond);
}

/* Waits on the condition until @deadline (monotonic µs; -1 forever);
 * FALSE once the deadline passed. */
gboolean
_mpq_queue_wait_locked (MpqQueueServer *server,
                        gint64          deadline)
{
  gboolean signalled = TRUE;

  server->waiters++;
  if (deadline < 0)
    _mpq_cond_wait (&server->cond, &server->lock);
  else
    signalled = _mpq_cond_wait_until (&server->cond, &server->lock, deadline);
  server->waiters--;
  return signalled;
}

/* Asks the queue's thread to serve and write out. */
void
_mpq_queue_kick_locked (MpqQueueServer *server)
{
  if (server->kick != NULL)
    g_source_set_ready_time (server->kick, 0);
}

/* Puts @entry at the back, as a new message or a put-back. */
void
_mpq_queue_push_tail_locked (MpqQueueServer *server,
                             MpqQueueEntry  *entry)
{
  entry->seq = server->next_seq++;
  entry->route = route_for (server, entry);
  g_queue_push_tail_link (&server->all, &entry->all_link);
  g_queue_push_tail_link (&entry->route->entries, &entry->route_link);
  _mpq_queue_wake_waiters_locked (server);
}

/* Puts @entry back at the front: it was handed out and not taken. */
void
_mpq_queue_push_head_locked (MpqQueueServer *server,
                             MpqQueueEntry  *entry)
{
  entry->route = route_for (server, entry);
  g_queue_push_head_link (&server->all, &entry->all_link);
  g_queue_push_head_link (&entry->route->entries, &entry->route_link);
  _mpq_queue_wake_waiters_locked (server);
}

static void
unlink_locked (MpqQueueServer *server,
               MpqQueueEntry  *entry)
{
  g_queue_unlink (&server->all, &entry->all_link);
  g_queue_unlink (&entry->route->entries, &entry->route_link);
  route_release (server, g_steal_pointer (&entry->route));
  if (server->max_size > 0)
    {
      /* Room: for a send waiting in the parent, for credit a child asked. */
      _mpq_queue_wake_waiters_locked (server);
      if (server->credit_wanted > 0)
        _mpq_queue_kick_locked (server);
    }
}

MpqQueueEntry *
_mpq_queue_pop_front_locked (MpqQueueServer *server)
{
  MpqQueueEntry *entry = g_queue_peek_head (&server->all);

  if (entry != NULL)
    unlink_locked (server, entry);
  return entry;
}

/* A new message: counts for join until it is taken. */
void
_mpq_queue_put_locked (MpqQueueServer *server,
                       MpqQueueEntry  *entry)
{
  server->unfinished++;
  _mpq_queue_push_tail_locked (server, entry);
}

/* A bounded queue is full when it holds max_size messages, nothing else:
 * credit lent to children does not count (see grant_credit_locked). */
gboolean
_mpq_queue_is_full_locked (MpqQueueServer *server)
{
  return server->max_size > 0 && server->all.length >= server->max_size;
}

/* One message fewer to wait for: join may return. */
void
_mpq_queue_finished_locked (MpqQueueServer *server)
{
  GTask *task;

  g_assert (server->unfinished > 0);
  if (--server->unfinished > 0)
    return;

  _mpq_queue_wake_waiters_locked (server);
  while ((task = g_queue_pop_head (&server->local_joins)) != NULL)
    _mpq_queue_complete_later_locked (server, task, NULL);
  /* Children's joins are answered by the thread. */
  _mpq_queue_kick_locked (server);
}

/* @entry was taken for good. */
void
_mpq_queue_taken_locked (MpqQueueServer *server,
                         MpqQueueEntry  *entry)
{
  _mpq_queue_entry_free (entry);
  _mpq_queue_finished_locked (server);
}

/* Returns what a peer had in hand (by dispatch only, if @pushed_only) to
 * the front of the queue, in the order it was handed out. */
void
_mpq_queue_return_held_locked (MpqQueueServer *server,
                               GQueue         *held,
                               gboolean        pushed_only)
{
  GList *l = held->tail;

  while (l != NULL)
    {
      GList *prev = l->prev;
      MpqQueueEntry *entry = l->data;

      if (entry->pushed || !pushed_only)
        {
          g_queue_unlink (held, l);
          _mpq_queue_push_head_locked (server, entry);
        }
      l = prev;
    }
}

/* Routing ---------------------------------------------------------------- */

/* The next message for @peer with its routed receives waiting and its
 * dispatch window, or NULL. */
MpqQueueEntry *
_mpq_queue_pick_locked (MpqQueueServer *server,
                        MpqQueuePeer   *peer)
{
  MpqQueueSlots *slots = &peer->slots;
  MpqQueueEntry *entry;

  if (peer->n_wants > 0)
    return candidate_locked (server, peer->pid, TRUE);
  if (!slots->started || slots->pushed >= MPQ_QUEUE_ADDRESSED_WINDOW)
    return NULL;
  /* Oldest first, always: a message for anyone past the prefetch holds
   * back the newer ones addressed to this process too. */
  entry = candidate_locked (server, peer->pid, TRUE);
  if (entry != NULL && entry->recipient == 0 && slots->pushed_any >= slots_window (slots))
    return NULL;
  return entry;
}

/* Routed delivery: in turns, each peer with room gets the oldest message
 * addressed to it or to nobody, one at a time, so work spreads. */
static void
route_locked (MpqQueueServer *server)
{
  guint n = server->peers->len;
  gboolean progress = TRUE;

  while (progress && server->all.length > 0 && n > 0)
    {
      progress = FALSE;

      for (guint k = 0; k < n; k++)
        {
          MpqQueuePeer *peer = g_ptr_array_index (server->peers, (server->turn + k) % n);
          MpqQueueEntry *entry = _mpq_queue_pick_locked (server, peer);

          if (entry == NULL)
            continue;
          unlink_locked (server, entry);
          peer->klass->assign (peer, entry);
          progress = TRUE;
        }

      server->turn = (server->turn + 1) % n;
    }

  /* Whether a new message could be handed out at once: if not, a put
   * need not wake the thread (an answer will). */
  server->room_left = server->gets.length > 0;
  for (guint i = 0; !server->room_left && i < n; i++)
    server->room_left = peer_has_room (g_ptr_array_index (server->peers, i));
}

/* The oldest message for @peer's routed receive, unlinked, or NULL: a
 * receive_for_me first in line takes it without a turn of the thread. */
MpqQueueEntry *
_mpq_queue_take_for_locked (MpqQueueServer *server,
                            MpqQueuePeer   *peer)
{
  MpqQueueEntry *entry = candidate_locked (server, peer->pid, TRUE);

  if (entry != NULL)
    unlink_locked (server, entry);
  return entry;
}

/* The oldest message @peer's routed receive would take, left where it is
 * (MPQ_DEBUG's idle check). */
MpqQueueEntry *
_mpq_queue_peek_for_locked (MpqQueueServer *server,
                            MpqQueuePeer   *peer)
{
  return candidate_locked (server, peer->pid, TRUE);
}

/* Drops every message waiting for @pid (a process gone for good, whose
 * pid must not inherit them): each counts as taken. Returns how many. */
guint
_mpq_queue_drop_for_locked (MpqQueueServer *server,
                            gint            pid)
{
  MpqQueueRoute *route = g_hash_table_lookup (server->by_pid, GINT_TO_POINTER (pid));
  guint n = 0;

  while (route != NULL && route->entries.length > 0)
    {
      MpqQueueEntry *entry = g_queue_peek_head (&route->entries);
      gboolean last = route->entries.length == 1;

      /* The route goes with its last entry. */
      unlink_locked (server, entry);
      _mpq_queue_taken_locked (server, entry);
      n++;
      if (last)
        break;
    }
  return n;
}

/* Makes every bit of progress the state allows: routed delivery first,
 * then pymulproc's receives, then what waits on the join count or on
 * credit. Queue thread only (peers write to their sockets' buffers). */
void
_mpq_queue_serve_locked (MpqQueueServer *server)
{
  MpqQueuePending *get;

  /* Routed first: a message addressed to a process that waits for it
   * goes there, rather than round the receives that put it back. */
  route_locked (server);

  /* Then pymulproc's receives, the front to whoever asked first. */
  while (server->all.length > 0 && (get = g_queue_pop_head (&server->gets)) != NULL)
    get->peer->klass->serve_get (get->peer, get, _mpq_queue_pop_front_locked (server));

  for (guint i = 0; i < server->peers->len; i++)
    {
      MpqQueuePeer *peer = g_ptr_array_index (server->peers, i);

      peer->klass->settle (peer);
    }
}

/* How much credit a child asking for it may be lent now: a share of the
 * queue, lent only while the queue is not full. Lent credit does not
 * count against the room of others: a child that sits on its credit
 * cannot make the queue look full. What children put on credit may take
 * the queue past max_size by at most what is lent, each child holding at
 * most one share (it asks again only once it used what it has). */
guint
_mpq_queue_credit_grant_locked (MpqQueueServer *server)
{
  guint n_peers = MAX (server->peers->len, 1);
  guint share = MAX (1, server->max_size / (2 * n_peers));

  if (_mpq_queue_is_full_locked (server))
    return 0;
  return MIN (share, MAX_CREDIT_GRANT);
}
