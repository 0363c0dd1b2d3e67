/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-debug-idle-private.h"
#include "mpq-frame-private.h"
#include "mpq-protocol.h"
#include "mpq-queue-conn-private.h"
#include "mpq-queue-server-private.h"
#include "mpq-spawn-private.h"
#include "mpq-source-private.h"

/* The queue's thread: a main context of its own that reads every child's
 * socket, writes what each is owed and keeps time-outs. It never runs
 * user code. The parent's threads reach it through the kick source. */

/* The child at @i of the peers (the parent, last, is not one), or NULL. */
static MpqQueueConn *
conn_at (MpqQueueServer *server,
         guint           i)
{
  MpqQueuePeer *peer;

  if (i >= server->peers->len)
    return NULL;
  peer = g_ptr_array_index (server->peers, i);
  return _mpq_queue_conn_is_conn (peer) ? (MpqQueueConn *) peer : NULL;
}

/* Queue thread only. Backwards: a child that hangs up leaves the array,
 * and those after it move down. */
void
_mpq_queue_flush_all (MpqQueueServer *server)
{
  for (guint i = server->peers->len; i > 0; i--)
    {
      MpqQueueConn *conn = conn_at (server, i - 1);

      if (conn != NULL && _mpq_queue_conn_has_output (conn))
        _mpq_queue_conn_flush (conn);
    }
}

/* Queue thread only: reads what each child had written when the parent
 * asked, and no more, so that a child that never stops writing cannot
 * hold the parent's call. */
static void
read_backlogs (MpqQueueServer *server)
{
  for (guint i = server->peers->len; i > 0; i--)
    {
      MpqQueueConn *conn = conn_at (server, i - 1);
      gsize budget;
      gsize n_read;

      if (conn == NULL)
        continue;
      budget = _mpq_queue_conn_backlog (conn);
      /* conn_read may drop (free) the child: it then returns FALSE. */
      while (budget > 0 && _mpq_queue_conn_read (conn, &n_read))
        budget -= MIN (MAX (n_read, 1), budget);
    }
}

/* Queue thread only: takes the children spawned since the last kick, and
 * a changed limit. */
static void
adopt_and_apply_limits (MpqQueueServer *server)
{
  GQueue incoming = G_QUEUE_INIT;
  gboolean limits_changed;
  gsize max_message_size;
  MpqQueueConn *conn;

  _mpq_mutex_lock (&server->lock);
  incoming = server->incoming;
  g_queue_init (&server->incoming);
  for (GList *l = incoming.head; l != NULL; l = l->next)
    g_ptr_array_insert (server->peers, server->peers->len - 1, l->data);
  limits_changed = server->limits_changed;
  server->limits_changed = FALSE;
  max_message_size = server->max_message_size;
  _mpq_mutex_unlock (&server->lock);

  while ((conn = g_queue_pop_head (&incoming)) != NULL)
    _mpq_queue_conn_adopt (conn, max_message_size);

  for (guint i = 0; limits_changed && i < server->peers->len; i++)
    if ((conn = conn_at (server, i)) != NULL)
      _mpq_queue_conn_set_max_message_size (conn, max_message_size);
}

static gboolean
kick_cb (gpointer user_data)
{
  MpqQueueServer *server = user_data;
  guint64 sync;

  adopt_and_apply_limits (server);

  _mpq_mutex_lock (&server->lock);
  sync = server->sync_requested;
  _mpq_mutex_unlock (&server->lock);

  if (sync > server->sync_done)
    read_backlogs (server);

  _mpq_mutex_lock (&server->lock);
  _mpq_queue_serve_locked (server);
  if (sync > server->sync_done)
    {
      server->sync_done = sync;
      _mpq_cond_broadcast (&server->cond);
    }
  _mpq_queue_unlock_and_complete (server);

  _mpq_queue_flush_all (server);
  return G_SOURCE_CONTINUE;
}

/* Any thread but the queue's, with the lock: makes sure that what
 * children wrote before now is in the queue (a child that exited has all
 * it sent in its socket, maybe not yet read). */
void
_mpq_queue_sync_locked (MpqQueueServer *server)
{
  guint64 sync = ++server->sync_requested;

  _mpq_queue_kick_locked (server);
  while (server->sync_done < sync && !server->closed && server->kick != NULL)
    _mpq_queue_wait_locked (server, -1);
}

static gpointer
server_thread (gpointer user_data)
{
  MpqQueueServer *server = user_data;

  g_main_context_push_thread_default (server->context);

  _mpq_mutex_lock (&server->lock);
  while (!server->quit)
    {
      _mpq_mutex_unlock (&server->lock);
      g_main_context_iteration (server->context, TRUE);
      _mpq_mutex_lock (&server->lock);
    }
  _mpq_mutex_unlock (&server->lock);

  g_main_context_pop_thread_default (server->context);
  return NULL;
}

