/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* mpq-bench-jsonrpc: jsonrpc-glib over a socketpair (JSON on the wire,
 * jsonrpc-glib's own framing), a JsonrpcClient at each end.
 *
 * A message is a JSON-RPC notification or call whose method is the request
 * and whose params are {"sender", "recipient", "data": {"value",
 * "payload"}}; receivers read them with JSONRPC_MESSAGE_PARSE.
 *
 * W1, W3, W5: the children send DO notifications, the parent handles the
 * "notification" signal in a GMainLoop.
 * W2: the child answers the call DO with its params; the parent calls with
 *   jsonrpc_client_call (--variant=sync) or call_async in a GMainLoop
 *   (--variant=loop).
 * W4: the parent serves the call "take" (the next task, {} once there is
 *   none); each child calls take, then notifies FINISHED, until take
 *   returns {}. */

#include "bench-common.h"

#include <jsonrpc-glib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct
{
  BenchArgs     *args;
  GMainLoop     *loop;
  BenchCheck     check;
  BenchEcho      echo;
  gint64         next_task;
  guint          open;        /* the parent's clients not hung up yet */
  guint          released;    /* W4: children told there is no task left */
  JsonrpcClient *client;      /* W2's, or the child's */
} RpcRun;

/* A full reference (JSONRPC_MESSAGE_NEW's are not floating): unref it. */
static GVariant *
params_new (gint   recipient,
            gint64 value)
{
  return JSONRPC_MESSAGE_NEW (
    "sender", JSONRPC_MESSAGE_PUT_INT64 (getpid ()),
    "recipient", JSONRPC_MESSAGE_PUT_INT64 (recipient),
    "data", "{",
      "value", JSONRPC_MESSAGE_PUT_INT64 (value),
      "payload", JSONRPC_MESSAGE_PUT_STRING (BENCH_PAYLOAD),
    "}"
  );
}

static gint64
params_value (GVariant *params)
{
  const char *payload = NULL;
  gint64 sender = 0;
  gint64 value = 0;
  gboolean ok;

  if (params == NULL)
    bench_fail ("no params");

  ok = JSONRPC_MESSAGE_PARSE (params,
    "sender", JSONRPC_MESSAGE_GET_INT64 (&sender),
    "data", "{",
      "value", JSONRPC_MESSAGE_GET_INT64 (&value),
      "payload", JSONRPC_MESSAGE_GET_STRING (&payload),
    "}"
  );
  if (!ok || sender <= 0 || payload == NULL || strcmp (payload, BENCH_PAYLOAD) != 0)
    bench_fail ("params are not a message");

  return value;
}

static JsonrpcClient *
client_for_fd (int fd)
{
  g_autoptr(GIOStream) stream = bench_stream_for_fd (fd);

  return jsonrpc_client_new (stream);
}

static void
on_failed (JsonrpcClient *client,
           gpointer       user_data)
{
  RpcRun *run = user_data;

  if (--run->open == 0 && !bench_check_done (&run->check))
    {
      /* Every child is gone: what did not come is lost. */
      bench_check_finish (&run->check);
    }
}

/* In W4 every child must also have heard that no task is left, or it
 * would find the connection closed. */
static gboolean
all_done (RpcRun *run)
{
  return !run->args->child && bench_check_done (&run->check)
         && (run->args->workload != BENCH_W4 || run->released == (guint) run->args->children);
}

/* W1, W3, W5 (DO), W4 (FINISHED) in the parent; DIE in the W2 child. */
static void
on_notification (JsonrpcClient *client,
                 const char    *method,
                 GVariant      *params,
                 gpointer       user_data)
{
  RpcRun *run = user_data;

  if (g_str_equal (method, "DIE"))
    {
      g_main_loop_quit (run->loop);
      return;
    }

  bench_receive (&run->check, run->args, params_value (params));
  if (all_done (run))
    g_main_loop_quit (run->loop);
}

/* The last reply to a child has been written: it may now find the
 * connection closed. */
static void
released_cb (GObject      *object,
             GAsyncResult *result,
             gpointer      user_data)
{
  RpcRun *run = user_data;
  g_autoptr(GError) error = NULL;

  if (!jsonrpc_client_reply_finish (JSONRPC_CLIENT (object), result, &error))
    bench_fail ("reply: %s", error->message);

  run->released++;
  if (all_done (run))
    g_main_loop_quit (run->loop);
}

/* "DO" in the W2 child, "take" in the W4 parent. */
static gboolean
on_handle_call (JsonrpcClient *client,
                const char    *method,
                GVariant      *id,
                GVariant      *params,
                gpointer       user_data)
{
  RpcRun *run = user_data;
  g_autoptr(GVariant) result = NULL;

  if (g_str_equal (method, "DO"))
    {
      gint64 sender = 0;

      JSONRPC_MESSAGE_PARSE (params, "sender", JSONRPC_MESSAGE_GET_INT64 (&sender));
      result = params_new (sender, params_value (params));
    }
  else if (run->next_task < run->args->count)
    {
      result = params_new (0, run->next_task++);
    }
  else
    {
      result = JSONRPC_MESSAGE_NEW ("done", JSONRPC_MESSAGE_PUT_BOOLEAN (TRUE));
      jsonrpc_client_reply_async (client, id, result, NULL, released_cb, run);
      return TRUE;
    }

  jsonrpc_client_reply_async (client, id, result, NULL, NULL, NULL);
  return TRUE;
}

/* W2 */
static gboolean
take_echo (RpcRun   *run,
           GVariant *reply)
{
  gint64 arrived_ns = bench_now_ns ();

  return bench_echo_take (&run->echo, arrived_ns, params_value (reply));
}

static void call_async (RpcRun *run);

static void
call_ready_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  RpcRun *run = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;

  if (!jsonrpc_client_call_finish (JSONRPC_CLIENT (object), result, &reply, &error))
    bench_fail ("call: %s", error->message);
  if (take_echo (run, reply))
    g_main_loop_quit (run->loop);
  else
    call_async (run);
}

