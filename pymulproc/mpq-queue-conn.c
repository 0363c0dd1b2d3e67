/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mpq-codec-private.h"
#include "mpq-debug-private.h"
#include "mpq-error.h"
#include "mpq-frame-private.h"
#include "mpq-payload-private.h"
#include "mpq-queue-conn-private.h"
#include "mpq-spawn-private.h"
#include "mpq-source-private.h"

/* One child's socket to the parent's queue: reading lines (in bounded
 * turns), writing what the child is owed, watches, and hanging up. The
 * queue's thread only, but where a function says otherwise. */

static void conn_update_watches (MpqQueueConn *conn);
static void hang_up (MpqQueueConn *conn, GError *error);

/* Writing ---------------------------------------------------------------- */

/* Writes what the socket takes; the rest waits for the out watch. */
void
_mpq_queue_conn_flush (MpqQueueConn *conn)
{
  GError *error = NULL;

  while (conn->out->len > conn->outpos)
    {
      /* Up to the next descriptor's byte; from it, with the descriptor. */
      MpqQueueMark *mark = conn->marks->len > 0 ? &g_array_index (conn->marks, MpqQueueMark, 0)
                                                : NULL;
      gboolean passing = mark != NULL && mark->offset == conn->outpos;
      gsize end = conn->out->len;
      gssize n;

      if (mark != NULL && !passing)
        end = mark->offset;
      else if (passing && conn->marks->len > 1)
        end = g_array_index (conn->marks, MpqQueueMark, 1).offset;
      n = _mpq_write_some_with_fd (conn->fd, conn->out->str + conn->outpos, end - conn->outpos,
                                   passing ? mark->fd : -1, &error);
      if (n < 0)
        {
          hang_up (conn, error);
          return;
        }
      if (n == 0)
        break;
      if (passing)
        {
          close (mark->fd);
          g_array_remove_index (conn->marks, 0);
        }
      conn->outpos += n;
    }

  if (conn->outpos == conn->out->len)
    {
      g_assert (conn->marks->len == 0);
      g_string_truncate (conn->out, 0);
      conn->outpos = 0;
    }

  conn_update_watches (conn);
}

gboolean
_mpq_queue_conn_has_output (MpqQueueConn *conn)
{
  return conn->out->len > conn->outpos;
}

/* Reading ---------------------------------------------------------------- */

/* What one read brought: decoded outside the lock, applied under it. */
typedef struct
{
  MpqQueueEntry *entry;   /* a put, or NULL for a frame */
  MpqFrame       frame;
} Item;

static void
item_clear (Item *item)
{
  if (item->entry != NULL)
    _mpq_queue_entry_free (item->entry);
  else
    _mpq_frame_clear (&item->frame);
}

static gboolean
decode_line (MpqQueueConn  *conn,
             const char    *line,
             gsize          length,
             Item          *item,
             GError       **error)
{
  MpqQueueServer *server = conn->server;
  gsize max_message_size = conn->reader.max_line - MPQ_FRAME_OVERHEAD;
  MpqMessage *message;
  MpqLineShape shape;
  gsize fd_size;
  gint recipient;

  memset (item, 0, sizeof *item);

  if (length > 0 && line[0] == '{')
    return _mpq_frame_parse (line, length, NULL, &item->frame, error);

  if (length > max_message_size)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE,
                   "Message line of %" G_GSIZE_FORMAT " bytes is longer than %" G_GSIZE_FORMAT,
                   length, max_message_size);
      return FALSE;
    }

  if (!_mpq_codec_check_full (line, length, TRUE, &shape, &fd_size, error))
    return FALSE;
  recipient = shape.recipient_pid;

  /* A payload by descriptor: the oldest that came, checked (a memfd that
   * cannot change or vanish under a mapping), counted against the child. */
  if (fd_size > 0)
    {
      int fd = _mpq_fds_take_oldest (conn->fds, error);

      if (fd < 0)
        return FALSE;
      if (!_mpq_payload_check_fd (fd, fd_size, error))
        {
          close (fd);
          return FALSE;
        }
      if (!_mpq_queue_quota_take (conn->quota, fd_size))
        {
          close (fd);
          g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                       "More payloads by descriptor held than %d, or %" G_GSSIZE_FORMAT " bytes",
                       MPQ_QUEUE_MAX_FDS_PER_CHILD, MPQ_QUEUE_MAX_FD_BYTES_PER_CHILD);
          return FALSE;
        }
      item->entry = _mpq_queue_entry_new (line, length, NULL, recipient, conn->peer.pid);
      _mpq_queue_entry_set_fd (item->entry, fd, fd_size, conn->quota);
      return TRUE;
    }

  /* Addressed to the parent: it will most likely take it (a child's plain
   * receive could too). Its MpqMessage is made here, on the thread's CPU,
   * not on the parent's thread, often the busiest (docs/performance.md);
   * the data stays text until the parent asks for it. */
  message = NULL;
  if (recipient == server->pid && _mpq_queue_reserve_ahead (server, length) &&
      (message = _mpq_codec_decode_checked (line, length, &shape)) == NULL)
    _mpq_queue_release_ahead (server, length);
  item->entry = _mpq_queue_entry_new (line, length, message, recipient, conn->peer.pid);
  item->entry->shape = shape;
  if (message != NULL)
    _mpq_queue_entry_set_ahead (item->entry, server);
  return TRUE;
}

