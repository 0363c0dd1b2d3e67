/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdlib.h>
#include <unistd.h>

#include "mpq-channel-private.h"
#include "mpq-error.h"
#include "mpq-protocol.h"
#include "mpq-queue-backend-private.h"
#include "mpq-queue-server-private.h"
#include "mpq-spawn-private.h"
#include "mpq-source-private.h"

/* The parent's queue as an MpqQueue backend: the queue itself
 * (MpqQueueServer, served by the library's thread), spawning children
 * into it, and the parent's own dispatch. The queue's user's thread. */

typedef struct
{
  MpqQueueBackend  parent;
  MpqQueueServer  *server;       /* NULL once closed */
  gsize            max_message_size;

  /* The parent's dispatch. */
  GMainContext    *context;
  GSource         *wake;
  gboolean         started;

} ParentBackend;

static gboolean
task_cancelled_cb (GCancellable *cancellable,
                   gpointer      user_data)
{
  GTask *task = user_data;
  ParentBackend *self = g_task_get_task_data (task);

  if (self->server != NULL && _mpq_queue_server_cancel_task (self->server, task))
    {
      g_task_return_error_if_cancelled (task);
      g_object_unref (task);
    }
  return G_SOURCE_REMOVE;
}

/* A cancelled call fails with G_IO_ERROR_CANCELLED even when a message was
 * already on its way: that message goes back to the queue when the result
 * is dropped (see Held in mpq-queue-local.c). */
static void
watch_cancel (ParentBackend *self,
              GTask         *task)
{
  g_task_set_task_data (task, self, NULL);
  _mpq_task_watch_cancel (task, g_task_get_context (task), task_cancelled_cb, task);
}

static gboolean
parent_put (MpqQueueBackend  *backend,
            MpqMessage       *message,
            GString          *line,
            int               pass_fd,
            gint              recipient_pid,
            gint              put_timeout_ms,
            guint             put_attempts,
            GError          **error)
{
  ParentBackend *self = (ParentBackend *) backend;

  return _mpq_queue_server_put (self->server, message, line, pass_fd, recipient_pid,
                                put_timeout_ms, put_attempts, error);
}

/* The server passes descriptors to children that take them, and inlines
 * payloads for the others. */
static gboolean
parent_takes_fds (MpqQueueBackend *backend)
{
  return TRUE;
}

static MpqMessage *
parent_take (MpqQueueBackend   *backend,
             gint               timeout_ms,
             MpqMessageFilter   filter,
             gpointer           user_data,
             GError           **error)
{
  ParentBackend *self = (ParentBackend *) backend;

  return _mpq_queue_server_take (self->server, timeout_ms, filter, user_data, error);
}

static MpqMessage *
parent_take_for_me (MpqQueueBackend  *backend,
                    gint              timeout_ms,
                    GError          **error)
{
  return _mpq_queue_server_take_for_me (((ParentBackend *) backend)->server, timeout_ms, error);
}

static void
parent_sync (MpqQueueBackend *backend)
{
  _mpq_queue_server_sync (((ParentBackend *) backend)->server);
}

static void
parent_forget_pid (MpqQueueBackend *backend,
                   gint             pid)
{
  _mpq_queue_server_forget_pid (((ParentBackend *) backend)->server, pid);
}

static gboolean
parent_is_empty (MpqQueueBackend  *backend,
                 GError          **error)
{
  return _mpq_queue_server_is_empty (((ParentBackend *) backend)->server);
}

static gboolean
parent_join (MpqQueueBackend  *backend,
             gint              timeout_ms,
             GError          **error)
{
  return _mpq_queue_server_join (((ParentBackend *) backend)->server, timeout_ms, error);
}

static void
parent_join_async (MpqQueueBackend *backend,
                   GTask           *task)
{
  ParentBackend *self = (ParentBackend *) backend;

  watch_cancel (self, task);
  _mpq_queue_server_join_async (self->server, task);
}

static void
parent_want_async (MpqQueueBackend *backend,
                   GTask           *task)
{
  ParentBackend *self = (ParentBackend *) backend;

  watch_cancel (self, task);
  _mpq_queue_server_want_async (self->server, task);
}

static MpqMessage *
parent_want_finish (MpqQueueBackend  *backend,
                    GTask            *task,
                    GError          **error)
{
  return _mpq_queue_server_finish_want (task, error);
}

static gboolean
parent_flush (MpqQueueBackend  *backend,
              gint              timeout_ms,
              GError          **error)
{
  /* The parent's sends are in the queue already. */
  return TRUE;
}

/* The parent's dispatch: emits what the server handed it, a batch at a
 * time (see MpqDispatchBatch), each counted as taken once its handlers
 * returned. */
static gboolean
wake_cb (gpointer user_data)
{
  ParentBackend *self = user_data;
  MpqChannel *channel = g_object_ref (self->parent.channel);
  MpqDispatchBatch batch;
  gboolean more = FALSE;

  _mpq_dispatch_batch_init (&batch);
  while (self->started && self->server != NULL && !batch.over)
    {
      MpqMessage *message = _mpq_queue_server_pop_local (self->server, &more);
      gint recipient;
      gint64 work_us;

      if (message == NULL)
        break;
      recipient = mpq_message_get_recipient_pid (message);
      work_us = _mpq_dispatch_batch_emit (&batch, channel, message);
      g_object_unref (message);
      /* A handler may have closed the queue. */
      if (self->server != NULL)
        _mpq_queue_server_local_done (self->server, recipient, work_us);
      if (!more)
        break;
    }

  if (more && self->wake != NULL)
    g_source_set_ready_time (self->wake, 0);

  g_object_unref (channel);
  return G_SOURCE_CONTINUE;
}

