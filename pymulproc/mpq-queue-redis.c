/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "mpq-channel-private.h"
#include "mpq-codec-private.h"
#include "mpq-debug-private.h"
#include "mpq-error.h"
#include "mpq-protocol.h"
#include "mpq-queue.h"
#include "mpq-queue-redis-backend-private.h"
#include "mpq-source-private.h"
#include "mpq-spawn-private.h"

/* A queue kept in Redis Streams as an MpqQueue backend (connection, keys
 * and scripts: mpq-queue-redis-scripts.c, mpq-queue-redis-lua.c). The
 * blocking calls are each one script over this participant's own
 * blocking hiredis connection, in the caller's thread; a call that must
 * wait reads a tick stream with XREAD BLOCK from the tick its script saw,
 * then runs the script again.
 * receive_async, join_async and dispatch go to the library's thread of the
 * queue, which has connections of its own (mpq-queue-redis-thread.c,
 * mpq-queue-redis-async.c). Threads and the backend's fields:
 * mpq-queue-redis-backend-private.h. */


/* The vtable ------------------------------------------------------------ */

static gboolean
redis_put (MpqQueueBackend  *backend,
           MpqMessage       *message,
           GString          *line,
           int               pass_fd,
           gint              recipient_pid,
           gint              put_timeout_ms,
           guint             put_attempts,
           GError          **error)
{
  RedisBackend *self = REDIS (backend);
  gint64 total_ms = (gint64) put_timeout_ms * put_attempts;
  /* Beyond a year is as good as for ever (and would overflow). */
  gint64 deadline = total_ms > G_GINT64_CONSTANT (31536000000) ? -1
                    : g_get_monotonic_time () + total_ms * 1000;
  char from[16], recipient[16];
  const char *args[3] = { from, recipient, line->str };
  gssize lengths[3] = { -1, -1, line->len };

  /* takes_fds is FALSE: payloads travel inline. */
  g_assert (pass_fd < 0);

  g_snprintf (from, sizeof from, "%d", self->id);
  g_snprintf (recipient, sizeof recipient, "%d", recipient_pid);
  for (;;)
    {
      g_autoptr(GError) local_error = NULL;
      redisReply *reply = _mpq_redis_backend_run_acking (self, MPQ_REDIS_PUT, 3, args, lengths,
                                                         deadline, error);
      long long done, tick;

      if (reply == NULL)
        return FALSE;
      done = _mpq_redis_reply_int (reply, 0);
      tick = _mpq_redis_reply_int (reply, 1);
      freeReplyObject (reply);
      if (done == 1)
        return TRUE;

      if (put_attempts == 0 ||
          !_mpq_redis_backend_wait_tick (self, "took", NULL, tick, deadline, &local_error))
        {
          if (local_error != NULL)
            g_propagate_error (error, g_steal_pointer (&local_error));
          else
            g_set_error (error, MPQ_ERROR, MPQ_ERROR_FULL,
                         "The queue is full (%u attempts of %d ms)", put_attempts,
                         put_timeout_ms);
          return FALSE;
        }
    }
}

static gboolean
redis_takes_fds (MpqQueueBackend *backend)
{
  return FALSE;
}

/* One take or take_for_me, waiting as @timeout_ms says: the line in
 * *@line (freed by the caller) and its number in *@seq. FALSE without
 * error when nothing came in time. The message is held on the server,
 * with a lease, until the caller acknowledges it: one whose answer an
 * outage cut off comes back when its lease ends, not lost. */
