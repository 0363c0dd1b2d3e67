/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A queue on Redis whose server goes away: for good, SIGKILLed and
 * started again, away for a while, back without the queue
 * (test-queue-redis.c runs them). No sleeps: a wait ends on what the
 * queue or the server says. */
#include <signal.h>
#include <string.h>

#include "queue-redis-test-util.h"

/* The server goes away for good: a send waits as its time-out allows,
 * then fails with CLOSED (never a SIGPIPE); a receive that waits for
 * ever fails once the queue gives the server up, a lease-time later;
 * ::closed is emitted once, then. */
#ifdef MPQ_TEST_REDIS_SERVER
static void
test_server_lost (void)
{
  g_autoptr(GError) error = NULL;
  RedisTestServer *own = redis_test_server_start (MPQ_TEST_REDIS_SERVER, &error);
  g_autoptr(MpqQueue) queue = NULL;
  g_autoptr(JsonNode) data = json_node_init_int (json_node_alloc (), 1);
  guint closed = 0;

  g_assert_no_error (error);
  queue = mpq_queue_new_for_uri (redis_test_server_uri (own), "lost", 0, &error);
  g_assert_no_error (error);
  /* It gives the server up after a lease-time without it. */
  mpq_queue_set_lease_time (queue, 300);
  g_signal_connect (queue, "closed", G_CALLBACK (on_closed), &closed);
  send_value (queue, MPQ_REQ_DO, 0, 1);
  redis_test_server_stop (own);

  /* A unix socket whose server is gone: the write fails with EPIPE. */
  g_assert_false (mpq_channel_send (MPQ_CHANNEL (queue), MPQ_REQ_DO, 0, 0, data, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_clear_error (&error);
  g_assert_null (mpq_channel_receive (MPQ_CHANNEL (queue), -1, NULL, NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);

  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (closed, ==, 1);
}
#endif

#ifdef MPQ_TEST_REDIS_SERVER
/* The server SIGKILLed and started again mid-run, its append-only file
 * keeping what it acknowledged: the parent and a worker on dispatch
 * connect again and go on; every task is answered (a task may be done
 * twice, never lost) and join ends. */
static void
test_server_restarted (void)
{
  g_autoptr(GError) error = NULL;
  RedisTestServer *own = redis_test_server_start_persistent (MPQ_TEST_REDIS_SERVER, &error);
  g_autofree char *path = g_test_build_filename (G_TEST_BUILT, "mpq-queue-test-child", NULL);
  const char *argv[] = { path, "worker", NULL };
  g_autoptr(GHashTable) answered = g_hash_table_new (NULL, NULL);
  g_autoptr(MpqQueue) queue = NULL;
  g_autoptr(GSubprocess) worker = NULL;
  gboolean restarted = FALSE;
  guint closed = 0;
  gint worker_id = 0;
  const guint n = 40;

  g_assert_no_error (error);
  queue = mpq_queue_new_for_uri (redis_test_server_uri (own), "restarted", 0, &error);
  g_assert_no_error (error);
  g_signal_connect (queue, "closed", G_CALLBACK (on_closed), &closed);
  worker = mpq_queue_spawn (queue, argv, &error);
  g_assert_no_error (error);
  for (guint i = 1; i <= n / 2; i++)
    send_task (queue, i);

  /* A quarter answered: the restart; the second half is sent after it,
   * so both ends must have the server again. */
  while (g_hash_table_size (answered) < n)
    {
      g_autoptr(MpqMessage) message = take_for_me (queue, -1);

      if (g_strcmp0 (mpq_message_get_request (message), MPQ_REQ_FINISHED) != 0)
        continue;
      worker_id = mpq_message_get_sender_pid (message);
      g_assert_cmpint (answer_value (message), >=, 1);
      g_assert_cmpint (answer_value (message), <=, n);
      g_hash_table_add (answered, GINT_TO_POINTER ((gint) answer_value (message)));
      if (!restarted && g_hash_table_size (answered) >= n / 4)
        {
          redis_test_server_restart (own, &error);
          g_assert_no_error (error);
          restarted = TRUE;
          for (guint i = n / 2 + 1; i <= n; i++)
            send_task (queue, i);
        }
    }
  stop_worker (queue, worker_id, worker);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (closed, ==, 0);
  g_clear_object (&queue);
  redis_test_server_stop (own);
}
#endif

#ifdef MPQ_TEST_REDIS_SERVER
/* While the server is away, a call waits as its time-out allows, then
 * fails with CLOSED, and the queue stays open: once the server is back,
 * the next call works and nothing was lost. */
static void
test_outage_calls_wait_then_fail (void)
{
  g_autoptr(GError) error = NULL;
  RedisTestServer *own = redis_test_server_start_persistent (MPQ_TEST_REDIS_SERVER, &error);
  g_autoptr(MpqQueue) queue = NULL;
  guint closed = 0;

  g_assert_no_error (error);
  queue = mpq_queue_new_for_uri (redis_test_server_uri (own), "outage", 0, &error);
  g_assert_no_error (error);
  g_signal_connect (queue, "closed", G_CALLBACK (on_closed), &closed);
  send_value (queue, MPQ_REQ_DO, 0, 1);
  send_value (queue, MPQ_REQ_DO, 0, 2);
  g_assert_cmpint (take_value (queue, 0), ==, 1);

  redis_test_server_kill (own);
  g_assert_null (mpq_channel_receive (MPQ_CHANNEL (queue), 100, NULL, NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_clear_error (&error);
  g_assert_false (mpq_queue_join (queue, 0, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  g_clear_error (&error);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (closed, ==, 0);

  redis_test_server_relaunch (own, &error);
  g_assert_no_error (error);
  /* 1 was taken for good before the outage; 2 waits. */
  g_assert_cmpint (take_value (queue, -1), ==, 2);
  g_assert_true (mpq_queue_join (queue, -1, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (closed, ==, 0);
  g_clear_object (&queue);
  redis_test_server_stop (own);
}

/* A server that comes back without the queue (no persistence): the
 * queue gives up at once, its calls fail CLOSED, ::closed once. */
static void
test_server_back_without_the_queue (void)
{
  g_autoptr(GError) error = NULL;
  RedisTestServer *own = redis_test_server_start (MPQ_TEST_REDIS_SERVER, &error);
  g_autoptr(MpqQueue) queue = NULL;
  guint closed = 0;

  g_assert_no_error (error);
  queue = mpq_queue_new_for_uri (redis_test_server_uri (own), "forgotten", 0, &error);
  g_assert_no_error (error);
  g_signal_connect (queue, "closed", G_CALLBACK (on_closed), &closed);
  send_value (queue, MPQ_REQ_DO, 0, 1);
  redis_test_server_restart (own, &error);
  g_assert_no_error (error);

  g_assert_null (mpq_channel_receive (MPQ_CHANNEL (queue), -1, NULL, NULL, &error));
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (closed, ==, 1);
  g_clear_object (&queue);
  redis_test_server_stop (own);
}
#endif

void
test_queue_redis_add_outage_tests (void)
{
#ifdef MPQ_TEST_REDIS_SERVER
  g_test_add_func ("/Mpq/QueueRedis/server-lost", test_server_lost);
  g_test_add_func ("/Mpq/QueueRedis/server-restarted", test_server_restarted);
  g_test_add_func ("/Mpq/QueueRedis/outage-calls-wait-then-fail",
                   test_outage_calls_wait_then_fail);
  g_test_add_func ("/Mpq/QueueRedis/server-back-without-the-queue",
                   test_server_back_without_the_queue);
#endif
}
