/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "mpq-writer-internal-private.h"

/* The library's writer thread: it writes out the writers listed for it
 * (sends that came fast, one after the other, gathered; lines a handler
 * sent in a dispatch that took long), waits for room where a reader is
 * behind, and keeps the list of live writers, flushed when the process
 * exits and forgotten in a forked child. */

/* How long the writer thread lets lines gather before writing them. */
#define LINGER_US 100

/* The writer thread and the list of live writers (for exit): all guarded
 * by @thread_lock but @thread_cond, @wake_fd (made once) and what the
 * thread keeps in its own locals. */
static MpqMutex     thread_lock;
static MpqCond      thread_cond;
static GPtrArray *todo;       /* MpqWriter, listed */
static GPtrArray *lazy;       /* MpqWriter, listed for later */
static gint64     lazy_due;   /* when the first of @lazy is due */
static GPtrArray *live;       /* MpqWriter, not yet freed */
static GThread   *thread;
static int        wake_fd = -1;
static gboolean   thread_polling;
static gboolean   thread_waiting;  /* on thread_cond */

static void
wake_thread (void)
{
  guint64 one = 1;

  if (thread_polling)
    {
      ssize_t r G_GNUC_UNUSED = write (wake_fd, &one, sizeof one);
    }
  else if (thread_waiting)
    _mpq_cond_signal (&thread_cond);
}

static gpointer writer_thread (gpointer data);

/* Hands @writer to the writer thread, with its lock held: at once, or
 * (@later) for when MPQ_WRITER_HOLD_US have passed, without waking the
 * thread now. */
void
_mpq_writer_list_locked (MpqWriter *writer,
                         gboolean   later)
{
  if (writer->listed)
    return;

  writer->listed = TRUE;
  g_atomic_int_inc (&writer->refs);

  _mpq_mutex_lock (&thread_lock);
  if (thread == NULL)
    {
      if (wake_fd < 0)
        wake_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
      thread = g_thread_new ("mpq-writer", writer_thread, NULL);
    }
  if (later)
    {
      if (lazy->len == 0)
        lazy_due = g_get_monotonic_time () + MPQ_WRITER_HOLD_US;
      g_ptr_array_add (lazy, writer);
    }
  else
    g_ptr_array_add (todo, writer);
  /* A thread asleep with nothing due wakes for its first lazy one too,
   * to set its alarm. */
  if (!later || lazy->len == 1)
    wake_thread ();
  _mpq_mutex_unlock (&thread_lock);
}

static gpointer
writer_thread (gpointer data)
{
  /* The linger below is short; the default 50 µs of timer slack would
   * triple it. */
  prctl (PR_SET_TIMERSLACK, 1000UL);

  _mpq_mutex_lock (&thread_lock);
  for (;;)
    {
      g_autoptr(GPtrArray) batch = NULL;
      g_autoptr(GPtrArray) blocked = g_ptr_array_new ();
      g_autoptr(GArray) pfds = g_array_new (FALSE, FALSE, sizeof (struct pollfd));

      while (todo->len == 0)
        {
          gboolean woken = TRUE;

          thread_waiting = TRUE;
          if (lazy->len == 0)
            _mpq_cond_wait (&thread_cond, &thread_lock);
          else
            woken = _mpq_cond_wait_until (&thread_cond, &thread_lock, lazy_due);
          thread_waiting = FALSE;

          if (!woken)
            {
              /* Most are done with by now: their dispatch wrote them. */
              g_ptr_array_extend_and_steal (todo, g_steal_pointer (&lazy));
              lazy = g_ptr_array_new ();
            }
        }

      /* Let a stream gather a few more lines: one system call then
       * carries dozens of them. */
      _mpq_mutex_unlock (&thread_lock);
      g_usleep (LINGER_US);
      _mpq_mutex_lock (&thread_lock);

      batch = g_steal_pointer (&todo);
      todo = g_ptr_array_new ();
      _mpq_mutex_unlock (&thread_lock);

      for (guint i = 0; i < batch->len; i++)
        {
          MpqWriter *writer = g_ptr_array_index (batch, i);
          struct pollfd pfd = { .fd = -1, .events = POLLOUT };
          gboolean done, more;

          _mpq_mutex_lock (&writer->lock);
          done = writer->closed || _mpq_writer_write_out_locked (writer);
          /* Lines sent while we wrote found it listed: they are ours. */
          more = done && !writer->closed && writer->buf->len > 0;
          if (done && !more)
            writer->listed = FALSE;
          else if (!done)
            pfd.fd = writer->fd;
          _mpq_mutex_unlock (&writer->lock);

          if (more)
            {
              _mpq_mutex_lock (&thread_lock);
              g_ptr_array_add (todo, writer);
              _mpq_mutex_unlock (&thread_lock);
            }
          else if (done)
            _mpq_writer_unref (writer);
          else
            {
              g_ptr_array_add (blocked, writer);
              g_array_append_val (pfds, pfd);
            }
        }

      _mpq_mutex_lock (&thread_lock);
      if (blocked->len > 0 && todo->len == 0)
        {
          /* Readers that are behind: wait for room, or for new work. */
          struct pollfd wake = { .fd = wake_fd, .events = POLLIN };
          guint64 count;

          g_array_append_val (pfds, wake);
          thread_polling = TRUE;
          _mpq_mutex_unlock (&thread_lock);
          poll ((struct pollfd *) (gpointer) pfds->data, pfds->len, 100);
          if (read (wake_fd, &count, sizeof count) < 0)
            count = 0;
          _mpq_mutex_lock (&thread_lock);
          thread_polling = FALSE;
        }
      g_ptr_array_extend_and_steal (todo, g_steal_pointer (&blocked));
    }

  return NULL;
}