static gboolean
take_line (RedisBackend    *self,
           MpqRedisScript   script,
           gint             timeout_ms,
           char           **line,
           gsize           *length,
           char           **seq,
           GError         **error)
{
  gint64 deadline = _mpq_deadline_from_timeout (timeout_ms);
  char me[16], own_puts[24], max_len[24], lease[16];
  const char *take_args[4] = { me, "1", max_len, lease };
  const char *for_me_args[5] = { me, "1", "1", max_len, lease };

  g_snprintf (me, sizeof me, "%d", self->id);
  g_snprintf (own_puts, sizeof own_puts, "putr%d", self->id);
  g_snprintf (max_len, sizeof max_len, "%" G_GSIZE_FORMAT, self->max_message_size);
  g_snprintf (lease, sizeof lease, "%u", self->lease_ms);
  for (;;)
    {
      redisReply *reply = script == MPQ_REDIS_TAKE
        ? _mpq_redis_backend_run_acking (self, script, 4, take_args, NULL, deadline, error)
        : _mpq_redis_backend_run_acking (self, script, 5, for_me_args, NULL, deadline, error);
      long long status, tick;

      if (reply == NULL)
        return FALSE;
      status = _mpq_redis_reply_int (reply, 0);
      if (status == 1 && reply->elements == 4 && reply->element[1]->type == REDIS_REPLY_STRING &&
          reply->element[2]->type == REDIS_REPLY_STRING)
        {
          *line = g_strndup (reply->element[1]->str, reply->element[1]->len);
          *length = reply->element[1]->len;
          MPQ_DEBUG_LINE ("<", *line, *length);
          *seq = g_strndup (reply->element[2]->str, reply->element[2]->len);
          freeReplyObject (reply);
          return TRUE;
        }
      tick = _mpq_redis_reply_int (reply, 1);
      freeReplyObject (reply);
      if (status == -1)
        {
          /* It stays for a participant whose limit is higher. */
          g_set_error (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE,
                       "The message at the front is %lld bytes, longer than %" G_GSIZE_FORMAT,
                       tick, self->max_message_size);
          return FALSE;
        }
      /* A routed take waits for puts for anyone and for it alone. */
      if (!(script == MPQ_REDIS_TAKE
            ? _mpq_redis_backend_wait_tick (self, "put", NULL, tick, deadline, error)
            : _mpq_redis_backend_wait_tick (self, "puta", own_puts, tick, deadline, error)))
        return FALSE;
    }
}

static gboolean
settle (RedisBackend    *self,
        MpqRedisScript   script,
        const char      *seq,
        GError         **error)
{
  /* What we held is settled, however long the server is away (until
   * the queue gives it up). */
  redisReply *reply = _mpq_redis_backend_run (self, script, 1, &seq, NULL, -1, error);

  if (reply == NULL)
    return FALSE;
  freeReplyObject (reply);
  return TRUE;
}

static MpqMessage *
redis_take (MpqQueueBackend   *backend,
            gint               timeout_ms,
            MpqMessageFilter   filter,
            gpointer           user_data,
            GError           **error)
{
  RedisBackend *self = REDIS (backend);
  g_autofree char *line = NULL;
  g_autofree char *seq = NULL;
  g_autoptr(MpqMessage) message = NULL;
  GError *decode_error = NULL;
  gsize length = 0;

  if (!take_line (self, MPQ_REDIS_TAKE, timeout_ms, &line, &length, &seq, error))
    return NULL;

  message = _mpq_redis_decode (line, length, &decode_error);
  if (filter == NULL)
    {
      _mpq_redis_thread_done (self->thread, seq);
      if (message == NULL)
        g_propagate_error (error, decode_error);
      return g_steal_pointer (&message);
    }

  /* In our hand while the filter, user code, decides: the library's
   * thread renews its lease meanwhile. */
  if (message != NULL)
    {
      gboolean keep;

      _mpq_redis_thread_hold (self->thread, seq);
      keep = filter (message, user_data);
      _mpq_redis_thread_unhold (self->thread, seq);
      if (!keep)
        {
          settle (self, MPQ_REDIS_PUT_BACK, seq, error);
          return NULL;
        }
    }
  _mpq_redis_thread_done (self->thread, seq);
  if (message == NULL)
    g_propagate_error (error, decode_error);
  return g_steal_pointer (&message);
}

static MpqMessage *
redis_take_for_me (MpqQueueBackend  *backend,
                   gint              timeout_ms,
                   GError          **error)
{
  g_autofree char *line = NULL;
  g_autofree char *seq = NULL;
  gsize length = 0;

  if (!take_line (REDIS (backend), MPQ_REDIS_TAKE_FOR_ME, timeout_ms, &line, &length, &seq,
                  error))
    return NULL;
  _mpq_redis_thread_done (REDIS (backend)->thread, seq);
  return _mpq_redis_decode (line, length, error);
}

