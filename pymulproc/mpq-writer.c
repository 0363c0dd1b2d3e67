/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "mpq-error.h"
#include "mpq-lock-private.h"
#include "mpq-spawn-private.h"
#include "mpq-writer-internal-private.h"

/* Past this much unwritten, a send waits for room: memory stays bounded
 * and a slow reader slows its writer down. */
#define HIGH_WATER (256 * 1024)

/* A send this long after the previous one is written at once: a pause
 * means nobody is streaming, and the message should not wait. */
#define PAUSE_US 50

/* One socket's writer: its buffer, sends, holds of a dispatch, flushes.
 * The thread that writes what is gathered is mpq-writer-thread.c. */

static void
wait_not_writing_locked (MpqWriter *writer)
{
  writer->waiting++;
  while (writer->writing)
    _mpq_cond_wait (&writer->cond, &writer->lock);
  writer->waiting--;
}

void
_mpq_writer_unref (MpqWriter *writer)
{
  if (!g_atomic_int_dec_and_test (&writer->refs))
    return;

  g_string_free (writer->buf, TRUE);
  g_string_free (writer->spare, TRUE);
  g_clear_error (&writer->error);
  _mpq_cond_clear (&writer->cond);
  _mpq_mutex_clear (&writer->lock);
  g_free (writer);
}

/* Writes what it can of the buffer without holding the lock, so that
 * sends go on meanwhile. Called and returns with the lock held. Returns
 * FALSE when the socket is full. */
gboolean
_mpq_writer_write_out_locked (MpqWriter *writer)
{
  GString *chunk;
  gsize done = 0;
  GError *error = NULL;

  wait_not_writing_locked (writer);

  if (writer->buf->len == 0 || writer->error != NULL || writer->fd < 0)
    return TRUE;

  chunk = writer->buf;
  writer->buf = writer->spare;
  writer->writing = TRUE;
  writer->writing_len = chunk->len;
  _mpq_mutex_unlock (&writer->lock);

  while (done < chunk->len)
    {
      gssize n = _mpq_write_some (writer->fd, chunk->str + done, chunk->len - done, &error);

      if (n <= 0)
        break;
      done += n;
    }

  _mpq_mutex_lock (&writer->lock);
  writer->writing = FALSE;
  writer->writing_len = 0;
  if (writer->waiting > 0)
    _mpq_cond_broadcast (&writer->cond);

  if (error != NULL)
    {
      g_clear_error (&writer->error);
      writer->error = error;
      done = chunk->len;
    }

  /* What did not fit goes back before what came meanwhile. */
  if (done < chunk->len)
    {
      g_string_erase (chunk, 0, done);
      g_string_append_len (chunk, writer->buf->str, writer->buf->len);
      g_string_truncate (writer->buf, 0);
      writer->spare = writer->buf;
      writer->buf = chunk;
      return FALSE;
    }

  g_string_truncate (chunk, 0);
  writer->spare = chunk;
  return TRUE;
}

MpqWriter *
_mpq_writer_new (int fd)
{
  MpqWriter *writer = g_new0 (MpqWriter, 1);

  _mpq_mutex_init (&writer->lock);
  _mpq_cond_init (&writer->cond);
  writer->fd = fd;
  writer->buf = g_string_sized_new (4096);
  writer->spare = g_string_sized_new (4096);
  writer->refs = 1;

  _mpq_writer_add_live (writer);
  return writer;
}

/* The owner lets go; unwritten lines are dropped (flush first). */
void
_mpq_writer_free (MpqWriter *writer)
{
  _mpq_writer_remove_live (writer);

  _mpq_mutex_lock (&writer->lock);
  wait_not_writing_locked (writer);
  writer->closed = TRUE;
  writer->fd = -1;
  _mpq_mutex_unlock (&writer->lock);

  _mpq_writer_unref (writer);
}

static gboolean
report_error_locked (MpqWriter  *writer,
                     GError    **error)
{
  if (writer->error == NULL)
    return FALSE;
  g_propagate_error (error, g_error_copy (writer->error));
  return TRUE;
}

