/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <glib-unix.h>

#include "mpq-debug-idle-private.h"
#include "mpq-debug-private.h"
#include "mpq-protocol.h"
#include "mpq-queue-server-private.h"
#include "mpq-source-private.h"

/* MPQ_DEBUG's idle check: forgetting mpq_channel_start () leaves messages
 * waiting, silently. With MPQ_DEBUG, a channel end that messages waited
 * for about a second (at two looks a second apart), while it was never
 * started nor read, says so once, through the debug printer ("!"). What
 * looks, and who can see it:
 *
 * - a pipe: its messages wait in its socket, which only its owner reads.
 *   A watch in the main context the pipe was made in peeks at the socket
 *   (MSG_PEEK: nothing is taken). So this needs that context to run; a
 *   pipe in a thread without a main loop is not watched (no library
 *   thread reads a pipe's socket);
 * - the parent's queue: the queue's thread keeps the queue and sees what
 *   waits for the parent and for each child, main loop or not. A child
 *   that never asks is never sent anything, so only the parent can see
 *   that messages wait for it: the parent's line names the child.
 *
 * Off (the default), none of this exists: _mpq_debug_enabled () is
 * checked first, and the owners hold NULL. */

#define LOOK_INTERVAL_MS 1000

static void
say (const char *text)
{
  _mpq_debug_line ("!", text, strlen (text));
}

/* A pipe's socket ---------------------------------------------------------- */

struct _MpqDebugIdle
{
  gatomicrefcount refs;     /* the owner's, and the current source's */
  GMutex          lock;
  GMainContext   *context;  /* constant: where the sources run */
  char           *name;     /* constant: "pipe (MpqPipe 0x...)" */

  /* @lock: the owner stops the check from its thread while the sources
   * run in @context's, which may be another. */
  int             fd;       /* the owner's socket; -1 once stopped: the
                             * owner closes it only after that */
  GSource        *source;   /* the readable watch, then the tick; NULL when done */
  gboolean        seen;     /* a message waited at the last look */
};

typedef enum { LOOK_NOTHING, LOOK_MESSAGE, LOOK_END } Look;

static MpqDebugIdle *
idle_ref (MpqDebugIdle *idle)
{
  g_atomic_ref_count_inc (&idle->refs);
  return idle;
}

static void
idle_unref (gpointer data)
{
  MpqDebugIdle *idle = data;

  if (!g_atomic_ref_count_dec (&idle->refs))
    return;
  g_assert (idle->source == NULL);
  g_main_context_unref (idle->context);
  g_free (idle->name);
  g_mutex_clear (&idle->lock);
  g_free (idle);
}

/* Whether a message waits in @fd, without taking anything. A child's first
 * line may be its hello, which is no message (mpq-pipe-inbox.c). With the
 * lock. */
