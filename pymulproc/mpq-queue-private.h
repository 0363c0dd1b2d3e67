/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "mpq-channel-private.h"
#include "mpq-queue.h"
#include "mpq-queue-backend-private.h"

G_BEGIN_DECLS

struct _MpqQueue
{
  GObject          parent_instance;

  MpqRole          role;
  guint            max_size;
  gsize            max_message_size;
  gint             put_timeout;
  guint            put_attempts;
  guint            prefetch;
  guint            lease_time;  /* ms, for a queue on a server */
  char            *uri;       /* a queue on a server (mpq-queue-redis.c), or NULL */
  char            *name;

  /* The parent's queue or a child's end of it; made by init (GInitable),
   * or by the first call on an object a binding made without it. */
  MpqInitOnce      init;
  MpqQueueBackend *backend;
  gboolean         started;
  gboolean         closed;

  GString         *line;
};

/* mpq-queue-channel.c */
gboolean _mpq_queue_check_open  (MpqQueue            *self,
                                 GError             **error);
void     _mpq_queue_initable_iface_init (GInitableIface *iface);
GTask   *_mpq_queue_start_task  (MpqQueue            *self,
                                 GCancellable        *cancellable,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data,
                                 gpointer             source_tag);
void     _mpq_queue_channel_iface_init (MpqChannelInterface *iface);

GSubprocess *_mpq_queue_spawn_child (MpqQueue             *self,
                                     GSubprocessLauncher  *launcher,
                                     const char * const   *argv,
                                     gint                 *pid,
                                     GError              **error);
gboolean _mpq_queue_tells_gone    (MpqQueue *self);
gboolean _mpq_queue_find_gone     (MpqQueue *self,
                                   GArray   *ids,
                                   GError  **error);
void     _mpq_queue_sync_children (MpqQueue *self);
void     _mpq_queue_forget_pid    (MpqQueue *self,
                                   gint      pid);

G_END_DECLS
