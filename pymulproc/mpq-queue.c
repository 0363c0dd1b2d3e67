/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdlib.h>
#include <unistd.h>

#include "mpq-channel-private.h"
#include "mpq-codec-private.h"
#include "mpq-debug-private.h"
#include "mpq-error.h"
#include "mpq-queue.h"
#include "mpq-queue-client-private.h"
#include "mpq-queue-server-private.h"
#include "mpq-spawn-private.h"
#include "mpq-source-private.h"

/**
 * MpqQueue:
 *
 * An M:N joinable work queue between a parent and the children it
 * spawned: pymulproc's `QueueCommunication`.
 *
 * The parent makes the queue with [ctor@Mpq.Queue.new] and spawns its
 * workers with [method@Mpq.Queue.spawn]; each worker opens its end with
 * [ctor@Mpq.Queue.new_for_child]. Every one of them can send and receive.
 * The queue lives in the parent and is served by a thread of the library,
 * so children are served while the parent's main thread blocks.
 *
 * ```python
 * queue = Mpq.Queue.new(0)
 * workers = [queue.spawn(["./worker"]) for _ in range(4)]
 * for value in range(100):
 *     queue.send(Mpq.REQ_DO, 0, 0, Json.from_string(str(value)))
 * queue.join(-1)            # every task taken and handled
 * ```
 *
 * [method@Mpq.Channel.receive] takes the message at the front, whoever it
 * is for; a filter that refuses it puts it back at the end. Dispatch
 * ([method@Mpq.Channel.start]) and [method@Mpq.Channel.receive_async]
 * are routed: they hand a process only messages addressed to it or to
 * nobody, a few ms of work ahead of its handlers (at most
 * [property@Mpq.Queue:prefetch] messages), so work spreads over all the
 * workers. A message handed to a child that dies
 * before it was handled goes back to the front and to someone else.
 *
 * [method@Mpq.Queue.join] waits until every message ever put was taken.
 * In a bounded queue a send waits for room [property@Mpq.Queue:put-timeout]
 * milliseconds, [property@Mpq.Queue:put-attempts] times, then fails with
 * `MPQ_ERROR_FULL`.
 */

struct _MpqQueue
{
  GObject          parent_instance;

  MpqRole          role;
  guint            max_size;
  gsize            max_message_size;
  gint             put_timeout;
  guint            put_attempts;
  guint            prefetch;

  MpqQueueServer  *server;    /* parent */
  MpqQueueClient  *client;    /* child */

  /* The parent's dispatch. */
  GMainContext    *context;
  GSource         *wake;
  gboolean         started;
  gboolean         closed;

  GSource         *closed_idle;

  GString         *line;
};

enum
{
  PROP_MAX_SIZE = MPQ_CHANNEL_N_PROPS,
  PROP_PUT_TIMEOUT,
  PROP_PUT_ATTEMPTS,
  PROP_PREFETCH,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void mpq_queue_channel_iface_init (MpqChannelInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (MpqQueue, mpq_queue, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (MPQ_TYPE_CHANNEL,
                                                      mpq_queue_channel_iface_init))

static gboolean
check_open (MpqQueue  *self,
            GError   **error)
{
  if (self->closed || (self->client != NULL && _mpq_queue_client_is_closed (self->client)))
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_CLOSED, "The queue is closed");
      return FALSE;
    }
  return TRUE;
}

/* ::closed comes from the main context, after close() returned, as it does
 * for a pipe. */
static gboolean
emit_closed_cb (gpointer user_data)
{
  MpqQueue *self = user_data;

  g_clear_pointer (&self->closed_idle, g_source_unref);
  _mpq_channel_emit_closed (MPQ_CHANNEL (self));
  return G_SOURCE_REMOVE;
}

static void
schedule_closed (MpqQueue *self)
{
  g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();

  if (self->closed_idle != NULL)
    return;
  self->closed_idle = _mpq_source_attach (g_idle_source_new (), context,
                                          "[mpq] queue closed", emit_closed_cb, self);
}

/* MpqChannel ------------------------------------------------------------ */

/* Puts what was encoded in self->line; @message (nullable) is the parent's
 * own, kept for when it takes the message back itself. */
