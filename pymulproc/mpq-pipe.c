/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <unistd.h>

#include "mpq-codec-private.h"
#include "mpq-debug-private.h"
#include "mpq-error.h"
#include "mpq-pipe-private.h"
#include "mpq-source-private.h"
#include "mpq-spawn-private.h"

/**
 * MpqPipe:
 *
 * A 1:1 full-duplex channel between a parent and one child it spawned.
 *
 * The parent makes the pipe and spawns the child; the child inherits its end
 * as a descriptor named by the `MPQ_CHANNEL_FD` environment variable and
 * opens it with [ctor@Mpq.Pipe.new_for_child]. A parent that asks its
 * child for three squares, from `examples/tutorial/pipe.c`:
 *
 * ```c
 *   pipe = mpq_pipe_new (&error);
 *   if (pipe != NULL)
 *     child = mpq_pipe_spawn (pipe, child_argv, &error);
 *
 *   for (int n = 1; child != NULL && n <= 3; n++)
 *     {
 *       g_autofree char *data = g_strdup_printf ("%d", n);
 *       g_autoptr(MpqMessage) answer = NULL;
 *       g_autofree char *square = NULL;
 *
 *       if (!mpq_channel_send_json (MPQ_CHANNEL (pipe), MPQ_REQ_DO, 0, 0, data, &error))
 *         break;
 *       answer = mpq_channel_receive (MPQ_CHANNEL (pipe), -1, NULL, NULL, &error);
 * ```
 *
 * Messages are never lost or reordered. A child that dies is seen at once:
 * what it sent before dying is still delivered, then
 * [method@Mpq.Channel.receive] fails with `MPQ_ERROR_CLOSED` and
 * [signal@Mpq.Channel::closed] is emitted.
 *
 * Sending writes straight to the socket. When the peer stops reading and the
 * socket is full, [method@Mpq.Channel.send] waits for room at most
 * [property@Mpq.Pipe:send-timeout] milliseconds and then fails with
 * `MPQ_ERROR_TIMED_OUT`, having sent nothing of that message. If a message
 * was partly written when the time ran out, its rest is kept and written
 * first by the next send, by the main loop once the pipe is started, or at
 * close: a message is sent whole or not at all.
 *
 * A pipe is a [iface@Gio.Initable]: `Mpq.Pipe()` from a binding, or
 * g_object_new(), makes a parent's pipe (or, with `role` `MPQ_ROLE_CHILD`,
 * a child's), opened by g_initable_init() or, if nobody called it, by
 * its first call, whose error (`MPQ_ERROR_NOT_A_CHILD`, say) every call
 * then returns.
 */

/* The struct is in mpq-pipe-private.h; what was read, until it is taken,
 * in mpq-pipe-inbox.c. Everything here runs in the pipe's owner's thread:
 * a pipe is used from one thread at a time, and its sources run there
 * (mpq-endpoint.c). */