/* Applies what one read brought, under the lock; the lines before a bad
 * one count, the bad one drops the child (returned in @error). */
static void
apply_items (MpqQueueConn  *conn,
             GArray        *items,
             GError       **error)
{
  MpqQueueServer *server = conn->server;

  _mpq_mutex_lock (&server->lock);
  server->batching = TRUE;
  for (guint i = 0; i < items->len; i++)
    {
      Item *item = &g_array_index (items, Item, i);
      GError *apply_error = NULL;
      gboolean ok;

      if (item->entry != NULL)
        ok = _mpq_queue_conn_apply_put_locked (conn, g_steal_pointer (&item->entry), &apply_error);
      else
        ok = _mpq_queue_conn_apply_frame_locked (conn, &item->frame, &apply_error);
      item_clear (item);

      if (!ok)
        {
          for (guint j = i + 1; j < items->len; j++)
            item_clear (&g_array_index (items, Item, j));
          g_clear_error (error);
          g_propagate_error (error, apply_error);
          break;
        }
    }
  server->batching = FALSE;
  if (server->wake_pending)
    {
      server->wake_pending = FALSE;
      _mpq_queue_wake_waiters_locked (server);
    }
  _mpq_queue_serve_locked (server);
  _mpq_queue_unlock_and_complete (server);
}

/* Reads once (at most one chunk: children are served in turns) and
 * applies what came; @n_read gets how many bytes were read. Returns TRUE
 * when there may be more to read right away, FALSE when the socket is
 * empty or the child gone. */
gboolean
_mpq_queue_conn_read (MpqQueueConn *conn,
                      gsize        *n_read)
{
  GArray *items;
  gsize before = conn->reader.end - conn->reader.start;
  GError *error = NULL;
  GError *stop_error = NULL;
  gboolean eof = FALSE;
  const char *line;
  gsize length;

  if (conn->server->read_items == NULL)
    conn->server->read_items = g_array_new (FALSE, FALSE, sizeof (Item));
  items = conn->server->read_items;

  *n_read = 0;
  switch (_mpq_line_reader_fill (&conn->reader, conn->fd, conn->fds, &error))
    {
    case MPQ_READ_DATA:
      *n_read = (conn->reader.end - conn->reader.start) - before;
      /* Too many descriptors at once (@error): the lines read count, then
       * the child is dropped. */
      stop_error = g_steal_pointer (&error);
      break;
    case MPQ_READ_AGAIN:
      return FALSE;
    case MPQ_READ_EOF:
    default:
      eof = TRUE;
      if (error == NULL && _mpq_line_reader_has_partial (&conn->reader))
        g_set_error_literal (&error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                             "The child hung up in the middle of a line");
      break;
    }

  while (error == NULL && _mpq_line_reader_next (&conn->reader, &line, &length, &error))
    {
      Item item;

      MPQ_DEBUG_LINE ("<", line, length);
      if (!decode_line (conn, line, length, &item, &error))
        break;
      g_array_append_val (items, item);
    }

  apply_items (conn, items, &error);
  g_array_set_size (items, 0);

  if (error == NULL && stop_error == NULL)
    _mpq_fds_check_held (conn->fds, &stop_error);
  if (error == NULL)
    error = g_steal_pointer (&stop_error);
  g_clear_error (&stop_error);

  if ((error != NULL || eof) && conn->hanging_up)
    {
      /* hang_up () drops it once the loop that reads is done. */
      conn->read_ended = TRUE;
      g_clear_error (&error);
      return FALSE;
    }
  if (error != NULL || eof)
    {
      _mpq_queue_conn_drop (conn, error);
      return FALSE;
    }

  /* The caller writes out what this brought, which may drop this very
   * child. */
  return conn->in_watch != NULL;
}