static gboolean
put_line (MpqQueue    *self,
          MpqMessage  *message,
          gint         recipient_pid,
          GError     **error)
{
  if (self->line->len > self->max_message_size)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE,
                   "Message of %" G_GSIZE_FORMAT " bytes is longer than %" G_GSIZE_FORMAT,
                   self->line->len, self->max_message_size);
      return FALSE;
    }
  MPQ_DEBUG_LINE (">", self->line->str, self->line->len);

  if (self->server != NULL)
    return _mpq_queue_server_put (self->server, message, self->line, recipient_pid,
                                  self->put_timeout, self->put_attempts, error);

  g_string_append_c (self->line, '\n');
  return _mpq_queue_client_put (self->client, self->line,
                                self->put_timeout, self->put_attempts, error);
}

static gboolean
mpq_queue_send_message (MpqChannel  *channel,
                        MpqMessage  *message,
                        GError     **error)
{
  MpqQueue *self = MPQ_QUEUE (channel);

  if (!check_open (self, error))
    return FALSE;

  g_string_truncate (self->line, 0);
  return _mpq_codec_encode (message, self->line, error) &&
         put_line (self, message, mpq_message_get_recipient_pid (message), error);
}

gboolean
_mpq_queue_send_outgoing (MpqQueue           *self,
                          const MpqOutgoing  *outgoing,
                          GError            **error)
{
  if (!check_open (self, error))
    return FALSE;

  g_string_truncate (self->line, 0);
  return _mpq_codec_encode_outgoing (outgoing, self->line, error) &&
         put_line (self, NULL, outgoing->recipient_pid, error);
}

static MpqMessage *
mpq_queue_receive (MpqChannel        *channel,
                   gint               timeout_ms,
                   MpqMessageFilter   filter,
                   gpointer           user_data,
                   GError           **error)
{
  MpqQueue *self = MPQ_QUEUE (channel);

  if (!check_open (self, error))
    return NULL;

  if (self->server != NULL)
    return _mpq_queue_server_take (self->server, timeout_ms, filter, user_data, error);
  return _mpq_queue_client_take (self->client, timeout_ms, filter, user_data, error);
}

static gboolean
mpq_queue_flush (MpqChannel  *channel,
                 gint         timeout_ms,
                 GError     **error)
{
  MpqQueue *self = MPQ_QUEUE (channel);

  if (!check_open (self, error))
    return FALSE;
  /* The parent's sends are in the queue already. */
  if (self->client == NULL)
    return TRUE;
  return _mpq_queue_client_flush (self->client, timeout_ms, error);
}

static gboolean
server_task_cancelled_cb (GCancellable *cancellable,
                          gpointer      user_data)
{
  GTask *task = user_data;
  MpqQueue *self = g_task_get_source_object (task);

  if (self->server != NULL && _mpq_queue_server_cancel_task (self->server, task))
    {
      g_task_return_error_if_cancelled (task);
      g_object_unref (task);
    }
  return G_SOURCE_REMOVE;
}

static GTask *
new_task (MpqQueue            *self,
          GCancellable        *cancellable,
          GAsyncReadyCallback  callback,
          gpointer             user_data,
          gpointer             source_tag)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);

  /* A cancelled call fails with G_IO_ERROR_CANCELLED even when a message
   * was already on its way: that message goes back to the queue when the
   * result is dropped (see Held in mpq-queue-server.c). */
  g_task_set_source_tag (task, source_tag);
  return task;
}