/* Whatever is unwritten when the process exits goes out first. */
static void
flush_all_at_exit (void)
{
  g_autoptr(GPtrArray) writers = g_ptr_array_new ();

  _mpq_mutex_lock (&thread_lock);
  for (guint i = 0; i < live->len; i++)
    {
      MpqWriter *writer = g_ptr_array_index (live, i);

      g_atomic_int_inc (&writer->refs);
      g_ptr_array_add (writers, writer);
    }
  _mpq_mutex_unlock (&thread_lock);

  for (guint i = 0; i < writers->len; i++)
    {
      MpqWriter *writer = g_ptr_array_index (writers, i);

      _mpq_writer_flush (writer, 5000, NULL);
      _mpq_writer_unref (writer);
    }
}

/* A forked child has no writer thread, and its copies of the buffers
 * belong to the parent's channels. Nothing is allocated here: another
 * thread of the parent may have held an allocator's lock (GSlice's, say)
 * at the fork, and the child would wait for it for ever (seen once, in
 * g_spawn's child). The lists are emptied where they stand. */
static void
forget_after_fork (void)
{
  _mpq_mutex_init (&thread_lock);
  _mpq_cond_init (&thread_cond);
  thread = NULL;
  thread_polling = FALSE;
  thread_waiting = FALSE;
  g_ptr_array_set_size (live, 0);
  /* The writer thread swaps these for new arrays under thread_lock: a
   * fork in that instant leaves NULL, made anew (the one allocation). */
  if (todo != NULL)
    g_ptr_array_set_size (todo, 0);
  else
    todo = g_ptr_array_new ();
  if (lazy != NULL)
    g_ptr_array_set_size (lazy, 0);
  else
    lazy = g_ptr_array_new ();
}

void
_mpq_writer_add_live (MpqWriter *writer)
{
  static gsize initialized = 0;

  if (g_once_init_enter (&initialized))
    {
      todo = g_ptr_array_new ();
      lazy = g_ptr_array_new ();
      live = g_ptr_array_new ();
      atexit (flush_all_at_exit);
      pthread_atfork (NULL, NULL, forget_after_fork);
      g_once_init_leave (&initialized, 1);
    }

  _mpq_mutex_lock (&thread_lock);
  g_ptr_array_add (live, writer);
  _mpq_mutex_unlock (&thread_lock);
}

void
_mpq_writer_remove_live (MpqWriter *writer)
{
  _mpq_mutex_lock (&thread_lock);
  g_ptr_array_remove_fast (live, writer);
  _mpq_mutex_unlock (&thread_lock);
}
