/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* W6 over an MpqPipe: binary payloads, one at a time. The parent sends each
 * with mpq_channel_send_bytes (); the child takes it with
 * mpq_message_get_bytes (), checks its size and index and sends the same
 * GBytes back; the parent checks what comes back (bench-payload.h). Above
 * the library's threshold a payload travels as a sealed memfd. */

#include "bench-mpq.h"
#include "bench-payload.h"

#include <stdlib.h>

/* The payload API is there once <pymulproc/pymulproc.h> says so. */
#ifdef MPQ_HAVE_PAYLOADS

static void
send_bytes (MpqChannel *channel,
            const char *request,
            gint        recipient,
            GBytes     *payload)
{
  g_autoptr(GError) error = NULL;

  if (!mpq_channel_send_bytes (channel, request, 0, recipient, payload, &error))
    bench_fail ("send_bytes: %s", error->message);
}

/* The payload of a message with @request from a known sender. */
static GBytes *
message_bytes (MpqMessage *message,
               const char *request)
{
  GBytes *bytes;

  if (g_strcmp0 (mpq_message_get_request (message), request) != 0)
    bench_fail ("expected %s, got %s", request, mpq_message_get_request (message));
  if (mpq_message_get_sender_pid (message) <= 0)
    bench_fail ("a message without a sender");

  bytes = mpq_message_get_bytes (message);
  if (bytes == NULL)
    bench_fail ("a %s without a payload", request);

  return bytes;
}

static void
payload_parent (BenchArgs *args)
{
  g_autoptr(GSubprocess) child = NULL;
  BenchRssFile rss;
  g_autoptr(MpqPipe) pipe = bench_mpq_pipe_spawn (args, &rss, &child);
  MpqChannel *channel = MPQ_CHANNEL (pipe);
  BenchPayloadPool *pool = bench_payload_pool_new (args->size);
  BenchCheck check;
  gint64 i;

  bench_check_init (&check, args->count);
  for (i = 0; i < args->count; i++)
    {
      g_autoptr(GBytes) payload = bench_payload_pool_take (pool, i);
      g_autoptr(MpqMessage) echo = NULL;
      gconstpointer data;
      gsize length;

      send_bytes (channel, MPQ_REQ_DO, 0, payload);
      /* The buffer goes back to the pool once the library lets go. */
      g_clear_pointer (&payload, g_bytes_unref);

      echo = bench_mpq_receive (channel);
      data = g_bytes_get_data (message_bytes (echo, MPQ_REQ_FINISHED), &length);
      bench_payload_check (data, length, args->size, i);
      bench_check_add (&check, i);
    }

  bench_mpq_send (channel, MPQ_REQ_DIE, 0, NULL);
  bench_wait_child (child);
  mpq_channel_close (channel);

  bench_finish_throughput (args, "mpq", &check, rss.path);
  bench_rss_file_clear (&rss);
  bench_payload_pool_free (pool);
}

static void
payload_child (BenchArgs *args)
{
  g_autoptr(MpqPipe) pipe = bench_mpq_pipe_for_child ();
  MpqChannel *channel = MPQ_CHANNEL (pipe);
  gint64 i;

  for (i = 0;; i++)
    {
      g_autoptr(MpqMessage) message = bench_mpq_receive (channel);
      GBytes *payload;
      gconstpointer data;
      gsize length;

      if (g_str_equal (mpq_message_get_request (message), MPQ_REQ_DIE))
        break;

      payload = message_bytes (message, MPQ_REQ_DO);
      data = g_bytes_get_data (payload, &length);
      if (bench_payload_index (data, length, args->size) != i)
        bench_fail ("payload %" G_GINT64_FORMAT " arrived out of order", i);
      send_bytes (channel, MPQ_REQ_FINISHED, mpq_message_get_sender_pid (message), payload);
    }

  mpq_channel_close (channel);
  bench_write_rss_file (args->rss_file);
}

int
bench_mpq_payload (BenchArgs *args)
{
  if (args->child)
    payload_child (args);
  else
    payload_parent (args);

  return EXIT_SUCCESS;
}

#else /* !MPQ_HAVE_PAYLOADS */

int
bench_mpq_payload (BenchArgs *args)
{
  BenchResult *result = bench_result_new (args, "mpq");

  bench_result_string (result, "skipped",
                       "this build has no mpq_channel_send_bytes () (MPQ_HAVE_PAYLOADS) yet");
  bench_result_print (result);

  return 77;
}

#endif
