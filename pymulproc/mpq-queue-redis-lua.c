/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-queue-redis-private.h"

/* The Redis queue's operations, each one Lua script that the server runs
 * atomically, so that no client ever sees half a put or half a take
 * (mpq-queue-redis-scripts.c loads and runs them).
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
 *   P.."live"    sorted set: participant ids, scored by when their lease
 *                as a participant ends (server ms): HELLO adds, each RENEW
 *                moves it on, BYE and FORGET remove; GONE tells who left
 *                or is past it (the pool's workers, a worker's pool)
 *   P.."reserved"  set: ids NEW_ID gave to children not come yet
 *   P.."put", P.."took"  streams of one entry (MAXLEN 1), "0-TICK",
 *                added to at each put and at each take: a client that
 *                must wait reads them with XREAD BLOCK from the tick its
 *                script saw, so nothing that happens after that script is
 *                missed; each tick is also PUBLISHed for the library's
 *                thread (mpq-queue-redis-thread.c): a take's on P.."ev:took"
 *   P.."puta", P.."putr"..ID  the same for the puts a routed take waits
 *                for: those for anyone (published on P.."ev:a"), those for
 *                participant ID (published on P.."ev:r"..ID), numbered as
 *                P.."put"
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
  "  redis.call ('PUBLISH', P .. 'ev:' .. which, which)\n" \
  "end\n" \
  /* A put wakes those who wait for it: every waiter of the whole \
   * queue's front (stream "put"), and those of a routed take that it \
   * may be for: the recipient's ("putr" ID, channel "ev:r" ID), or \
   * anyone's ("puta", channel "ev:a"). The ids of the three streams \
   * come from one counter; the events say the tick. */ \
  "local function put_tick (recipient)\n" \
  "  local t = redis.call ('HINCRBY', META, 'puttick', 1)\n" \
  "  redis.call ('XADD', P .. 'put', 'MAXLEN', '1', '0-' .. t, 't', t)\n" \
  "  if recipient == '0' then\n" \
  "    redis.call ('XADD', P .. 'puta', 'MAXLEN', '1', '0-' .. t, 't', t)\n" \
  "    redis.call ('PUBLISH', P .. 'ev:a', t)\n" \
  "  else\n" \
  "    redis.call ('XADD', P .. 'putr' .. recipient, 'MAXLEN', '1', '0-' .. t, 't', t)\n" \
  "    redis.call ('PUBLISH', P .. 'ev:r' .. recipient, t)\n" \
  "  end\n" \
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
  "  put_tick (recipient)\n" \
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
  "  put_tick (recipient)\n" \
  "  return 1\n" \
  "end\n" \
  /* Messages this caller took for good before: ARGV[i] on. */ \
  "local function ack_from (i)\n" \
  "  if #ARGV < i then return end\n" \
  "  for j = i, #ARGV do unhold (ARGV[j]) end\n" \
  "  tick ('took')\n" \
  "end\n"

/* The stream to take from for participant @me: the oldest of its own
 * and (when @anyone) the first of anyone's that another one put; nil
 * when both are empty. */
#define FOR_ME \
  "local function for_me (me, anyone)\n" \
  "  local best, score = nil, nil\n" \
  "  local r = redis.call ('ZSCORE', P .. 'front', 'r' .. me)\n" \
  "  if r then best = 'r' .. me; score = tonumber (r) end\n" \
  "  if not anyone then return best end\n" \
  "  local a = redis.call ('ZRANGE', P .. 'afront', 0, 1, 'WITHSCORES')\n" \
  "  for i = 1, #a, 2 do\n" \
  "    if a[i] ~= 'a' .. me then\n" \
  "      if best == nil or tonumber (a[i + 1]) < score then best = a[i] end\n" \
  "      break\n" \
  "    end\n" \
  "  end\n" \
  "  return best\n" \
  "end\n"

