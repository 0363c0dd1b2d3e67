/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* mpq-bench-gdbus: GDBus peer to peer, over a socketpair, no bus daemon.
 *
 * The parent is the authenticating server end of each connection, the
 * child the client. A message is D-Bus's natural form of it: the request is
 * the member name (signal DO, FINISHED; method Echo, Take), the body is
 * (sender pid, recipient pid or 0, data), the data an a{sv} dictionary
 * {"value": int64, "payload": string} that every receiver looks up.
 *
 * W1, W3, W5: the children emit DO signals, the parent subscribes.
 * W2: the child exports Echo; the parent calls it, with call_sync
 *   (--variant=sync) or call + callback in a GMainLoop (--variant=loop).
 * W4: the parent exports Take, which returns the next task as a whole body
 *   (an empty dictionary once there is none); each child calls Take, reads
 *   it, then emits a FINISHED signal, until Take returns nothing.
 * W6: the child exports Payload, which takes a sealed memfd as a handle
 *   (h) in a GUnixFDList and answers with the same memfd; the parent writes
 *   each payload into a new memfd, seals it, calls Payload with
 *   call_with_unix_fd_list_sync and checks the memfd that comes back. */

#include "bench-common.h"
#include "bench-payload.h"

#include <gio/gunixfdlist.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BENCH_PATH  "/org/pymulproc/Bench"
#define BENCH_IFACE "org.pymulproc.Bench"
#define BODY_TYPE   "(iia{sv})"

static const char introspection_xml[] =
  "<node>"
  " <interface name='" BENCH_IFACE "'>"
  "  <method name='Echo'>"
  "   <arg type='i' name='sender' direction='in'/>"
  "   <arg type='i' name='recipient' direction='in'/>"
  "   <arg type='a{sv}' name='data' direction='in'/>"
  "   <arg type='i' name='sender' direction='out'/>"
  "   <arg type='i' name='recipient' direction='out'/>"
  "   <arg type='a{sv}' name='data' direction='out'/>"
  "  </method>"
  "  <method name='Take'>"
  "   <arg type='i' name='sender' direction='out'/>"
  "   <arg type='i' name='recipient' direction='out'/>"
  "   <arg type='a{sv}' name='data' direction='out'/>"
  "  </method>"
  "  <method name='Payload'>"
  "   <arg type='h' name='payload' direction='in'/>"
  "   <arg type='h' name='payload' direction='out'/>"
  "  </method>"
  "  <signal name='DO'>"
  "   <arg type='i' name='sender'/><arg type='i' name='recipient'/>"
  "   <arg type='a{sv}' name='data'/>"
  "  </signal>"
  "  <signal name='FINISHED'>"
  "   <arg type='i' name='sender'/><arg type='i' name='recipient'/>"
  "   <arg type='a{sv}' name='data'/>"
  "  </signal>"
  " </interface>"
  "</node>";

typedef struct
{
  BenchArgs       *args;
  GMainLoop       *loop;
  BenchCheck       check;
  BenchEcho        echo;
  gint64           next_task;    /* W4 parent: the next task; W6 child: the next payload */
  guint            open;         /* the parent's connections not closed yet */
  guint            released;     /* W4: children told there is no task left */
  GDBusConnection *connection;   /* W2's, or the child's */
} GdbusRun;

static GDBusNodeInfo *introspection;

