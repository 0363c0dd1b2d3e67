/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-channel-private.h"
#include "mpq-error.h"
#include "mpq-queue.h"
#include "mpq-queue-private.h"
#include "mpq-spawn-private.h"

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
 * A parent that hands tasks to its workers and collects their answers in
 * a main loop, from `examples/tutorial/dispatch.py`:
 *
 * ```python
 *     queue.connect('message-received::FINISHED', on_finished)
 *     queue.start()
 *     for n in range(1, N_TASKS + 1):
 *         queue.send(Mpq.REQ_DO, data=n)
 *     loop.run()
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
 *
 * A queue can also live on a server, for workers on other machines:
 * [ctor@Mpq.Queue.new_for_uri] keeps it in Redis Streams (see
 * [the Redis page](redis.html)), and its workers join it with the same
 * [ctor@Mpq.Queue.new_for_child].
 */

/* struct _MpqQueue: mpq-queue-private.h */

enum
{
  PROP_MAX_SIZE = MPQ_CHANNEL_N_PROPS,
  PROP_PUT_TIMEOUT,
  PROP_PUT_ATTEMPTS,
  PROP_PREFETCH,
  PROP_LEASE_TIME,
  PROP_URI,
  PROP_NAME,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE_WITH_CODE (MpqQueue, mpq_queue, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      _mpq_queue_initable_iface_init)
                               G_IMPLEMENT_INTERFACE (MPQ_TYPE_CHANNEL,
                                                      _mpq_queue_channel_iface_init))

/* GObject --------------------------------------------------------------- */

static void
mpq_queue_dispose (GObject *object)
{
  MpqQueue *self = MPQ_QUEUE (object);

  mpq_channel_close (MPQ_CHANNEL (self));
  if (self->backend != NULL)
    {
      MpqQueueBackend *backend = g_steal_pointer (&self->backend);

      backend->klass->free (backend);
    }

  G_OBJECT_CLASS (mpq_queue_parent_class)->dispose (object);
}

static void
mpq_queue_finalize (GObject *object)
{
  MpqQueue *self = MPQ_QUEUE (object);

  _mpq_init_once_clear (&self->init);
  g_string_free (self->line, TRUE);
  g_free (self->uri);
  g_free (self->name);

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
      /* On a server, the queue-wide id it gave this participant. */
      if (self->backend != NULL && self->backend->klass->get_pid != NULL)
        g_value_set_int (value, self->backend->klass->get_pid (self->backend));
      else
        g_value_set_int (value, _mpq_own_pid ());
      break;

    case MPQ_CHANNEL_PROP_MAX_MESSAGE_SIZE:
      /* A child's follows its parent's (see the backend). */
      if (self->backend != NULL)
        self->max_message_size = self->backend->klass->get_max_message_size (self->backend);
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

    case PROP_LEASE_TIME:
      g_value_set_uint (value, self->lease_time);
      break;

    case PROP_URI:
      g_value_set_string (value, self->uri);
      break;

    case PROP_NAME:
      g_value_set_string (value, self->name);
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
          if (self->backend != NULL)
            self->max_message_size =
              self->backend->klass->set_max_message_size (self->backend, self->max_message_size);
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

    case PROP_LEASE_TIME:
      mpq_queue_set_lease_time (self, g_value_get_uint (value));
      break;

    case PROP_URI:
      g_free (self->uri);
      self->uri = g_value_dup_string (value);
      break;

    case PROP_NAME:
      g_free (self->name);
      self->name = g_value_dup_string (value);
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

  /**
   * MpqQueue:lease-time: (getter get_lease_time) (setter set_lease_time)
   *
   * On a queue kept on a server ([ctor@Mpq.Queue.new_for_uri]), how long
   * in milliseconds a message in this participant's hand (handed by
   * dispatch and not yet handled, a [method@Mpq.Channel.receive_async]
   * result not yet finished, a filter deciding) stays its own without
   * being renewed. The library's thread renews it while the process
   * lives; once a participant dies, its messages go back to the front of
   * the queue after at most about this long, for others. A child started
   * by [method@Mpq.Queue.spawn] starts with its parent's. It does not
   * matter to a local queue, which sees a child die at once. Defaults to
   * [const@Mpq.DEFAULT_LEASE_TIME] (10,000).
   *
   * Since: 1.2
   */
  properties[PROP_LEASE_TIME] =
    g_param_spec_uint ("lease-time", NULL, NULL,
                       1, G_MAXINT, MPQ_DEFAULT_LEASE_TIME,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * MpqQueue:uri:
   *
   * Where a queue kept on a server lives, such as `redis+unix:///run/redis.sock`
   * (see [ctor@Mpq.Queue.new_for_uri]); %NULL for a queue of this process
   * and its children. A child that joined through [const@Mpq.QUEUE_URI_ENV]
   * reads it from there.
   *
   * Since: 1.2
   */
  properties[PROP_URI] =
    g_param_spec_string ("uri", NULL, NULL,
                         NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * MpqQueue:name:
   *
   * The name of a queue kept on a server (see [property@Mpq.Queue:uri]);
   * %NULL for a queue of this process and its children.
   *
   * Since: 1.2
   */
  properties[PROP_NAME] =
    g_param_spec_string ("name", NULL, NULL,
                         NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  for (guint i = MPQ_CHANNEL_N_PROPS; i < N_PROPS; i++)
    g_object_class_install_property (object_class, i, properties[i]);
}

static void
mpq_queue_init (MpqQueue *self)
{
  self->role = MPQ_ROLE_PARENT;
  self->max_message_size = MPQ_DEFAULT_MAX_MESSAGE_SIZE;
  self->put_timeout = MPQ_DEFAULT_PUT_TIMEOUT;
  self->put_attempts = MPQ_DEFAULT_PUT_ATTEMPTS;
  self->prefetch = MPQ_DEFAULT_PREFETCH;
  self->lease_time = MPQ_DEFAULT_LEASE_TIME;
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
  g_return_val_if_fail (max_size <= G_MAXINT, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (MPQ_TYPE_QUEUE, NULL, error,
                         "role", MPQ_ROLE_PARENT, "max-size", max_size, NULL);
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
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (MPQ_TYPE_QUEUE, NULL, error, "role", MPQ_ROLE_CHILD, NULL);
}

/**
 * mpq_queue_new_for_uri:
 * @uri: where the queue lives: `redis://HOST[:PORT][/DB]` or
 *   `redis+unix:///PATH` (a password as `redis://:PASSWORD@HOST`)
 * @name: the queue's name on that server: participants that give the same
 *   @uri and @name share one queue
 * @max_size: how many messages may wait in the queue, 0 for no limit; the
 *   first participant to make the queue sets it
 * @error: return location for an error
 *
 * Opens a queue kept in Redis Streams, so that processes on other
 * machines can take part. Children spawned with [method@Mpq.Queue.spawn]
 * find it through [const@Mpq.QUEUE_URI_ENV] and [const@Mpq.QUEUE_NAME_ENV]
 * and join with [ctor@Mpq.Queue.new_for_child], as they join a local
 * queue; a process started any other way can set the two variables
 * itself, or call this function.
 *
 * Every participant gets a queue-wide id from the server, never reused:
 * the queue's [property@Mpq.Channel:pid], and the sender a send with
 * sender 0 writes. [method@Mpq.Queue.get_parent_pid] gives the id of the
 * participant that made the queue first. What works yet and how such a
 * queue differs from a local one is in [the Redis page](redis.html).
 *
 * Without Redis support in this build, this fails with
 * `G_IO_ERROR_NOT_SUPPORTED`.
 *
 * Returns: (transfer full): the queue, or %NULL with @error set
 *
 * Since: 1.2
 */
MpqQueue *
mpq_queue_new_for_uri (const char  *uri,
                       const char  *name,
                       guint        max_size,
                       GError     **error)
{
  g_return_val_if_fail (uri != NULL, NULL);
  g_return_val_if_fail (name != NULL && name[0] != '\0', NULL);
  g_return_val_if_fail (max_size <= G_MAXINT, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (MPQ_TYPE_QUEUE, NULL, error,
                         "role", MPQ_ROLE_PARENT, "max-size", max_size,
                         "uri", uri, "name", name, NULL);
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

/**
 * mpq_queue_get_lease_time: (get-property lease-time)
 * @self: a queue
 *
 * Gets how long a message in this participant's hand stays its own
 * without being renewed, on a queue kept on a server.
 *
 * Returns: the time in milliseconds
 *
 * Since: 1.2
 */
guint
mpq_queue_get_lease_time (MpqQueue *self)
{
  g_return_val_if_fail (MPQ_IS_QUEUE (self), 0);

  return self->lease_time;
}

/**
 * mpq_queue_set_lease_time: (set-property lease-time)
 * @self: a queue
 * @lease_time_ms: the time in milliseconds, at least 1
 *
 * Sets how long a message in this participant's hand stays its own
 * without being renewed, on a queue kept on a server; it counts for the
 * messages taken from then on.
 *
 * Since: 1.2
 */
void
mpq_queue_set_lease_time (MpqQueue *self,
                          guint     lease_time_ms)
{
  g_return_if_fail (MPQ_IS_QUEUE (self));
  g_return_if_fail (lease_time_ms >= 1 && lease_time_ms <= G_MAXINT);

  if (self->lease_time == lease_time_ms)
    return;
  self->lease_time = lease_time_ms;
  if (self->backend != NULL && self->backend->klass->set_lease_time != NULL)
    self->backend->klass->set_lease_time (self->backend, lease_time_ms);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LEASE_TIME]);
}
