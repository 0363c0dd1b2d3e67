/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "mpq-codec-private.h"
#include "mpq-error.h"
#include "mpq-message-private.h"
#include "mpq-queue-redis-private.h"

/* The Redis queue's connection: connecting by URI, waiting for a tick,
 * and running the queue's scripts (their text: mpq-queue-redis-lua.c). */

void
_mpq_redis_scripts_clear (MpqRedisScripts *scripts)
{
  for (guint i = 0; i < MPQ_REDIS_N_SCRIPTS; i++)
    g_clear_pointer (&scripts->sha[i], g_free);
}

/* hiredis writes with write (), and a write to a socket whose server
 * went away raises SIGPIPE, which would kill the process: the library
 * never changes the process's signal handling, so the calling thread
 * blocks SIGPIPE around each command, and takes back one that the command
 * raised (not one that was pending before). */
static redisReply *
command_argv (redisContext  *redis,
              int            argc,
              const char   **argv,
              const size_t  *argvlen)
{
  sigset_t pipe_set, old_mask, pending;
  gboolean was_pending;
  redisReply *reply;

  sigemptyset (&pipe_set);
  sigaddset (&pipe_set, SIGPIPE);
  pthread_sigmask (SIG_BLOCK, &pipe_set, &old_mask);
  sigpending (&pending);
  was_pending = sigismember (&pending, SIGPIPE);

  reply = redisCommandArgv (redis, argc, argv, argvlen);

  if (!was_pending && reply == NULL)
    {
      struct timespec zero = { 0, 0 };

      sigpending (&pending);
      if (sigismember (&pending, SIGPIPE))
        sigtimedwait (&pipe_set, NULL, &zero);
    }
  pthread_sigmask (SIG_SETMASK, &old_mask, NULL);
  return reply;
}

static redisReply *
command (redisContext *redis,
         guint         argc,
         ...)
{
  const char *argv[10];
  size_t argvlen[10];
  va_list args;

  g_assert (argc <= G_N_ELEMENTS (argv));
  va_start (args, argc);
  for (guint i = 0; i < argc; i++)
    {
      argv[i] = va_arg (args, const char *);
      argvlen[i] = strlen (argv[i]);
    }
  va_end (args);
  return command_argv (redis, argc, argv, argvlen);
}

/* An error of the connection itself (it cannot be used any more), or
 * NULL for a reply. */
static gboolean
check_reply (redisContext  *redis,
             redisReply    *reply,
             GError       **error)
{
  if (reply == NULL)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_CLOSED, "Lost the Redis server: %s",
                   redis->errstr[0] != '\0' ? redis->errstr : "connection closed");
      return FALSE;
    }
  if (reply->type == REDIS_REPLY_ERROR)
    {
      /* A server loading its data after a restart is not there yet. */
      g_set_error (error, MPQ_ERROR,
                   g_str_has_prefix (reply->str, "LOADING") ? MPQ_ERROR_CLOSED : MPQ_ERROR_FAILED,
                   "Redis: %s", reply->str);
      freeReplyObject (reply);
      return FALSE;
    }
  return TRUE;
}

/* XREAD BLOCK on the tick stream @which (and @also, nullable) from
 * @tick: TRUE when one moved past it (run the script again), or when it gave up early; FALSE when
 * @deadline (monotonic µs; -1: never; 0: now) passed (@error unset), or
 * with @error set (MPQ_ERROR_CLOSED: the connection is lost). */