static GVariant *
data_new (gint64 value)
{
  GVariantBuilder builder;

  g_variant_builder_init (&builder, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add (&builder, "{sv}", "value", g_variant_new_int64 (value));
  g_variant_builder_add (&builder, "{sv}", "payload", g_variant_new_string (BENCH_PAYLOAD));

  return g_variant_builder_end (&builder);
}

static GVariant *
body_new (gint    recipient,
          gint64  value)
{
  return g_variant_new ("(ii@a{sv})", getpid (), recipient, data_new (value));
}

static gint64
data_value (GVariant *data)
{
  const char *payload;
  gint64 value;

  if (!g_variant_lookup (data, "value", "x", &value))
    bench_fail ("the data has no int64 \"value\"");
  if (!g_variant_lookup (data, "payload", "&s", &payload)
      || strcmp (payload, BENCH_PAYLOAD) != 0)
    bench_fail ("the data has no right \"payload\"");

  return value;
}

static gint64
body_value (GVariant *body)
{
  g_autoptr(GVariant) data = NULL;
  gint sender, recipient;

  if (!g_variant_is_of_type (body, G_VARIANT_TYPE (BODY_TYPE)))
    bench_fail ("a body of type %s", g_variant_get_type_string (body));

  g_variant_get (body, "(ii@a{sv})", &sender, &recipient, &data);
  if (sender <= 0)
    bench_fail ("no sender pid");

  return data_value (data);
}

static GDBusConnection *
connect_fd (int      fd,
            gboolean server)
{
  g_autoptr(GIOStream) stream = bench_stream_for_fd (fd);
  g_autoptr(GError) error = NULL;
  g_autofree char *guid = server ? g_dbus_generate_guid () : NULL;
  GDBusConnectionFlags flags = G_DBUS_CONNECTION_FLAGS_DELAY_MESSAGE_PROCESSING;
  GDBusConnection *connection;

  flags |= server ? G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_SERVER
                  : G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT;

  connection = g_dbus_connection_new_sync (stream, guid, flags, NULL, NULL, &error);
  if (connection == NULL)
    bench_fail ("g_dbus_connection_new_sync: %s", error->message);

  return connection;
}

static void
on_closed (GDBusConnection *connection,
           gboolean         remote_peer_vanished,
           GError          *error,
           gpointer         user_data)
{
  GdbusRun *run = user_data;

  if (run->args->child)
    {
      if (run->args->workload == BENCH_W2 || run->args->workload == BENCH_W6)
        g_main_loop_quit (run->loop);   /* the parent is done */
    }
  else if (--run->open == 0 && !bench_check_done (&run->check))
    {
      /* Every child is gone: what did not come is lost. */
      bench_check_finish (&run->check);
    }
}

/* In W4 every child must also have heard that no task is left, or it
 * would find the connection closed. */
static gboolean
all_done (GdbusRun *run)
{
  return bench_check_done (&run->check)
         && (run->args->workload != BENCH_W4 || run->released == (guint) run->args->children);
}

/* W1, W3, W5 in the parent; FINISHED in W4. */
static void
on_signal (GDBusConnection *connection,
           const char      *sender_name,
           const char      *object_path,
           const char      *interface_name,
           const char      *signal_name,
           GVariant        *parameters,
           gpointer         user_data)
{
  GdbusRun *run = user_data;

  bench_receive (&run->check, run->args, body_value (parameters));
  if (all_done (run))
    g_main_loop_quit (run->loop);
}

/* W6 in the child: the memfd goes back as it came. */
static void
echo_payload (GdbusRun              *run,
              GVariant              *parameters,
              GDBusMethodInvocation *invocation)
{
  GDBusMessage *message = g_dbus_method_invocation_get_message (invocation);
  GUnixFDList *fds = g_dbus_message_get_unix_fd_list (message);
  g_autoptr(GError) error = NULL;
  g_autoptr(GUnixFDList) reply_fds = NULL;
  gint64 size = run->args->size;
  const guint8 *data;
  gint32 handle;
  int fd;

  g_variant_get (parameters, "(h)", &handle);
  fd = fds != NULL ? g_unix_fd_list_get (fds, handle, &error) : -1;
  if (fd < 0)
    bench_fail ("a Payload without its fd: %s", error != NULL ? error->message : "no fd list");

  data = bench_memfd_map (fd, size);
  if (bench_payload_index (data, size, size) != run->next_task++)
    bench_fail ("payload %" G_GINT64_FORMAT " arrived out of order", run->next_task - 1);
  munmap ((void *) data, size);

  reply_fds = g_unix_fd_list_new_from_array (&fd, 1);
  g_dbus_method_invocation_return_value_with_unix_fd_list (invocation, g_variant_new ("(h)", 0),
                                                           reply_fds);
}

static void
method_call (GDBusConnection       *connection,
             const char            *sender,
             const char            *object_path,
             const char            *interface_name,
             const char            *method_name,
             GVariant              *parameters,
             GDBusMethodInvocation *invocation,
             gpointer               user_data)
{
  GdbusRun *run = user_data;

  if (g_str_equal (method_name, "Echo"))
    {
      g_autoptr(GVariant) data = NULL;
      gint from, to;

      body_value (parameters);
      g_variant_get (parameters, "(ii@a{sv})", &from, &to, &data);
      g_dbus_method_invocation_return_value (invocation,
                                             g_variant_new ("(ii@a{sv})", getpid (), from, data));
    }
  else if (g_str_equal (method_name, "Payload"))
    {
      echo_payload (run, parameters, invocation);
    }
  else if (run->next_task < run->args->count)
    {
      g_dbus_method_invocation_return_value (invocation, body_new (0, run->next_task++));
    }
  else
    {
      g_dbus_method_invocation_return_value (invocation,
                                             g_variant_new ("(iia{sv})", getpid (), 0, NULL));
      run->released++;
      if (all_done (run))
        g_main_loop_quit (run->loop);
    }
}

static const GDBusInterfaceVTable vtable = { method_call, NULL, NULL, { 0 } };

static void
register_object (GDBusConnection *connection,
                 GdbusRun        *run)
{
  g_autoptr(GError) error = NULL;

  if (g_dbus_connection_register_object (connection, BENCH_PATH, introspection->interfaces[0],
                                         &vtable, run, NULL, &error) == 0)
    bench_fail ("register_object: %s", error->message);
}

/* W2 */
static gboolean take_echo (GdbusRun *run,
                           GVariant *reply);
static void     call_echo (GdbusRun *run);

static void
echo_ready_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  GdbusRun *run = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (object),
                                                             result, &error);

  if (reply == NULL)
    bench_fail ("Echo: %s", error->message);
  if (take_echo (run, reply))
    g_main_loop_quit (run->loop);
  else
    call_echo (run);
}