static void
call_async (RpcRun *run)
{
  g_autoptr(GVariant) params = NULL;

  params = params_new (0, bench_echo_next (&run->echo));
  jsonrpc_client_call_async (run->client, "DO", params, NULL, call_ready_cb, run);
}

static void
echo_all (RpcRun *run)
{
  g_autoptr(GError) error = NULL;

  bench_echo_init (&run->echo, run->args);

  if (bench_is_loop (run->args))
    {
      call_async (run);
      g_main_loop_run (run->loop);
    }
  else
    {
      for (;;)
        {
          g_autoptr(GVariant) reply = NULL;
          g_autoptr(GVariant) params = NULL;

          params = params_new (0, bench_echo_next (&run->echo));
          if (!jsonrpc_client_call (run->client, "DO", params, NULL, &reply, &error))
            bench_fail ("call: %s", error->message);
          if (take_echo (run, reply))
            break;
        }
    }

  if (!jsonrpc_client_send_notification (run->client, "DIE", NULL, NULL, &error))
    bench_fail ("notify: %s", error->message);

  bench_echo_print (&run->echo, "jsonrpc");
}

static void
parent (RpcRun *run)
{
  g_autoptr(GPtrArray) clients = g_ptr_array_new_with_free_func (g_object_unref);
  BenchWorkload w = run->args->workload;
  BenchChildren children;
  guint i;

  bench_check_init (&run->check, bench_expected (run->args));
  bench_children_spawn (&children, run->args);
  run->open = children.n;

  for (i = 0; i < children.n; i++)
    {
      JsonrpcClient *client = client_for_fd (children.fds[i]);

      g_ptr_array_add (clients, client);

      if (w != BENCH_W2)
        {
          g_signal_connect (client, "notification", G_CALLBACK (on_notification), run);
          g_signal_connect (client, "handle-call", G_CALLBACK (on_handle_call), run);
          g_signal_connect (client, "failed", G_CALLBACK (on_failed), run);
          jsonrpc_client_start_listening (client);
        }
    }

  if (w == BENCH_W2)
    {
      run->client = clients->pdata[0];
      echo_all (run);
    }
  else
    {
      g_main_loop_run (run->loop);
    }

  for (i = 0; i < children.n; i++)
    {
      g_signal_handlers_disconnect_by_data (clients->pdata[i], run);
      jsonrpc_client_close (clients->pdata[i], NULL, NULL);
    }
  bench_children_wait (&children);

  if (w != BENCH_W2)
    bench_finish_throughput (run->args, "jsonrpc", &run->check, children.rss.path);
  bench_children_clear (&children);
}

/* Sends and unrefs @params. */
static void
notify (RpcRun     *run,
        const char *method,
        GVariant   *params)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) owned = params;

  if (!jsonrpc_client_send_notification (run->client, method, params, NULL, &error))
    bench_fail ("notify: %s", error->message);
}

static void
child (RpcRun *run)
{
  g_autoptr(GError) error = NULL;
  BenchWorkload w = run->args->workload;
  gint64 i;

  run->client = client_for_fd (BENCH_CHILD_FD);

  if (w == BENCH_W2)
    {
      g_signal_connect (run->client, "handle-call", G_CALLBACK (on_handle_call), run);
      g_signal_connect (run->client, "notification", G_CALLBACK (on_notification), run);
      jsonrpc_client_start_listening (run->client);
      g_main_loop_run (run->loop);
      g_signal_handlers_disconnect_by_data (run->client, run);
    }
  else if (w == BENCH_W4)
    {
      for (;;)
        {
          g_autoptr(GVariant) reply = NULL;
          gboolean done = FALSE;

          if (!jsonrpc_client_call (run->client, "take", NULL, NULL, &reply, &error))
            bench_fail ("take: %s", error->message);
          if (JSONRPC_MESSAGE_PARSE (reply, "done", JSONRPC_MESSAGE_GET_BOOLEAN (&done)) && done)
            break;
          notify (run, "FINISHED", params_new (run->args->parent_pid, params_value (reply)));
        }
    }
  else
    {
      gint64 base = bench_first_value (run->args);

      for (i = 0; i < run->args->count; i++)
        notify (run, "DO", params_new (0, base + i));
    }

  bench_write_rss_file (run->args->rss_file);
  jsonrpc_client_close (run->client, NULL, NULL);
  g_object_unref (run->client);
}

static int
run_jsonrpc (BenchArgs *args,
             gpointer   user_data)
{
  RpcRun run = { 0 };

  /* W6's payloads are measured for the systems issue 11 names (README.md). */
  if (args->workload == BENCH_W6)
    bench_fail ("this system has no W6");

  run.args = args;
  run.loop = g_main_loop_new (NULL, FALSE);

  if (args->child)
    child (&run);
  else
    parent (&run);

  g_main_loop_unref (run.loop);
  return EXIT_SUCCESS;
}

int
main (int   argc,
      char *argv[])
{
  return bench_main (argc, argv, NULL, run_jsonrpc, NULL);
}