static void
mpq_queue_receive_async (MpqChannel          *channel,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  MpqQueue *self = MPQ_QUEUE (channel);
  g_autoptr(GTask) task = new_task (self, cancellable, callback, user_data,
                                    mpq_queue_receive_async);
  GError *error = NULL;

  if (!check_open (self, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  if (g_task_return_error_if_cancelled (task))
    return;

  if (self->server != NULL)
    {
      _mpq_task_watch_cancel (task, g_task_get_context (task), server_task_cancelled_cb, task);
      _mpq_queue_server_want_async (self->server, task);
    }
  else
    _mpq_queue_client_want_async (self->client, task);
}

static MpqMessage *
mpq_queue_receive_finish (MpqChannel    *channel,
                          GAsyncResult  *result,
                          GError       **error)
{
  MpqQueue *self = MPQ_QUEUE (channel);

  g_return_val_if_fail (g_task_is_valid (result, channel), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == mpq_queue_receive_async, NULL);

  if (self->role == MPQ_ROLE_PARENT)
    return _mpq_queue_server_finish_want (G_TASK (result), error);
  return _mpq_queue_client_finish_want (G_TASK (result), error);
}

/* The parent's dispatch: emits what the server handed it, a batch at a
 * time (see MpqDispatchBatch), each counted as taken once its handlers
 * returned. */
static gboolean
wake_cb (gpointer user_data)
{
  MpqQueue *self = g_object_ref (user_data);
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
      work_us = _mpq_dispatch_batch_emit (&batch, MPQ_CHANNEL (self), message);
      g_object_unref (message);
      if (self->server != NULL)
        _mpq_queue_server_local_done (self->server, recipient, work_us);
      if (!more)
        break;
    }

  if (more && self->wake != NULL)
    g_source_set_ready_time (self->wake, 0);

  g_object_unref (self);
  return G_SOURCE_CONTINUE;
}

static void
mpq_queue_start (MpqChannel *channel)
{
  MpqQueue *self = MPQ_QUEUE (channel);
  g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();

  if (self->started || !check_open (self, NULL))
    return;

  if (self->client != NULL)
    {
      _mpq_queue_client_start (self->client, self->prefetch);
      self->started = TRUE;
      return;
    }

  if (self->context != context)
    {
      if (self->wake != NULL)
        {
          g_source_destroy (self->wake);
          g_clear_pointer (&self->wake, g_source_unref);
        }
      g_clear_pointer (&self->context, g_main_context_unref);
      self->context = g_steal_pointer (&context);
      self->wake = _mpq_source_attach (_mpq_wake_source_new (), self->context,
                                       "[mpq] queue dispatch", wake_cb, self);
    }

  self->started = TRUE;
  _mpq_queue_server_start_local (self->server, self->wake, self->prefetch);
}

static void
mpq_queue_stop (MpqChannel *channel)
{
  MpqQueue *self = MPQ_QUEUE (channel);

  if (!self->started)
    return;

  self->started = FALSE;
  if (self->client != NULL)
    _mpq_queue_client_stop (self->client);
  else if (self->server != NULL)
    _mpq_queue_server_stop_local (self->server);
}

static void
mpq_queue_close (MpqChannel *channel)
{
  MpqQueue *self = MPQ_QUEUE (channel);

  if (self->closed)
    return;

  self->closed = TRUE;
  self->started = FALSE;

  if (self->client != NULL)
    {
      /* The client says ::closed, once, whoever noticed first. */
      _mpq_queue_client_close (self->client);
      return;
    }

  if (self->server != NULL)
    {
      _mpq_queue_server_close (self->server);
      g_clear_pointer (&self->server, _mpq_queue_server_unref);
    }
  if (self->wake != NULL)
    {
      g_source_destroy (self->wake);
      g_clear_pointer (&self->wake, g_source_unref);
    }
  g_clear_pointer (&self->context, g_main_context_unref);
  schedule_closed (self);
}

/* GObject --------------------------------------------------------------- */

static void
mpq_queue_dispose (GObject *object)
{
  MpqQueue *self = MPQ_QUEUE (object);

  mpq_queue_close (MPQ_CHANNEL (self));
  if (self->closed_idle != NULL)
    {
      g_source_destroy (self->closed_idle);
      g_clear_pointer (&self->closed_idle, g_source_unref);
    }
  if (self->client != NULL)
    {
      _mpq_queue_client_detach (self->client);
      g_clear_pointer (&self->client, _mpq_queue_client_unref);
    }

  G_OBJECT_CLASS (mpq_queue_parent_class)->dispose (object);
}

static void
mpq_queue_finalize (GObject *object)
{
  MpqQueue *self = MPQ_QUEUE (object);

  g_string_free (self->line, TRUE);

  G_OBJECT_CLASS (mpq_queue_parent_class)->finalize (object);
}

static void
mpq_queue_get_property (GObject    *object,
                        guint       prop_id,
                        GValue     *value,
                        GParamSpec *pspec)
{
  MpqQueue *self = MPQ_QUEUE (object);

  switch (prop_id)
    {
    case MPQ_CHANNEL_PROP_ROLE:
      g_value_set_enum (value, self->role);
      break;

    case MPQ_CHANNEL_PROP_PID:
      g_value_set_int (value, _mpq_own_pid ());
      break;

    case MPQ_CHANNEL_PROP_MAX_MESSAGE_SIZE:
      g_value_set_uint64 (value, self->max_message_size);
      break;

    case PROP_MAX_SIZE:
      g_value_set_uint (value, self->max_size);
      break;

    case PROP_PUT_TIMEOUT:
      g_value_set_int (value, self->put_timeout);
      break;

    case PROP_PUT_ATTEMPTS:
      g_value_set_uint (value, self->put_attempts);
      break;

    case PROP_PREFETCH:
      g_value_set_uint (value, self->prefetch);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
mpq_queue_set_property (GObject      *object,
                        guint         prop_id,
                        const GValue *value,
                        GParamSpec   *pspec)
{
  MpqQueue *self = MPQ_QUEUE (object);

  switch (prop_id)
    {
    case MPQ_CHANNEL_PROP_ROLE:
      self->role = g_value_get_enum (value);
      break;

    case MPQ_CHANNEL_PROP_MAX_MESSAGE_SIZE:
      if (self->max_message_size != g_value_get_uint64 (value))
        {
          self->max_message_size = g_value_get_uint64 (value);
          if (self->server != NULL)
            _mpq_queue_server_set_max_message_size (self->server, self->max_message_size);
          if (self->client != NULL)
            _mpq_queue_client_set_max_message_size (self->client, self->max_message_size);
          g_object_notify_by_pspec (object, pspec);
        }
      break;

    case PROP_MAX_SIZE:
      self->max_size = g_value_get_uint (value);
      break;

    case PROP_PUT_TIMEOUT:
      mpq_queue_set_put_timeout (self, g_value_get_int (value));
      break;

    case PROP_PUT_ATTEMPTS:
      mpq_queue_set_put_attempts (self, g_value_get_uint (value));
      break;

    case PROP_PREFETCH:
      mpq_queue_set_prefetch (self, g_value_get_uint (value));
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
mpq_queue_class_init (MpqQueueClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = mpq_queue_dispose;
  object_class->finalize = mpq_queue_finalize;
  object_class->get_property = mpq_queue_get_property;
  object_class->set_property = mpq_queue_set_property;

  _mpq_channel_install_properties (object_class);

  /**
   * MpqQueue:max-size: (getter get_max_size)
   *
   * How many messages may wait in the queue; 0 for no limit. In a child
   * it is 0: the parent's queue enforces its own limit.
   */
  properties[PROP_MAX_SIZE] =
    g_param_spec_uint ("max-size", NULL, NULL,
                       0, G_MAXINT, 0,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * MpqQueue:put-timeout: (getter get_put_timeout) (setter set_put_timeout)
   *
   * How long, in milliseconds, one attempt to send into a full queue waits
   * for room. Defaults to [const@Mpq.DEFAULT_PUT_TIMEOUT] (100).
   */
  properties[PROP_PUT_TIMEOUT] =
    g_param_spec_int ("put-timeout", NULL, NULL,
                      0, G_MAXINT, MPQ_DEFAULT_PUT_TIMEOUT,
                      G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * MpqQueue:put-attempts: (getter get_put_attempts) (setter set_put_attempts)
   *
   * How many times a send into a full queue waits
   * [property@Mpq.Queue:put-timeout] before it fails with `MPQ_ERROR_FULL`.
   * Defaults to [const@Mpq.DEFAULT_PUT_ATTEMPTS] (10).
   */
  properties[PROP_PUT_ATTEMPTS] =
    g_param_spec_uint ("put-attempts", NULL, NULL,
                       0, G_MAXINT, MPQ_DEFAULT_PUT_ATTEMPTS,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * MpqQueue:prefetch: (getter get_prefetch) (setter set_prefetch)
   *
   * The most messages for anyone dispatch hands this process ahead of its
   * [signal@Mpq.Channel::message-received] handlers. Within it the queue
   * hands about 20 ms of the process's work ahead, as its handlers have
   * been taking: one message at a time while they take long, so that
   * nobody sits on tasks others could do, more while they are quick, so
   * that it never waits for the next. Set 1 for strictly one at a time.
   * Messages addressed to this process are not held back by it (up to
   * 1024 ahead). Read by [method@Mpq.Channel.start]. Defaults to
   * [const@Mpq.DEFAULT_PREFETCH] (256).
   */
  properties[PROP_PREFETCH] =
    g_param_spec_uint ("prefetch", NULL, NULL,
                       1, 65536, MPQ_DEFAULT_PREFETCH,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  for (guint i = MPQ_CHANNEL_N_PROPS; i < N_PROPS; i++)
    g_object_class_install_property (object_class, i, properties[i]);
}

static void
mpq_queue_channel_iface_init (MpqChannelInterface *iface)
{
  static const MpqChannelPrivateVfuncs private_vfuncs = {
    .send_outgoing = (gpointer) _mpq_queue_send_outgoing,
  };

  _mpq_channel_implement_private (iface, &private_vfuncs);
  iface->send_message = mpq_queue_send_message;
  iface->receive = mpq_queue_receive;
  iface->receive_async = mpq_queue_receive_async;
  iface->receive_finish = mpq_queue_receive_finish;
  iface->start = mpq_queue_start;
  iface->stop = mpq_queue_stop;
  iface->close = mpq_queue_close;
  iface->flush = mpq_queue_flush;
}

static void
mpq_queue_init (MpqQueue *self)
{
  self->role = MPQ_ROLE_PARENT;
  self->max_message_size = MPQ_DEFAULT_MAX_MESSAGE_SIZE;
  self->put_timeout = MPQ_DEFAULT_PUT_TIMEOUT;
  self->put_attempts = MPQ_DEFAULT_PUT_ATTEMPTS;
  self->prefetch = MPQ_DEFAULT_PREFETCH;
  self->line = g_string_sized_new (256);
}

/* Public API ------------------------------------------------------------ */

/**
 * mpq_queue_new:
 * @max_size: how many messages may wait in the queue, 0 for no limit
 * @error: return location for an error
 *
 * Makes a queue owned by this process, the parent, and starts the thread
 * that serves it. Spawn the children with [method@Mpq.Queue.spawn].
 *
 * Returns: (transfer full): a new queue, or %NULL with @error set
 */
MpqQueue *
mpq_queue_new (guint    max_size,
               GError **error)
{
  MpqQueue *self;

  g_return_val_if_fail (max_size <= G_MAXINT, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  self = g_object_new (MPQ_TYPE_QUEUE, "role", MPQ_ROLE_PARENT, "max-size", max_size, NULL);
  self->server = _mpq_queue_server_new (max_size, error);
  if (self->server == NULL)
    {
      self->closed = TRUE;
      g_object_unref (self);
      return NULL;
    }
  return self;
}

/**
 * mpq_queue_new_for_child:
 * @error: return location for an error
 *
 * Opens, in a child spawned with [method@Mpq.Queue.spawn], its end of the
 * parent's queue. A process has one such end: a second call fails.
 *
 * Returns: (transfer full): the child's end, or %NULL with @error set to
 *   `MPQ_ERROR_NOT_A_CHILD` if this process was not spawned with a queue
 */
MpqQueue *
mpq_queue_new_for_child (GError **error)
{
  MpqQueue *self;
  int fd;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  fd = _mpq_claim_child_fd ("queue", error);
  if (fd < 0)
    return NULL;

  self = g_object_new (MPQ_TYPE_QUEUE, "role", MPQ_ROLE_CHILD, NULL);
  self->client = _mpq_queue_client_new (MPQ_CHANNEL (self), fd, self->max_message_size, error);
  if (self->client == NULL)
    {
      close (fd);
      self->closed = TRUE;
      g_object_unref (self);
      return NULL;
    }
  return self;
}

/**
 * mpq_queue_spawn:
 * @self: a queue from [ctor@Mpq.Queue.new]
 * @argv: (array zero-terminated=1) (element-type filename): the child's
 *   command line
 * @error: return location for an error
 *
 * Spawns a child that takes part in the queue. It inherits the parent's
 * environment, standard streams and working directory, plus its own
 * socket to the queue, named by `MPQ_CHANNEL_FD`; every other descriptor
 * is closed. Spawn as many children as you like.
 *
 * Returns: (transfer full): the child process, or %NULL with @error set
 */
GSubprocess *
mpq_queue_spawn (MpqQueue            *self,
                 const char * const  *argv,
                 GError             **error)
{
  g_return_val_if_fail (MPQ_IS_QUEUE (self), NULL);
  g_return_val_if_fail (argv != NULL && argv[0] != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return mpq_queue_spawn_with_launcher (self, NULL, argv, error);
}

/**
 * mpq_queue_spawn_with_launcher:
 * @self: a queue from [ctor@Mpq.Queue.new]
 * @launcher: (nullable): a launcher with the child's environment, working
 *   directory and standard streams
 * @argv: (array zero-terminated=1) (element-type filename): the child's
 *   command line
 * @error: return location for an error
 *
 * Like [method@Mpq.Queue.spawn], with a launcher set up by the caller. The
 * launcher serves this one spawn: afterwards its descriptors are closed
 * with g_subprocess_launcher_close().
 *
 * Returns: (transfer full): the child process, or %NULL with @error set
 */
GSubprocess *
mpq_queue_spawn_with_launcher (MpqQueue             *self,
                               GSubprocessLauncher  *launcher,
                               const char * const   *argv,
                               GError              **error)
{
  g_autoptr(GSubprocess) subprocess = NULL;
  const char *identifier;
  gsize max_message_size;
  int fds[2];

  g_return_val_if_fail (MPQ_IS_QUEUE (self), NULL);
  g_return_val_if_fail (launcher == NULL || G_IS_SUBPROCESS_LAUNCHER (launcher), NULL);
  g_return_val_if_fail (argv != NULL && argv[0] != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_open (self, error))
    return NULL;

  if (self->server == NULL)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_FAILED,
                           "Only the queue's parent can spawn");
      return NULL;
    }

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

  return g_steal_pointer (&subprocess);
}

/**
 * mpq_queue_is_empty:
 * @self: a queue
 * @error: return location for an error
 *
 * Tells whether no message waits in the queue: pymulproc's `queue_empty`.
 * Messages handed out and not yet answered for are not in it.
 *
 * Returns: %TRUE if the queue is empty; %FALSE if not, or on error
 */
gboolean
mpq_queue_is_empty (MpqQueue  *self,
                    GError   **error)
{
  g_return_val_if_fail (MPQ_IS_QUEUE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_open (self, error))
    return FALSE;
  if (self->server != NULL)
    return _mpq_queue_server_is_empty (self->server);
  return _mpq_queue_client_is_empty (self->client, error);
}

/**
 * mpq_queue_join:
 * @self: a queue
 * @timeout_ms: how long to wait in milliseconds: -1 for as long as it
 *   takes, 0 to only check
 * @error: return location for an error
 *
 * Waits until every message ever put into the queue was taken: received,
 * or handled by dispatch. pymulproc's `queue_join`.
 *
 * Returns: %TRUE once all was taken; %FALSE with `MPQ_ERROR_TIMED_OUT`
 *   when the time ran out first
 */
gboolean
mpq_queue_join (MpqQueue  *self,
                gint       timeout_ms,
                GError   **error)
{
  g_return_val_if_fail (MPQ_IS_QUEUE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_open (self, error))
    return FALSE;
  if (self->server != NULL)
    return _mpq_queue_server_join (self->server, timeout_ms, error);
  return _mpq_queue_client_join (self->client, timeout_ms, error);
}

/**
 * mpq_queue_join_async:
 * @self: a queue
 * @cancellable: (nullable): a cancellable
 * @callback: (scope async): called once every message was taken
 * @user_data: data for @callback
 *
 * Waits, without blocking, until every message ever put into the queue
 * was taken. The callback runs in the thread-default main context of the
 * caller.
 */
void
mpq_queue_join_async (MpqQueue            *self,
                      GCancellable        *cancellable,
                      GAsyncReadyCallback  callback,
                      gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;

  g_return_if_fail (MPQ_IS_QUEUE (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = new_task (self, cancellable, callback, user_data, mpq_queue_join_async);
  if (!check_open (self, &error))
    {
      g_task_return_error (task, error);
      return;
    }

  if (self->server != NULL)
    {
      _mpq_task_watch_cancel (task, g_task_get_context (task), server_task_cancelled_cb, task);
      _mpq_queue_server_join_async (self->server, task);
    }
  else
    _mpq_queue_client_join_async (self->client, task);
}

/**
 * mpq_queue_join_finish:
 * @self: a queue
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Finishes [method@Mpq.Queue.join_async].
 *
 * Returns: %TRUE once all was taken; %FALSE with @error set if the queue
 *   was closed or the wait cancelled
 */
gboolean
mpq_queue_join_finish (MpqQueue      *self,
                       GAsyncResult  *result,
                       GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * mpq_queue_get_max_size: (get-property max-size)
 * @self: a queue
 *
 * Gets how many messages may wait in the queue.
 *
 * Returns: the limit, 0 for none
 */
guint
mpq_queue_get_max_size (MpqQueue *self)
{
  g_return_val_if_fail (MPQ_IS_QUEUE (self), 0);

  return self->max_size;
}

/**
 * mpq_queue_get_parent_pid:
 * @self: a queue
 *
 * Gets the pid of the process that owns the queue: this process in the
 * parent, the parent in a child. `FINISHED` usually goes there.
 *
 * Returns: the parent's pid
 */
gint
mpq_queue_get_parent_pid (MpqQueue *self)
{
  g_return_val_if_fail (MPQ_IS_QUEUE (self), 0);

  if (self->client != NULL)
    return _mpq_queue_client_get_parent_pid (self->client);
  return _mpq_own_pid ();
}

/**
 * mpq_queue_get_put_timeout: (get-property put-timeout)
 * @self: a queue
 *
 * Gets how long one attempt to send into a full queue waits.
 *
 * Returns: the time in milliseconds
 */
gint
mpq_queue_get_put_timeout (MpqQueue *self)
{
  g_return_val_if_fail (MPQ_IS_QUEUE (self), 0);

  return self->put_timeout;
}

/**
 * mpq_queue_set_put_timeout: (set-property put-timeout)
 * @self: a queue
 * @put_timeout_ms: the time in milliseconds
 *
 * Sets how long one attempt to send into a full queue waits.
 */
void
mpq_queue_set_put_timeout (MpqQueue *self,
                           gint      put_timeout_ms)
{
  g_return_if_fail (MPQ_IS_QUEUE (self));
  g_return_if_fail (put_timeout_ms >= 0);

  if (self->put_timeout == put_timeout_ms)
    return;
  self->put_timeout = put_timeout_ms;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PUT_TIMEOUT]);
}

/**
 * mpq_queue_get_put_attempts: (get-property put-attempts)
 * @self: a queue
 *
 * Gets how many times a send into a full queue waits for room.
 *
 * Returns: the number of attempts
 */
guint
mpq_queue_get_put_attempts (MpqQueue *self)
{
  g_return_val_if_fail (MPQ_IS_QUEUE (self), 0);

  return self->put_attempts;
}

/**
 * mpq_queue_set_put_attempts: (set-property put-attempts)
 * @self: a queue
 * @put_attempts: the number of attempts
 *
 * Sets how many times a send into a full queue waits for room.
 */
void
mpq_queue_set_put_attempts (MpqQueue *self,
                            guint     put_attempts)
{
  g_return_if_fail (MPQ_IS_QUEUE (self));
  g_return_if_fail (put_attempts <= G_MAXINT);

  if (self->put_attempts == put_attempts)
    return;
  self->put_attempts = put_attempts;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PUT_ATTEMPTS]);
}

/**
 * mpq_queue_get_prefetch: (get-property prefetch)
 * @self: a queue
 *
 * Gets how many messages dispatch hands this process ahead of its
 * handlers.
 *
 * Returns: the prefetch
 */
guint
mpq_queue_get_prefetch (MpqQueue *self)
{
  g_return_val_if_fail (MPQ_IS_QUEUE (self), 1);

  return self->prefetch;
}

/**
 * mpq_queue_set_prefetch: (set-property prefetch)
 * @self: a queue
 * @prefetch: how many messages, at least 1
 *
 * Sets how many messages dispatch hands this process ahead of its
 * handlers. Takes effect at the next [method@Mpq.Channel.start].
 */
void
mpq_queue_set_prefetch (MpqQueue *self,
                        guint     prefetch)
{
  g_return_if_fail (MPQ_IS_QUEUE (self));
  g_return_if_fail (prefetch >= 1 && prefetch <= 65536);

  if (self->prefetch == prefetch)
    return;
  self->prefetch = prefetch;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PREFETCH]);
}
