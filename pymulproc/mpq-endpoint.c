/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "mpq-debug-private.h"
#include "mpq-endpoint-private.h"
#include "mpq-error.h"
#include "mpq-spawn-private.h"

/* Every function here runs in the owner's thread: the one using the
 * channel, where its consumer's main context runs too (see the header). */

/* Owner's thread. */
void
_mpq_endpoint_init (MpqEndpoint            *ep,
                    const MpqEndpointClass *klass,
                    gpointer                owner,
                    gsize                   max_message_size)
{
  memset (ep, 0, sizeof *ep);
  ep->klass = klass;
  ep->owner = owner;
  ep->fd = -1;
  ep->max_message_size = max_message_size;
  _mpq_line_reader_init (&ep->reader, max_message_size + klass->line_overhead);
}

/* Takes @fd. Owner's thread. */
void
_mpq_endpoint_open (MpqEndpoint *ep,
                    int          fd)
{
  g_assert (ep->fd == -1 && !ep->closed);

  ep->fd = fd;
  ep->writer = _mpq_writer_new (fd);
  _mpq_fd_set_nonblocking (fd);
  if (ep->klass->idle_what != NULL)
    ep->idle = _mpq_debug_idle_new (fd, ep->klass->idle_what, ep->klass->type_name, ep->owner);
}

/* Writes out what was sent (waiting at most @flush_timeout_ms), stops
 * reading and closes the descriptor. The owner updates its sources and
 * schedules ::closed. Owner's thread. */
void
_mpq_endpoint_close (MpqEndpoint *ep,
                     gint         flush_timeout_ms)
{
  if (ep->writer != NULL)
    {
      _mpq_writer_flush (ep->writer, flush_timeout_ms, NULL);
      g_clear_pointer (&ep->writer, _mpq_writer_free);
    }
  ep->closed = TRUE;
  _mpq_debug_idle_stop (&ep->idle);
  if (!ep->read_done)
    _mpq_endpoint_stop_reading (ep, NULL);
  _mpq_fds_close_all (ep->fds);
  if (ep->fd >= 0)
    {
      close (ep->fd);
      ep->fd = -1;
    }
}

/* Frees what the endpoint holds, once it is closed and no signal may
 * reach its owner any more. Owner's thread. */
void
_mpq_endpoint_clear (MpqEndpoint *ep)
{
  g_assert (ep->fd == -1 && ep->writer == NULL);

  _mpq_debug_idle_stop (&ep->idle);
  _mpq_clear_source (&ep->closed_idle);
  _mpq_read_sources_clear (&ep->sources);
  g_clear_pointer (&ep->context, g_main_context_unref);
  g_clear_error (&ep->read_error);
  _mpq_line_reader_clear (&ep->reader);
  _mpq_fds_close_all (ep->fds);
  g_clear_pointer (&ep->fds, g_array_unref);
}

/* Reading --------------------------------------------------------------- */

/* From now on descriptors that come with lines are kept in @fds for the
 * owner to claim (payloads); without this the kernel closes them. */
void
_mpq_endpoint_take_fds (MpqEndpoint *ep)
{
  if (ep->fds == NULL)
    ep->fds = g_array_new (FALSE, FALSE, sizeof (int));
}

/* Nothing more is read from this peer; @error (taken) says why, or NULL
 * for the end of the stream. Owner's thread. */
void
_mpq_endpoint_stop_reading (MpqEndpoint *ep,
                            GError      *error)
{
  if (ep->read_done)
    {
      g_clear_error (&error);
      return;
    }
  ep->read_done = TRUE;
  ep->read_error = error;
  _mpq_line_reader_clear (&ep->reader);
  /* A peer dropped for what it sent keeps nothing open here; lines read
   * before that which wait to be decoded lose their payloads with it. */
  if (error != NULL)
    _mpq_fds_close_all (ep->fds);
}

/* Hands the whole lines buffered to the owner, until one is bad. Owner's
 * thread. */
