/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What a queue on Redis takes off the server for its dispatch is bounded
 * in bytes, not only in messages: a peer that sends this process many
 * large messages while its handlers are slow leaves them on the server,
 * not in this process's memory. Against a redis-server of this test
 * program's own (redis-test-util.c). No sleeps: each wait ends on what
 * the queue says or does. */
#include <string.h>

#include <pymulproc/pymulproc.h>

#include "redis-test-util.h"

static RedisTestServer *server;

#ifdef MPQ_TEST_REDIS_SERVER
/* As MPQ_REDIS_INBOX_BYTES (mpq-queue-redis-thread-private.h). */
#define INBOX_BYTES (8 * 1024 * 1024)
/* Messages of half a MiB: twice the bound in all. */
#define PAYLOAD_BYTES (512 * 1024)
#define N_MESSAGES (2 * INBOX_BYTES / PAYLOAD_BYTES)

typedef struct
{
  const char *name;
  gint        full;       /* atomic: the queue's thread said its inbox is full */
  guint       received;
  guint       in_order;
  gboolean    checked;
} InboxTest;

/* The library's thread: its debug message when it stops taking. */
static void
on_debug (const char     *domain,
          GLogLevelFlags  level,
          const char     *message,
          gpointer        user_data)
{
  InboxTest *test = user_data;

  if (strstr (message, "takes no more until dispatch emptied some") != NULL)
    {
      g_atomic_int_set (&test->full, 1);
      g_main_context_wakeup (NULL);
    }
}

/* How many messages the server has in someone's hand. */
static long long
held (InboxTest *test)
{
  return redis_test_server_int (server, "HLEN mpq:{%s}:held", test->name);
}

static gboolean
look_again (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

static void
on_message (MpqChannel *channel,
            MpqMessage *message,
            gpointer    user_data)
{
  InboxTest *test = user_data;
  JsonNode *data = mpq_message_get_data (message);
  guint look;

  g_assert_cmpuint (strlen (json_array_get_string_element (json_node_get_array (data), 1)), ==,
                    PAYLOAD_BYTES);
  if (json_array_get_int_element (json_node_get_array (data), 0) == test->received)
    test->in_order++;
  test->received++;
  if (test->checked)
    return;

  /* The first handler is slow: it returns only once the thread stopped
   * taking. Dispatch's source is blocked while its handler runs, so a
   * timer wakes this loop to look at the server: without the bound the
   * thread takes every message, and that is seen within a tick. */
  test->checked = TRUE;
  look = g_timeout_add (10, look_again, NULL);
  while (!g_atomic_int_get (&test->full))
    {
      g_assert_cmpint (held (test), <, N_MESSAGES);
      g_main_context_iteration (NULL, TRUE);
    }
  g_source_remove (look);
  /* At most one message past the bound, and the one in hand here. */
  g_assert_cmpint (held (test), <=, INBOX_BYTES / PAYLOAD_BYTES + 2);
  g_assert_cmpint (held (test), >=, 2);
}

static void
test_inbox_bounded_in_bytes (void)
{
  g_autofree char *name = redis_test_queue_name ();
  g_autoptr(MpqQueue) receiver = redis_test_open_queue (server, name, 0);
  g_autoptr(MpqQueue) peer = redis_test_open_queue (server, name, 0);
  g_autofree char *payload = g_malloc (PAYLOAD_BYTES + 1);
  InboxTest test = { .name = name };
  gint to = mpq_channel_get_pid (MPQ_CHANNEL (receiver));
  guint handler;

  memset (payload, 'x', PAYLOAD_BYTES);
  payload[PAYLOAD_BYTES] = '\0';
  for (gint i = 0; i < N_MESSAGES; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *data = g_strdup_printf ("[%d,\"%s\"]", i, payload);

      mpq_channel_send_json (MPQ_CHANNEL (peer), MPQ_REQ_DO, 0, to, data, &error);
      g_assert_no_error (error);
    }

  handler = g_log_set_handler ("Mpq", G_LOG_LEVEL_DEBUG, on_debug, &test);
  g_signal_connect (receiver, "message-received", G_CALLBACK (on_message), &test);
  mpq_channel_start (MPQ_CHANNEL (receiver));
  /* Then the rest comes, in order: none was lost for the bound. */
  while (test.received < N_MESSAGES)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (test.in_order, ==, N_MESSAGES);
  mpq_channel_stop (MPQ_CHANNEL (receiver));
  g_log_remove_handler ("Mpq", handler);
}
#endif

int
main (int   argc,
      char *argv[])
{
  if (!redis_test_init (&argc, &argv))
    return 77;

#ifdef MPQ_TEST_REDIS_SERVER
  g_test_add_func ("/Mpq/QueueRedis/inbox-bounded-in-bytes", test_inbox_bounded_in_bytes);
#endif
  return redis_test_run (&server);
}
