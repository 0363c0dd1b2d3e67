/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdlib.h>

#include "mpq-error.h"
#include "mpq-queue.h"
#include "mpq-queue-private.h"

/* MpqQueue's own calls (beside the channel's, mpq-queue-channel.c):
 * spawning, emptiness, join, the parent's pid, the parent's sync; each
 * checks its arguments and hands over to the backend. The object itself,
 * its properties and constructors are mpq-queue.c. The queue's user's
 * thread. */

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
 * is closed. Spawn as many children as you like. A child of a queue on a
 * server ([ctor@Mpq.Queue.new_for_uri]) is given its URI and name
 * instead ([const@Mpq.QUEUE_URI_ENV], [const@Mpq.QUEUE_NAME_ENV]).
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
  g_return_val_if_fail (MPQ_IS_QUEUE (self), NULL);
  g_return_val_if_fail (launcher == NULL || G_IS_SUBPROCESS_LAUNCHER (launcher), NULL);
  g_return_val_if_fail (argv != NULL && argv[0] != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return _mpq_queue_spawn_child (self, launcher, argv, NULL, error);
}

/* mpq_queue_spawn_with_launcher () that also says the child's pid in the
 * queue (@pid, nullable): its id on a server's, its OS pid on a local
 * one (0 when GLib reaped it before it could be read). The caller's
 * thread. */
GSubprocess *
_mpq_queue_spawn_child (MpqQueue             *self,
                        GSubprocessLauncher  *launcher,
                        const char * const   *argv,
                        gint                 *pid,
                        GError              **error)
{
  GSubprocess *process;
  gint child = 0;

  if (!_mpq_queue_check_open (self, error))
    return NULL;
  process = self->backend->klass->spawn (self->backend, launcher, argv, &child, error);
  if (process != NULL && child == 0 && g_subprocess_get_identifier (process) != NULL)
    child = atoi (g_subprocess_get_identifier (process));
  if (pid != NULL)
    *pid = child;
  return process;
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

  if (!_mpq_queue_check_open (self, error))
    return FALSE;
  return self->backend->klass->is_empty (self->backend, error);
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

  if (!_mpq_queue_check_open (self, error))
    return FALSE;
  return self->backend->klass->join (self->backend, timeout_ms, error);
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

  g_return_if_fail (MPQ_IS_QUEUE (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = _mpq_queue_start_task (self, cancellable, callback, user_data, mpq_queue_join_async);
  if (task != NULL)
    self->backend->klass->join_async (self->backend, task);
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

  /* A queue closed since still knows; one that could not be made does not. */
  _mpq_queue_check_open (self, NULL);
  if (self->backend == NULL)
    return 0;
  return self->backend->klass->get_parent_pid (self->backend);
}

/* The parent's queue only (a child's does nothing): makes sure that what
 * children wrote before now is in the queue, so that a message the parent
 * puts now comes after it. The caller's thread. */
void
_mpq_queue_sync_children (MpqQueue *self)
{
  if (self->backend != NULL && self->backend->klass->sync != NULL)
    self->backend->klass->sync (self->backend);
}

/* The parent's queue only: drops the messages waiting for @pid, a child
 * gone for good (they count as taken). The caller's thread. */
void
_mpq_queue_forget_pid (MpqQueue *self,
                       gint      pid)
{
  if (self->backend != NULL && self->backend->klass->forget_pid != NULL)
    self->backend->klass->forget_pid (self->backend, pid);
}

/* Whether the queue tells who left it (a queue on a server's): the
 * caller must then ask, with _mpq_queue_find_gone (). */
gboolean
_mpq_queue_tells_gone (MpqQueue *self)
{
  return self->backend != NULL && self->backend->klass->find_gone != NULL;
}

/* A queue on a server's: @ids (gint) becomes those of them that left the
 * queue or whose lease ended (see docs/redis.md). Fails at once, with
 * @ids unchanged, when the server is away. The caller's thread. */
gboolean
_mpq_queue_find_gone (MpqQueue  *self,
                      GArray    *ids,
                      GError   **error)
{
  g_return_val_if_fail (_mpq_queue_tells_gone (self), FALSE);

  if (!_mpq_queue_check_open (self, error))
    return FALSE;
  return self->backend->klass->find_gone (self->backend, ids, error);
}