void
_mpq_endpoint_take_lines (MpqEndpoint *ep)
{
  const char *line;
  gsize length;

  while (!ep->read_done)
    {
      GError *error = NULL;

      if (!_mpq_line_reader_next (&ep->reader, &line, &length, &error))
        {
          if (error != NULL)
            _mpq_endpoint_stop_reading (ep, error);
          return;
        }

      MPQ_DEBUG_LINE ("<", line, length);
      if (!ep->klass->line (ep->owner, line, length, &error))
        {
          _mpq_endpoint_stop_reading (ep, error);
          return;
        }
    }
}

/* Reads once, without blocking, and hands over the lines that came.
 * Returns FALSE when there was nothing to read. A peer that hangs up in
 * the middle of a line sent a bad line. Owner's thread. */
gboolean
_mpq_endpoint_read_some (MpqEndpoint *ep)
{
  GError *error = NULL;

  if (ep->read_done || ep->fd < 0)
    return FALSE;

  switch (_mpq_line_reader_fill (&ep->reader, ep->fd, ep->fds, &error))
    {
    case MPQ_READ_DATA:
      _mpq_endpoint_take_lines (ep);
      if (error == NULL)
        _mpq_fds_check_held (ep->fds, &error);
      if (error != NULL)
        _mpq_endpoint_stop_reading (ep, error);
      return TRUE;

    case MPQ_READ_AGAIN:
      return FALSE;

    case MPQ_READ_EOF:
    default:
      if (error == NULL && _mpq_line_reader_has_partial (&ep->reader))
        g_set_error_literal (&error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                             "The peer hung up in the middle of a message");
      _mpq_endpoint_stop_reading (ep, error);
      return TRUE;
    }
}

/* Writing and the size rule --------------------------------------------- */

/* A new max-message-size applies at once: to what is sent next and to
 * the line being read. Owner's thread. */
void
_mpq_endpoint_set_max_message_size (MpqEndpoint *ep,
                                    gsize        size)
{
  ep->max_message_size = size;
  ep->reader.max_line = size + ep->klass->line_overhead;
}

/* Checks a message line of @length bytes (newline not counted) against
 * max-message-size. Owner's thread. */
gboolean
_mpq_endpoint_check_size (MpqEndpoint  *ep,
                          gsize         length,
                          GError      **error)
{
  if (length <= ep->max_message_size)
    return TRUE;

  g_set_error (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE,
               "Message of %" G_GSIZE_FORMAT " bytes is longer than %" G_GSIZE_FORMAT,
               length, ep->max_message_size);
  return FALSE;
}

/* Owner's thread. */
void
_mpq_endpoint_set_closed_error (MpqEndpoint  *ep,
                                GError      **error)
{
  g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_CLOSED, ep->klass->closed_text);
}

/* Sends whole lines (mpq-writer.c gathers them under load), waiting for
 * room at most @timeout_ms. Owner's thread. */
gboolean
_mpq_endpoint_send (MpqEndpoint  *ep,
                    const char   *data,
                    gsize         length,
                    gint          timeout_ms,
                    GError      **error)
{
  return _mpq_endpoint_send_fd (ep, data, length, -1, timeout_ms, error);
}

/* The same, with a payload's descriptor (@pass_fd, not taken; -1 for
 * none) attached to the line. Owner's thread. */
gboolean
_mpq_endpoint_send_fd (MpqEndpoint  *ep,
                       const char   *data,
                       gsize         length,
                       int           pass_fd,
                       gint          timeout_ms,
                       GError      **error)
{
  if (ep->closed || ep->writer == NULL)
    {
      _mpq_endpoint_set_closed_error (ep, error);
      return FALSE;
    }
  if (pass_fd >= 0)
    return _mpq_writer_send_fd (ep->writer, data, length, pass_fd, timeout_ms, error);
  return _mpq_writer_send (ep->writer, data, length, timeout_ms, error);
}

/* Owner's thread. */
gboolean
_mpq_endpoint_flush (MpqEndpoint  *ep,
                     gint          timeout_ms,
                     GError      **error)
{
  if (ep->closed || ep->writer == NULL)
    {
      _mpq_endpoint_set_closed_error (ep, error);
      return FALSE;
    }
  return _mpq_writer_flush (ep->writer, timeout_ms, error);
}