/* waiting, held and the took tick. */
static gboolean
get_state (RedisBackend  *self,
           gint64         deadline,
           long long     *waiting,
           long long     *held,
           long long     *tick,
           GError       **error)
{
  redisReply *reply = _mpq_redis_backend_run (self, MPQ_REDIS_STATE, 0, NULL, NULL, deadline,
                                              error);

  if (reply == NULL)
    return FALSE;
  *waiting = _mpq_redis_reply_int (reply, 0);
  *held = _mpq_redis_reply_int (reply, 1);
  *tick = _mpq_redis_reply_int (reply, 2);
  freeReplyObject (reply);
  return TRUE;
}

static gboolean
redis_is_empty (MpqQueueBackend  *backend,
                GError          **error)
{
  long long waiting, held, tick;

  /* No time-out of its own: through an outage until the queue gives up. */
  return get_state (REDIS (backend), -1, &waiting, &held, &tick, error) && waiting == 0;
}

/* Done once nothing waits and nothing is in anyone's hand. */
static gboolean
redis_join (MpqQueueBackend  *backend,
            gint              timeout_ms,
            GError          **error)
{
  RedisBackend *self = REDIS (backend);
  gint64 deadline = _mpq_deadline_from_timeout (timeout_ms);

  for (;;)
    {
      g_autoptr(GError) local_error = NULL;
      long long waiting, held, tick;

      /* What this process took is acknowledged by its thread: first. */
      _mpq_redis_thread_flush_acks (self->thread);
      if (!get_state (self, deadline, &waiting, &held, &tick, error))
        return FALSE;
      if (waiting == 0 && held == 0)
        return TRUE;
      if (!_mpq_redis_backend_wait_tick (self, "took", NULL, tick, deadline, &local_error))
        {
          if (local_error != NULL)
            g_propagate_error (error, g_steal_pointer (&local_error));
          else
            g_set_error (error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT,
                         "%lld messages still in the queue and %lld in hand", waiting, held);
          return FALSE;
        }
    }
}

static void
redis_join_async (MpqQueueBackend *backend,
                  GTask           *task)
{
  _mpq_redis_thread_join_async (REDIS (backend)->thread, task);
}

static void
redis_want_async (MpqQueueBackend *backend,
                  GTask           *task)
{
  _mpq_redis_thread_want_async (REDIS (backend)->thread, task);
}

static MpqMessage *
redis_want_finish (MpqQueueBackend  *backend,
                   GTask            *task,
                   GError          **error)
{
  return _mpq_redis_thread_finish_want (task, error);
}

/* Every call was written and answered before it returned. */
static gboolean
redis_flush (MpqQueueBackend  *backend,
             gint              timeout_ms,
             GError          **error)
{
  return TRUE;
}

static void
redis_start (MpqQueueBackend *backend,
             guint            prefetch)
{
  _mpq_redis_thread_start (REDIS (backend)->thread, prefetch);
}

static void
redis_stop (MpqQueueBackend *backend)
{
  _mpq_redis_thread_stop (REDIS (backend)->thread);
}

static void
redis_close (MpqQueueBackend *backend)
{
  RedisBackend *self = REDIS (backend);

  if (self->closed)
    return;

  self->closed = TRUE;
  /* The thread puts back what dispatch had not emitted first, so that
   * who forgets us once we are gone drops it too. */
  g_clear_pointer (&self->thread, _mpq_redis_thread_close);
  _mpq_redis_backend_bye (self);
  g_clear_pointer (&self->redis, redisFree);
  _mpq_queue_backend_schedule_closed (backend, "[mpq] redis queue closed");
}

static gboolean
redis_is_closed (MpqQueueBackend *backend)
{
  RedisBackend *self = REDIS (backend);

  return self->closed || _mpq_redis_thread_is_lost (self->thread);
}

static gint
redis_get_pid (MpqQueueBackend *backend)
{
  return REDIS (backend)->id;
}

static gsize
redis_set_max_message_size (MpqQueueBackend *backend,
                            gsize            size)
{
  REDIS (backend)->max_message_size = size;
  if (REDIS (backend)->thread != NULL)
    _mpq_redis_thread_set_max_message_size (REDIS (backend)->thread, size);
  return size;
}

static gsize
redis_get_max_message_size (MpqQueueBackend *backend)
{
  return REDIS (backend)->max_message_size;
}