gboolean
_mpq_redis_wait_tick (redisContext  *redis,
                      const char    *prefix,
                      const char    *which,
                      const char    *also,
                      long long      tick,
                      gint64         deadline,
                      GError       **error)
{
  g_autofree char *key = g_strconcat (prefix, which, NULL);
  g_autofree char *also_key = also != NULL ? g_strconcat (prefix, also, NULL) : NULL;
  g_autofree char *from = g_strdup_printf ("0-%lld", tick);
  char block[32];
  redisReply *reply;
  gboolean moved;

  if (deadline == 0)
    return FALSE;
  if (deadline < 0)
    g_strlcpy (block, "0", sizeof block);
  else
    {
      gint64 left_ms = (deadline - g_get_monotonic_time () + 999) / 1000;

      if (left_ms <= 0)
        return FALSE;
      g_snprintf (block, sizeof block, "%" G_GINT64_FORMAT, left_ms);
    }

  if (also_key != NULL)
    reply = command (redis, 10, "XREAD", "COUNT", "1", "BLOCK", block, "STREAMS", key, also_key,
                     from, from);
  else
    reply = command (redis, 8, "XREAD", "COUNT", "1", "BLOCK", block, "STREAMS", key, from);
  if (!check_reply (redis, reply, error))
    return FALSE;
  /* Nil when the time ran out; a deadline is checked again by the next
   * wait, so a wake-up just before it is not a time-out. */
  moved = reply->type == REDIS_REPLY_ARRAY;
  freeReplyObject (reply);
  return moved || deadline < 0 || g_get_monotonic_time () < deadline;
}

static gboolean
load (redisContext     *redis,
      MpqRedisScripts  *scripts,
      MpqRedisScript    script,
      GError          **error)
{
  redisReply *reply = command (redis, 3, "SCRIPT", "LOAD", _mpq_redis_script_sources[script]);

  if (!check_reply (redis, reply, error))
    return FALSE;
  g_free (scripts->sha[script]);
  scripts->sha[script] = g_strndup (reply->str, reply->len);
  freeReplyObject (reply);
  return TRUE;
}

redisReply *
_mpq_redis_run (redisContext     *redis,
                MpqRedisScripts  *scripts,
                MpqRedisScript    script,
                const char       *prefix,
                guint             n_args,
                const char      **args,
                const gssize     *lengths,
                GError          **error)
{
  g_autofree char *meta = g_strconcat (prefix, "meta", NULL);
  const char *argv[48];
  size_t argvlen[48];
  guint argc = 0;

  g_assert (n_args <= MPQ_REDIS_MAX_ARGS && n_args + 5 <= G_N_ELEMENTS (argv));

  if (scripts->sha[script] == NULL && !load (redis, scripts, script, error))
    return NULL;

  argv[argc++] = "EVALSHA";
  argv[argc++] = scripts->sha[script];
  argv[argc++] = "1";
  argv[argc++] = meta;
  argv[argc++] = prefix;
  for (guint i = 0; i < n_args; i++)
    {
      argv[argc] = args[i];
      argvlen[argc] = lengths != NULL && lengths[i] >= 0 ? (size_t) lengths[i] : strlen (args[i]);
      argc++;
    }
  for (guint i = 0; i < 5; i++)
    argvlen[i] = strlen (argv[i]);

  /* A server restarted or flushed forgets its scripts: load it again. */
  for (guint attempt = 0; ; attempt++)
    {
      redisReply *reply = command_argv (redis, argc, argv, argvlen);

      if (reply != NULL && reply->type == REDIS_REPLY_ERROR && attempt == 0 &&
          g_str_has_prefix (reply->str, "NOSCRIPT"))
        {
          freeReplyObject (reply);
          if (!load (redis, scripts, script, error))
            return NULL;
          argv[1] = scripts->sha[script];
          argvlen[1] = strlen (argv[1]);
          continue;
        }
      if (!check_reply (redis, reply, error))
        return NULL;
      return reply;
    }
}

MpqMessage *
_mpq_redis_decode (const char  *line,
                   gsize        length,
                   GError     **error)
{
  MpqMessage *message = _mpq_codec_decode (line, length, error);

  if (message != NULL)
    _mpq_message_set_origin (message, mpq_message_get_sender_pid (message));
  return message;
}

