/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "mpq-error.h"
#include "mpq-queue-redis-private.h"

/* The Redis queue's connection (connecting by URI, waiting for a tick)
 * and its operations, each one Lua script that the server runs
 * atomically, so that no client ever sees half a put or half a take.
 *
 * Keys, all under the prefix P = "mpq:{NAME}:" (the braces make NAME the
 * hash tag: one Cluster slot holds the whole queue):
 *
 *   P.."meta"    hash: ids (last participant id given), owner (the first
 *                creator's id), max (max-size, 0: none), seq (last
 *                message number), waiting (messages in the streams),
 *                puttick / tooktick (counters of the two tick streams)
 *   P.."r"..ID   stream: messages addressed to participant ID, oldest first
 *   P.."a"..ID   stream: messages for anyone that participant ID put
 *   P.."front"   sorted set: each non-empty stream above, scored by the
 *                number of its first message; its first member holds the
 *                front of the whole queue
 *   P.."afront"  the same for the "a" streams only (routed takes)
 *   P.."held"    hash: number → "HOLDER FROM RECIPIENT LINE", messages in
 *                a participant's hand (a filter deciding), not waiting
 *   P.."put", P.."took"  streams of one entry (MAXLEN 1), "0-TICK",
 *                added to at each put and at each take: a client that
 *                must wait reads them with XREAD BLOCK from the tick its
 *                script saw, so nothing that happens after that script is
 *                missed
 *
 * A message's entry id is "0-NUMBER", the number from the queue-wide
 * counter, so ids grow in every stream and the queue's order is the
 * numbers' order. Entries hold "m" (the line) and "f" (the putter's id).
 * The queue's user's thread calls these, one at a time per connection. */

#define PRELUDE \
  "local P = ARGV[1]\n" \
  "local META = KEYS[1]\n" \
  "local function tick (which)\n" \
  "  local t = redis.call ('HINCRBY', META, which .. 'tick', 1)\n" \
  "  redis.call ('XADD', P .. which, 'MAXLEN', '1', '0-' .. t, 't', t)\n" \
  "end\n" \
  "local function now_tick (which)\n" \
  "  return tonumber (redis.call ('HGET', META, which .. 'tick') or '0')\n" \
  "end\n" \
  "local function append (recipient, from, line)\n" \
  "  local seq = redis.call ('HINCRBY', META, 'seq', 1)\n" \
  "  local s\n" \
  "  if recipient ~= '0' then s = 'r' .. recipient else s = 'a' .. from end\n" \
  "  redis.call ('XADD', P .. s, '0-' .. seq, 'm', line, 'f', from)\n" \
  "  if redis.call ('XLEN', P .. s) == 1 then\n" \
  "    redis.call ('ZADD', P .. 'front', seq, s)\n" \
  "    if recipient == '0' then redis.call ('ZADD', P .. 'afront', seq, s) end\n" \
  "  end\n" \
  "  redis.call ('HINCRBY', META, 'waiting', 1)\n" \
  "  tick ('put')\n" \
  "  return seq\n" \
  "end\n" \
  "local function take_from (s, me, hold, max_len)\n" \
  "  local e = redis.call ('XRANGE', P .. s, '-', '+', 'COUNT', 2)\n" \
  "  local line, from = e[1][2][2], e[1][2][4]\n" \
  "  if #line > tonumber (max_len) then return {-1, #line} end\n" \
  "  local seq = string.sub (e[1][1], 3)\n" \
  "  redis.call ('XDEL', P .. s, e[1][1])\n" \
  "  if e[2] then\n" \
  "    local next = string.sub (e[2][1], 3)\n" \
  "    redis.call ('ZADD', P .. 'front', next, s)\n" \
  "    if string.sub (s, 1, 1) == 'a' then redis.call ('ZADD', P .. 'afront', next, s) end\n" \
  "  else\n" \
  "    redis.call ('ZREM', P .. 'front', s)\n" \
  "    redis.call ('ZREM', P .. 'afront', s)\n" \
  "  end\n" \
  "  redis.call ('HINCRBY', META, 'waiting', -1)\n" \
  "  if hold == '1' then\n" \
  "    local recipient = '0'\n" \
  "    if string.sub (s, 1, 1) == 'r' then recipient = string.sub (s, 2) end\n" \
  "    local held = me .. ' ' .. from .. ' ' .. recipient .. ' ' .. line\n" \
  "    redis.call ('HSET', P .. 'held', seq, held)\n" \
  "  end\n" \
  "  tick ('took')\n" \
  "  return {1, line, seq}\n" \
  "end\n"