/* Writes everything out in this thread, waiting for room at most
 * @timeout_ms (-1: no limit). The clock is read only if it must wait. */
static gboolean
drain_locked (MpqWriter  *writer,
              gint        timeout_ms,
              GError    **error)
{
  gint64 deadline = G_MININT64;

  while (!_mpq_writer_write_out_locked (writer))
    {
      gboolean room;

      if (timeout_ms == 0)
        break;
      if (deadline == G_MININT64)
        deadline = _mpq_deadline_from_timeout (timeout_ms);
      _mpq_mutex_unlock (&writer->lock);
      room = _mpq_wait_fd (writer->fd, POLLOUT, deadline);
      _mpq_mutex_lock (&writer->lock);
      if (!room)
        break;
    }

  if (report_error_locked (writer, error))
    return FALSE;
  if (writer->buf->len > 0 || writer->writing)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT, "The peer is not reading");
      return FALSE;
    }
  return TRUE;
}

gboolean
_mpq_writer_send (MpqWriter   *writer,
                  const char  *data,
                  gsize        length,
                  gint         timeout_ms,
                  GError     **error)
{
  gint64 now = g_get_monotonic_time ();
  gboolean paused;
  gboolean ok = TRUE;

  _mpq_mutex_lock (&writer->lock);

  if (report_error_locked (writer, error))
    {
      _mpq_mutex_unlock (&writer->lock);
      return FALSE;
    }

  /* What another thread took out to write still counts: with @buf empty
   * meanwhile, a send into a full socket would otherwise go through
   * (seen under valgrind, where the writer thread's write lasts). */
  if (writer->buf->len + writer->writing_len + length > HIGH_WATER &&
      (writer->buf->len > 0 || writer->writing))
    {
      GError *local_error = NULL;

      /* Full: room for this one, or it is not sent at all. */
      if (!drain_locked (writer, timeout_ms, &local_error))
        {
          if (g_error_matches (local_error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT))
            g_prefix_error_literal (&local_error, "Nothing was sent: ");
          g_propagate_error (error, local_error);
          _mpq_mutex_unlock (&writer->lock);
          return FALSE;
        }
    }

  g_string_append_len (writer->buf, data, length);

  paused = now - writer->last_send > PAUSE_US;
  writer->last_send = now;

  if (writer->holds > 0 && writer->holds != writer->direct_level)
    {
      /* A handler sends: out when its dispatch ends, with the others. */
      _mpq_writer_list_locked (writer, TRUE);
    }
  else if ((paused || writer->holds > 0) && !writer->listed && !writer->writing)
    {
      /* Nobody is streaming, or the handler of a dispatch's last message
       * sends (with what the others gathered): out at once. */
      if (!_mpq_writer_write_out_locked (writer))
        _mpq_writer_list_locked (writer, FALSE);
      ok = !report_error_locked (writer, error);
    }
  else
    _mpq_writer_list_locked (writer, FALSE);

  _mpq_mutex_unlock (&writer->lock);
  return ok;
}

/* Sends a line that a payload's memfd (@pass_fd, not taken) goes with:
 * after everything sent before it, the descriptor attached to the line's
 * first byte. Written in the caller's thread: a payload this large is
 * rare, and its line must not be gathered with others (a read returns
 * the descriptor with the byte it came with). Waits for room at most
 * @timeout_ms; a line begun is always finished. */