static Look
look (int fd)
{
  static const char hello[] = MPQ_PIPE_HELLO_FDS "\n";
  gsize hello_length = sizeof hello - 1;
  char head[sizeof hello];
  gssize n;

  do
    n = recv (fd, head, sizeof head, MSG_PEEK | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);

  if (n == 0)
    return LOOK_END;
  if (n < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK ? LOOK_NOTHING : LOOK_END;
  if (memcmp (head, hello, MIN ((gsize) n, hello_length)) != 0 || (gsize) n > hello_length)
    return LOOK_MESSAGE;
  return LOOK_NOTHING;
}

/* With the lock: @source becomes the current one (attached, holding a
 * reference to @idle); returns the one it replaces, for the caller to
 * drop once unlocked. */
static GSource *
idle_swap_source (MpqDebugIdle *idle,
                  GSource      *source,
                  GSourceFunc   func)
{
  GSource *old = idle->source;

  idle->source = source;
  if (source != NULL)
    {
      g_source_set_static_name (source, "[mpq] debug idle check");
      g_source_set_callback (source, func, idle_ref (idle), idle_unref);
      g_source_attach (source, idle->context);
    }
  return old;
}

static gboolean tick_cb (gpointer user_data);

/* @context's thread: one look. Returns TRUE when the check is over (it
 * was said, the socket ended, or the owner stopped the check). The first
 * look, when the socket became readable (a line, or the end), starts the
 * looks once a second: a socket nobody reads stays readable, and a watch
 * on it would run at every iteration. */
static gboolean
look_once (MpqDebugIdle *idle,
           gboolean      first)
{
  GSource *old = NULL;
  gboolean done = TRUE;

  g_mutex_lock (&idle->lock);
  if (idle->fd >= 0)
    {
      Look seen = look (idle->fd);

      done = seen == LOOK_END || (seen == LOOK_MESSAGE && idle->seen);
      if (seen == LOOK_MESSAGE && idle->seen)
        {
          g_autofree char *text = g_strdup_printf ("messages wait on this %s "
                                                   MPQ_DEBUG_IDLE_TEXT, idle->name);

          /* Under the lock: once the owner stopped the check, nothing is said. */
          say (text);
        }
      idle->seen = seen == LOOK_MESSAGE;
      if (done)
        old = idle_swap_source (idle, NULL, NULL);
      else if (first)
        old = idle_swap_source (idle, g_timeout_source_new (LOOK_INTERVAL_MS), tick_cb);
    }
  g_mutex_unlock (&idle->lock);

  g_clear_pointer (&old, g_source_unref);
  return done;
}

/* @context's thread: once a second, until a message waited at two looks
 * in a row. */
static gboolean
tick_cb (gpointer user_data)
{
  return look_once (user_data, FALSE) ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
}

/* @context's thread: the socket became readable; the ticks take over. */
static gboolean
readable_cb (gint         fd,
             GIOCondition condition,
             gpointer     user_data)
{
  look_once (user_data, TRUE);
  return G_SOURCE_REMOVE;
}

/* Owner's thread, when the socket @fd is opened. */
MpqDebugIdle *
_mpq_debug_idle_new (int         fd,
                     const char *what,
                     const char *type_name,
                     gpointer    owner)
{
  MpqDebugIdle *idle;
  GSource *old;

  if (!_mpq_debug_enabled ())
    return NULL;

  idle = g_new0 (MpqDebugIdle, 1);
  g_atomic_ref_count_init (&idle->refs);
  g_mutex_init (&idle->lock);
  idle->context = g_main_context_ref_thread_default ();
  idle->name = g_strdup_printf ("%s (%s %p)", what, type_name, owner);
  idle->fd = fd;

  g_mutex_lock (&idle->lock);
  old = idle_swap_source (idle, g_unix_fd_source_new (fd, G_IO_IN), G_SOURCE_FUNC (readable_cb));
  g_mutex_unlock (&idle->lock);
  g_assert (old == NULL);
  return idle;
}

/* Owner's thread: it read, started or closes. Once this returns nothing
 * is said and the socket is not looked at: the owner may close it. */
void
_mpq_debug_idle_stop (MpqDebugIdle **idle_ptr)
{
  MpqDebugIdle *idle = g_steal_pointer (idle_ptr);
  GSource *old;

  if (idle == NULL)
    return;

  g_mutex_lock (&idle->lock);
  idle->fd = -1;
  old = idle_swap_source (idle, NULL, NULL);
  g_mutex_unlock (&idle->lock);

  if (old != NULL)
    _mpq_source_destroy_and_unref (old);
  idle_unref (idle);
}

/* The parent's queue --------------------------------------------------------- */

/* Queue thread only: once a second, for each participant that never
 * asked (peer->asked: a receive of any kind, or start), the oldest
 * message routable to it; the same one at two ticks in a row waited
 * about a second, and that is said once (peer->idle_said). The peers and
 * their fields are read and changed under the server's lock; the lines
 * are printed after it. */
static gboolean
queue_tick_cb (gpointer user_data)
{
  MpqQueueServer *server = user_data;
  g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);

  _mpq_mutex_lock (&server->lock);
  for (guint i = 0; i < server->peers->len; i++)
    {
      MpqQueuePeer *peer = g_ptr_array_index (server->peers, i);
      MpqQueueEntry *entry;
      guint64 mark;

      if (peer->asked || peer->idle_said || peer->pid <= 0)
        continue;

      entry = _mpq_queue_peek_for_locked (server, peer);
      mark = entry != NULL ? entry->seq + 1 : 0;
      if (mark != 0 && mark == peer->idle_mark)
        {
          peer->idle_said = TRUE;
          if (peer == &server->local)
            g_ptr_array_add (lines, g_strdup ("messages wait on this queue " MPQ_DEBUG_IDLE_TEXT));
          else
            g_ptr_array_add (lines, g_strdup_printf ("messages wait on this queue for child %d "
                                                     MPQ_DEBUG_IDLE_TEXT " in it", peer->pid));
        }
      peer->idle_mark = mark;
    }
  _mpq_mutex_unlock (&server->lock);

  for (guint i = 0; i < lines->len; i++)
    say (g_ptr_array_index (lines, i));
  return G_SOURCE_CONTINUE;
}

/* The caller's thread, from _mpq_queue_server_new (): the tick runs in
 * the queue thread's context until the server is closed, which destroys
 * it. */
GSource *
_mpq_queue_debug_idle_new (MpqQueueServer *server)
{
  if (!_mpq_debug_enabled ())
    return NULL;

  return _mpq_source_attach (g_timeout_source_new (LOOK_INTERVAL_MS), server->context,
                             "[mpq] queue debug idle check", queue_tick_cb, server);
}
