/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <pymulproc/pymulproc.h>

#include "redis-test-util.h"

G_BEGIN_DECLS

/* The test program's redis-server (test-queue-redis.c starts it). */
extern RedisTestServer *server;

/* redis_test_open_queue () on it. */
MpqQueue    *open_queue        (const char       *name,
                                guint             max_size);
/* The participant id of @queue. */
gint         pid_of            (MpqQueue         *queue);
/* Sends the int @value as @request to @recipient (0: anyone). */
void         send_value        (MpqQueue         *queue,
                                const char       *request,
                                gint              recipient,
                                gint64            value);
gint64       value_of          (MpqMessage       *message);
/* receive (), asserting no error; NULL when nothing came in time. */
MpqMessage  *take              (MpqQueue         *queue,
                                gint              timeout_ms);
/* The value of the message taken, which must be there. */
gint64       take_value        (MpqQueue         *queue,
                                gint              timeout_ms);
/* receive_for_me (), asserting no error. */
MpqMessage  *take_for_me       (MpqQueue         *queue,
                                gint              timeout_ms);
void         assert_exits_zero (GSubprocess      *child);
/* DIE to @worker, its exit 0, then the queue's join. */
void         stop_worker       (MpqQueue         *queue,
                                gint              worker,
                                GSubprocess      *child);

/* An async call's result, kept in *@user_data (a GAsyncResult *). */
void         keep_result       (GObject          *source,
                                GAsyncResult     *result,
                                gpointer          user_data);
MpqMessage  *finish_receive    (MpqQueue         *queue,
                                GAsyncResult     *result);
/* Runs the thread-default context until *@result is set. */
void         wait_result       (GAsyncResult    **result);

/* A DO task {"value": @value} for anyone. */
void         send_task         (MpqQueue         *queue,
                                gint64            value);
/* The value of a FINISHED answer to send_task (). */
gint64       answer_value      (MpqMessage       *message);
/* mpq-queue-test-child in @mode (it kills itself in "die-in-handler"),
 * spawned through @queue. */
GSubprocess *spawn_child       (MpqQueue         *queue,
                                GSubprocessFlags  flags,
                                const char       *mode);
/* ::closed: counts in *@user_data (a guint). */
void         on_closed         (MpqChannel       *channel,
                                gpointer          user_data);

void         test_queue_redis_add_dispatch_tests (void);
void         test_queue_redis_add_outage_tests   (void);

G_END_DECLS