long long
_mpq_redis_reply_int (redisReply *reply,
                      gsize       i)
{
  redisReply *element;

  if (reply->type != REDIS_REPLY_ARRAY || i >= reply->elements)
    return 0;
  element = reply->element[i];
  if (element->type == REDIS_REPLY_INTEGER)
    return element->integer;
  if (element->type == REDIS_REPLY_STRING)
    return g_ascii_strtoll (element->str, NULL, 10);
  return 0;
}

/* Connecting ----------------------------------------------------------- */

/* redis://[:PASSWORD@]HOST[:PORT][/DB] or redis+unix://[:PASSWORD@]/PATH. */
redisContext *
_mpq_redis_connect (const char  *uri,
                    GError     **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GUri) parsed = g_uri_parse (uri, G_URI_FLAGS_HAS_PASSWORD | G_URI_FLAGS_ENCODED,
                                        &local_error);
  struct timeval timeout = { 10, 0 };
  const char *scheme;
  const char *password;
  redisContext *redis;
  gint64 db = 0;

  if (parsed == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "Invalid queue URI %s: %s", uri, local_error->message);
      return NULL;
    }

  scheme = g_uri_get_scheme (parsed);
  if (g_ascii_strcasecmp (scheme, "redis") == 0)
    {
      const char *host = g_uri_get_host (parsed);
      const char *path = g_uri_get_path (parsed);
      gint port = g_uri_get_port (parsed);

      if (host == NULL || host[0] == '\0')
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "Invalid queue URI %s: no host", uri);
          return NULL;
        }
      if (path[0] == '/' && path[1] != '\0' &&
          !g_ascii_string_to_signed (path + 1, 10, 0, G_MAXINT, &db, NULL))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "Invalid queue URI %s: %s is not a database number", uri, path + 1);
          return NULL;
        }
      redis = redisConnectWithTimeout (host, port > 0 ? port : 6379, timeout);
    }
  else if (g_ascii_strcasecmp (scheme, "redis+unix") == 0)
    {
      g_autofree char *path = g_uri_unescape_string (g_uri_get_path (parsed), NULL);

      if (path == NULL || path[0] != '/')
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "Invalid queue URI %s: no socket path", uri);
          return NULL;
        }
      redis = redisConnectUnixWithTimeout (path, timeout);
    }
  else
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   "Unknown queue URI scheme in %s (redis:// and redis+unix:// are known)", uri);
      return NULL;
    }

  if (redis == NULL || redis->err != 0)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_FAILED, "Cannot connect to the Redis server %s: %s",
                   uri, redis != NULL ? redis->errstr : "out of memory");
      if (redis != NULL)
        redisFree (redis);
      return NULL;
    }

  /* Blocking calls wait as long as their time-outs say (XREAD BLOCK). */
  redisSetTimeout (redis, (struct timeval) { 0, 0 });
  /* Children spawned later must not hold our connection. */
  fcntl (redis->fd, F_SETFD, fcntl (redis->fd, F_GETFD) | FD_CLOEXEC);

  password = g_uri_get_password (parsed);
  if (password != NULL || db != 0)
    {
      g_autofree char *plain = password != NULL ? g_uri_unescape_string (password, NULL) : NULL;
      redisReply *reply = NULL;

      if (plain != NULL)
        reply = command (redis, 2, "AUTH", plain);
      if (db != 0 && (plain == NULL || (reply != NULL && reply->type != REDIS_REPLY_ERROR)))
        {
          char db_text[16];

          g_snprintf (db_text, sizeof db_text, "%d", (int) db);
          g_clear_pointer (&reply, freeReplyObject);
          reply = command (redis, 2, "SELECT", db_text);
        }
      if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
        {
          g_set_error (error, MPQ_ERROR, MPQ_ERROR_FAILED, "Redis server %s: %s", uri,
                       reply != NULL ? reply->str : redis->errstr);
          g_clear_pointer (&reply, freeReplyObject);
          redisFree (redis);
          return NULL;
        }
      freeReplyObject (reply);
    }

  return redis;
}
