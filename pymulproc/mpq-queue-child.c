/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <unistd.h>

#include "mpq-error.h"
#include "mpq-queue-backend-private.h"
#include "mpq-queue-client-private.h"
#include "mpq-spawn-private.h"

/* A child's end of the parent's queue as an MpqQueue backend: each call
 * is a request over its socket (mpq-queue-client.c). The queue's user's
 * thread. */

typedef struct
{
  MpqQueueBackend  parent;
  MpqQueueClient  *client;
} ChildBackend;

#define CLIENT(backend) (((ChildBackend *) (backend))->client)

static gboolean
child_put (MpqQueueBackend  *backend,
           MpqMessage       *message,
           GString          *line,
           int               pass_fd,
           gint              recipient_pid,
           gint              put_timeout_ms,
           guint             put_attempts,
           GError          **error)
{
  g_string_append_c (line, '\n');
  return _mpq_queue_client_put (CLIENT (backend), line, pass_fd, put_timeout_ms, put_attempts,
                                error);
}

static gboolean
child_takes_fds (MpqQueueBackend *backend)
{
  return CLIENT (backend)->server_fds;
}

static MpqMessage *
child_take (MpqQueueBackend   *backend,
            gint               timeout_ms,
            MpqMessageFilter   filter,
            gpointer           user_data,
            GError           **error)
{
  return _mpq_queue_client_take (CLIENT (backend), timeout_ms, filter, user_data, error);
}

static MpqMessage *
child_take_for_me (MpqQueueBackend  *backend,
                   gint              timeout_ms,
                   GError          **error)
{
  return _mpq_queue_client_take_for_me (CLIENT (backend), timeout_ms, error);
}

static gboolean
child_is_empty (MpqQueueBackend  *backend,
                GError          **error)
{
  return _mpq_queue_client_is_empty (CLIENT (backend), error);
}

static gboolean
child_join (MpqQueueBackend  *backend,
            gint              timeout_ms,
            GError          **error)
{
  return _mpq_queue_client_join (CLIENT (backend), timeout_ms, error);
}

static void
child_join_async (MpqQueueBackend *backend,
                  GTask           *task)
{
  _mpq_queue_client_join_async (CLIENT (backend), task);
}

static void
child_want_async (MpqQueueBackend *backend,
                  GTask           *task)
{
  _mpq_queue_client_want_async (CLIENT (backend), task);
}

static MpqMessage *
child_want_finish (MpqQueueBackend  *backend,
                   GTask            *task,
                   GError          **error)
{
  return _mpq_queue_client_finish_want (task, error);
}

static gboolean
child_flush (MpqQueueBackend  *backend,
             gint              timeout_ms,
             GError          **error)
{
  return _mpq_queue_client_flush (CLIENT (backend), timeout_ms, error);
}

static void
child_start (MpqQueueBackend *backend,
             guint            prefetch)
{
  _mpq_queue_client_start (CLIENT (backend), prefetch);
}

static void
child_stop (MpqQueueBackend *backend)
{
  _mpq_queue_client_stop (CLIENT (backend));
}

static void
child_close (MpqQueueBackend *backend)
{
  /* The client says ::closed, once, whoever noticed first. */
  _mpq_queue_client_close (CLIENT (backend));
}

static gboolean
child_is_closed (MpqQueueBackend *backend)
{
  return _mpq_queue_client_is_closed (CLIENT (backend));
}

static gint
child_get_parent_pid (MpqQueueBackend *backend)
{
  return _mpq_queue_client_get_parent_pid (CLIENT (backend));
}

static gsize
child_set_max_message_size (MpqQueueBackend *backend,
                            gsize            size)
{
  _mpq_queue_client_set_max_message_size (CLIENT (backend), size);
  return _mpq_queue_client_get_max_message_size (CLIENT (backend));
}

static gsize
child_get_max_message_size (MpqQueueBackend *backend)
{
  return _mpq_queue_client_get_max_message_size (CLIENT (backend));
}

static GSubprocess *
child_spawn (MpqQueueBackend      *backend,
             GSubprocessLauncher  *launcher,
             const char * const   *argv,
             gint                 *pid,
             GError              **error)
{
  g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_FAILED, "Only the queue's parent can spawn");
  return NULL;
}

static void
child_free (MpqQueueBackend *backend)
{
  ChildBackend *self = (ChildBackend *) backend;

  _mpq_queue_client_detach (self->client);
  g_clear_pointer (&self->client, _mpq_queue_client_unref);
  g_free (self);
}

static const MpqQueueBackendClass child_class = {
  .put = child_put,
  .takes_fds = child_takes_fds,
  .take = child_take,
  .take_for_me = child_take_for_me,
  .is_empty = child_is_empty,
  .join = child_join,
  .join_async = child_join_async,
  .want_async = child_want_async,
  .want_finish = child_want_finish,
  .flush = child_flush,
  .start = child_start,
  .stop = child_stop,
  .close = child_close,
  .is_closed = child_is_closed,
  .get_parent_pid = child_get_parent_pid,
  .set_max_message_size = child_set_max_message_size,
  .get_max_message_size = child_get_max_message_size,
  .spawn = child_spawn,
  .free = child_free,
};

/* Claims this process's inherited queue socket (MPQ_ERROR_NOT_A_CHILD
 * without one) and reads the parent's hello. */
MpqQueueBackend *
_mpq_queue_child_backend_new (MpqChannel  *channel,
                              gsize        max_message_size,
                              GError     **error)
{
  ChildBackend *self;
  MpqQueueClient *client;
  int fd;

  fd = _mpq_claim_child_fd ("queue", error);
  if (fd < 0)
    return NULL;

  client = _mpq_queue_client_new (channel, fd, max_message_size, error);
  if (client == NULL)
    {
      close (fd);
      return NULL;
    }

  self = g_new0 (ChildBackend, 1);
  self->parent.klass = &child_class;
  self->parent.channel = channel;
  self->client = client;
  return &self->parent;
}
