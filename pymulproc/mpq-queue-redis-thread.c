/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mpq-codec-private.h"
#include "mpq-error.h"
#include "mpq-queue.h"
#include "mpq-queue-redis-thread-private.h"

/* The library's thread of a queue on Redis (issue 14, phase 2). It has
 * two connections of its own: one runs the scripts, the other is
 * SUBSCRIBEd to the queue's events (every put and take PUBLISHes one) for
 * as long as the thread waits for something; it polls that one and an
 * eventfd by which the user's thread wakes it, so it never blocks in the
 * server and a wake-up is never a round trip. Each turn it
 *
 *   - acknowledges what the user is done with, and puts back at the
 *     front what was handed out and not taken (undo);
 *   - takes, holding it on the server, the next message for this process
 *     for the oldest receive_async, or for dispatch while its window (a
 *     local queue's MpqQueueSlots) has room;
 *   - answers join_async once nothing waits and nothing is in hand;
 *   - then waits for an event, or for the user's thread, or for the time
 *     to renew leases (mpq-queue-redis-lease.c).
 *
 * When the server is lost it connects again (mpq-queue-redis-outage.c).
 *
 * It never runs user code: results go to their task's main context
 * (mpq-queue-redis-async.c), dispatch's messages to an inbox whose wake
 * source runs in the context of mpq_channel_start()'s caller. */

static MpqRedisTaken *
taken_new (const char  *line,
           gsize        length,
           const char  *seq,
           gint         recipient)
{
  MpqRedisTaken *taken = g_new0 (MpqRedisTaken, 1);

  taken->seq = g_strdup (seq);
  taken->recipient = recipient;
  taken->length = length;
  taken->message = _mpq_redis_decode (line, length, &taken->error);
  return taken;
}

void
_mpq_redis_taken_free (MpqRedisTaken *taken)
{
  g_free (taken->seq);
  g_clear_object (&taken->message);
  g_clear_error (&taken->error);
  g_free (taken);
}

MpqRedisTaken *
_mpq_redis_inbox_pop_locked (MpqRedisThread *thread)
{
  MpqRedisTaken *taken = g_queue_pop_head (&thread->inbox);

  if (taken != NULL)
    thread->inbox_bytes -= taken->length;
  return taken;
}

/* Any thread. */
MpqRedisThread *
_mpq_redis_thread_ref (MpqRedisThread *thread)
{
  g_atomic_int_inc (&thread->refs);
  return thread;
}

/* Any thread; the last reference goes after the thread ended. */
void
_mpq_redis_thread_unref (MpqRedisThread *thread)
{
  if (!g_atomic_int_dec_and_test (&thread->refs))
    return;

  g_assert (thread->thread == NULL);
  g_assert (g_queue_is_empty (&thread->wants) && g_queue_is_empty (&thread->joins));
  g_queue_clear_full (&thread->inbox, (GDestroyNotify) _mpq_redis_taken_free);
  g_ptr_array_unref (thread->acks);
  g_ptr_array_unref (thread->undos);
  g_ptr_array_unref (thread->deferred);
  g_hash_table_unref (thread->in_hand);
  g_clear_pointer (&thread->redis, redisFree);
  g_clear_pointer (&thread->events, redisFree);
  _mpq_redis_scripts_clear (&thread->scripts);
  if (thread->wake_fd >= 0)
    close (thread->wake_fd);
  _mpq_mutex_clear (&thread->lock);
  _mpq_cond_clear (&thread->cond);
  g_main_context_unref (thread->context);
  g_free (thread->uri);
  g_free (thread->prefix);
  g_free (thread);
}

