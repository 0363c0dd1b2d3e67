/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

#include <glib/gstdio.h>
#ifdef MPQ_TEST_REDIS_SERVER
#include <hiredis/hiredis.h>
#endif

#include "redis-test-util.h"

struct _RedisTestServer
{
  GSubprocess *process;
  char        *program;
  gboolean     persistent;  /* an append-only file, fsynced at each write */
  GThread     *reader;      /* reads its log to the end (a full pipe would stall it) */
  /* pthread's, which ThreadSanitizer sees (GLib's mutexes it does not) */
  pthread_mutex_t lock;
  pthread_cond_t  cond;
  gboolean     ready;       /* under lock */
  gboolean     ended;       /* under lock: its log ended */
  char        *dir;
  char        *socket_path;
  char        *uri;
};

/* The reader thread: waits for the "ready" line, then drains the log. */
static gpointer
read_log (gpointer data)
{
  RedisTestServer *server = data;
  GInputStream *out = g_subprocess_get_stdout_pipe (server->process);
  g_autoptr(GDataInputStream) lines = g_data_input_stream_new (out);

  for (;;)
    {
      g_autofree char *line = g_data_input_stream_read_line (lines, NULL, NULL, NULL);

      if (line == NULL)
        break;
      if (g_getenv ("MPQ_TEST_REDIS_LOG") != NULL)
        g_printerr ("# redis: %s\n", line);
      /* 7.0 on a unix socket only: "The server is now ready to accept
       * connections at PATH"; on TCP: "Ready to accept connections". */
      if (strstr (line, "eady to accept connections") != NULL)
        {
          pthread_mutex_lock (&server->lock);
          server->ready = TRUE;
          pthread_cond_broadcast (&server->cond);
          pthread_mutex_unlock (&server->lock);
        }
    }

  pthread_mutex_lock (&server->lock);
  server->ended = TRUE;
  pthread_cond_broadcast (&server->cond);
  pthread_mutex_unlock (&server->lock);
  return NULL;
}

/* Between fork and exec: a test that crashes takes its server with it. */
static void
die_with_parent (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGTERM);
}

/* Starts the server process and waits until it said it is ready. */
static gboolean
launch (RedisTestServer  *server,
        GError          **error)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  const char *argv[20];
  guint argc = 0;

  argv[argc++] = server->program;
  argv[argc++] = "--port";
  argv[argc++] = "0";
  argv[argc++] = "--unixsocket";
  argv[argc++] = server->socket_path;
  argv[argc++] = "--save";
  argv[argc++] = "";
  argv[argc++] = "--appendonly";
  if (server->persistent)
    {
      /* Every write on disk before it is answered: what a client was
       * told is done survives a SIGKILL. */
      argv[argc++] = "yes";
      argv[argc++] = "--appendfsync";
      argv[argc++] = "always";
    }
  else
    argv[argc++] = "no";
  argv[argc++] = "--daemonize";
  argv[argc++] = "no";
  argv[argc++] = "--dir";
  argv[argc++] = server->dir;
  argv[argc] = NULL;

  server->ready = FALSE;
  server->ended = FALSE;
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  server->process = g_subprocess_launcher_spawnv (launcher, argv, error);
  if (server->process == NULL)
    return FALSE;
  server->reader = g_thread_new ("redis-log", read_log, server);

  pthread_mutex_lock (&server->lock);
  while (!server->ready && !server->ended)
    pthread_cond_wait (&server->cond, &server->lock);
  pthread_mutex_unlock (&server->lock);

  if (!server->ready)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s exited before it was ready",
                   server->program);
      return FALSE;
    }
  return TRUE;
}

/* Ends the process with @signal_number and reaps it and its log. */
static void
end_process (RedisTestServer *server,
             int              signal_number)
{
  if (server->process != NULL)
    {
      g_subprocess_send_signal (server->process, signal_number);
      g_subprocess_wait (server->process, NULL, NULL);
    }
  if (server->reader != NULL)
    g_thread_join (g_steal_pointer (&server->reader));
  g_clear_object (&server->process);
}

static RedisTestServer *
start (const char  *program,
       gboolean     persistent,
       GError     **error)
{
  RedisTestServer *server = g_new0 (RedisTestServer, 1);

  pthread_mutex_init (&server->lock, NULL);
  pthread_cond_init (&server->cond, NULL);
  server->program = g_strdup (program);
  server->persistent = persistent;
  server->dir = g_dir_make_tmp ("mpq-redis-XXXXXX", error);
  if (server->dir == NULL)
    {
      redis_test_server_stop (server);
      return NULL;
    }
  server->socket_path = g_build_filename (server->dir, "redis.sock", NULL);
  server->uri = g_strconcat ("redis+unix://", server->socket_path, NULL);

  if (!launch (server, error))
    {
      redis_test_server_stop (server);
      return NULL;
    }
  return server;
}