static void
clear_wake (ParentBackend *self)
{
  _mpq_clear_source (&self->wake);
  g_clear_pointer (&self->context, g_main_context_unref);
}

static void
parent_start (MpqQueueBackend *backend,
              guint            prefetch)
{
  ParentBackend *self = (ParentBackend *) backend;
  g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();

  if (self->context != context)
    {
      clear_wake (self);
      self->context = g_steal_pointer (&context);
      self->wake = _mpq_source_attach (_mpq_wake_source_new (), self->context,
                                       "[mpq] queue dispatch", wake_cb, self);
    }

  self->started = TRUE;
  _mpq_queue_server_start_local (self->server, self->wake, prefetch);
}

static void
parent_stop (MpqQueueBackend *backend)
{
  ParentBackend *self = (ParentBackend *) backend;

  self->started = FALSE;
  if (self->server != NULL)
    _mpq_queue_server_stop_local (self->server);
}

static void
parent_close (MpqQueueBackend *backend)
{
  ParentBackend *self = (ParentBackend *) backend;

  if (self->server == NULL)
    return;

  self->started = FALSE;
  _mpq_queue_server_close (self->server);
  g_clear_pointer (&self->server, _mpq_queue_server_unref);
  clear_wake (self);

  _mpq_queue_backend_schedule_closed (backend, "[mpq] queue closed");
}

static gboolean
parent_is_closed (MpqQueueBackend *backend)
{
  return ((ParentBackend *) backend)->server == NULL;
}

static gint
parent_get_parent_pid (MpqQueueBackend *backend)
{
  return _mpq_own_pid ();
}

static gsize
parent_set_max_message_size (MpqQueueBackend *backend,
                             gsize            size)
{
  ParentBackend *self = (ParentBackend *) backend;

  self->max_message_size = size;
  if (self->server != NULL)
    _mpq_queue_server_set_max_message_size (self->server, size);
  return size;
}

static gsize
parent_get_max_message_size (MpqQueueBackend *backend)
{
  return ((ParentBackend *) backend)->max_message_size;
}

static GSubprocess *
parent_spawn (MpqQueueBackend      *backend,
              GSubprocessLauncher  *launcher,
              const char * const   *argv,
              gint                 *pid,
              GError              **error)
{
  ParentBackend *self = (ParentBackend *) backend;
  GSubprocess *subprocess;
  const char *identifier;
  gsize max_message_size;
  int fds[2];

  if (!_mpq_socketpair (fds, error))
    return NULL;

  /* The hello waits for the child before it runs: a child that writes and
   * exits at once finds its socket whole, and the queue reads it all. */
  max_message_size = _mpq_queue_server_write_hello (self->server, fds[0], error);
  if (max_message_size == 0)
    {
      close (fds[0]);
      close (fds[1]);
      return NULL;
    }

  subprocess = _mpq_spawn_child (launcher, fds[1], "queue", argv, error);
  if (subprocess == NULL)
    {
      close (fds[0]);
      return NULL;
    }

  /* NULL once GLib reaped a child that exited at once: it can then say
   * hello for nobody, and what it wrote is read all the same. */
  identifier = g_subprocess_get_identifier (subprocess);
  _mpq_queue_server_add_child (self->server, fds[0],
                               identifier != NULL ? atoi (identifier) : 0, max_message_size);
  return subprocess;
}

static void
parent_free (MpqQueueBackend *backend)
{
  ParentBackend *self = (ParentBackend *) backend;

  parent_close (backend);
  _mpq_clear_source (&self->parent.closed_idle);
  g_free (self);
}

static const MpqQueueBackendClass parent_class = {
  .put = parent_put,
  .takes_fds = parent_takes_fds,
  .take = parent_take,
  .take_for_me = parent_take_for_me,
  .sync = parent_sync,
  .forget_pid = parent_forget_pid,
  .is_empty = parent_is_empty,
  .join = parent_join,
  .join_async = parent_join_async,
  .want_async = parent_want_async,
  .want_finish = parent_want_finish,
  .flush = parent_flush,
  .start = parent_start,
  .stop = parent_stop,
  .close = parent_close,
  .is_closed = parent_is_closed,
  .get_parent_pid = parent_get_parent_pid,
  .set_max_message_size = parent_set_max_message_size,
  .get_max_message_size = parent_get_max_message_size,
  .spawn = parent_spawn,
  .free = parent_free,
};

/* Makes the queue and starts the thread that serves it. */
MpqQueueBackend *
_mpq_queue_parent_backend_new (MpqChannel  *channel,
                               guint        max_size,
                               GError     **error)
{
  ParentBackend *self;
  MpqQueueServer *server = _mpq_queue_server_new (max_size, error);

  if (server == NULL)
    return NULL;

  self = g_new0 (ParentBackend, 1);
  self->parent.klass = &parent_class;
  self->parent.channel = channel;
  self->server = server;
  self->max_message_size = MPQ_DEFAULT_MAX_MESSAGE_SIZE;
  return &self->parent;
}
