/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MPQ_INSIDE) && !defined (MPQ_COMPILATION)
# error "Only <pymulproc/pymulproc.h> can be included directly."
#endif

#include <glib.h>

G_BEGIN_DECLS

/**
 * MPQ_REQ_DO:
 *
 * Asks the peer to do a task.
 */
#define MPQ_REQ_DO "DO"

/**
 * MPQ_REQ_FINISHED:
 *
 * Tells the peer that a task is done.
 */
#define MPQ_REQ_FINISHED "FINISHED"

/**
 * MPQ_REQ_DIE:
 *
 * Asks the peer to stop as soon as possible: a poison pill.
 */
#define MPQ_REQ_DIE "DIE"

/**
 * MPQ_REQ_TEST_PARENT:
 *
 * The request pymulproc's tests send from a parent.
 */
#define MPQ_REQ_TEST_PARENT "I'M PARENT PROCESS"

/**
 * MPQ_REQ_TEST_CHILD:
 *
 * The request pymulproc's tests send from a child.
 */
#define MPQ_REQ_TEST_CHILD "I'M CHILD PROCESS"

/**
 * MPQ_S_PID_OFFSET:
 *
 * Index of the sender pid in the wire array; the request is at
 * `MPQ_S_PID_OFFSET - 1` and the data at `MPQ_S_PID_OFFSET + 2`.
 */
#define MPQ_S_PID_OFFSET 1

/**
 * MPQ_R_PID_OFFSET:
 *
 * Index of the recipient pid in the wire array.
 */
#define MPQ_R_PID_OFFSET 2

/**
 * MPQ_REQ_READY:
 *
 * What a pool worker says once it is ready for tasks (see
 * [class@Mpq.Pool]).
 *
 * Since: 1.2
 */
#define MPQ_REQ_READY "READY"

/**
 * MPQ_REQ_FAILED:
 *
 * A pool worker's answer to a task that failed: its data is
 * `{"task": id, "error": "text"}`.
 *
 * Since: 1.2
 */
#define MPQ_REQ_FAILED "FAILED"

/**
 * MPQ_REQ_PROGRESS:
 *
 * What a pool worker reports while it works on a task: its data is
 * `{"task": id, "progress": value}`.
 *
 * Since: 1.2
 */
#define MPQ_REQ_PROGRESS "PROGRESS"

/**
 * MPQ_REQ_CANCEL:
 *
 * What a pool tells a worker of a task it no longer wants: its data is
 * `{"task": id}`.
 *
 * Since: 1.2
 */
#define MPQ_REQ_CANCEL "CANCEL"

/**
 * MPQ_POOL_WORKER_ENV:
 *
 * The environment variable set to `1` in the workers an [class@Mpq.Pool]
 * spawns, beside [const@Mpq.CHANNEL_FD_ENV].
 *
 * Since: 1.2
 */
#define MPQ_POOL_WORKER_ENV "MPQ_POOL_WORKER"

/**
 * MPQ_CHANNEL_FD_ENV:
 *
 * The environment variable that names, in a spawned child, the descriptor
 * inherited from its parent.
 */
#define MPQ_CHANNEL_FD_ENV "MPQ_CHANNEL_FD"

/**
 * MPQ_CHANNEL_KIND_ENV:
 *
 * The environment variable that tells a spawned child which kind of channel
 * (`pipe` or `queue`) its inherited descriptor carries.
 */
#define MPQ_CHANNEL_KIND_ENV "MPQ_CHANNEL_KIND"

/**
 * MPQ_QUEUE_URI_ENV:
 *
 * The environment variable that gives a process the URI of a queue kept
 * on a server (see [ctor@Mpq.Queue.new_for_uri]);
 * [ctor@Mpq.Queue.new_for_child] joins it when [const@Mpq.CHANNEL_FD_ENV]
 * is not set.
 *
 * Since: 1.2
 */
#define MPQ_QUEUE_URI_ENV "MPQ_QUEUE_URI"

/**
 * MPQ_QUEUE_NAME_ENV:
 *
 * The environment variable that gives, beside [const@Mpq.QUEUE_URI_ENV],
 * the name of the queue on that server.
 *
 * Since: 1.2
 */
#define MPQ_QUEUE_NAME_ENV "MPQ_QUEUE_NAME"

/**
 * MPQ_CHANNEL_FDS_ENV:
 *
 * The environment variable a parent sets to `1` for a pipe child when it
 * takes payloads by descriptor (see [method@Mpq.Channel.send_bytes]); a
 * child that takes them too answers with the line
 * [const@Mpq.PIPE_HELLO_FDS] first.
 */
#define MPQ_CHANNEL_FDS_ENV "MPQ_CHANNEL_FDS"

/**
 * MPQ_PIPE_HELLO_FDS:
 *
 * The first line a pipe child sends when its parent set
 * [const@Mpq.CHANNEL_FDS_ENV] and it takes payloads by descriptor too.
 */
#define MPQ_PIPE_HELLO_FDS "{\"op\":\"hello\",\"fds\":true}"

/**
 * MPQ_PAYLOAD_INLINE_MAX:
 *
 * Payloads up to this many bytes travel inline, as base64 in the line;
 * larger ones as a sealed memory file, to a peer that takes descriptors.
 */
#define MPQ_PAYLOAD_INLINE_MAX (64 * 1024)

/**
 * MPQ_DEFAULT_MAX_MESSAGE_SIZE:
 *
 * The default of [property@Mpq.Channel:max-message-size]: 1 MiB per line.
 */
#define MPQ_DEFAULT_MAX_MESSAGE_SIZE (1024 * 1024)

/**
 * MPQ_MAX_DEPTH:
 *
 * How deeply arrays and objects may nest in a message line, the outer
 * 4-element array included. Deeper lines are protocol errors.
 */
#define MPQ_MAX_DEPTH 128

/**
 * MPQ_DEFAULT_SEND_TIMEOUT:
 *
 * The default of [property@Mpq.Pipe:send-timeout], in milliseconds.
 */
#define MPQ_DEFAULT_SEND_TIMEOUT 10000

/**
 * MpqRole:
 * @MPQ_ROLE_PARENT: the process that made the channel and spawns children
 * @MPQ_ROLE_CHILD: a process spawned by the parent
 *
 * Which end of a channel an object is.
 */
typedef enum
{
  MPQ_ROLE_PARENT = 1,
  MPQ_ROLE_CHILD  = 2,
} MpqRole;

G_END_DECLS