static void
redis_set_lease_time (MpqQueueBackend *backend,
                      guint            lease_time_ms)
{
  RedisBackend *self = REDIS (backend);

  self->lease_ms = lease_time_ms;
  if (self->thread != NULL)
    _mpq_redis_thread_set_lease_time (self->thread, lease_time_ms);
}

static void
redis_free (MpqQueueBackend *backend)
{
  RedisBackend *self = REDIS (backend);

  g_clear_pointer (&self->thread, _mpq_redis_thread_close);
  g_clear_pointer (&self->redis, redisFree);
  _mpq_clear_source (&self->parent.closed_idle);
  _mpq_redis_scripts_clear (&self->scripts);
  g_free (self->uri);
  g_free (self->name);
  g_free (self->prefix);
  g_free (self);
}

static const MpqQueueBackendClass redis_class = {
  .put = redis_put,
  .takes_fds = redis_takes_fds,
  .take = redis_take,
  .take_for_me = redis_take_for_me,
  .is_empty = redis_is_empty,
  .join = redis_join,
  .join_async = redis_join_async,
  .want_async = redis_want_async,
  .want_finish = redis_want_finish,
  .flush = redis_flush,
  .start = redis_start,
  .stop = redis_stop,
  .close = redis_close,
  .is_closed = redis_is_closed,
  .get_parent_pid = _mpq_redis_backend_get_parent_pid,
  .get_pid = redis_get_pid,
  .set_max_message_size = redis_set_max_message_size,
  .get_max_message_size = redis_get_max_message_size,
  .set_lease_time = redis_set_lease_time,
  .spawn = _mpq_redis_backend_spawn,
  .forget_pid = _mpq_redis_backend_forget_pid,
  .find_gone = _mpq_redis_backend_find_gone,
  .free = redis_free,
};

MpqQueueBackend *
_mpq_queue_redis_backend_new (MpqChannel  *channel,
                              const char  *uri,
                              const char  *name,
                              gboolean     creator,
                              guint       *max_size,
                              gsize        max_message_size,
                              guint        lease_time_ms,
                              GError     **error)
{
  RedisBackend *self;
  redisContext *redis;
  redisReply *reply;
  char max_text[16], id_text[16], lease_text[16];
  const char *args[4] = { max_text, creator ? "1" : "0", id_text, lease_text };
  const char *given_id = creator ? NULL : g_getenv (MPQ_QUEUE_ID_ENV);
  guint64 id = 0;

  if (name == NULL || name[0] == '\0' || strpbrk (name, "{}") != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "Invalid queue name \"%s\": it must not be empty nor hold { or }",
                   name != NULL ? name : "");
      return NULL;
    }

  redis = _mpq_redis_connect (uri, error);
  if (redis == NULL)
    return NULL;

  self = g_new0 (RedisBackend, 1);
  self->parent.klass = &redis_class;
  self->parent.channel = channel;
  self->redis = redis;
  self->uri = g_strdup (uri);
  self->name = g_strdup (name);
  self->prefix = g_strdup_printf ("mpq:{%s}:", name);
  self->max_message_size = max_message_size;
  self->lease_ms = lease_time_ms;

  /* A child spawned by mpq_queue_spawn () has its id (the parent knows
   * it by it); one inherited by a grandchild is not free any more, and
   * the server gives another. */
  if (given_id != NULL)
    g_ascii_string_to_unsigned (given_id, 10, 1, G_MAXINT, &id, NULL);
  g_snprintf (id_text, sizeof id_text, "%" G_GUINT64_FORMAT, id);
  g_snprintf (max_text, sizeof max_text, "%u", *max_size);
  g_snprintf (lease_text, sizeof lease_text, "%u", lease_time_ms);
  reply = _mpq_redis_backend_run (self, MPQ_REDIS_HELLO, 4, args, NULL, 0, error);
  if (reply == NULL)
    {
      redis_free (&self->parent);
      return NULL;
    }
  self->id = (gint) _mpq_redis_reply_int (reply, 0);
  *max_size = (guint) _mpq_redis_reply_int (reply, 1);
  self->owner = (gint) _mpq_redis_reply_int (reply, 2);
  freeReplyObject (reply);

  self->thread = _mpq_redis_thread_new (channel, uri, self->prefix, self->id, max_message_size,
                                        error);
  if (self->thread == NULL)
    {
      redis_free (&self->parent);
      return NULL;
    }

  return &self->parent;
}
