/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-codec-private.h"
#include "mpq-debug-private.h"
#include "mpq-error.h"
#include "mpq-message-private.h"
#include "mpq-payload-private.h"
#include "mpq-protocol.h"
#include "mpq-queue-private.h"
#include "mpq-queue-redis-private.h"
#include "mpq-source-private.h"
#include "mpq-spawn-private.h"

#include <unistd.h>

/* MpqQueue as a GInitable and an MpqChannel: every call checks that the
 * queue is whole (its backend made, once) and open, then goes to its
 * backend (the parent's queue or a child's end). The thread that uses
 * the queue. */

/* A child of a queue on a server: no inherited socket, the queue's URI and
 * name in the environment. */
static gboolean
is_server_child (void)
{
  const char *fd_text = g_getenv (MPQ_CHANNEL_FD_ENV);
  const char *uri = g_getenv (MPQ_QUEUE_URI_ENV);

  return (fd_text == NULL || fd_text[0] == '\0') && uri != NULL && uri[0] != '\0';
}

/* GInitable: the parent's queue and its thread, or a child's end of its
 * parent's queue (MPQ_ERROR_NOT_A_CHILD without one), or a queue on a
 * server (made with a URI, or joined through the environment). */
static gboolean
make_backend (GInitable  *initable,
              GError    **error)
{
  MpqQueue *self = MPQ_QUEUE (initable);

  if (self->uri == NULL && self->role == MPQ_ROLE_CHILD && is_server_child ())
    {
      self->uri = g_strdup (g_getenv (MPQ_QUEUE_URI_ENV));
      self->name = g_strdup (g_getenv (MPQ_QUEUE_NAME_ENV));
      _mpq_queue_redis_lease_time_from_env (&self->lease_time);
      if (self->name == NULL || self->name[0] == '\0')
        {
          g_set_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD,
                       "%s is set but %s is not", MPQ_QUEUE_URI_ENV, MPQ_QUEUE_NAME_ENV);
          return FALSE;
        }
    }

  if (self->uri != NULL)
    self->backend = _mpq_queue_redis_backend_new (MPQ_CHANNEL (self), self->uri, self->name,
                                                  self->role != MPQ_ROLE_CHILD, &self->max_size,
                                                  self->max_message_size, self->lease_time,
                                                  error);
  else if (self->role == MPQ_ROLE_CHILD)
    self->backend = _mpq_queue_child_backend_new (MPQ_CHANNEL (self), self->max_message_size,
                                                  error);
  else
    self->backend = _mpq_queue_parent_backend_new (MPQ_CHANNEL (self), self->max_size, error);
  if (self->backend == NULL)
    return FALSE;
  if (self->backend->klass->set_lease_time != NULL)
    self->backend->klass->set_lease_time (self->backend, self->lease_time);
  if (self->max_message_size != MPQ_DEFAULT_MAX_MESSAGE_SIZE)
    self->max_message_size = self->backend->klass->set_max_message_size (self->backend,
                                                                         self->max_message_size);
  return TRUE;
}

static gboolean
mpq_queue_initable_init (GInitable     *initable,
                         GCancellable  *cancellable,
                         GError       **error)
{
  return _mpq_init_once (&MPQ_QUEUE (initable)->init, initable, make_backend, error);
}

void
_mpq_queue_initable_iface_init (GInitableIface *iface)
{
  iface->init = mpq_queue_initable_init;
}

/* Every call starts here: a queue is whole (made once) and open. */
gboolean
_mpq_queue_check_open (MpqQueue  *self,
                       GError   **error)
{
  if (!_mpq_init_once (&self->init, G_INITABLE (self), make_backend, error))
    return FALSE;
  if (self->closed || self->backend->klass->is_closed (self->backend))
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_CLOSED, "The queue is closed");
      return FALSE;
    }
  return TRUE;
}

/* Puts what was encoded in self->line, with @pass_fd (taken; -1 for
 * none), the memfd of its payload; @message (nullable) is the parent's
 * own, kept for when it takes the message back itself. */
static gboolean
put_line (MpqQueue    *self,
          MpqMessage  *message,
          int          pass_fd,
          gint         recipient_pid,
          GError     **error)
{
  gsize max_message_size = self->backend->klass->get_max_message_size (self->backend);

  if (self->line->len > max_message_size)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE,
                   "Message of %" G_GSIZE_FORMAT " bytes is longer than %" G_GSIZE_FORMAT,
                   self->line->len, max_message_size);
      if (pass_fd >= 0)
        close (pass_fd);
      return FALSE;
    }
  MPQ_DEBUG_LINE (">", self->line->str, self->line->len);

  return self->backend->klass->put (self->backend, message, self->line, pass_fd, recipient_pid,
                                    self->put_timeout, self->put_attempts, error);
}

