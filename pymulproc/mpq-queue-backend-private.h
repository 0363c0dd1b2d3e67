/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "mpq-channel.h"

G_BEGIN_DECLS

/* How an MpqQueue works: the parent's queue (mpq-queue-parent.c: the queue
 * itself, served by the library's thread) or a child's end of it
 * (mpq-queue-child.c: requests over its socket). MpqQueue only checks its
 * arguments and dispatches. Every call runs in the thread that uses the
 * queue (one at a time). */
typedef struct _MpqQueueBackend MpqQueueBackend;

typedef struct
{
  /* Puts @line (encoded, no newline) at the back; @message (nullable) is
   * the same, already built; @pass_fd (taken; -1 for none) the memfd of
   * its payload when the line says {"fd":N}. Waits for room as the
   * queue's put-timeout and put-attempts say. */
  gboolean     (*put)          (MpqQueueBackend      *backend,
                                MpqMessage           *message,
                                GString              *line,
                                int                   pass_fd,
                                gint                  recipient_pid,
                                gint                  put_timeout_ms,
                                guint                 put_attempts,
                                GError              **error);
  /* Whether a payload may travel by descriptor (the far end said so). */
  gboolean     (*takes_fds)    (MpqQueueBackend      *backend);
  MpqMessage  *(*take)         (MpqQueueBackend      *backend,
                                gint                  timeout_ms,
                                MpqMessageFilter      filter,
                                gpointer              user_data,
                                GError              **error);
  /* A routed receive that blocks (receive_for_me): the next message
   * addressed to this process, or to nobody and put by another; waits as
   * take does; NULL without error when none came in time. */
  MpqMessage  *(*take_for_me)  (MpqQueueBackend      *backend,
                                gint                  timeout_ms,
                                GError              **error);
  /* The parent's only (NULL in a child): makes sure that what children
   * wrote before now is in the queue; drops what waits for @pid, a
   * process gone for good. */
  void         (*sync)         (MpqQueueBackend      *backend);
  void         (*forget_pid)   (MpqQueueBackend      *backend,
                                gint                  pid);
  gboolean     (*is_empty)     (MpqQueueBackend      *backend,
                                GError              **error);
  gboolean     (*join)         (MpqQueueBackend      *backend,
                                gint                  timeout_ms,
                                GError              **error);
  void         (*join_async)   (MpqQueueBackend      *backend,
                                GTask                *task);
  /* A routed receive, answered through @task (source tag set). */
  void         (*want_async)   (MpqQueueBackend      *backend,
                                GTask                *task);
  MpqMessage  *(*want_finish)  (MpqQueueBackend      *backend,
                                GTask                *task,
                                GError              **error);
  gboolean     (*flush)        (MpqQueueBackend      *backend,
                                gint                  timeout_ms,
                                GError              **error);
  /* Dispatch, emitting on the queue in the caller's thread-default context. */
  void         (*start)        (MpqQueueBackend      *backend,
                                guint                 prefetch);
  void         (*stop)         (MpqQueueBackend      *backend);
  /* Idempotent; says ::closed on the queue, from an idle. */
  void         (*close)        (MpqQueueBackend      *backend);
  gboolean     (*is_closed)    (MpqQueueBackend      *backend);
  gint         (*get_parent_pid) (MpqQueueBackend    *backend);
  /* This participant's id, the queue's pid property and the sender a
   * send with sender 0 writes; NULL: the process's pid. */
  gint         (*get_pid)      (MpqQueueBackend      *backend);
  /* The limit set on this end; returns the one in force. */
  gsize        (*set_max_message_size) (MpqQueueBackend *backend,
                                        gsize            size);
  /* The limit in force (a child's: MIN of its own and its parent's). */
  gsize        (*get_max_message_size) (MpqQueueBackend *backend);
  /* A queue on a server's: how long a message in hand stays ours
   * without renewal (lease-time); NULL for the others. */
  void         (*set_lease_time) (MpqQueueBackend    *backend,
                                  guint               lease_time_ms);
  /* *@pid: the child's pid in the queue, when the backend knows it
   * before the child says anything (a queue on a server); left 0
   * otherwise (the OS pid is). */
  GSubprocess *(*spawn)        (MpqQueueBackend      *backend,
                                GSubprocessLauncher  *launcher,
                                const char * const   *argv,
                                gint                 *pid,
                                GError              **error);
  /* A queue on a server's: @ids (gint) becomes those of them that left
   * the queue or whose lease ended; NULL for the others (a local queue
   * sees its children's sockets). */
  gboolean     (*find_gone)    (MpqQueueBackend      *backend,
                                GArray               *ids,
                                GError              **error);
  void         (*free)         (MpqQueueBackend      *backend);
} MpqQueueBackendClass;

struct _MpqQueueBackend
{
  const MpqQueueBackendClass *klass;
  MpqChannel                 *channel;   /* the queue; not a reference */
  GSource                    *closed_idle; /* ::closed on its way */
};

/* mpq-queue-channel.c, the queue's user's thread: ::closed on the queue
 * from an idle of the thread-default context, after the close () that
 * scheduled it returned, as a pipe does. A backend's free () clears
 * @closed_idle (_mpq_clear_source ()). */
void _mpq_queue_backend_schedule_closed (MpqQueueBackend *backend,
                                         const char      *name);

MpqQueueBackend *_mpq_queue_parent_backend_new (MpqChannel  *channel,
                                                guint        max_size,
                                                GError     **error);
MpqQueueBackend *_mpq_queue_child_backend_new  (MpqChannel  *channel,
                                                gsize        max_message_size,
                                                GError     **error);

G_END_DECLS
