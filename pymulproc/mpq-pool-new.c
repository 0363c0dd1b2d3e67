/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-channel.h"
#include "mpq-error.h"
#include "mpq-pool-private.h"
#include "mpq-protocol.h"
#include "mpq-queue-private.h"

/* Making a pool: its constructors, and GInitable, which makes or takes
 * its queue and spawns its first workers. The object is mpq-pool.c. The
 * thread that makes the pool (its context from then on). */

static void
message_received_cb (MpqChannel *channel,
                     MpqMessage *message,
                     gpointer    user_data)
{
  g_autoptr(MpqPool) self = g_object_ref (user_data);

  _mpq_pool_on_message (self, message);
}

static gboolean
mpq_pool_initable_init (GInitable     *initable,
                        GCancellable  *cancellable,
                        GError       **error)
{
  MpqPool *self = MPQ_POOL (initable);

  if (self->context != NULL)
    return TRUE;
  if (self->queue == NULL && (self->argv == NULL || self->argv[0] == NULL))
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_FAILED,
                           "A pool needs the workers' command line");
      return FALSE;
    }
  if (self->argv != NULL && self->argv[0] == NULL)
    g_clear_pointer (&self->argv, g_strfreev);
  if (self->queue != NULL && !_mpq_queue_check_open (self->queue, error))
    return FALSE;
  /* Only a server's queue can be joined by workers nobody spawned. */
  if (self->argv == NULL && !_mpq_queue_tells_gone (self->queue))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                           "A pool that spawns no workers needs a queue on a server "
                           "(mpq_queue_new_for_uri ()): nobody else can join a local one");
      return FALSE;
    }

  self->context = g_main_context_ref_thread_default ();
  if (self->launcher == NULL)
    self->launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_subprocess_launcher_setenv (self->launcher, MPQ_POOL_WORKER_ENV, "1", TRUE);
  /* Without a command line the pool spawns nobody: its workers join. */
  if (self->argv == NULL)
    self->n_workers = 0;
  else if (self->n_workers == 0)
    self->n_workers = g_get_num_processors ();

  if (self->queue == NULL)
    self->queue = mpq_queue_new (0, error);
  if (self->queue == NULL)
    return FALSE;
  self->pid = mpq_channel_get_pid (MPQ_CHANNEL (self->queue));
  g_signal_connect (self->queue, "message-received", G_CALLBACK (message_received_cb), self);
  mpq_channel_start (MPQ_CHANNEL (self->queue));

  for (guint i = 0; i < self->n_workers; i++)
    if (!_mpq_pool_spawn_worker (self, error))
      return FALSE;
  return TRUE;
}

void
_mpq_pool_initable_iface_init (GInitableIface *iface)
{
  iface->init = mpq_pool_initable_init;
}

/**
 * mpq_pool_new:
 * @argv: (array zero-terminated=1) (element-type filename): the workers'
 *   command line
 * @n_workers: how many workers to keep; 0 for one per processor
 * @error: return location for a #GError
 *
 * Spawns a pool of workers, each running @argv, in the thread-default
 * main context.
 *
 * Returns: (transfer full): the pool, or %NULL with @error set when a
 *   worker could not be spawned
 *
 * Since: 1.2
 */
MpqPool *
mpq_pool_new (const char * const  *argv,
              guint                n_workers,
              GError             **error)
{
  return mpq_pool_new_with_launcher (NULL, argv, n_workers, error);
}

/**
 * mpq_pool_new_with_launcher:
 * @launcher: (nullable): what spawns the workers; the pool sets
 *   `MPQ_POOL_WORKER=1` on it
 * @argv: (array zero-terminated=1) (element-type filename): the workers'
 *   command line
 * @n_workers: how many workers to keep; 0 for one per processor
 * @error: return location for a #GError
 *
 * Like [ctor@Mpq.Pool.new], with the environment, working directory and
 * standard streams @launcher gives.
 *
 * Returns: (transfer full): the pool, or %NULL with @error set
 *
 * Since: 1.2
 */
MpqPool *
mpq_pool_new_with_launcher (GSubprocessLauncher  *launcher,
                            const char * const   *argv,
                            guint                 n_workers,
                            GError              **error)
{
  g_return_val_if_fail (launcher == NULL || G_IS_SUBPROCESS_LAUNCHER (launcher), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (MPQ_TYPE_POOL, NULL, error, "argv", argv, "launcher", launcher,
                         "n-workers", n_workers, NULL);
}

/**
 * mpq_pool_new_for_queue:
 * @queue: the queue to talk to the workers through, typically one on
 *   Redis from [ctor@Mpq.Queue.new_for_uri]; the pool takes it over
 * @argv: (nullable) (array zero-terminated=1) (element-type filename): the
 *   command line of the workers the pool spawns, or %NULL to spawn none
 *   (only on a queue on a server: `G_IO_ERROR_INVALID_ARGUMENT` otherwise)
 * @n_workers: how many workers to spawn and keep; 0 for one per
 *   processor (none without @argv)
 * @error: return location for a #GError
 *
 * A pool whose workers may run on other hosts. Besides those it spawns,
 * any process that joins @queue's queue on the server as a pool worker
 * (an [class@Mpq.Worker] started with `MPQ_QUEUE_URI`, `MPQ_QUEUE_NAME`
 * and `MPQ_POOL_WORKER=1` in its environment) serves the pool once it
 * says it is ready: [signal@Mpq.Pool::worker-started] with its id in the
 * queue. Such a worker is not counted by [property@Mpq.Pool:n-workers]
 * and is not replaced; the pool sees it leave (told to go, or its own
 * choice) at once, and its death when its lease ends
 * ([property@Mpq.Queue:lease-time]): then
 * [signal@Mpq.Pool::worker-exited] with wait status -1, and what it held
 * is judged as for any death. On a queue on a server, every pid the pool
 * gives is a participant id in the queue, not an OS pid. See
 * `docs/redis.md`, "A pool on Redis".
 *
 * Returns: (transfer full): the pool, or %NULL with @error set
 *
 * Since: 1.2
 */
MpqPool *
mpq_pool_new_for_queue (MpqQueue            *queue,
                        const char * const  *argv,
                        guint                n_workers,
                        GError             **error)
{
  g_return_val_if_fail (MPQ_IS_QUEUE (queue), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (MPQ_TYPE_POOL, NULL, error, "queue", queue, "argv", argv,
                         "n-workers", n_workers, NULL);
}
