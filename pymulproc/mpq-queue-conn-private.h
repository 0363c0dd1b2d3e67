/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "mpq-frame-private.h"
#include "mpq-line-reader-private.h"
#include "mpq-queue-state-private.h"

G_BEGIN_DECLS

/* One child's connection to the parent's queue (mpq-queue-conn.c). A
 * connection belongs to the queue's thread once adopted: every function
 * here but _mpq_queue_conn_new and _mpq_queue_conn_free (before adoption,
 * or once the thread is gone) runs in that thread only. */
typedef struct _MpqQueueConn MpqQueueConn;

/* A payload's descriptor to pass with the byte of @out at @offset (the
 * first of the frame that carries its line). */
typedef struct
{
  gsize offset;
  int   fd;
} MpqQueueMark;

/* One child's connection to the parent's queue: its socket, the frames it
 * sends and the answers it is owed. Everything here runs in the queue's
 * thread; the fields marked @lock are also read by the state (under the
 * lock, in any thread). */
struct _MpqQueueConn
{
  MpqQueuePeer    peer;         /* @lock; first, so a peer is a conn */
  MpqQueueServer *server;
  int             fd;
  gint            spawned_pid;  /* the process spawned for this socket, or 0 */
  MpqLineReader   reader;
  GIOChannel     *channel;
  GSource        *in_watch;
  GSource        *out_watch;
  GString        *out;          /* not yet written */
  gsize           outpos;
  GArray         *marks;        /* MpqQueueMark: descriptors to pass with @out */
  GArray         *fds;          /* int: payloads' descriptors read, not yet claimed */
  MpqQueueQuota  *quota;        /* what its puts hold by descriptor */
  gboolean        takes_fds;    /* @lock: its hello said it takes descriptors */
  GQueue          held;         /* @lock: MpqQueueEntry in hand, in the order handed out */
  guint32         next_tag;
  GQueue          wants;        /* @lock: MpqQueuePending */
  GQueue          joins;        /* @lock: MpqQueuePending */
  guint           n_pending;    /* @lock: gets, wants and joins waiting */
  gint            credit;       /* @lock: lent and unused; -1 for an unbounded queue */
  gboolean        wants_credit; /* @lock */
  gboolean        told_full;    /* @lock: answered "full" to this request */
  gboolean        dead;
  gboolean        hanging_up;   /* a write failed: its backlog is read, then it is dropped */
  gboolean        read_ended;   /* ... and reading it ended (end, or an error) */
};

/* mpq-queue-conn.c: the socket. */

MpqQueueConn *_mpq_queue_conn_new       (MpqQueueServer *server,
                                         int             fd,
                                         gint            pid,
                                         gsize           max_message_size);
void          _mpq_queue_conn_free      (MpqQueueConn   *conn);
void          _mpq_queue_conn_adopt     (MpqQueueConn   *conn,
                                         gsize           max_message_size);
void          _mpq_queue_conn_set_max_message_size (MpqQueueConn *conn,
                                                    gsize         max_message_size);
gboolean      _mpq_queue_conn_is_conn   (MpqQueuePeer   *peer);
gboolean      _mpq_queue_conn_read      (MpqQueueConn   *conn,
                                         gsize          *n_read);
gsize         _mpq_queue_conn_backlog   (MpqQueueConn   *conn);
void          _mpq_queue_conn_flush     (MpqQueueConn   *conn);
gboolean      _mpq_queue_conn_has_output (MpqQueueConn  *conn);
void          _mpq_queue_conn_drop      (MpqQueueConn   *conn,
                                         GError         *error);

/* mpq-queue-requests.c: what the child asks. */
extern const MpqQueuePeerClass _mpq_queue_conn_class;

void          _mpq_queue_pending_free   (MpqQueuePending *pending);
gboolean      _mpq_queue_conn_apply_frame_locked (MpqQueueConn  *conn,
                                                  MpqFrame      *frame,
                                                  GError       **error);
gboolean      _mpq_queue_conn_apply_put_locked   (MpqQueueConn  *conn,
                                                  MpqQueueEntry *entry,
                                                  GError       **error);

/* Queue thread: writes out what every child is owed (mpq-queue-thread.c). */
void          _mpq_queue_flush_all      (MpqQueueServer *server);

G_END_DECLS