/* How many bytes the child has written that were not read yet: what a
 * sync must read, and no more (a child that never stops writing would
 * otherwise hold the sync forever). */
gsize
_mpq_queue_conn_backlog (MpqQueueConn *conn)
{
  int queued = 0;

  if (conn->dead || ioctl (conn->fd, FIONREAD, &queued) < 0 || queued < 0)
    return 0;
  /* A hang-up is read as end-of-file after the data: one more read. */
  return (gsize) queued + 1;
}

static gboolean
in_watch_cb (GIOChannel   *channel,
             GIOCondition  condition,
             gpointer      user_data)
{
  MpqQueueConn *conn = user_data;
  MpqQueueServer *server = conn->server;
  gsize n_read;

  _mpq_queue_free_spent (server);
  _mpq_queue_conn_read (conn, &n_read);
  _mpq_queue_flush_all (server);
  return G_SOURCE_CONTINUE;
}

static gboolean
out_watch_cb (GIOChannel   *channel,
              GIOCondition  condition,
              gpointer      user_data)
{
  _mpq_queue_conn_flush (user_data);
  return G_SOURCE_CONTINUE;
}

static GSource *
add_watch (MpqQueueConn *conn,
           GIOCondition  condition,
           GIOFunc       func,
           const char   *name)
{
  GSource *watch = g_io_create_watch (conn->channel, condition);

  /* No user code runs in this thread, so no dispatch nests: a watch that
   * may recurse keeps its fd in the poll set while it dispatches, which
   * spares the context two wake-ups per dispatch. */
  g_source_set_can_recurse (watch, TRUE);
  return _mpq_source_attach (watch, conn->server->context, name, G_SOURCE_FUNC (func), conn);
}

/* Reads while the child's answers do not pile up; watches for room while
 * some are unwritten. */
static void
conn_update_watches (MpqQueueConn *conn)
{
  gsize unwritten = conn->out->len - conn->outpos;

  if (conn->dead)
    return;

  if (unwritten < MPQ_QUEUE_OUT_HIGH_WATER)
    {
      if (conn->in_watch == NULL)
        conn->in_watch = add_watch (conn, G_IO_IN | G_IO_HUP | G_IO_ERR, in_watch_cb,
                                    "[mpq] queue child read");
    }
  else
    _mpq_clear_source (&conn->in_watch);

  if (unwritten > 0)
    {
      if (conn->out_watch == NULL)
        conn->out_watch = add_watch (conn, G_IO_OUT | G_IO_HUP | G_IO_ERR, out_watch_cb,
                                     "[mpq] queue child write");
    }
  else
    _mpq_clear_source (&conn->out_watch);
}

/* Life ------------------------------------------------------------------- */

/* Takes @fd, the parent's end of the socket of the child spawned as
 * @pid (0 if it was gone before its pid was known), whose hello announced
 * @max_message_size. Any thread: the
 * connection is the queue thread's once it was adopted. */
MpqQueueConn *
_mpq_queue_conn_new (MpqQueueServer *server,
                     int             fd,
                     gint            pid,
                     gsize           max_message_size)
{
  MpqQueueConn *conn = g_new0 (MpqQueueConn, 1);

  conn->peer.klass = &_mpq_queue_conn_class;
  conn->peer.pid = pid;
  conn->server = server;
  conn->fd = fd;
  conn->spawned_pid = pid;
  conn->credit = server->max_size > 0 ? 0 : -1;
  conn->out = g_string_new (NULL);
  conn->marks = g_array_new (FALSE, FALSE, sizeof (MpqQueueMark));
  conn->fds = g_array_new (FALSE, FALSE, sizeof (int));
  conn->quota = _mpq_queue_quota_new ();
  /* What the hello told the child. */
  _mpq_line_reader_init (&conn->reader, max_message_size + MPQ_FRAME_OVERHEAD);
  _mpq_fd_set_nonblocking (fd);
  conn->channel = g_io_channel_unix_new (fd);
  return conn;
}

/* Queue thread: starts serving @conn, with the queue's limit. */
void
_mpq_queue_conn_adopt (MpqQueueConn *conn,
                       gsize         max_message_size)
{
  _mpq_queue_conn_set_max_message_size (conn, max_message_size);
  conn_update_watches (conn);
}

/* Queue thread: a new limit, for the next line read and for the child,
 * told with a limits frame. */
