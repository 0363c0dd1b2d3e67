/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <fcntl.h>

#include <stdio.h>
#include <string.h>

#include "mpq-error.h"
#include "mpq-frame-private.h"
#include "mpq-queue-conn-private.h"
#include "mpq-source-private.h"

/* What a child asks of the queue: its frames applied to the state, the
 * requests that wait for an answer (each child may have at most
 * MPQ_QUEUE_MAX_PENDING), and the child as a peer of the state. The
 * queue's thread only, with the lock held where a name ends in _locked
 * or a peer callback runs. */

/* Hands @entry to @conn: the answer to request @id, or pushed by dispatch
 * when @id is 0. It stays in the child's hand until answered for. */
static void
conn_deliver (MpqQueueConn  *conn,
              MpqQueueEntry *entry,
              gint64         id)
{
  entry->tag = ++conn->next_tag;
  entry->pushed = (id == 0);
  if (entry->pushed)
    _mpq_queue_slots_take (&conn->peer.slots, entry->recipient);
  g_queue_push_tail_link (&conn->held, &entry->all_link);

  if (entry->fd >= 0 && conn->takes_fds)
    {
      /* The payload's memfd goes with the frame's first byte. */
      MpqQueueMark mark = { conn->out->len, fcntl (entry->fd, F_DUPFD_CLOEXEC, 3) };

      if (mark.fd >= 0)
        {
          g_array_append_val (conn->marks, mark);
          _mpq_frame_write_msg (conn->out, entry->tag, id, entry->line, entry->length);
          return;
        }
    }
  if (entry->fd >= 0)
    {
      /* A child that takes no descriptors (or none left here) gets the
       * payload inline. */
      g_autoptr(GString) inline_line = g_string_new (NULL);

      _mpq_queue_entry_write_inline (entry, inline_line);
      _mpq_frame_write_msg (conn->out, entry->tag, id, inline_line->str, inline_line->len);
      return;
    }
  _mpq_frame_write_msg (conn->out, entry->tag, id, entry->line, entry->length);
}

/* Pending requests ------------------------------------------------------- */

/* Queue thread, or once it is gone. */
void
_mpq_queue_pending_free (MpqQueuePending *pending)
{
  _mpq_clear_source (&pending->timer);
  g_free (pending);
}

static void
pending_forget (MpqQueueConn    *conn,
                MpqQueuePending *pending)
{
  g_assert (conn->n_pending > 0);
  conn->n_pending--;
  if (pending->kind == MPQ_PENDING_WANT)
    conn->peer.n_wants--;
  _mpq_queue_pending_free (pending);
}

/* The answer a request gets when it ends with nothing. */
static void
answer_nothing (MpqQueueConn    *conn,
                MpqQueuePending *pending)
{
  if (pending->kind == MPQ_PENDING_JOIN)
    _mpq_frame_write (conn->out, MPQ_FRAME_JOINED, pending->id, FALSE);
  else
    _mpq_frame_write (conn->out, MPQ_FRAME_NONE, pending->id);
}

static gboolean
pending_timeout_cb (gpointer user_data)
{
  MpqQueuePending *pending = user_data;
  MpqQueueConn *conn = (MpqQueueConn *) pending->peer;
  MpqQueueServer *server = conn->server;
  GQueue *queue = pending->kind == MPQ_PENDING_JOIN ? &conn->joins
                : pending->kind == MPQ_PENDING_WANT ? &conn->wants
                : &server->gets;

  _mpq_mutex_lock (&server->lock);
  g_queue_remove (queue, pending);
  answer_nothing (conn, pending);
  /* This source is being dispatched: let it go with the callback. */
  g_clear_pointer (&pending->timer, g_source_unref);
  pending_forget (conn, pending);
  _mpq_queue_unlock_and_complete (server);

  _mpq_queue_conn_flush (conn);
  return G_SOURCE_REMOVE;
}

static gboolean
protocol_violation (GError     **error,
                    const char  *what)
{
  g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL, "Queue child broke the protocol: %s", what);
  return FALSE;
}

