/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MPQ_INSIDE) && !defined (MPQ_COMPILATION)
# error "Only <pymulproc/pymulproc.h> can be included directly."
#endif

#include <glib.h>

#include "mpq-version-macros.h"

G_BEGIN_DECLS

/**
 * MPQ_ERROR:
 *
 * The error domain of the library.
 */
#define MPQ_ERROR (mpq_error_quark ())

/**
 * MpqError:
 * @MPQ_ERROR_FAILED: any other failure (spawning, a system call)
 * @MPQ_ERROR_CLOSED: the channel was closed, or the peer hung up
 * @MPQ_ERROR_FULL: the queue stayed full for every attempt to put
 * @MPQ_ERROR_TIMED_OUT: the operation did not complete in the time allowed
 * @MPQ_ERROR_PROTOCOL: the peer sent something that is not a message
 * @MPQ_ERROR_TOO_LARGE: a message line is longer than
 *   [property@Mpq.Channel:max-message-size]
 * @MPQ_ERROR_NOT_A_CHILD: the process was not spawned with a channel
 * @MPQ_ERROR_TASK_FAILED: a pool's worker answered the task with an error;
 *   the error's message is the worker's text (since 1.2)
 * @MPQ_ERROR_WORKER_LOST: the workers holding a pool's task died
 *   [property@Mpq.Pool:max-attempts] times (since 1.2)
 *
 * Error codes in the `MPQ_ERROR` domain.
 */
typedef enum
{
  MPQ_ERROR_FAILED,
  MPQ_ERROR_CLOSED,
  MPQ_ERROR_FULL,
  MPQ_ERROR_TIMED_OUT,
  MPQ_ERROR_PROTOCOL,
  MPQ_ERROR_TOO_LARGE,
  MPQ_ERROR_NOT_A_CHILD,
  MPQ_ERROR_TASK_FAILED,
  MPQ_ERROR_WORKER_LOST,
} MpqError;

MPQ_AVAILABLE_IN_ALL
GQuark mpq_error_quark (void);

G_END_DECLS