/* The caller's thread. */
MpqQueueServer *
_mpq_queue_server_new (guint    max_size,
                       GError **error)
{
  MpqQueueServer *server = g_new0 (MpqQueueServer, 1);

  _mpq_queue_state_init (server, max_size);
  server->max_message_size = MPQ_DEFAULT_MAX_MESSAGE_SIZE;
  server->pid = _mpq_own_pid ();
  _mpq_queue_local_init (server);

  server->context = g_main_context_new ();
  server->kick = _mpq_source_attach (_mpq_wake_source_new (), server->context,
                                     "[mpq] queue kick", kick_cb, server);
  server->debug_idle = _mpq_queue_debug_idle_new (server);

  server->refs = 1;
  server->thread = g_thread_try_new ("mpq-queue", server_thread, server, error);
  if (server->thread == NULL)
    {
      _mpq_queue_server_close (server);
      _mpq_queue_server_unref (server);
      return NULL;
    }

  return server;
}

/* The caller's thread: stops the thread, hangs up on every child and
 * drops what is queued. Results still held by async callers keep the
 * rest alive. */
void
_mpq_queue_server_close (MpqQueueServer *server)
{
  MpqQueueConn *conn;

  if (server->thread != NULL)
    {
      _mpq_mutex_lock (&server->lock);
      server->quit = TRUE;
      _mpq_mutex_unlock (&server->lock);
      g_main_context_wakeup (server->context);
      g_thread_join (g_steal_pointer (&server->thread));
    }

  /* The thread is gone: everything is ours. */
  _mpq_mutex_lock (&server->lock);
  server->closed = TRUE;
  _mpq_cond_broadcast (&server->cond);
  _mpq_mutex_unlock (&server->lock);

  while ((conn = g_queue_pop_head (&server->incoming)) != NULL)
    _mpq_queue_conn_free (conn);
  g_queue_clear_full (&server->gets, (GDestroyNotify) _mpq_queue_pending_free);
  for (guint i = server->peers->len; i > 0; i--)
    if ((conn = conn_at (server, i - 1)) != NULL)
      {
        g_ptr_array_remove_index (server->peers, i - 1);
        _mpq_queue_conn_free (conn);
      }

  _mpq_queue_local_clear (server);

  _mpq_clear_source (&server->debug_idle);
  if (server->kick != NULL)
    {
      g_source_destroy (server->kick);
      g_clear_pointer (&server->kick, g_source_unref);
    }
}

/* Any thread: the last reference frees the server. */
void
_mpq_queue_server_unref (MpqQueueServer *server)
{
  if (!g_atomic_int_dec_and_test (&server->refs))
    return;

  _mpq_queue_state_clear (server);
  g_clear_pointer (&server->read_items, g_array_unref);
  g_main_context_unref (server->context);
  g_free (server);
}

/* The caller's thread: a new limit for every line put, applied by the
 * queue's thread to live children too (they are told). */
void
_mpq_queue_server_set_max_message_size (MpqQueueServer *server,
                                        gsize           size)
{
  _mpq_mutex_lock (&server->lock);
  if (server->max_message_size != size)
    {
      server->max_message_size = size;
      server->limits_changed = TRUE;
      _mpq_queue_kick_locked (server);
    }
  _mpq_mutex_unlock (&server->lock);
}

/* The caller's thread, before the child is spawned: writes the hello on
 * @fd, so that the child finds it waiting, and so that a child that
 * writes and exits at once loses nothing (its socket is read whenever
 * the thread gets to it). Returns the limit the hello announced, or 0
 * with @error set. */
gsize
_mpq_queue_server_write_hello (MpqQueueServer  *server,
                               int              fd,
                               GError         **error)
{
  g_autoptr(GString) hello = g_string_new (NULL);
  gsize max_message_size;

  _mpq_mutex_lock (&server->lock);
  max_message_size = server->max_message_size;
  _mpq_mutex_unlock (&server->lock);

  /* fds: this server takes and passes on payloads by descriptor. */
  _mpq_frame_write (hello, MPQ_FRAME_HELLO, server->pid, TRUE, server->max_size > 0 ? 0 : -1,
                    max_message_size);
  if (_mpq_write_when_ready (fd, hello->str, hello->len, -1, "", error) != (gssize) hello->len)
    return 0;
  return max_message_size;
}

/* The caller's thread: takes @fd, the parent's end of the socket of the
 * child spawned as @pid (0 if unknown), whose hello announced
 * @max_message_size. The queue's thread adopts it at its next turn. */
void
_mpq_queue_server_add_child (MpqQueueServer  *server,
                             int              fd,
                             gint             pid,
                             gsize            max_message_size)
{
  MpqQueueConn *conn = _mpq_queue_conn_new (server, fd, pid, max_message_size);

  _mpq_mutex_lock (&server->lock);
  g_queue_push_tail (&server->incoming, conn);
  _mpq_queue_kick_locked (server);
  _mpq_mutex_unlock (&server->lock);
}