/* A payload goes by descriptor when it is large (or would not fit in a
 * line inline) and the far end takes descriptors: the server always does,
 * and passes it on, or inlines it for a child that does not. */
static gboolean
send_with_payload (MpqQueue    *self,
                   MpqMessage  *message,
                   GBytes      *payload,
                   GError     **error)
{
  gsize max_message_size = self->backend->klass->get_max_message_size (self->backend);
  int fd;

  if (_mpq_payload_goes_inline (g_bytes_get_size (payload), max_message_size) ||
      !self->backend->klass->takes_fds (self->backend))
    return _mpq_codec_encode (message, self->line, error) &&
           put_line (self, message, -1, mpq_message_get_recipient_pid (message), error);

  if (!_mpq_codec_encode_full (message, TRUE, self->line, error))
    return FALSE;
  fd = _mpq_payload_memfd_new (payload, error);
  return fd >= 0 && put_line (self, message, fd, mpq_message_get_recipient_pid (message), error);
}

/* On a server, a participant is its queue-wide id: a message that says
 * it comes from this process (a sender of 0, made this process's pid by
 * the message or the channel) says that id instead. NULL when @message
 * stays as it is. */
static MpqMessage *
restamp_sender (MpqQueue   *self,
                MpqMessage *message)
{
  MpqMessage *copy;
  JsonNode *data;

  if (self->backend->klass->get_pid == NULL ||
      mpq_message_get_sender_pid (message) != _mpq_own_pid ())
    return NULL;

  data = mpq_message_get_data (message);
  copy = _mpq_message_new_take (g_strdup (mpq_message_get_request (message)),
                                self->backend->klass->get_pid (self->backend),
                                mpq_message_get_recipient_pid (message),
                                data != NULL ? json_node_copy (data) : NULL);
  if (mpq_message_get_bytes (message) != NULL)
    _mpq_message_set_payload (copy, mpq_message_get_bytes (message));
  return copy;
}

static gboolean
mpq_queue_send_message (MpqChannel  *channel,
                        MpqMessage  *message,
                        GError     **error)
{
  MpqQueue *self = MPQ_QUEUE (channel);
  g_autoptr(MpqMessage) restamped = NULL;

  if (!_mpq_queue_check_open (self, error))
    return FALSE;

  restamped = restamp_sender (self, message);
  if (restamped != NULL)
    message = restamped;

  g_string_truncate (self->line, 0);
  if (mpq_message_get_bytes (message) != NULL)
    return send_with_payload (self, message, mpq_message_get_bytes (message), error);
  return _mpq_codec_encode (message, self->line, error) &&
         put_line (self, message, -1, mpq_message_get_recipient_pid (message), error);
}

static gboolean
mpq_queue_send_outgoing (MpqChannel         *channel,
                         const MpqOutgoing  *outgoing,
                         GError            **error)
{
  MpqQueue *self = MPQ_QUEUE (channel);
  MpqOutgoing restamped;

  if (!_mpq_queue_check_open (self, error))
    return FALSE;

  /* As restamp_sender () does for a message. */
  if (self->backend->klass->get_pid != NULL && outgoing->sender_pid == _mpq_own_pid ())
    {
      restamped = *outgoing;
      restamped.sender_pid = self->backend->klass->get_pid (self->backend);
      outgoing = &restamped;
    }

  g_string_truncate (self->line, 0);
  return _mpq_codec_encode_outgoing (outgoing, self->line, error) &&
         put_line (self, NULL, -1, outgoing->recipient_pid, error);
}

static MpqMessage *
mpq_queue_receive (MpqChannel        *channel,
                   gint               timeout_ms,
                   MpqMessageFilter   filter,
                   gpointer           user_data,
                   GError           **error)
{
  MpqQueue *self = MPQ_QUEUE (channel);

  if (!_mpq_queue_check_open (self, error))
    return NULL;
  return self->backend->klass->take (self->backend, timeout_ms, filter, user_data, error);
}

/* Routed: the next message for this process or for nobody that another
 * put, through the machinery receive_async uses; nothing is put back. */