/* Queues a request that waits; a child with too many waiting is dropped,
 * so that what one child asks for cannot grow the parent without bound.
 * A @timeout of 0 (only a want gets here with one: it is answered after
 * the routing that follows what this read brought, the next turn of the
 * thread's loop) or more ends it with nothing at its time-out. */
static gboolean
add_pending (MpqQueueConn    *conn,
             GQueue          *queue,
             MpqPendingKind   kind,
             gint64           id,
             gint64           timeout,
             GError         **error)
{
  MpqQueuePending *pending;

  if (conn->n_pending >= MPQ_QUEUE_MAX_PENDING)
    return protocol_violation (error, "more than " G_STRINGIFY (MPQ_QUEUE_MAX_PENDING)
                                      " requests waiting");

  pending = g_new0 (MpqQueuePending, 1);
  pending->peer = &conn->peer;
  pending->kind = kind;
  pending->id = id;
  if (timeout >= 0)
    pending->timer = _mpq_source_attach (g_timeout_source_new ((guint) MIN (timeout, G_MAXUINT)),
                                         conn->server->context, "[mpq] queue request time-out",
                                         pending_timeout_cb, pending);
  conn->n_pending++;
  if (kind == MPQ_PENDING_WANT)
    conn->peer.n_wants++;
  g_queue_push_tail (queue, pending);
  return TRUE;
}

static gboolean
cancel_pending (MpqQueueConn *conn,
                GQueue       *queue,
                gint64        id)
{
  for (GList *l = queue->head; l != NULL; l = l->next)
    {
      MpqQueuePending *pending = l->data;

      if (pending->peer == &conn->peer && pending->id == id)
        {
          g_queue_delete_link (queue, l);
          answer_nothing (conn, pending);
          pending_forget (conn, pending);
          return TRUE;
        }
    }
  return FALSE;
}

/* The peer vtable -------------------------------------------------------- */

static void
conn_assign (MpqQueuePeer  *peer,
             MpqQueueEntry *entry)
{
  MpqQueueConn *conn = (MpqQueueConn *) peer;
  MpqQueuePending *want = g_queue_pop_head (&conn->wants);

  conn_deliver (conn, entry, want != NULL ? want->id : 0);
  if (want != NULL)
    pending_forget (conn, want);
}

static void
conn_serve_get (MpqQueuePeer    *peer,
                MpqQueuePending *get,
                MpqQueueEntry   *entry)
{
  MpqQueueConn *conn = (MpqQueueConn *) peer;

  conn_deliver (conn, entry, get->id);
  pending_forget (conn, get);
}

static void
conn_settle (MpqQueuePeer *peer)
{
  MpqQueueConn *conn = (MpqQueueConn *) peer;
  MpqQueueServer *server = conn->server;
  MpqQueuePending *join;
  guint grant;

  while (server->unfinished == 0 && (join = g_queue_pop_head (&conn->joins)) != NULL)
    {
      _mpq_frame_write (conn->out, MPQ_FRAME_JOINED, join->id, TRUE);
      pending_forget (conn, join);
    }

  if (!conn->wants_credit)
    return;
  grant = _mpq_queue_credit_grant_locked (server);
  if (grant > 0)
    {
      conn->credit += grant;
      server->credit_out += grant;
      conn->wants_credit = FALSE;
      conn->told_full = FALSE;
      server->credit_wanted--;
      _mpq_frame_write (conn->out, MPQ_FRAME_CREDIT, grant);
    }
  else if (!conn->told_full)
    {
      /* Full now: said at once, so that the child's FULL is the queue's
       * state and not a slow answer; credit follows once there is room. */
      conn->told_full = TRUE;
      _mpq_frame_write (conn->out, MPQ_FRAME_CREDIT, 0);
    }
}

const MpqQueuePeerClass _mpq_queue_conn_class = {
  conn_assign,
  conn_serve_get,
  conn_settle,
};

gboolean
_mpq_queue_conn_is_conn (MpqQueuePeer *peer)
{
  return peer->klass == &_mpq_queue_conn_class;
}