static void
call_echo (GdbusRun *run)
{
  g_dbus_connection_call (run->connection, NULL, BENCH_PATH, BENCH_IFACE, "Echo",
                          body_new (0, bench_echo_next (&run->echo)),
                          G_VARIANT_TYPE (BODY_TYPE),
                          G_DBUS_CALL_FLAGS_NONE, -1, NULL, echo_ready_cb, run);
}

static gboolean
take_echo (GdbusRun *run,
           GVariant *reply)
{
  gint64 arrived_ns = bench_now_ns ();

  return bench_echo_take (&run->echo, arrived_ns, body_value (reply));
}

static void
echo_all (GdbusRun *run)
{
  bench_echo_init (&run->echo, run->args);

  if (bench_is_loop (run->args))
    {
      call_echo (run);
      g_main_loop_run (run->loop);
    }
  else
    {
      g_autoptr(GError) error = NULL;

      for (;;)
        {
          g_autoptr(GVariant) reply = NULL;

          reply = g_dbus_connection_call_sync (run->connection, NULL, BENCH_PATH, BENCH_IFACE,
                                               "Echo", body_new (0, bench_echo_next (&run->echo)),
                                               G_VARIANT_TYPE (BODY_TYPE),
                                               G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
          if (reply == NULL)
            bench_fail ("Echo: %s", error->message);
          if (take_echo (run, reply))
            break;
        }
    }

  bench_echo_print (&run->echo, "gdbus");
}

/* W6: one payload at a time, out and back, each in a memfd of its own (a
 * sealed memfd cannot be written again). */
static void
payloads (GdbusRun *run)
{
  BenchPayloadPool *pool = bench_payload_pool_new (run->args->size);
  gint64 size = run->args->size;
  gint64 i;

  for (i = 0; i < run->args->count; i++)
    {
      g_autoptr(GBytes) payload = bench_payload_pool_take (pool, i);
      g_autoptr(GUnixFDList) fds = NULL;
      g_autoptr(GUnixFDList) reply_fds = NULL;
      g_autoptr(GVariant) reply = NULL;
      g_autoptr(GError) error = NULL;
      const guint8 *data;
      gint32 handle;
      int fd = bench_memfd_new (payload);

      fds = g_unix_fd_list_new_from_array (&fd, 1);
      reply = g_dbus_connection_call_with_unix_fd_list_sync (run->connection, NULL, BENCH_PATH,
                                                             BENCH_IFACE, "Payload",
                                                             g_variant_new ("(h)", 0),
                                                             G_VARIANT_TYPE ("(h)"),
                                                             G_DBUS_CALL_FLAGS_NONE, -1, fds,
                                                             &reply_fds, NULL, &error);
      if (reply == NULL)
        bench_fail ("Payload: %s", error->message);

      g_variant_get (reply, "(h)", &handle);
      fd = reply_fds != NULL ? g_unix_fd_list_get (reply_fds, handle, &error) : -1;
      if (fd < 0)
        bench_fail ("Payload's answer without its fd: %s",
                    error != NULL ? error->message : "no fd list");

      data = bench_memfd_map (fd, size);
      bench_payload_check (data, size, size, i);
      munmap ((void *) data, size);
      close (fd);
      bench_check_add (&run->check, i);
    }

  bench_payload_pool_free (pool);
}

static void
parent (GdbusRun *run)
{
  g_autoptr(GPtrArray) connections = g_ptr_array_new_with_free_func (g_object_unref);
  BenchWorkload w = run->args->workload;
  BenchChildren children;
  guint i;

  bench_check_init (&run->check, bench_expected (run->args));
  bench_children_spawn (&children, run->args);
  run->open = children.n;

  for (i = 0; i < children.n; i++)
    {
      GDBusConnection *connection = connect_fd (children.fds[i], TRUE);

      g_ptr_array_add (connections, connection);
      g_signal_connect (connection, "closed", G_CALLBACK (on_closed), run);

      if (w == BENCH_W4)
        register_object (connection, run);
      if (w != BENCH_W2 && w != BENCH_W6)
        g_dbus_connection_signal_subscribe (connection, NULL, BENCH_IFACE,
                                            w == BENCH_W4 ? "FINISHED" : "DO", BENCH_PATH,
                                            NULL, G_DBUS_SIGNAL_FLAGS_NONE, on_signal, run,
                                            NULL);
      g_dbus_connection_start_message_processing (connection);
    }

  if (w == BENCH_W2)
    {
      run->connection = connections->pdata[0];
      echo_all (run);
    }
  else if (w == BENCH_W6)
    {
      run->connection = connections->pdata[0];
      payloads (run);
    }
  else
    {
      g_main_loop_run (run->loop);
    }

  for (i = 0; i < children.n; i++)
    {
      /* Closing does not send what is still queued: the last replies. */
      g_signal_handlers_disconnect_by_data (connections->pdata[i], run);
      g_dbus_connection_flush_sync (connections->pdata[i], NULL, NULL);
      g_dbus_connection_close_sync (connections->pdata[i], NULL, NULL);
    }
  bench_children_wait (&children);

  if (w != BENCH_W2)
    bench_finish_throughput (run->args, "gdbus", &run->check, children.rss.path);
  bench_children_clear (&children);
}

static void
emit (GDBusConnection *connection,
      const char      *name,
      GVariant        *body)
{
  g_autoptr(GError) error = NULL;

  if (!g_dbus_connection_emit_signal (connection, NULL, BENCH_PATH, BENCH_IFACE, name, body,
                                      &error))
    bench_fail ("emit_signal: %s", error->message);
}

static void
child (GdbusRun *run)
{
  g_autoptr(GError) error = NULL;
  BenchWorkload w = run->args->workload;
  gint64 i;

  run->connection = connect_fd (BENCH_CHILD_FD, FALSE);
  g_signal_connect (run->connection, "closed", G_CALLBACK (on_closed), run);
  if (w == BENCH_W2 || w == BENCH_W6)
    register_object (run->connection, run);
  g_dbus_connection_start_message_processing (run->connection);

  if (w == BENCH_W2 || w == BENCH_W6)
    {
      g_main_loop_run (run->loop);
    }
  else if (w == BENCH_W4)
    {
      for (;;)
        {
          g_autoptr(GVariant) reply = NULL;
          g_autoptr(GVariant) data = NULL;

          reply = g_dbus_connection_call_sync (run->connection, NULL, BENCH_PATH, BENCH_IFACE,
                                               "Take", NULL, G_VARIANT_TYPE (BODY_TYPE),
                                               G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
          if (reply == NULL)
            bench_fail ("Take: %s", error->message);

          /* The end: a body with an empty dictionary. */
          data = g_variant_get_child_value (reply, 2);
          if (g_variant_n_children (data) == 0)
            break;
          emit (run->connection, "FINISHED",
                body_new (run->args->parent_pid, body_value (reply)));
        }
    }
  else
    {
      gint64 base = bench_first_value (run->args);

      for (i = 0; i < run->args->count; i++)
        emit (run->connection, "DO", body_new (0, base + i));
    }

  /* In W4 the parent hangs up as soon as it has every FINISHED, which may
   * be before this flush: then there was nothing left to flush. */
  if (w != BENCH_W2 && w != BENCH_W6 && !g_dbus_connection_flush_sync (run->connection, NULL, &error) &&
      !(w == BENCH_W4 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CLOSED)))
    bench_fail ("flush: %s", error->message);

  g_signal_handlers_disconnect_by_data (run->connection, run);
  bench_write_rss_file (run->args->rss_file);
  g_dbus_connection_close_sync (run->connection, NULL, NULL);
  g_object_unref (run->connection);
}

static int
run_gdbus (BenchArgs *args,
           gpointer   user_data)
{
  GdbusRun run = { 0 };

  introspection = g_dbus_node_info_new_for_xml (introspection_xml, NULL);
  run.args = args;
  run.loop = g_main_loop_new (NULL, FALSE);

  if (args->child)
    child (&run);
  else
    parent (&run);

  g_main_loop_unref (run.loop);
  g_dbus_node_info_unref (introspection);
  return EXIT_SUCCESS;
}

int
main (int   argc,
      char *argv[])
{
  return bench_main (argc, argv, NULL, run_gdbus, NULL);
}