/* Any thread: the thread runs a turn soon. */
void
_mpq_redis_thread_wake (MpqRedisThread *thread)
{
  guint64 one = 1;

  while (write (thread->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
    ;
}

/* Any thread, with the lock. */
gboolean
_mpq_redis_thread_settle_locked (MpqRedisThread *thread,
                                 const char     *seq,
                                 GPtrArray      *to)
{
  gpointer key;

  if (!g_hash_table_steal_extended (thread->in_hand, seq, &key, NULL))
    return FALSE;
  g_ptr_array_add (to, key);
  if (to == thread->acks)
    thread->acks_queued++;
  return TRUE;
}

/* The thread ------------------------------------------------------------- */

/* A message the thread took: to the oldest receive_async, or to
 * dispatch's inbox, or, if nobody wants it any more, back to the front.
 * The library's thread, with the lock, which it lets go. */
static void
hand_over_unlock (MpqRedisThread *thread,
                  MpqRedisTaken  *taken)
{
  GTask *task = g_queue_pop_head (&thread->wants);

  g_hash_table_add (thread->in_hand, g_strdup (taken->seq));
  if (task != NULL)
    {
      _mpq_mutex_unlock (&thread->lock);
      _mpq_redis_complete_later (thread, task, taken, NULL);
      return;
    }

  if (taken->message == NULL)
    {
      /* Dispatch has nobody to tell: a malformed message costs itself. */
      g_debug ("A malformed message in the Redis queue %s was dropped: %s", thread->prefix,
               taken->error->message);
      _mpq_redis_thread_settle_locked (thread, taken->seq, thread->acks);
      _mpq_redis_taken_free (taken);
    }
  else if (thread->slots.started)
    {
      _mpq_queue_slots_take (&thread->slots, taken->recipient);
      g_queue_push_tail (&thread->inbox, taken);
      thread->inbox_bytes += taken->length;
      g_source_set_ready_time (thread->deliver, 0);
    }
  else
    {
      _mpq_redis_thread_settle_locked (thread, taken->seq, thread->undos);
      _mpq_redis_taken_free (taken);
    }
  _mpq_mutex_unlock (&thread->lock);
}

/* What one script hands dispatch at most: messages, and bytes of their
 * lines (past the first). */
#define TAKE_MANY_MAX 64
#define TAKE_MANY_BYTES (256 * 1024)

/* Takes what is next for this process (addressed to it, or, when
 * @anyone, put for anyone by another), held on the server: one message
 * for a receive_async, as many as dispatch's window has room for
 * (@room, of them @room_anyone for anyone; lines of @room_bytes past
 * the first) otherwise. How many it took,
 * 0 when there was none, -1 when the server is lost (@error); *@drained
 * when it took all there was. The library's thread. */
static int
take_some (MpqRedisThread  *thread,
           gboolean         anyone,
           guint            room,
           guint            room_anyone,
           gsize            max_len,
           gsize            room_bytes,
           gboolean        *drained,
           GError         **error)
{
  char max_text[24], lease[16], n_text[16], n_any_text[16], bytes_text[16];
  const char *one_args[5] = { thread->me, "1", anyone ? "1" : "0", max_text, lease };
  const char *many_args[6] = { thread->me, max_text, lease, n_text, n_any_text, bytes_text };
  gboolean many = room > 1;
  redisReply *reply;
  long long status;
  int took = 0;

  g_snprintf (max_text, sizeof max_text, "%" G_GSIZE_FORMAT, max_len);
  g_snprintf (n_text, sizeof n_text, "%u", MIN (room, TAKE_MANY_MAX));
  g_snprintf (n_any_text, sizeof n_any_text, "%u", anyone ? MIN (room_anyone, TAKE_MANY_MAX) : 0);
  g_snprintf (bytes_text, sizeof bytes_text, "%" G_GSIZE_FORMAT,
              MIN (room_bytes, TAKE_MANY_BYTES));
  _mpq_mutex_lock (&thread->lock);
  g_snprintf (lease, sizeof lease, "%u", thread->lease_ms);
  _mpq_mutex_unlock (&thread->lock);
  reply = many ? _mpq_redis_run (thread->redis, &thread->scripts, MPQ_REDIS_TAKE_MANY,
                                 thread->prefix, G_N_ELEMENTS (many_args), many_args, NULL, error)
               : _mpq_redis_run (thread->redis, &thread->scripts, MPQ_REDIS_TAKE_FOR_ME,
                                 thread->prefix, G_N_ELEMENTS (one_args), one_args, NULL, error);
  if (reply == NULL)
    return -1;

  /* {k, put tick or -1, line, seq, recipient, ...}; TAKE_FOR_ME's is
   * {1, line, seq, recipient}. */
  status = _mpq_redis_reply_int (reply, 0);
  if (many && status >= 1 && _mpq_redis_reply_int (reply, 1) >= 0)
    {
      /* All there was: what the events say until then is stale. */
      thread->seen_put_tick = MAX (thread->seen_put_tick, _mpq_redis_reply_int (reply, 1));
      *drained = TRUE;
    }
  for (gsize i = many ? 2 : 1; status >= 1 && i + 2 < reply->elements; i += 3)
    {
      MpqRedisTaken *taken;

      if (reply->element[i]->type != REDIS_REPLY_STRING ||
          reply->element[i + 1]->type != REDIS_REPLY_STRING)
        break;
      taken = taken_new (reply->element[i]->str, reply->element[i]->len,
                         reply->element[i + 1]->str, (gint) _mpq_redis_reply_int (reply, i + 2));
      _mpq_mutex_lock (&thread->lock);
      hand_over_unlock (thread, taken);
      took++;
    }
  if (took > 0)
    {
      freeReplyObject (reply);
      return took;
    }

  /* Every put until this tick was seen (taken, by us or others). */
  if (status == 0)
    thread->seen_put_tick = MAX (thread->seen_put_tick, _mpq_redis_reply_int (reply, 1));
  if (status == -1)
    {
      /* It stays for a participant whose limit is higher. */
      long long length = _mpq_redis_reply_int (reply, 1);
      GTask *task;

      _mpq_mutex_lock (&thread->lock);
      task = g_queue_pop_head (&thread->wants);
      _mpq_mutex_unlock (&thread->lock);
      if (task != NULL)
        _mpq_redis_complete_later (thread, task, NULL,
                                   g_error_new (MPQ_ERROR, MPQ_ERROR_TOO_LARGE,
                                                "The message at the front is %lld bytes, "
                                                "longer than %" G_GSIZE_FORMAT,
                                                length, max_len));
    }
  freeReplyObject (reply);
  return 0;
}

/* join_async's: done once nothing waits and nothing is in anyone's hand.
 * The library's thread. */
static gboolean
check_joins (MpqRedisThread  *thread,
             GError         **error)
{
  redisReply *reply = _mpq_redis_run (thread->redis, &thread->scripts, MPQ_REDIS_STATE,
                                      thread->prefix, 0, NULL, NULL, error);
  GQueue joins = G_QUEUE_INIT;
  gboolean done;
  GTask *task;

  if (reply == NULL)
    return FALSE;
  done = _mpq_redis_reply_int (reply, 0) == 0 && _mpq_redis_reply_int (reply, 1) == 0;
  freeReplyObject (reply);
  if (!done)
    return TRUE;

  _mpq_mutex_lock (&thread->lock);
  joins = thread->joins;
  g_queue_init (&thread->joins);
  _mpq_mutex_unlock (&thread->lock);
  while ((task = g_queue_pop_head (&joins)) != NULL)
    _mpq_redis_complete_later (thread, task, NULL, NULL);
  return TRUE;
}


/* Acknowledges what the user is done with and puts back what was not
 * taken (at close, all we hold); on failure they wait for the next try
 * (acknowledging and undoing twice are harmless). Nothing of it is left
 * on the heap once it returns, so nothing is lost while the thread waits.
 * The library's thread. */
static gboolean
settle_pending (MpqRedisThread  *thread,
                gboolean         quit,
                GError         **error)
{
  g_autoptr(GPtrArray) acks = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) undos = g_ptr_array_new_with_free_func (g_free);
  guint64 acks_queued;

  _mpq_mutex_lock (&thread->lock);
  if (quit)
    {
      GHashTableIter iter;
      gpointer key;

      g_ptr_array_extend_and_steal (thread->acks, g_steal_pointer (&thread->deferred));
      thread->deferred = g_ptr_array_new_with_free_func (g_free);

      g_hash_table_iter_init (&iter, thread->in_hand);
      while (g_hash_table_iter_next (&iter, &key, NULL))
        {
          g_hash_table_iter_steal (&iter);
          g_ptr_array_add (thread->undos, key);
        }
    }
  g_ptr_array_extend_and_steal (acks, g_steal_pointer (&thread->acks));
  g_ptr_array_extend_and_steal (undos, g_steal_pointer (&thread->undos));
  thread->acks = g_ptr_array_new_with_free_func (g_free);
  thread->undos = g_ptr_array_new_with_free_func (g_free);
  acks_queued = thread->acks_queued;
  _mpq_mutex_unlock (&thread->lock);

  if (!_mpq_redis_thread_settle (thread, MPQ_REDIS_ACK, acks, error) ||
      !_mpq_redis_thread_settle (thread, MPQ_REDIS_UNDO, undos, error))
    {
      _mpq_mutex_lock (&thread->lock);
      g_ptr_array_extend (thread->acks, acks, (GCopyFunc) (void (*) (void)) g_strdup, NULL);
      g_ptr_array_extend (thread->undos, undos, (GCopyFunc) (void (*) (void)) g_strdup, NULL);
      _mpq_mutex_unlock (&thread->lock);
      return FALSE;
    }
  if (acks->len > 0)
    {
      _mpq_mutex_lock (&thread->lock);
      thread->acks_done = acks_queued;
      _mpq_cond_broadcast (&thread->cond);
      _mpq_mutex_unlock (&thread->lock);
    }
  return TRUE;
}

/* One turn; FALSE once the thread ends. The library's thread. */
static gboolean
turn (MpqRedisThread *thread)
{
  gboolean quit, take, anyone, join, probed, inbox_full;
  guint room, room_anyone;
  gsize room_bytes;
  gboolean drained = FALSE;
  GError *error = NULL;
  gsize max_len;
  gboolean more = FALSE;
  int took = 0;

  _mpq_mutex_lock (&thread->lock);
  quit = thread->quit;
  /* Dispatch's inbox full: it waits until dispatch emptied some (its
   * wake-up), a receive_async still takes one. */
  inbox_full = thread->inbox_bytes >= MPQ_REDIS_INBOX_BYTES;
  room_bytes = inbox_full ? 0 : MPQ_REDIS_INBOX_BYTES - thread->inbox_bytes;
  take = thread->wants.length > 0 ||
         (!inbox_full && _mpq_queue_slots_have_room (&thread->slots, FALSE));
  anyone = thread->wants.length > 0 ||
           (!inbox_full && _mpq_queue_slots_have_room (&thread->slots, TRUE));
  /* A receive_async takes one; dispatch what its window has room for. */
  if (thread->wants.length > 0)
    room = room_anyone = 1;
  else
    _mpq_queue_slots_room (&thread->slots, &room, &room_anyone);
  join = thread->joins.length > 0;
  max_len = thread->max_message_size;
  probed = thread->probe;
  _mpq_mutex_unlock (&thread->lock);

  if (inbox_full && !thread->said_inbox_full)
    g_debug ("The Redis queue %s holds %d bytes for dispatch: it takes no more until "
             "dispatch emptied some", thread->prefix, MPQ_REDIS_INBOX_BYTES);
  thread->said_inbox_full = inbox_full;

  /* The user's connection failed: ours is tried now. */
  if (probed)
    thread->next_reclaim = 0;

  if (!settle_pending (thread, quit, &error))
    goto lost;
  if (quit)
    return FALSE;
  if (!_mpq_redis_thread_keep_leases (thread, &more, &error))
    goto lost;
  if (probed)
    _mpq_redis_thread_probed (thread);

  if (take &&
      (took = take_some (thread, anyone, room, room_anyone, max_len, room_bytes, &drained,
                         &error)) < 0)
    goto lost;
  if (join && !check_joins (thread, &error))
    goto lost;
  /* What it took may have been the last: it looks again (unless it was
   * told so), or waits. */
  if ((took > 0 && !drained) || more)
    return TRUE;
  if (!_mpq_redis_thread_wait_event (thread,
                                     (take ? MPQ_REDIS_EVENTS_MINE : 0) |
                                     (take && anyone ? MPQ_REDIS_EVENTS_ANYONE : 0) |
                                     (join ? MPQ_REDIS_EVENTS_TOOK : 0), &error))
    goto lost;
  return TRUE;

lost:
  g_debug ("The Redis queue %s lost the server: %s", thread->prefix, error->message);
  return _mpq_redis_thread_reconnect (thread, error);
}

static gpointer
thread_main (gpointer data)
{
  MpqRedisThread *thread = data;
  sigset_t pipe_set;

  /* A write to a server that went away raises SIGPIPE: in this thread,
   * never; the library does not change the process's signal handling. */
  sigemptyset (&pipe_set);
  sigaddset (&pipe_set, SIGPIPE);
  pthread_sigmask (SIG_BLOCK, &pipe_set, NULL);

  while (turn (thread))
    ;
  return NULL;
}

/* The user's side ---------------------------------------------------------- */

MpqRedisThread *
_mpq_redis_thread_new (MpqChannel  *channel,
                       const char  *uri,
                       const char  *prefix,
                       gint         id,
                       gsize        max_message_size,
                       GError     **error)
{
  MpqRedisThread *thread = g_new0 (MpqRedisThread, 1);

  thread->refs = 1;
  thread->channel = channel;
  thread->context = g_main_context_ref_thread_default ();
  thread->uri = g_strdup (uri);
  thread->prefix = g_strdup (prefix);
  g_snprintf (thread->me, sizeof thread->me, "%d", id);
  _mpq_mutex_init (&thread->lock);
  _mpq_cond_init (&thread->cond);
  thread->acks = g_ptr_array_new_with_free_func (g_free);
  thread->undos = g_ptr_array_new_with_free_func (g_free);
  thread->deferred = g_ptr_array_new_with_free_func (g_free);
  thread->in_hand = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  thread->slots.prefetch = 1;
  thread->max_message_size = max_message_size;
  thread->lease_ms = MPQ_DEFAULT_LEASE_TIME;
  thread->wake_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (thread->wake_fd < 0)
    {
      int saved = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), "eventfd: %s",
                   g_strerror (saved));
      _mpq_redis_thread_unref (thread);
      return NULL;
    }

  thread->redis = _mpq_redis_connect (uri, error);
  if (thread->redis != NULL)
    thread->events = _mpq_redis_connect (uri, error);
  if (thread->events == NULL)
    {
      _mpq_redis_thread_unref (thread);
      return NULL;
    }

  /* Made before the thread can make it too (G_DEFINE_QUARK's lazy
   * static is not atomic). */
  (void) mpq_error_quark ();
  thread->thread = g_thread_new ("mpq-redis", thread_main, thread);
  return thread;
}

gboolean
_mpq_redis_thread_is_lost (MpqRedisThread *thread)
{
  gboolean lost;

  _mpq_mutex_lock (&thread->lock);
  lost = thread->lost;
  _mpq_mutex_unlock (&thread->lock);
  return lost;
}

void
_mpq_redis_thread_set_max_message_size (MpqRedisThread *thread,
                                        gsize           size)
{
  _mpq_mutex_lock (&thread->lock);
  thread->max_message_size = size;
  _mpq_mutex_unlock (&thread->lock);
}