gboolean
_mpq_writer_send_fd (MpqWriter   *writer,
                     const char  *data,
                     gsize        length,
                     int          pass_fd,
                     gint         timeout_ms,
                     GError     **error)
{
  gint64 deadline = G_MININT64;
  GError *local_error = NULL;
  gsize done = 0;

  _mpq_mutex_lock (&writer->lock);
  if (!drain_locked (writer, timeout_ms, error))
    {
      _mpq_mutex_unlock (&writer->lock);
      return FALSE;
    }

  while (done == 0)
    {
      gssize n = _mpq_write_some_with_fd (writer->fd, data, length, pass_fd, &local_error);

      if (n > 0)
        done = n;
      else if (n < 0)
        {
          writer->error = g_error_copy (local_error);
          g_propagate_error (error, local_error);
          _mpq_mutex_unlock (&writer->lock);
          return FALSE;
        }
      else
        {
          if (deadline == G_MININT64)
            deadline = _mpq_deadline_from_timeout (timeout_ms);
          if (timeout_ms == 0 || !_mpq_wait_fd (writer->fd, POLLOUT, deadline))
            {
              g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT,
                                   "Nothing was sent: the peer is not reading");
              _mpq_mutex_unlock (&writer->lock);
              return FALSE;
            }
        }
    }

  /* The rest of the line, without a descriptor, as any other. */
  if (done < length)
    {
      g_string_append_len (writer->buf, data + done, length - done);
      if (!_mpq_writer_write_out_locked (writer))
        _mpq_writer_list_locked (writer, FALSE);
    }
  writer->last_send = g_get_monotonic_time ();
  _mpq_mutex_unlock (&writer->lock);
  return TRUE;
}

/* The caller reads what answers it: the next send is an answer. */
void
_mpq_writer_expect_reply (MpqWriter *writer)
{
  _mpq_mutex_lock (&writer->lock);
  writer->last_send = 0;
  _mpq_mutex_unlock (&writer->lock);
}

gboolean
_mpq_writer_flush (MpqWriter  *writer,
                   gint        timeout_ms,
                   GError    **error)
{
  gboolean ok;

  _mpq_mutex_lock (&writer->lock);
  /* The caller is about to wait for an answer: what it sends next is a
   * reply, not part of a stream, and goes out at once. */
  writer->last_send = 0;
  ok = drain_locked (writer, timeout_ms, error);
  _mpq_mutex_unlock (&writer->lock);
  return ok;
}

/* Message handlers are about to run (a dispatch of the channel): what
 * they send is gathered and written when _mpq_writer_release() ends the
 * dispatch, in one system call, instead of one by one. The writer thread
 * sends it anyway once MPQ_WRITER_HOLD_US have passed. Dispatches may
 * nest. */
MpqWriter *
_mpq_writer_hold (MpqWriter *writer)
{
  /* A handler may close the channel and free its writer meanwhile. */
  g_atomic_int_inc (&writer->refs);
  _mpq_mutex_lock (&writer->lock);
  writer->holds++;
  _mpq_mutex_unlock (&writer->lock);
  return writer;
}

/* The dispatch that holds @writer is about to hand over its last message:
 * what that message's handlers send goes out at once, with what the
 * earlier ones gathered, in their own thread. The dispatch would write it
 * right after them anyway, and a lone reply (a round trip) then never
 * involves the writer thread, whose wake-ups cost a context switch each
 * on a busy CPU. Until the matching _mpq_writer_release(). */
void
_mpq_writer_hold_last (MpqWriter *writer)
{
  _mpq_mutex_lock (&writer->lock);
  g_assert (writer->holds > 0);
  writer->direct_level = writer->holds;
  _mpq_mutex_unlock (&writer->lock);
}

void
_mpq_writer_release (MpqWriter *writer)
{
  _mpq_mutex_lock (&writer->lock);
  g_assert (writer->holds > 0);
  if (writer->direct_level == writer->holds)
    writer->direct_level = 0;
  if (--writer->holds == 0 && writer->buf->len > 0 && !writer->closed &&
      !_mpq_writer_write_out_locked (writer))
    _mpq_writer_list_locked (writer, FALSE);
  _mpq_mutex_unlock (&writer->lock);
  _mpq_writer_unref (writer);
}

/* Writes out what was gathered, if nobody is writing it already: what a
 * handler sent leaves before its main loop sleeps, not when the writer
 * thread gets to it. The owner's thread, from its read source's prepare
 * (mpq-source.c). */
void
_mpq_writer_write_pending (MpqWriter *writer)
{
  _mpq_mutex_lock (&writer->lock);
  if (writer->buf->len > 0 && !writer->writing && !writer->closed)
    _mpq_writer_write_out_locked (writer);
  _mpq_mutex_unlock (&writer->lock);
}
