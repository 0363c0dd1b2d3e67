/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "mpq-channel.h"
#include "mpq-endpoint-private.h"
#include "mpq-frame-private.h"

G_BEGIN_DECLS

/* A child's end of a queue: requests to the parent's server, answers and
 * dispatched messages back (docs/protocol.md). Emits on @channel. */
typedef struct _MpqQueueClient MpqQueueClient;

MpqQueueClient *_mpq_queue_client_new        (MpqChannel      *channel,
                                              int              fd,
                                              gsize            max_message_size,
                                              GError         **error);
void            _mpq_queue_client_detach     (MpqQueueClient  *client);
void            _mpq_queue_client_unref      (MpqQueueClient  *client);
void            _mpq_queue_client_close      (MpqQueueClient  *client);
gboolean        _mpq_queue_client_is_closed  (MpqQueueClient  *client);
gint            _mpq_queue_client_get_parent_pid (MpqQueueClient *client);
void            _mpq_queue_client_set_max_message_size (MpqQueueClient *client,
                                                        gsize           size);
gsize           _mpq_queue_client_get_max_message_size (MpqQueueClient *client);

gboolean        _mpq_queue_client_put        (MpqQueueClient  *client,
                                              GString         *line,
                                              int              pass_fd,
                                              gint             put_timeout_ms,
                                              guint            put_attempts,
                                              GError         **error);
MpqMessage     *_mpq_queue_client_take       (MpqQueueClient  *client,
                                              gint             timeout_ms,
                                              MpqMessageFilter filter,
                                              gpointer         user_data,
                                              GError         **error);
MpqMessage     *_mpq_queue_client_take_for_me (MpqQueueClient *client,
                                               gint            timeout_ms,
                                               GError        **error);
gboolean        _mpq_queue_client_is_empty   (MpqQueueClient  *client,
                                              GError         **error);
gboolean        _mpq_queue_client_join       (MpqQueueClient  *client,
                                              gint             timeout_ms,
                                              GError         **error);
void            _mpq_queue_client_want_async (MpqQueueClient  *client,
                                              GTask           *task);
MpqMessage     *_mpq_queue_client_finish_want (GTask          *task,
                                               GError        **error);
void            _mpq_queue_client_join_async (MpqQueueClient  *client,
                                              GTask           *task);
gboolean        _mpq_queue_client_flush      (MpqQueueClient  *client,
                                              gint             timeout_ms,
                                              GError         **error);
void            _mpq_queue_client_start      (MpqQueueClient  *client,
                                              guint            prefetch);
void            _mpq_queue_client_stop       (MpqQueueClient  *client);

/* Between mpq-queue-client.c (the connection, its frames and the blocking
 * calls) and mpq-queue-client-loop.c (the main loop side: async requests
 * and dispatch). A child's queue is used from one thread at a time, its
 * owner's, where its sources run too (mpq-endpoint.c); only @refs is
 * touched from elsewhere (a result finalized in another thread), atomically. */
struct _MpqQueueClient
{
  gint           refs;         /* the queue, and each result in flight; atomic */
  MpqChannel    *channel;      /* unowned: owns us; NULL once detached */
  MpqEndpoint    ep;           /* the socket to the parent's server */
  gint           parent_pid;
  gboolean       server_fds;   /* the server takes payloads by descriptor */
  gint           credit;       /* -1: unbounded */
  gboolean       asked_credit;
  gboolean       heard_full;    /* the server said "full" since we asked */
  gsize          own_max;      /* max-message-size as set on this end */
  gsize          parent_max;   /* ... as the parent's hello or limits said */
  gint64         next_id;
  GQueue         replies;      /* MpqFrame with an id, not yet claimed */
  GQueue         pushed;       /* MpqFrame pushed by dispatch */
  GQueue         ops;          /* AsyncOp */
  GString       *answers;      /* acks not yet written */
  GString       *scratch;
  guint          stops_pending;
  gint64         in_hand_tag;  /* pushed message whose handlers run, or 0 */
  gboolean       started;
  gboolean       delivering;   /* in deliver (), maybe in a handler */
};

extern const MpqEndpointClass _mpq_queue_client_endpoint_class;

gboolean  _mpq_queue_client_take_line    (gpointer         owner,
                                           const char      *line,
                                           gsize            length,
                                           GError         **error);
gboolean  _mpq_queue_client_write_all     (MpqQueueClient  *client,
                                           const char      *data,
                                           gsize            length,
                                           GError         **error);
gboolean  _mpq_queue_client_write_frame   (MpqQueueClient  *client,
                                           GString         *frame,
                                           GError         **error);
gboolean  _mpq_queue_client_flush_answers (MpqQueueClient  *client,
                                           GError         **error);
void      _mpq_queue_client_answer        (MpqQueueClient  *client,
                                           MpqFrameOp       op,
                                           gint64           tag);
MpqFrame *_mpq_queue_client_claim_reply   (MpqQueueClient  *client,
                                           gint64           id);
void      _mpq_queue_client_closed_error  (MpqQueueClient  *client,
                                           GError         **error);
void      _mpq_queue_client_update_sources (MpqQueueClient *client);
void      _mpq_queue_client_fail_ops      (MpqQueueClient  *client);

G_END_DECLS