static const char * const sources[MPQ_REDIS_N_SCRIPTS] = {
  [MPQ_REDIS_HELLO] = PRELUDE
    "local id = redis.call ('HINCRBY', META, 'ids', 1)\n"
    "if ARGV[3] == '1' then\n"
    "  redis.call ('HSETNX', META, 'max', ARGV[2])\n"
    "  redis.call ('HSETNX', META, 'owner', id)\n"
    "end\n"
    "return {id, tonumber (redis.call ('HGET', META, 'max') or '0'),\n"
    "        tonumber (redis.call ('HGET', META, 'owner') or '0')}\n",

  /* Full means max waiting messages, as in a local queue: messages in
   * hand do not count. */
  [MPQ_REDIS_PUT] = PRELUDE
    "local max = tonumber (redis.call ('HGET', META, 'max') or '0')\n"
    "local waiting = tonumber (redis.call ('HGET', META, 'waiting') or '0')\n"
    "if max > 0 and waiting >= max then return {0, now_tick ('took')} end\n"
    "return {1, append (ARGV[3], ARGV[2], ARGV[4])}\n",

  /* The front of the whole queue, whoever it is for. */
  [MPQ_REDIS_TAKE] = PRELUDE
    "local f = redis.call ('ZRANGE', P .. 'front', 0, 0)\n"
    "if #f == 0 then return {0, now_tick ('put')} end\n"
    "return take_from (f[1], ARGV[2], ARGV[3], ARGV[4])\n",

  /* The oldest of: the first message addressed to me, and the first one
   * for anyone that another participant put. */
  [MPQ_REDIS_TAKE_FOR_ME] = PRELUDE
    "local me = ARGV[2]\n"
    "local best, score = nil, nil\n"
    "local r = redis.call ('ZSCORE', P .. 'front', 'r' .. me)\n"
    "if r then best = 'r' .. me; score = tonumber (r) end\n"
    "local a = redis.call ('ZRANGE', P .. 'afront', 0, 1, 'WITHSCORES')\n"
    "for i = 1, #a, 2 do\n"
    "  if a[i] ~= 'a' .. me then\n"
    "    if best == nil or tonumber (a[i + 1]) < score then best = a[i] end\n"
    "    break\n"
    "  end\n"
    "end\n"
    "if best == nil then return {0, now_tick ('put')} end\n"
    "return take_from (best, me, '0', ARGV[3])\n",

  [MPQ_REDIS_ACK] = PRELUDE
    "redis.call ('HDEL', P .. 'held', ARGV[2])\n"
    "tick ('took')\n"
    "return 1\n",

  /* Back at the end of the queue, as a local queue's filter puts it;
   * even into a full queue (a put-back never fails). */
  [MPQ_REDIS_PUT_BACK] = PRELUDE
    "local v = redis.call ('HGET', P .. 'held', ARGV[2])\n"
    "if not v then return 0 end\n"
    "local holder, from, recipient, line = string.match (v, '^(%d+) (%d+) (%d+) (.*)$')\n"
    "redis.call ('HDEL', P .. 'held', ARGV[2])\n"
    "append (recipient, from, line)\n"
    "return 1\n",

  [MPQ_REDIS_STATE] = PRELUDE
    "return {tonumber (redis.call ('HGET', META, 'waiting') or '0'),\n"
    "        redis.call ('HLEN', P .. 'held'), now_tick ('took')}\n",

  [MPQ_REDIS_OWNER] = PRELUDE
    "return tonumber (redis.call ('HGET', META, 'owner') or '0')\n",
};

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
  const char *argv[8];
  size_t argvlen[8];
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
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_FAILED, "Redis: %s", reply->str);
      freeReplyObject (reply);
      return FALSE;
    }
  return TRUE;
}

/* XREAD BLOCK on the tick stream @which from @tick: TRUE when it moved
 * past it (run the script again), or when it gave up early; FALSE when
 * @deadline (monotonic µs; -1: never; 0: now) passed (@error unset), or
 * with @error set (MPQ_ERROR_CLOSED: the connection is lost). */
gboolean
_mpq_redis_wait_tick (redisContext  *redis,
                      const char    *prefix,
                      const char    *which,
                      long long      tick,
                      gint64         deadline,
                      GError       **error)
{
  g_autofree char *key = g_strconcat (prefix, which, NULL);
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
  redisReply *reply = command (redis, 3, "SCRIPT", "LOAD", sources[script]);

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
  const char *argv[16];
  size_t argvlen[16];
  guint argc = 0;

  g_assert (n_args + 5 <= G_N_ELEMENTS (argv));

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
