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
 *                a participant's hand (a filter deciding, a receive_async's
 *                result, dispatch's window), not waiting
 *   P.."lease"   sorted set: the numbers in P.."held" with a lease, scored
 *                by when it ends (the server's TIME, ms); RECLAIM puts those
 *                past it back to the front, RENEW moves them on
 *   P.."b"..S    sorted set: numbers of the messages of stream S that came
 *                back to its front (undo), scored by their number; their
 *                text in P.."backm" (number → "FROM LINE")
 *   P.."put", P.."took"  streams of one entry (MAXLEN 1), "0-TICK",
 *                added to at each put and at each take: a client that
 *                must wait reads them with XREAD BLOCK from the tick its
 *                script saw, so nothing that happens after that script is
 *                missed; each tick is also PUBLISHed on P.."ev" for the
 *                library's thread (mpq-queue-redis-thread.c)
 *
 * A message's entry id is "0-NUMBER", the number from the queue-wide
 * counter, so ids grow in every stream and the queue's order is the
 * numbers' order. Entries hold "m" (the line) and "f" (the putter's id).
 * Whoever owns a connection (the queue's user's thread, or the library's
 * thread for its own) calls these, one at a time per connection. */

#define PRELUDE \
  "local P = ARGV[1]\n" \
  "local META = KEYS[1]\n" \
  "local function tick (which)\n" \
  "  local t = redis.call ('HINCRBY', META, which .. 'tick', 1)\n" \
  "  redis.call ('XADD', P .. which, 'MAXLEN', '1', '0-' .. t, 't', t)\n" \
  "  redis.call ('PUBLISH', P .. 'ev', which)\n" \
  "end\n" \
  "local function now_tick (which)\n" \
  "  return tonumber (redis.call ('HGET', META, which .. 'tick') or '0')\n" \
  "end\n" \
  /* The first message of stream @s: its number and where it is, from the \
   * stream or from the messages that came back to its front; a peer may \
   * have written anything there: a malformed entry reads as an empty \
   * line (a protocol error for that message), never a script error. */ \
  "local function head (s)\n" \
  "  local b = redis.call ('ZRANGE', P .. 'b' .. s, 0, 0, 'WITHSCORES')\n" \
  "  local e = redis.call ('XRANGE', P .. s, '-', '+', 'COUNT', 1)\n" \
  "  local es = e[1] and tonumber (string.match (e[1][1], '^0%-(%d+)$') or '0')\n" \
  "  local bs = b[1] and tonumber (b[2])\n" \
  "  if bs and (not es or bs < es) then return bs, 'b', b[1] end\n" \
  "  if es then return es, 'e', e[1] end\n" \
  "  return nil\n" \
  "end\n" \
  "local function refront (s)\n" \
  "  local seq = head (s)\n" \
  "  if seq then\n" \
  "    redis.call ('ZADD', P .. 'front', seq, s)\n" \
  "    if string.sub (s, 1, 1) == 'a' then redis.call ('ZADD', P .. 'afront', seq, s) end\n" \
  "  else\n" \
  "    redis.call ('ZREM', P .. 'front', s)\n" \
  "    redis.call ('ZREM', P .. 'afront', s)\n" \
  "  end\n" \
  "end\n" \
  "local function stream_of (recipient, from)\n" \
  "  if recipient ~= '0' then return 'r' .. recipient end\n" \
  "  return 'a' .. from\n" \
  "end\n" \
  "local function append (recipient, from, line)\n" \
  "  local seq = redis.call ('HINCRBY', META, 'seq', 1)\n" \
  "  local s = stream_of (recipient, from)\n" \
  "  redis.call ('XADD', P .. s, '0-' .. seq, 'm', line, 'f', from)\n" \
  "  refront (s)\n" \
  "  redis.call ('HINCRBY', META, 'waiting', 1)\n" \
  "  tick ('put')\n" \
  "  return seq\n" \
  "end\n" \
  "local function now_ms ()\n" \
  "  local t = redis.call ('TIME')\n" \
  "  return tonumber (t[1]) * 1000 + math.floor (tonumber (t[2]) / 1000)\n" \
  "end\n" \
  "local function take_from (s, me, hold, max_len, lease)\n" \
  "  local seq, where, x = head (s)\n" \
  "  if not seq then refront (s); return nil end\n" \
  "  local line, from = '', '0'\n" \
  "  if where == 'b' then\n" \
  "    local v = redis.call ('HGET', P .. 'backm', x) or ''\n" \
  "    from, line = string.match (v, '^(%d+) (.*)$')\n" \
  "    if not from then from, line = '0', '' end\n" \
  "  else\n" \
  "    for i = 1, #x[2] - 1, 2 do\n" \
  "      if x[2][i] == 'm' then line = x[2][i + 1] elseif x[2][i] == 'f' then from = x[2][i + 1] end\n" \
  "    end\n" \
  "    if not string.match (from, '^%d+$') then from = '0' end\n" \
  "  end\n" \
  "  if #line > tonumber (max_len) then return {-1, #line} end\n" \
  "  if where == 'b' then\n" \
  "    redis.call ('ZREM', P .. 'b' .. s, x)\n" \
  "    redis.call ('HDEL', P .. 'backm', x)\n" \
  "  else\n" \
  "    redis.call ('XDEL', P .. s, x[1])\n" \
  "  end\n" \
  "  refront (s)\n" \
  "  redis.call ('HINCRBY', META, 'waiting', -1)\n" \
  "  local recipient = '0'\n" \
  "  if string.sub (s, 1, 1) == 'r' then recipient = string.sub (s, 2) end\n" \
  "  if hold == '1' then\n" \
  "    redis.call ('HSET', P .. 'held', seq, me .. ' ' .. from .. ' ' .. recipient .. ' ' .. line)\n" \
  "    redis.call ('ZADD', P .. 'lease', now_ms () + tonumber (lease), seq)\n" \
  "  end\n" \
  "  tick ('took')\n" \
  "  return {1, line, tostring (seq), tonumber (recipient)}\n" \
  "end\n" \
  /* A message in hand, by its number: holder, from, recipient, line. */ \
  "local function held (seq)\n" \
  "  local v = redis.call ('HGET', P .. 'held', seq)\n" \
  "  if not v then return nil end\n" \
  "  local holder, from, recipient, line = string.match (v, '^(%d+) (%d+) (%d+) (.*)$')\n" \
  "  if not holder then redis.call ('HDEL', P .. 'held', seq); return nil end\n" \
  "  return holder, from, recipient, line\n" \
  "end\n" \
  "local function unhold (seq)\n" \
  "  redis.call ('HDEL', P .. 'held', seq)\n" \
  "  redis.call ('ZREM', P .. 'lease', seq)\n" \
  "end\n" \
  /* Back to the front of its stream, with its own number, so before \
   * everything put after it. 1 when it was in someone's hand. */ \
  "local function undo (seq)\n" \
  "  local holder, from, recipient, line = held (seq)\n" \
  "  unhold (seq)\n" \
  "  if not holder then return 0 end\n" \
  "  local s = stream_of (recipient, from)\n" \
  "  redis.call ('ZADD', P .. 'b' .. s, seq, seq)\n" \
  "  redis.call ('HSET', P .. 'backm', seq, from .. ' ' .. line)\n" \
  "  redis.call ('HINCRBY', META, 'waiting', 1)\n" \
  "  refront (s)\n" \
  "  return 1\n" \
  "end\n" \
  /* Messages this caller took for good before: ARGV[i] on. */ \
  "local function ack_from (i)\n" \
  "  if #ARGV < i then return end\n" \
  "  for j = i, #ARGV do unhold (ARGV[j]) end\n" \
  "  tick ('took')\n" \
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
    "ack_from (5)\n"
    "local max = tonumber (redis.call ('HGET', META, 'max') or '0')\n"
    "local waiting = tonumber (redis.call ('HGET', META, 'waiting') or '0')\n"
    "if max > 0 and waiting >= max then return {0, now_tick ('took')} end\n"
    "return {1, append (ARGV[3], ARGV[2], ARGV[4])}\n",

  /* The front of the whole queue, whoever it is for. */
  [MPQ_REDIS_TAKE] = PRELUDE
    "ack_from (6)\n"
    "local f = redis.call ('ZRANGE', P .. 'front', 0, 0)\n"
    "local r = f[1] and take_from (f[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])\n"
    "if not r then return {0, now_tick ('put')} end\n"
    "return r\n",

  /* The oldest of: the first message addressed to me, and (unless
   * ARGV[4] is '0') the first one for anyone that another participant
   * put. */
  [MPQ_REDIS_TAKE_FOR_ME] = PRELUDE
    "ack_from (7)\n"
    "local me = ARGV[2]\n"
    "local best, score = nil, nil\n"
    "local r = redis.call ('ZSCORE', P .. 'front', 'r' .. me)\n"
    "if r then best = 'r' .. me; score = tonumber (r) end\n"
    "local a = {}\n"
    "if ARGV[4] ~= '0' then a = redis.call ('ZRANGE', P .. 'afront', 0, 1, 'WITHSCORES') end\n"
    "for i = 1, #a, 2 do\n"
    "  if a[i] ~= 'a' .. me then\n"
    "    if best == nil or tonumber (a[i + 1]) < score then best = a[i] end\n"
    "    break\n"
    "  end\n"
    "end\n"
    "local t = best and take_from (best, me, ARGV[3], ARGV[5], ARGV[6])\n"
    "if not t then return {0, now_tick ('put')} end\n"
    "return t\n",

  /* Done with: taken for good. */
  [MPQ_REDIS_ACK] = PRELUDE
    "for i = 2, #ARGV do unhold (ARGV[i]) end\n"
    "tick ('took')\n"
    "return 1\n",

  /* Back at the end of the queue, as a local queue's filter puts it;
   * even into a full queue (a put-back never fails). */
  [MPQ_REDIS_PUT_BACK] = PRELUDE
    "local holder, from, recipient, line = held (ARGV[2])\n"
    "if not holder then return 0 end\n"
    "unhold (ARGV[2])\n"
    "append (recipient, from, line)\n"
    "return 1\n",

  /* Handed out and not taken: back to the front, as a local queue puts
   * back what a process was handed and did not take. */
  [MPQ_REDIS_UNDO] = PRELUDE
    "local n = 0\n"
    "for i = 2, #ARGV do n = n + undo (ARGV[i]) end\n"
    "if n > 0 then tick ('put') end\n"
    "return n\n",

  /* The holder ARGV[2] still has them: their leases end ARGV[3] ms from
   * now. How many were not its own any more (taken back: too late). */
  [MPQ_REDIS_RENEW] = PRELUDE
    "local deadline = now_ms () + tonumber (ARGV[3])\n"
    "local lost = 0\n"
    "for i = 4, #ARGV do\n"
    "  local holder = held (ARGV[i])\n"
    "  if holder == ARGV[2] then redis.call ('ZADD', P .. 'lease', 'XX', deadline, ARGV[i])\n"
    "  else lost = lost + 1 end\n"
    "end\n"
    "return lost\n",

  /* Messages whose lease ended (their holder died, or hung) go back to
   * the front, at most 100 a call; {how many, ms until the next lease
   * ends or -1}. */
  [MPQ_REDIS_RECLAIM] = PRELUDE
    "local now = now_ms ()\n"
    "local over = redis.call ('ZRANGEBYSCORE', P .. 'lease', '-inf', now, 'LIMIT', 0, 100)\n"
    "local n = 0\n"
    "for i = 1, #over do n = n + undo (over[i]) end\n"
    "if n > 0 then tick ('put') end\n"
    "local next = redis.call ('ZRANGE', P .. 'lease', 0, 0, 'WITHSCORES')\n"
    "if #over == 100 then return {n, 0} end\n"
    "if not next[2] then return {n, -1} end\n"
    "return {n, math.max (0, tonumber (next[2]) - now)}\n",

  [MPQ_REDIS_STATE] = PRELUDE
    "return {tonumber (redis.call ('HGET', META, 'waiting') or '0'),\n"
    "        redis.call ('HLEN', P .. 'held'), now_tick ('took')}\n",

  [MPQ_REDIS_OWNER] = PRELUDE
    "return tonumber (redis.call ('HGET', META, 'owner') or '0')\n",

  [MPQ_REDIS_IDS] = PRELUDE
    "return tonumber (redis.call ('HGET', META, 'ids') or '0')\n",
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
      /* A server loading its data after a restart is not there yet. */
      g_set_error (error, MPQ_ERROR,
                   g_str_has_prefix (reply->str, "LOADING") ? MPQ_ERROR_CLOSED : MPQ_ERROR_FAILED,
                   "Redis: %s", reply->str);
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