void
_mpq_queue_conn_set_max_message_size (MpqQueueConn *conn,
                                      gsize         max_message_size)
{
  gsize max_line = max_message_size + MPQ_FRAME_OVERHEAD;

  if (conn->reader.max_line == max_line)
    return;
  conn->reader.max_line = max_line;
  _mpq_frame_write (conn->out, MPQ_FRAME_LIMITS, (gint64) max_message_size);
}

void
_mpq_queue_conn_free (MpqQueueConn *conn)
{
  _mpq_clear_source (&conn->in_watch);
  _mpq_clear_source (&conn->out_watch);
  g_queue_clear_full (&conn->wants, (GDestroyNotify) _mpq_queue_pending_free);
  g_queue_clear_full (&conn->joins, (GDestroyNotify) _mpq_queue_pending_free);
  while (conn->held.length > 0)
    _mpq_queue_entry_free (_mpq_queue_pop_entry_head (&conn->held));
  g_clear_pointer (&conn->channel, g_io_channel_unref);
  _mpq_line_reader_clear (&conn->reader);
  g_string_free (conn->out, TRUE);
  for (guint i = 0; i < conn->marks->len; i++)
    close (g_array_index (conn->marks, MpqQueueMark, i).fd);
  g_array_unref (conn->marks);
  _mpq_fds_close_all (conn->fds);
  g_array_unref (conn->fds);
  _mpq_queue_quota_unref (conn->quota);
  if (conn->fd >= 0)
    close (conn->fd);
  g_free (conn);
}

/* Queue thread: a write to the child failed (@error, taken): it exited,
 * or shut its end. Before it is dropped, what it wrote and was not read
 * yet is read, and no more (a child that never stops writing cannot keep
 * it): a worker that crashed has its last answers there, and a death
 * would otherwise be counted against a task it answered. */
static void
hang_up (MpqQueueConn *conn,
         GError       *error)
{
  gsize budget;
  gsize n_read;

  if (conn->hanging_up)
    {
      /* A write from the reads below failed too: the outer call drops it. */
      g_clear_error (&error);
      return;
    }
  conn->hanging_up = TRUE;
  budget = _mpq_queue_conn_backlog (conn);
  while (budget > 0 && !conn->read_ended)
    {
      _mpq_queue_conn_read (conn, &n_read);
      if (n_read == 0)
        break;
      budget -= MIN (n_read, budget);
    }
  _mpq_queue_conn_drop (conn, error);
}

/* Queue thread: the child hung up or broke the protocol (@error, taken).
 * What it had in hand goes back to the front, in order; what it put
 * stays; what it asked for is forgotten. */
void
_mpq_queue_conn_drop (MpqQueueConn *conn,
                      GError       *error)
{
  MpqQueueServer *server = conn->server;

  /* A child that broke the protocol or a bound is worth a word in the
   * log; one that exited (its socket reset or closed) is not. */
  if (error != NULL && !g_error_matches (error, MPQ_ERROR, MPQ_ERROR_CLOSED))
    g_message ("Dropping queue child %d: %s", conn->peer.pid, error->message);
  else if (error != NULL)
    g_debug ("Queue child %d hung up: %s", conn->peer.pid, error->message);
  g_clear_error (&error);

  conn->dead = TRUE;
  _mpq_clear_source (&conn->in_watch);
  _mpq_clear_source (&conn->out_watch);
  /* Hang up at once, even while the child keeps its end open. */
  shutdown (conn->fd, SHUT_RDWR);

  _mpq_mutex_lock (&server->lock);
  _mpq_queue_return_held_locked (server, &conn->held, FALSE);
  conn->peer.slots.pushed = conn->peer.slots.pushed_any = 0;
  for (GList *l = server->gets.head; l != NULL;)
    {
      GList *next = l->next;
      MpqQueuePending *get = l->data;

      if (get->peer == &conn->peer)
        {
          g_queue_delete_link (&server->gets, l);
          _mpq_queue_pending_free (get);
        }
      l = next;
    }
  if (conn->credit > 0)
    server->credit_out -= conn->credit;
  if (conn->wants_credit)
    server->credit_wanted--;
  g_ptr_array_remove (server->peers, &conn->peer);
  server->turn = 0;
  _mpq_queue_serve_locked (server);
  _mpq_queue_unlock_and_complete (server);

  _mpq_queue_conn_free (conn);
  /* Others may have been handed what it had: the thread writes it out. */
  _mpq_mutex_lock (&server->lock);
  _mpq_queue_kick_locked (server);
  _mpq_mutex_unlock (&server->lock);
}