const char * const _mpq_redis_script_sources[MPQ_REDIS_N_SCRIPTS] = {
  /* A child spawned with an id (NEW_ID) gets it, once. */
  [MPQ_REDIS_HELLO] = PRELUDE
    "local id = tonumber (ARGV[4])\n"
    "if id == 0 or redis.call ('SREM', P .. 'reserved', ARGV[4]) == 0 then\n"
    "  id = redis.call ('HINCRBY', META, 'ids', 1)\n"
    "end\n"
    "redis.call ('ZADD', P .. 'live', now_ms () + tonumber (ARGV[5]), id)\n"
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
  [MPQ_REDIS_TAKE_FOR_ME] = PRELUDE FOR_ME
    "ack_from (7)\n"
    "local best = for_me (ARGV[2], ARGV[4] ~= '0')\n"
    "local t = best and take_from (best, ARGV[2], ARGV[3], ARGV[5], ARGV[6])\n"
    "if not t then return {0, now_tick ('put')} end\n"
    "return t\n",

  /* Dispatch's: TAKE_FOR_ME, held, up to ARGV[5] messages, of them up
   * to ARGV[6] for anyone, until their lines make ARGV[7] bytes; stops
   * before a line longer than ARGV[3]. Says the put tick when it took
   * all there was (-1 otherwise). */
  [MPQ_REDIS_TAKE_MANY] = PRELUDE FOR_ME
    "local me, n, n_any = ARGV[2], tonumber (ARGV[5]), tonumber (ARGV[6])\n"
    "local budget = tonumber (ARGV[7])\n"
    "local out = {0, -1}\n"
    "while out[1] < n and budget > 0 do\n"
    "  local best = for_me (me, n_any > 0)\n"
    "  local t = best and take_from (best, me, '1', ARGV[3], ARGV[4])\n"
    "  if not t then out[2] = now_tick ('put'); break end\n"
    "  if t[1] == -1 then\n"
    "    if out[1] == 0 then return t end\n"
    "    break\n"
    "  end\n"
    "  out[1] = out[1] + 1\n"
    "  out[#out + 1] = t[2]; out[#out + 1] = t[3]; out[#out + 1] = t[4]\n"
    "  budget = budget - #t[2]\n"
    "  if t[4] == 0 then n_any = n_any - 1 end\n"
    "end\n"
    "if out[1] == 0 then return {0, now_tick ('put')} end\n"
    "return out\n",

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
    "return n\n",

  /* The holder ARGV[2] still has them, and is still there: their leases
   * and its own end ARGV[3] ms from now. How many were not its own any
   * more (taken back: too late). One judged gone meanwhile is back: those
   * who judged stay with what they decided (docs/redis.md). */
  [MPQ_REDIS_RENEW] = PRELUDE
    "local deadline = now_ms () + tonumber (ARGV[3])\n"
    "redis.call ('ZADD', P .. 'live', deadline, ARGV[2])\n"
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

  [MPQ_REDIS_NEW_ID] = PRELUDE
    "local id = redis.call ('HINCRBY', META, 'ids', 1)\n"
    "redis.call ('SADD', P .. 'reserved', id)\n"
    "return id\n",

  /* Of the ids given, those not live: left, or past their lease. */
  [MPQ_REDIS_GONE] = PRELUDE
    "local now = now_ms ()\n"
    "local gone = {}\n"
    "for i = 2, #ARGV do\n"
    "  local until_ = redis.call ('ZSCORE', P .. 'live', ARGV[i])\n"
    "  if not until_ or tonumber (until_) < now then gone[#gone + 1] = tonumber (ARGV[i]) end\n"
    "end\n"
    "return gone\n",

  [MPQ_REDIS_BYE] = PRELUDE
    "redis.call ('ZREM', P .. 'live', ARGV[2])\n"
    "return 1\n",

  /* Participant ARGV[2] is gone for good (a pool's worker): what waits
   * for it, or is in a hand addressed to it, is dropped, as a local
   * queue drops what waits for a child gone. */
  [MPQ_REDIS_FORGET] = PRELUDE
    "local id = ARGV[2]\n"
    "local s = 'r' .. id\n"
    "local n = redis.call ('XLEN', P .. s)\n"
    "local back = redis.call ('ZRANGE', P .. 'b' .. s, 0, -1)\n"
    "for i = 1, #back do redis.call ('HDEL', P .. 'backm', back[i]) end\n"
    "n = n + #back\n"
    "redis.call ('DEL', P .. s, P .. 'b' .. s, P .. 'putr' .. id)\n"
    "if n > 0 then redis.call ('HINCRBY', META, 'waiting', -n) end\n"
    "refront (s)\n"
    "local h = redis.call ('HGETALL', P .. 'held')\n"
    "for i = 1, #h, 2 do\n"
    "  if string.match (h[i + 1], '^%d+ %d+ (%d+) ') == id then unhold (h[i]); n = n + 1 end\n"
    "end\n"
    "redis.call ('ZREM', P .. 'live', id)\n"
    "redis.call ('SREM', P .. 'reserved', id)\n"
    "tick ('took')\n"
    "return n\n",
};