RedisTestServer *
redis_test_server_start (const char  *program,
                         GError     **error)
{
  return start (program, FALSE, error);
}

RedisTestServer *
redis_test_server_start_persistent (const char  *program,
                                    GError     **error)
{
  return start (program, TRUE, error);
}

void
redis_test_server_kill (RedisTestServer *server)
{
  end_process (server, SIGKILL);
}

void
redis_test_server_relaunch (RedisTestServer  *server,
                            GError          **error)
{
  launch (server, error);
}

void
redis_test_server_restart (RedisTestServer  *server,
                           GError          **error)
{
  redis_test_server_kill (server);
  redis_test_server_relaunch (server, error);
}

const char *
redis_test_server_uri (RedisTestServer *server)
{
  return server->uri;
}

#ifdef MPQ_TEST_REDIS_SERVER
/* One command on a connection of its own; its reply, not an error. */
static redisReply *
run_command (RedisTestServer *server,
             const char      *format,
             va_list          args)
{
  redisContext *redis = redisConnectUnix (server->socket_path);
  redisReply *reply;

  g_assert_nonnull (redis);
  g_assert_cmpint (redis->err, ==, 0);
  reply = redisvCommand (redis, format, args);
  g_assert_nonnull (reply);
  g_assert_cmpint (reply->type, !=, REDIS_REPLY_ERROR);
  redisFree (redis);
  return reply;
}

void
redis_test_server_run (RedisTestServer *server,
                       const char      *format,
                       ...)
{
  va_list args;

  va_start (args, format);
  freeReplyObject (run_command (server, format, args));
  va_end (args);
}

long long
redis_test_server_int (RedisTestServer *server,
                       const char      *format,
                       ...)
{
  redisReply *reply;
  long long value;
  va_list args;

  va_start (args, format);
  reply = run_command (server, format, args);
  va_end (args);
  g_assert_cmpint (reply->type, ==, REDIS_REPLY_INTEGER);
  value = reply->integer;
  freeReplyObject (reply);
  return value;
}
#endif

void
redis_test_server_stop (RedisTestServer *server)
{
  end_process (server, SIGTERM);
  if (server->socket_path != NULL)
    g_unlink (server->socket_path);
  if (server->dir != NULL)
    {
      /* What a persistent server wrote. */
      g_autofree char *aof = g_build_filename (server->dir, "appendonlydir", NULL);
      g_autoptr(GDir) dir = g_dir_open (aof, 0, NULL);
      const char *name;

      while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *path = g_build_filename (aof, name, NULL);

          g_unlink (path);
        }
      g_rmdir (aof);
      g_rmdir (server->dir);
    }
  g_free (server->program);
  g_free (server->socket_path);
  g_free (server->uri);
  g_free (server->dir);
  pthread_mutex_destroy (&server->lock);
  pthread_cond_destroy (&server->cond);
  g_free (server);
}

char *
redis_test_queue_name (void)
{
  static guint counter;

  return g_strdup_printf ("%s-%u", g_test_get_path (), ++counter);
}

MpqQueue *
redis_test_open_queue (RedisTestServer *server,
                       const char      *name,
                       guint            max_size)
{
  g_autoptr(GError) error = NULL;
  MpqQueue *queue = mpq_queue_new_for_uri (redis_test_server_uri (server), name, max_size,
                                           &error);

  g_assert_no_error (error);
  g_assert_true (MPQ_IS_QUEUE (queue));
  return queue;
}

gboolean
redis_test_init (int    *argc,
                 char ***argv)
{
#ifndef MPQ_TEST_REDIS_SERVER
  g_print ("pymulproc was built without Redis support, or redis-server is missing: skipped\n");
  return FALSE;
#else
  g_test_init (argc, argv, NULL);
  return TRUE;
#endif
}

int
redis_test_run (RedisTestServer **server)
{
  g_autoptr(GError) error = NULL;
  int status;

#ifdef MPQ_TEST_REDIS_SERVER
  *server = redis_test_server_start (MPQ_TEST_REDIS_SERVER, &error);
  g_assert_no_error (error);
#endif
  status = g_test_run ();
  redis_test_server_stop (*server);
  return status;
}