static MpqMessage *
mpq_queue_receive_for_me (MpqChannel  *channel,
                          gint         timeout_ms,
                          GError     **error)
{
  MpqQueue *self = MPQ_QUEUE (channel);

  if (!_mpq_queue_check_open (self, error))
    return NULL;
  return self->backend->klass->take_for_me (self->backend, timeout_ms, error);
}

static gboolean
mpq_queue_flush (MpqChannel  *channel,
                 gint         timeout_ms,
                 GError     **error)
{
  MpqQueue *self = MPQ_QUEUE (channel);

  if (!_mpq_queue_check_open (self, error))
    return FALSE;
  return self->backend->klass->flush (self->backend, timeout_ms, error);
}

/* A task for an async call; NULL when it was answered at once (closed,
 * cancelled, or the queue could not be made). */
GTask *
_mpq_queue_start_task (MpqQueue            *self,
            GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             user_data,
            gpointer             source_tag)
{
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);
  GError *error = NULL;

  g_task_set_source_tag (task, source_tag);
  if (!_mpq_queue_check_open (self, &error))
    {
      g_task_return_error (task, error);
      return NULL;
    }
  if (g_task_return_error_if_cancelled (task))
    return NULL;
  return g_steal_pointer (&task);
}

static void
mpq_queue_receive_async (MpqChannel          *channel,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  MpqQueue *self = MPQ_QUEUE (channel);
  g_autoptr(GTask) task = _mpq_queue_start_task (self, cancellable, callback, user_data,
                                      mpq_queue_receive_async);

  if (task != NULL)
    self->backend->klass->want_async (self->backend, task);
}

static MpqMessage *
mpq_queue_receive_finish (MpqChannel    *channel,
                          GAsyncResult  *result,
                          GError       **error)
{
  MpqQueue *self = MPQ_QUEUE (channel);

  g_return_val_if_fail (g_task_is_valid (result, channel), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == mpq_queue_receive_async, NULL);

  /* A task answered before it reached the backend holds an error. */
  if (self->backend == NULL || g_task_had_error (G_TASK (result)))
    return g_task_propagate_pointer (G_TASK (result), error);
  return self->backend->klass->want_finish (self->backend, G_TASK (result), error);
}

static void
mpq_queue_start (MpqChannel *channel)
{
  MpqQueue *self = MPQ_QUEUE (channel);

  if (self->started || !_mpq_queue_check_open (self, NULL))
    return;

  self->started = TRUE;
  self->backend->klass->start (self->backend, self->prefetch);
}

static void
mpq_queue_stop (MpqChannel *channel)
{
  MpqQueue *self = MPQ_QUEUE (channel);

  if (!self->started)
    return;

  self->started = FALSE;
  self->backend->klass->stop (self->backend);
}

static void
mpq_queue_close (MpqChannel *channel)
{
  MpqQueue *self = MPQ_QUEUE (channel);

  if (self->closed)
    return;

  self->closed = TRUE;
  self->started = FALSE;
  if (self->backend != NULL)
    self->backend->klass->close (self->backend);
}

void
_mpq_queue_channel_iface_init (MpqChannelInterface *iface)
{
  static const MpqChannelPrivateVfuncs private_vfuncs = {
    .send_outgoing = mpq_queue_send_outgoing,
  };

  _mpq_channel_implement_private (iface, &private_vfuncs);
  iface->send_message = mpq_queue_send_message;
  iface->receive = mpq_queue_receive;
  iface->receive_for_me = mpq_queue_receive_for_me;
  iface->receive_async = mpq_queue_receive_async;
  iface->receive_finish = mpq_queue_receive_finish;
  iface->start = mpq_queue_start;
  iface->stop = mpq_queue_stop;
  iface->close = mpq_queue_close;
  iface->flush = mpq_queue_flush;
}

static gboolean
emit_closed_cb (gpointer user_data)
{
  MpqQueueBackend *backend = user_data;

  g_clear_pointer (&backend->closed_idle, g_source_unref);
  _mpq_channel_emit_closed (backend->channel);
  return G_SOURCE_REMOVE;
}

void
_mpq_queue_backend_schedule_closed (MpqQueueBackend *backend,
                                    const char      *name)
{
  g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();

  if (backend->closed_idle == NULL)
    backend->closed_idle = _mpq_source_attach (g_idle_source_new (), context, name,
                                               emit_closed_cb, backend);
}
