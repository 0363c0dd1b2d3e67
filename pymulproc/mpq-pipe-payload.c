/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "mpq-codec-private.h"
#include "mpq-debug-private.h"
#include "mpq-payload-private.h"
#include "mpq-pipe-private.h"
#include "mpq-spawn-private.h"

/* A pipe's binary payloads (docs/design-decisions.md, "Payloads by
 * descriptor"): inline while small, else a sealed memfd passed with the
 * line to a peer that takes descriptors. Receiving them is the inbox's
 * (mpq-pipe-inbox.c) and the codec's. The pipe's owner's thread. */

/* Whether the peer takes payloads by descriptor. A child says so in its
 * first line, if at all: when a payload would not fit in a line inline,
 * wait (the send's time-out) for that first line, read with the others. */
static gboolean
peer_takes_fds (MpqPipe *self,
                gsize    inline_length)
{
  gint64 deadline;

  if (self->role != MPQ_ROLE_PARENT || self->lines_seen)
    return self->peer_fds;

  _mpq_endpoint_read_some (&self->ep);
  _mpq_pipe_update_sources (self);
  if (self->lines_seen || inline_length <= self->ep.max_message_size)
    return self->peer_fds;

  deadline = _mpq_deadline_from_timeout (self->send_timeout);
  while (!self->lines_seen && !self->ep.read_done && self->ep.fd >= 0 &&
         _mpq_wait_fd (self->ep.fd, POLLIN, deadline))
    _mpq_endpoint_read_some (&self->ep);
  _mpq_pipe_update_sources (self);
  return self->peer_fds;
}

/* A message with a payload: inline (base64) while it is small or the
 * peer takes no descriptors, else with a sealed memfd. */
gboolean
_mpq_pipe_send_with_payload (MpqPipe     *self,
                             MpqMessage  *message,
                             GBytes      *payload,
                             GError     **error)
{
  gsize size = g_bytes_get_size (payload);
  int fd;
  gboolean ok;

  if (_mpq_payload_goes_inline (size, self->ep.max_message_size) ||
      !peer_takes_fds (self, _mpq_payload_inline_length (size)))
    return _mpq_codec_encode (message, self->line, error) && _mpq_pipe_send_line (self, error);

  if (!_mpq_codec_encode_full (message, TRUE, self->line, error) ||
      !_mpq_endpoint_check_size (&self->ep, self->line->len, error))
    return FALSE;
  fd = _mpq_payload_memfd_new (payload, error);
  if (fd < 0)
    return FALSE;

  MPQ_DEBUG_LINE (">", self->line->str, self->line->len);
  g_string_append_c (self->line, '\n');
  ok = _mpq_endpoint_send_fd (&self->ep, self->line->str, self->line->len, fd,
                              self->send_timeout, error);
  close (fd);
  return ok;
}