static MpqQueueEntry *
take_held (MpqQueueConn *conn,
           gint64        tag)
{
  for (GList *l = conn->held.head; l != NULL; l = l->next)
    {
      MpqQueueEntry *entry = l->data;

      if (entry->tag == tag)
        {
          g_queue_unlink (&conn->held, l);
          if (entry->pushed)
            _mpq_queue_slots_release (&conn->peer.slots, entry->recipient);
          return entry;
        }
    }
  return NULL;
}

/* Whether @pid is @ancestor or one of its descendants (a wrapper that
 * forks, a shell that runs the worker), by the parent links in /proc. */
static gboolean
descends_from (gint pid,
               gint ancestor)
{
  for (guint depth = 0; depth < 64 && pid > 1; depth++)
    {
      g_autofree char *path = NULL;
      g_autofree char *stat = NULL;
      const char *after_name;
      char state;
      int ppid;

      if (pid == ancestor)
        return TRUE;
      path = g_strdup_printf ("/proc/%d/stat", pid);
      if (!g_file_get_contents (path, &stat, NULL, NULL))
        return FALSE;
      /* "pid (name) state ppid ...": the name may hold anything but ends
       * at the last parenthesis. */
      after_name = strrchr (stat, ')');
      if (after_name == NULL || sscanf (after_name + 1, " %c %d", &state, &ppid) != 2)
        return FALSE;
      pid = ppid;
    }
  return FALSE;
}

static gboolean
apply_hello (MpqQueueConn  *conn,
             MpqFrame      *frame,
             GError       **error)
{
  gint pid;

  conn->takes_fds = frame->fds;
  if (frame->pid <= 0 || frame->pid > G_MAXINT)
    return protocol_violation (error, "hello without a pid");
  pid = (gint) frame->pid;
  if (pid == conn->peer.pid)
    return TRUE;
  /* GLib reaped the child before its pid could be read (it wrote and
   * exited at once): whoever says hello now cannot be checked, so the
   * claim is not taken (nothing is routed to it), but the child is not
   * dropped either: what it wrote is read to the end. */
  if (conn->spawned_pid <= 0)
    {
      g_debug ("Queue child of unknown pid says it is %d: not routed to", pid);
      return pid != conn->server->pid ||
             protocol_violation (error, "a hello claiming the parent's pid");
    }
  /* A child is the process spawned for this socket, or one it started:
   * it may not take messages addressed to a sibling or to the parent. */
  if (pid == conn->server->pid || !descends_from (pid, conn->spawned_pid))
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                   "Queue child %d claimed pid %d, which is not its own nor a descendant's",
                   conn->spawned_pid, pid);
      return FALSE;
    }
  conn->peer.pid = pid;
  return TRUE;
}

/* What every request must have (docs/protocol.md): a positive id to be
 * answered under, a time-out of -1 (forever) or more, a prefetch of at
 * least 1. A child that sends less is broken and dropped, not guessed at. */
static gboolean
check_request (MpqFrame  *frame,
               GError   **error)
{
  switch (frame->op)
    {
    case MPQ_FRAME_GET:
    case MPQ_FRAME_JOIN:
    case MPQ_FRAME_WANT:
      if (frame->timeout < -1)
        return protocol_violation (error, "a time-out below -1");
      G_GNUC_FALLTHROUGH;
    case MPQ_FRAME_STOP:
    case MPQ_FRAME_EMPTY:
      if (frame->id <= 0)
        return protocol_violation (error, "a request without a positive id");
      return TRUE;
    case MPQ_FRAME_START:
      if (frame->prefetch < 1)
        return protocol_violation (error, "a prefetch below 1");
      return TRUE;
    default:
      return TRUE;
    }
}

