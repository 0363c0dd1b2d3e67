/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "mpq-channel-private.h"
#include "mpq-endpoint-private.h"
#include "mpq-pipe.h"

G_BEGIN_DECLS

/* Between mpq-pipe.c (the object, sending, spawning) and mpq-pipe-inbox.c
 * (what was read, until it is taken). A pipe is used from one thread at a
 * time, its owner's; its sources run in that thread too (mpq-endpoint.c).
 * No field is shared with a library thread. */
struct _MpqPipe
{
  GObject        parent_instance;

  MpqEndpoint    ep;          /* the socket, the reader, the writer, the sources */
  GQueue         inbox;       /* MpqMessage, read but not taken, oldest first */
  GQueue         raw;         /* RawLine, for receive_json; only while @inbox is empty */
  GQueue         waiters;     /* GTask per pending receive_async, oldest first */
  GString       *line;        /* scratch for encoding */

  gint           send_timeout;
  int            child_fd;    /* the end to hand to a child, -1 once spawned */
  MpqRole        role;
  MpqInitOnce    init;        /* GInitable: the descriptor, made or claimed */

  guint          started : 1;
  guint          eos_taken : 1;   /* reading stopped and that was reported */
  guint          wait_first : 1;  /* the last blocking receive had to wait */
  guint          json_mode : 1;   /* the consumer takes lines (receive_json) */
  guint          lines_seen : 1;  /* a line came: the peer's hello, if any, too */
  guint          peer_fds : 1;    /* the peer takes payloads by descriptor */
  guint          emitting : 1;    /* ::message-received handlers are running */
};

extern const MpqEndpointClass _mpq_pipe_endpoint_class;

gboolean    _mpq_pipe_open_once      (MpqPipe              *self,
                                      GError              **error);

/* Every public call starts here: a pipe a binding made with
 * g_object_new() is opened on first use (see MpqInitOnce). A pipe closed
 * before that stays closed, unopened. Owner's thread. */
static inline gboolean
_mpq_pipe_ensure_open (MpqPipe  *self,
                       GError  **error)
{
  if (G_LIKELY ((self->init.done && self->init.error == NULL) || self->ep.closed))
    return TRUE;
  return _mpq_pipe_open_once (self, error);
}

gboolean    _mpq_pipe_send_line      (MpqPipe              *self,
                                      GError              **error);
gboolean    _mpq_pipe_send_with_payload (MpqPipe           *self,
                                         MpqMessage        *message,
                                         GBytes            *payload,
                                         GError           **error);
void        _mpq_pipe_update_sources (MpqPipe              *self);
void        _mpq_pipe_fail_waiters   (MpqPipe              *self,
                                      GError               *error);
void        _mpq_pipe_clear_inbox    (MpqPipe              *self);

MpqMessage *_mpq_pipe_receive        (MpqChannel           *channel,
                                      gint                  timeout_ms,
                                      MpqMessageFilter      filter,
                                      gpointer              user_data,
                                      GError              **error);
char       *_mpq_pipe_receive_json   (MpqChannel           *channel,
                                      gint                  timeout_ms,
                                      GError              **error);
void        _mpq_pipe_receive_async  (MpqChannel           *channel,
                                      GCancellable         *cancellable,
                                      GAsyncReadyCallback   callback,
                                      gpointer              user_data);
MpqMessage *_mpq_pipe_receive_finish (MpqChannel           *channel,
                                      GAsyncResult         *result,
                                      GError              **error);

G_END_DECLS
