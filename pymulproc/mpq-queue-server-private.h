/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "mpq-message.h"
#include "mpq-queue-state-private.h"

G_BEGIN_DECLS

/* The queue itself, in the parent: the FIFO, what every participant has in
 * hand, and the thread that serves the children's sockets (see
 * mpq-queue-state-private.h for its rooms). The parent's own calls work on
 * it directly, under its lock. Every function here runs in the caller's
 * thread unless it says otherwise. */

MpqQueueServer *_mpq_queue_server_new        (guint             max_size,
                                              GError          **error);
void            _mpq_queue_server_close      (MpqQueueServer   *server);
void            _mpq_queue_server_unref      (MpqQueueServer   *server);

void            _mpq_queue_server_set_max_message_size (MpqQueueServer *server,
                                                        gsize           size);
gsize           _mpq_queue_server_write_hello (MpqQueueServer  *server,
                                               int              fd,
                                               GError         **error);
void            _mpq_queue_server_add_child  (MpqQueueServer   *server,
                                              int               fd,
                                              gint              pid,
                                              gsize             max_message_size);

gboolean        _mpq_queue_server_put        (MpqQueueServer   *server,
                                              MpqMessage       *message,
                                              GString          *line,
                                              int               pass_fd,
                                              gint              recipient,
                                              gint              put_timeout_ms,
                                              guint             put_attempts,
                                              GError          **error);
MpqMessage     *_mpq_queue_server_take       (MpqQueueServer   *server,
                                              gint              timeout_ms,
                                              MpqMessageFilter  filter,
                                              gpointer          user_data,
                                              GError          **error);
MpqMessage     *_mpq_queue_server_take_for_me (MpqQueueServer  *server,
                                               gint             timeout_ms,
                                               GError         **error);
gboolean        _mpq_queue_server_is_empty   (MpqQueueServer   *server);
void            _mpq_queue_server_sync       (MpqQueueServer   *server);
void            _mpq_queue_server_forget_pid (MpqQueueServer   *server,
                                              gint              pid);
gboolean        _mpq_queue_server_join       (MpqQueueServer   *server,
                                              gint              timeout_ms,
                                              GError          **error);
void            _mpq_queue_server_join_async (MpqQueueServer   *server,
                                              GTask            *task);
void            _mpq_queue_server_want_async (MpqQueueServer   *server,
                                              GTask            *task);
gboolean        _mpq_queue_server_cancel_task (MpqQueueServer  *server,
                                               GTask           *task);
MpqMessage     *_mpq_queue_server_finish_want (GTask           *task,
                                               GError         **error);

/* Dispatch to the parent itself: the server hands messages over and makes
 * @wake ready; the owner pops and reports each one done after its handlers. */
void            _mpq_queue_server_start_local (MpqQueueServer  *server,
                                               GSource         *wake,
                                               guint            prefetch);
void            _mpq_queue_server_stop_local  (MpqQueueServer  *server);
MpqMessage     *_mpq_queue_server_pop_local   (MpqQueueServer  *server,
                                               gboolean        *more);
void            _mpq_queue_server_local_done  (MpqQueueServer  *server,
                                               gint             recipient,
                                               gint64           work_us);

G_END_DECLS
