/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* MPQ_DEBUG's idle check (mpq-debug-idle.c): a channel end that messages
 * wait for, about a second, while it was never started nor read, says so
 * once on stderr. Nothing of it exists without MPQ_DEBUG: no source, no
 * timer, no watch. */

/* The text of that line, for the tests and the docs to match. */
#define MPQ_DEBUG_IDLE_TEXT "but it was never started nor read: call mpq_channel_start () or receive ()"

/* A pipe's end: the messages wait in its socket, unread. A watch on @fd in
 * the caller's thread-default main context (the one the pipe is made in)
 * peeks at the socket once it is readable, then once a second, and stops
 * at the first read, start or close (_mpq_debug_idle_stop). The line
 * names the end as "@what (@type_name @owner)": "pipe (MpqPipe 0x...)".
 * NULL without MPQ_DEBUG. Owner's thread. */
typedef struct _MpqDebugIdle MpqDebugIdle;

MpqDebugIdle *_mpq_debug_idle_new  (int            fd,
                                    const char    *what,
                                    const char    *type_name,
                                    gpointer       owner);
void          _mpq_debug_idle_stop (MpqDebugIdle **idle);

/* The parent's queue: its thread looks once a second at what waits for
 * each participant (the parent and every child) that never asked for
 * anything. Returns the tick, attached to the queue thread's context, or
 * NULL without MPQ_DEBUG. The caller's thread, at the server's creation. */
typedef struct _MpqQueueServer MpqQueueServer;

GSource      *_mpq_queue_debug_idle_new (MpqQueueServer *server);

G_END_DECLS