/* The main loop side ---------------------------------------------------- */

/* The socket is readable. The consumer's main context, in its thread. */
static void
read_cb (gpointer user_data)
{
  MpqEndpoint *ep = user_data;

  if (ep->klass->holding == NULL || !ep->klass->holding (ep->owner))
    _mpq_endpoint_read_some (ep);
  ep->klass->deliver (ep->owner);
}

/* The consumer's main context, in its thread. */
static void
deliver_cb (gpointer user_data)
{
  MpqEndpoint *ep = user_data;

  ep->klass->deliver (ep->owner);
}

/* What handlers sent goes out before the context waits, not when the
 * writer thread gets to it. The consumer's main context, in its thread. */
static void
before_wait_cb (gpointer user_data)
{
  MpqEndpoint *ep = user_data;

  if (ep->writer != NULL)
    _mpq_writer_write_pending (ep->writer);
}

static const MpqReadFuncs read_funcs = {
  .read = read_cb,
  .deliver = deliver_cb,
  .before_wait = before_wait_cb,
};

/* Takes the caller's thread-default context as the one signals and async
 * results go to, unless a consumer already chose one. Owner's thread. */
gboolean
_mpq_endpoint_acquire_context (MpqEndpoint *ep)
{
  g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();

  /* Started, or a receive_async: the owner takes what comes. */
  _mpq_debug_idle_stop (&ep->idle);
  if (ep->context == NULL)
    {
      ep->context = g_steal_pointer (&context);
      return TRUE;
    }

  if (ep->context != context)
    {
      g_critical ("%s is already in use from another main context", ep->klass->type_name);
      return FALSE;
    }
  return TRUE;
}

/* Keeps the sources the owner's state calls for (see MpqReadSources):
 * @wanted while someone takes lines through the main loop, @buffered
 * while something waits to be handed out. Once nobody wants them, the
 * context is let go. Owner's thread. */
void
_mpq_endpoint_update_sources (MpqEndpoint *ep,
                              gboolean     wanted,
                              gboolean     buffered)
{
  MpqReadState state = {
    .wanted = wanted && !ep->closed && ep->context != NULL,
    .readable = !ep->read_done,
    .holding = ep->klass->holding != NULL && ep->klass->holding (ep->owner),
    .buffered = buffered,
  };

  _mpq_read_sources_update (&ep->sources, state, ep->context, ep->fd,
                            ep->klass->source_name, &read_funcs, ep);

  if (!state.wanted)
    g_clear_pointer (&ep->context, g_main_context_unref);
}

/* Emits ::closed now, once. From a source on the consumer's context. */
void
_mpq_endpoint_emit_closed (MpqEndpoint *ep)
{
  if (ep->closed_emitted)
    return;
  ep->closed_emitted = TRUE;
  ep->klass->closed (ep->owner);
}

/* The consumer's main context, in its thread. */
static gboolean
closed_idle_cb (gpointer user_data)
{
  MpqEndpoint *ep = user_data;

  g_clear_pointer (&ep->closed_idle, g_source_unref);
  _mpq_endpoint_emit_closed (ep);
  return G_SOURCE_REMOVE;
}

/* Queues ::closed once, from an idle on the consumer's context (or the
 * caller's), never re-entrantly from the call that noticed it. Owner's
 * thread. */
void
_mpq_endpoint_schedule_closed (MpqEndpoint *ep)
{
  g_autoptr(GMainContext) context = NULL;

  if (ep->closed_emitted || ep->closed_idle != NULL)
    return;

  context = ep->context != NULL ? g_main_context_ref (ep->context)
                                : g_main_context_ref_thread_default ();
  ep->closed_idle = _mpq_source_attach (g_idle_source_new (), context,
                                        "[mpq] closed", closed_idle_cb, ep);
}

/* The owner goes: no ::closed may reach it any more. Owner's thread. */
void
_mpq_endpoint_forget_closed (MpqEndpoint *ep)
{
  ep->closed_emitted = TRUE;
  _mpq_clear_source (&ep->closed_idle);
}