gboolean
_mpq_queue_conn_apply_frame_locked (MpqQueueConn  *conn,
                                    MpqFrame      *frame,
                                    GError       **error)
{
  MpqQueueServer *server = conn->server;
  MpqQueueEntry *entry;

  if (!check_request (frame, error))
    return FALSE;

  switch (frame->op)
    {
    case MPQ_FRAME_HELLO:
      return apply_hello (conn, frame, error);

    case MPQ_FRAME_GET:
      conn->peer.asked = TRUE;
      if (server->all.length > 0 && server->gets.length == 0)
        conn_deliver (conn, _mpq_queue_pop_front_locked (server), frame->id);
      else if (frame->timeout == 0)
        _mpq_frame_write (conn->out, MPQ_FRAME_NONE, frame->id);
      else
        return add_pending (conn, &server->gets, MPQ_PENDING_GET, frame->id, frame->timeout,
                            error);
      return TRUE;

    case MPQ_FRAME_WANT:
      /* Without a time-out (receive_async, and children before 1.2), it
       * waits until it is served or cancelled. */
      conn->peer.asked = TRUE;
      return add_pending (conn, &conn->wants, MPQ_PENDING_WANT, frame->id, frame->timeout,
                          error);

    case MPQ_FRAME_CANCEL:
      if (!cancel_pending (conn, &conn->wants, frame->id))
        cancel_pending (conn, &server->gets, frame->id);
      return TRUE;

    case MPQ_FRAME_START:
      conn->peer.asked = TRUE;
      conn->peer.slots.started = TRUE;
      conn->peer.slots.prefetch = (guint) MIN (frame->prefetch, MPQ_QUEUE_MAX_PREFETCH);
      return TRUE;

    case MPQ_FRAME_STOP:
      conn->peer.slots.started = FALSE;
      _mpq_queue_return_held_locked (server, &conn->held, TRUE);
      conn->peer.slots.pushed = conn->peer.slots.pushed_any = 0;
      _mpq_frame_write (conn->out, MPQ_FRAME_STOPPED, frame->id);
      return TRUE;

    case MPQ_FRAME_ACK:
    case MPQ_FRAME_BACK:
    case MPQ_FRAME_UNDO:
      entry = take_held (conn, frame->tag);
      if (entry == NULL)
        return protocol_violation (error, "answer for a tag it does not hold");
      if (frame->op == MPQ_FRAME_ACK && entry->pushed && entry->recipient == 0)
        _mpq_queue_slots_done (&conn->peer.slots, frame->us);
      if (frame->op == MPQ_FRAME_ACK)
        _mpq_queue_taken_locked (server, entry);
      else if (frame->op == MPQ_FRAME_BACK)
        _mpq_queue_push_tail_locked (server, entry);
      else
        _mpq_queue_push_head_locked (server, entry);
      return TRUE;

    case MPQ_FRAME_EMPTY:
      _mpq_frame_write (conn->out, MPQ_FRAME_EMPTY, frame->id, server->all.length == 0);
      return TRUE;

    case MPQ_FRAME_JOIN:
      if (server->unfinished == 0)
        _mpq_frame_write (conn->out, MPQ_FRAME_JOINED, frame->id, TRUE);
      else if (frame->timeout == 0)
        _mpq_frame_write (conn->out, MPQ_FRAME_JOINED, frame->id, FALSE);
      else
        return add_pending (conn, &conn->joins, MPQ_PENDING_JOIN, frame->id, frame->timeout,
                            error);
      return TRUE;

    case MPQ_FRAME_CREDIT:
      /* Asked again while it holds some: it gets more once it used them. */
      if (conn->credit == 0 && !conn->wants_credit)
        {
          conn->wants_credit = TRUE;
          server->credit_wanted++;
        }
      return TRUE;

    case MPQ_FRAME_MSG:
    case MPQ_FRAME_NONE:
    case MPQ_FRAME_JOINED:
    case MPQ_FRAME_STOPPED:
    default:
      return protocol_violation (error, "a frame only the server sends");
    }
}

gboolean
_mpq_queue_conn_apply_put_locked (MpqQueueConn   *conn,
                  MpqQueueEntry  *entry,
                  GError        **error)
{
  MpqQueueServer *server = conn->server;

  if (conn->credit == 0)
    {
      _mpq_queue_entry_free (entry);
      return protocol_violation (error, "put into a bounded queue without credit");
    }
  if (conn->credit > 0)
    {
      conn->credit--;
      server->credit_out--;
    }

  _mpq_queue_put_locked (server, entry);
  return TRUE;
}
