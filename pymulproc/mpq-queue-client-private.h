/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "mpq-channel.h"

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
                                              gint             put_timeout_ms,
                                              guint            put_attempts,
                                              GError         **error);
MpqMessage     *_mpq_queue_client_take       (MpqQueueClient  *client,
                                              gint             timeout_ms,
                                              MpqMessageFilter filter,
                                              gpointer         user_data,
                                              GError         **error);
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

G_END_DECLS