enum
{
  PROP_SEND_TIMEOUT = MPQ_CHANNEL_N_PROPS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void mpq_pipe_channel_iface_init (MpqChannelInterface *iface);
static void mpq_pipe_initable_iface_init (GInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (MpqPipe, mpq_pipe, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (MPQ_TYPE_CHANNEL,
                                                      mpq_pipe_channel_iface_init)
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      mpq_pipe_initable_iface_init))

/* Writing --------------------------------------------------------------- */

static gboolean
check_can_send (MpqPipe  *self,
                GError  **error)
{
  if (!_mpq_pipe_ensure_open (self, error))
    return FALSE;
  if (self->ep.closed)
    {
      _mpq_endpoint_set_closed_error (&self->ep, error);
      return FALSE;
    }
  g_string_truncate (self->line, 0);
  return TRUE;
}

/* Sends what was encoded in self->line. */
gboolean
_mpq_pipe_send_line (MpqPipe  *self,
                     GError  **error)
{
  if (!_mpq_endpoint_check_size (&self->ep, self->line->len, error))
    return FALSE;

  MPQ_DEBUG_LINE (">", self->line->str, self->line->len);
  g_string_append_c (self->line, '\n');

  return _mpq_endpoint_send (&self->ep, self->line->str, self->line->len,
                             self->send_timeout, error);
}

static gboolean
mpq_pipe_send_message (MpqChannel  *channel,
                       MpqMessage  *message,
                       GError     **error)
{
  MpqPipe *self = MPQ_PIPE (channel);
  GBytes *payload = mpq_message_get_bytes (message);

  if (!check_can_send (self, error))
    return FALSE;
  if (payload != NULL)
    return _mpq_pipe_send_with_payload (self, message, payload, error);
  return _mpq_codec_encode (message, self->line, error) && _mpq_pipe_send_line (self, error);
}

static gboolean
mpq_pipe_send_outgoing (MpqChannel         *channel,
                        const MpqOutgoing  *outgoing,
                        GError            **error)
{
  MpqPipe *self = MPQ_PIPE (channel);

  return check_can_send (self, error) &&
         _mpq_codec_encode_outgoing (outgoing, self->line, error) &&
         _mpq_pipe_send_line (self, error);
}

static gboolean
mpq_pipe_flush (MpqChannel  *channel,
                gint         timeout_ms,
                GError     **error)
{
  MpqPipe *self = MPQ_PIPE (channel);

  if (!_mpq_pipe_ensure_open (self, error))
    return FALSE;
  return _mpq_endpoint_flush (&self->ep, timeout_ms, error);
}

/* start / stop / close -------------------------------------------------- */

static void
mpq_pipe_start (MpqChannel *channel)
{
  MpqPipe *self = MPQ_PIPE (channel);

  /* A pipe that cannot open has nothing to start; its calls say why. */
  if (!_mpq_pipe_ensure_open (self, NULL) || self->started || self->ep.closed)
    return;

  if (!_mpq_endpoint_acquire_context (&self->ep))
    return;

  self->started = TRUE;
  _mpq_pipe_update_sources (self);
}

static void
mpq_pipe_stop (MpqChannel *channel)
{
  MpqPipe *self = MPQ_PIPE (channel);

  if (!self->started)
    return;

  self->started = FALSE;
  _mpq_pipe_update_sources (self);
}

static void
mpq_pipe_close (MpqChannel *channel)
{
  MpqPipe *self = MPQ_PIPE (channel);
  GError *error = NULL;

  if (self->ep.closed)
    return;

  /* What was sent goes out before hanging up. */
  _mpq_endpoint_close (&self->ep, self->send_timeout);
  g_clear_error (&self->ep.read_error);
  self->started = FALSE;
  _mpq_pipe_clear_inbox (self);

  if (self->child_fd >= 0)
    {
      close (self->child_fd);
      self->child_fd = -1;
    }

  _mpq_endpoint_set_closed_error (&self->ep, &error);
  _mpq_pipe_fail_waiters (self, error);
  _mpq_pipe_update_sources (self);
  _mpq_endpoint_schedule_closed (&self->ep);
}

/* GObject --------------------------------------------------------------- */

static void
mpq_pipe_dispose (GObject *object)
{
  MpqPipe *self = MPQ_PIPE (object);

  mpq_pipe_close (MPQ_CHANNEL (self));
  _mpq_endpoint_clear (&self->ep);

  G_OBJECT_CLASS (mpq_pipe_parent_class)->dispose (object);
}

static void
mpq_pipe_finalize (GObject *object)
{
  MpqPipe *self = MPQ_PIPE (object);

  g_assert (self->ep.fd == -1 && self->ep.writer == NULL);
  g_assert (self->waiters.length == 0);

  g_string_free (self->line, TRUE);
  _mpq_init_once_clear (&self->init);

  G_OBJECT_CLASS (mpq_pipe_parent_class)->finalize (object);
}

static void
mpq_pipe_get_property (GObject    *object,
                       guint       prop_id,
                       GValue     *value,
                       GParamSpec *pspec)
{
  MpqPipe *self = MPQ_PIPE (object);

  switch (prop_id)
    {
    case MPQ_CHANNEL_PROP_ROLE:
      g_value_set_enum (value, self->role);
      break;

    case MPQ_CHANNEL_PROP_PID:
      g_value_set_int (value, _mpq_own_pid ());
      break;

    case MPQ_CHANNEL_PROP_MAX_MESSAGE_SIZE:
      g_value_set_uint64 (value, self->ep.max_message_size);
      break;

    case PROP_SEND_TIMEOUT:
      g_value_set_int (value, self->send_timeout);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
mpq_pipe_set_property (GObject      *object,
                       guint         prop_id,
                       const GValue *value,
                       GParamSpec   *pspec)
{
  MpqPipe *self = MPQ_PIPE (object);

  switch (prop_id)
    {
    case MPQ_CHANNEL_PROP_ROLE:
      self->role = g_value_get_enum (value);
      break;

    case MPQ_CHANNEL_PROP_MAX_MESSAGE_SIZE:
      if (self->ep.max_message_size != g_value_get_uint64 (value))
        {
          _mpq_endpoint_set_max_message_size (&self->ep, g_value_get_uint64 (value));
          g_object_notify_by_pspec (object, pspec);
        }
      break;

    case PROP_SEND_TIMEOUT:
      mpq_pipe_set_send_timeout (self, g_value_get_int (value));
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
mpq_pipe_class_init (MpqPipeClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = mpq_pipe_dispose;
  object_class->finalize = mpq_pipe_finalize;
  object_class->get_property = mpq_pipe_get_property;
  object_class->set_property = mpq_pipe_set_property;

  _mpq_channel_install_properties (object_class);

  /**
   * MpqPipe:send-timeout: (getter get_send_timeout) (setter set_send_timeout)
   *
   * How long, in milliseconds, a send waits for a peer that is not reading
   * before it fails with `MPQ_ERROR_TIMED_OUT`: -1 waits forever, 0 never
   * waits. Defaults to [const@Mpq.DEFAULT_SEND_TIMEOUT] (10 s).
   */
  properties[PROP_SEND_TIMEOUT] =
    g_param_spec_int ("send-timeout", NULL, NULL,
                      -1, G_MAXINT, MPQ_DEFAULT_SEND_TIMEOUT,
                      G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_property (object_class, PROP_SEND_TIMEOUT,
                                   properties[PROP_SEND_TIMEOUT]);
}

static void
mpq_pipe_channel_iface_init (MpqChannelInterface *iface)
{
  static const MpqChannelPrivateVfuncs private_vfuncs = {
    .send_outgoing = mpq_pipe_send_outgoing,
    .receive_json = _mpq_pipe_receive_json,
  };

  _mpq_channel_implement_private (iface, &private_vfuncs);
  iface->send_message = mpq_pipe_send_message;
  iface->receive = _mpq_pipe_receive;
  iface->receive_async = _mpq_pipe_receive_async;
  iface->receive_finish = _mpq_pipe_receive_finish;
  iface->start = mpq_pipe_start;
  iface->stop = mpq_pipe_stop;
  iface->close = mpq_pipe_close;
  iface->flush = mpq_pipe_flush;
  /* receive_for_me: the default, receive without a filter (one peer). */
}

static void
mpq_pipe_init (MpqPipe *self)
{
  _mpq_endpoint_init (&self->ep, &_mpq_pipe_endpoint_class, self, MPQ_DEFAULT_MAX_MESSAGE_SIZE);
  self->child_fd = -1;
  self->role = MPQ_ROLE_PARENT;
  self->send_timeout = MPQ_DEFAULT_SEND_TIMEOUT;
  self->line = g_string_sized_new (256);
  g_queue_init (&self->inbox);
  g_queue_init (&self->raw);
  g_queue_init (&self->waiters);
}

/* GInitable: a parent's pipe makes its socket pair, a child's claims the
 * descriptor it inherited. Owner's thread. */
static gboolean
pipe_open (GInitable  *initable,
           GError    **error)
{
  MpqPipe *self = MPQ_PIPE (initable);
  int fds[2];
  int fd;

  if (self->role == MPQ_ROLE_CHILD)
    {
      fd = _mpq_claim_child_fd ("pipe", error);
      if (fd < 0)
        return FALSE;
      _mpq_endpoint_open (&self->ep, fd);
      _mpq_endpoint_take_fds (&self->ep);
      /* A parent that takes descriptors hears first that we do too. */
      if (g_strcmp0 (g_getenv (MPQ_CHANNEL_FDS_ENV), "1") == 0)
        {
          self->peer_fds = TRUE;
          MPQ_DEBUG_LINE (">", MPQ_PIPE_HELLO_FDS, strlen (MPQ_PIPE_HELLO_FDS));
          _mpq_endpoint_send (&self->ep, MPQ_PIPE_HELLO_FDS "\n",
                              strlen (MPQ_PIPE_HELLO_FDS "\n"), self->send_timeout, NULL);
        }
      return TRUE;
    }

  if (!_mpq_socketpair (fds, error))
    return FALSE;
  _mpq_endpoint_open (&self->ep, fds[0]);
  _mpq_endpoint_take_fds (&self->ep);
  self->child_fd = fds[1];
  return TRUE;
}

gboolean
_mpq_pipe_open_once (MpqPipe  *self,
                     GError  **error)
{
  return _mpq_init_once (&self->init, G_INITABLE (self), pipe_open, error);
}

static gboolean
mpq_pipe_initable_init (GInitable     *initable,
                        GCancellable  *cancellable,
                        GError       **error)
{
  return _mpq_init_once (&MPQ_PIPE (initable)->init, initable, pipe_open, error);
}

static void
mpq_pipe_initable_iface_init (GInitableIface *iface)
{
  iface->init = mpq_pipe_initable_init;
}

/* Public constructors --------------------------------------------------- */

/**
 * mpq_pipe_new:
 * @error: return location for an error
 *
 * Makes the parent end of a pipe. Give the other end to a child with
 * [method@Mpq.Pipe.spawn].
 *
 * The same as g_initable_new() with [property@Mpq.Channel:role]
 * `MPQ_ROLE_PARENT`. A pipe made with g_object_new(), as bindings do,
 * opens itself on first use.
 *
 * Returns: (transfer full): a new pipe, or %NULL with @error set
 */
MpqPipe *
mpq_pipe_new (GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (MPQ_TYPE_PIPE, NULL, error, "role", MPQ_ROLE_PARENT, NULL);
}

/**
 * mpq_pipe_new_for_child:
 * @error: return location for an error
 *
 * Opens, in a child spawned with [method@Mpq.Pipe.spawn], the pipe to its
 * parent. A process has one such pipe: a second call fails.
 *
 * The same as g_initable_new() with [property@Mpq.Channel:role]
 * `MPQ_ROLE_CHILD`.
 *
 * Returns: (transfer full): the child end, or %NULL with @error set to
 *   `MPQ_ERROR_NOT_A_CHILD` if this process was not spawned with a pipe
 */
MpqPipe *
mpq_pipe_new_for_child (GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (MPQ_TYPE_PIPE, NULL, error, "role", MPQ_ROLE_CHILD, NULL);
}

/* One end of a pair made in this process: opened already. */
static MpqPipe *
pipe_new_for_fd (MpqRole role,
                 int     fd)
{
  MpqPipe *self = g_object_new (MPQ_TYPE_PIPE, "role", role, NULL);

  self->init.done = TRUE;
  _mpq_endpoint_open (&self->ep, fd);
  _mpq_endpoint_take_fds (&self->ep);
  /* Both ends are this library's. */
  self->lines_seen = TRUE;
  self->peer_fds = TRUE;
  return self;
}

/**
 * mpq_pipe_new_pair:
 * @parent: (out) (transfer full): return location for the parent end
 * @child: (out) (transfer full): return location for the child end
 * @error: return location for an error
 *
 * Makes both ends of a pipe in this process, for threads and tests.
 *
 * Returns: %TRUE on success
 */
gboolean
mpq_pipe_new_pair (MpqPipe **parent,
                   MpqPipe **child,
                   GError  **error)
{
  int fds[2];

  g_return_val_if_fail (parent != NULL, FALSE);
  g_return_val_if_fail (child != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!_mpq_socketpair (fds, error))
    return FALSE;

  *parent = pipe_new_for_fd (MPQ_ROLE_PARENT, fds[0]);
  *child = pipe_new_for_fd (MPQ_ROLE_CHILD, fds[1]);

  return TRUE;
}

/**
 * mpq_pipe_spawn:
 * @self: the parent end of a pipe from [ctor@Mpq.Pipe.new]
 * @argv: (array zero-terminated=1) (element-type filename): the child's
 *   command line
 * @error: return location for an error
 *
 * Spawns the child that holds the other end of the pipe. It inherits the
 * parent's environment, standard streams and working directory, plus its
 * end of the pipe, named by `MPQ_CHANNEL_FD`; every other descriptor is
 * closed. A pipe has one child.
 *
 * Returns: (transfer full): the child process, or %NULL with @error set
 */
GSubprocess *
mpq_pipe_spawn (MpqPipe             *self,
                const char * const  *argv,
                GError             **error)
{
  g_return_val_if_fail (MPQ_IS_PIPE (self), NULL);
  g_return_val_if_fail (argv != NULL && argv[0] != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return mpq_pipe_spawn_with_launcher (self, NULL, argv, error);
}

/**
 * mpq_pipe_spawn_with_launcher:
 * @self: the parent end of a pipe from [ctor@Mpq.Pipe.new]
 * @launcher: (nullable): a launcher with the child's environment, working
 *   directory and standard streams
 * @argv: (array zero-terminated=1) (element-type filename): the child's
 *   command line
 * @error: return location for an error
 *
 * Like [method@Mpq.Pipe.spawn], with a launcher set up by the caller. The
 * launcher serves this one spawn: afterwards its descriptors are closed with
 * g_subprocess_launcher_close(), so that no copy of the child's end stays in
 * the parent to hide the child's death.
 *
 * Returns: (transfer full): the child process, or %NULL with @error set
 */
GSubprocess *
mpq_pipe_spawn_with_launcher (MpqPipe              *self,
                              GSubprocessLauncher  *launcher,
                              const char * const   *argv,
                              GError              **error)
{
  GSubprocess *subprocess;
  int child_fd;

  g_return_val_if_fail (MPQ_IS_PIPE (self), NULL);
  g_return_val_if_fail (launcher == NULL || G_IS_SUBPROCESS_LAUNCHER (launcher), NULL);
  g_return_val_if_fail (argv != NULL && argv[0] != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!_mpq_pipe_ensure_open (self, error))
    return NULL;
  if (self->ep.closed)
    {
      _mpq_endpoint_set_closed_error (&self->ep, error);
      return NULL;
    }

  if (self->child_fd < 0)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_FAILED,
                           self->role == MPQ_ROLE_PARENT
                             ? "This pipe has no child end to hand over: it already "
                               "has a child, or was made by mpq_pipe_new_pair()"
                             : "Only the parent end of a pipe can spawn");
      return NULL;
    }

  child_fd = self->child_fd;
  self->child_fd = -1;
  subprocess = _mpq_spawn_child (launcher, child_fd, "pipe", argv, error);

  return subprocess;
}

/**
 * mpq_pipe_get_send_timeout: (get-property send-timeout)
 * @self: a pipe
 *
 * Gets how long a send waits for a peer that is not reading.
 *
 * Returns: the time-out in milliseconds, -1 for none
 */
gint
mpq_pipe_get_send_timeout (MpqPipe *self)
{
  g_return_val_if_fail (MPQ_IS_PIPE (self), -1);

  return self->send_timeout;
}

/**
 * mpq_pipe_set_send_timeout: (set-property send-timeout)
 * @self: a pipe
 * @send_timeout_ms: the time-out in milliseconds, -1 to wait forever
 *
 * Sets how long a send waits for a peer that is not reading.
 */
void
mpq_pipe_set_send_timeout (MpqPipe *self,
                           gint     send_timeout_ms)
{
  g_return_if_fail (MPQ_IS_PIPE (self));
  g_return_if_fail (send_timeout_ms >= -1);

  if (self->send_timeout == send_timeout_ms)
    return;

  self->send_timeout = send_timeout_ms;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SEND_TIMEOUT]);
}
