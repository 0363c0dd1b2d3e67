/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mpq-codec-private.h"
#include "mpq-debug-private.h"
#include "mpq-error.h"
#include "mpq-frame-private.h"
#include "mpq-line-reader-private.h"
#include "mpq-protocol.h"
#include "mpq-queue-server-private.h"
#include "mpq-spawn-private.h"
#include "mpq-source-private.h"

/* A child whose answers pile up unread this far is not read from until it
 * catches up: memory per child stays bounded whatever it asks for. */
#define OUT_HIGH_WATER (8 * 1024 * 1024)

/* The most messages one child may ask to have in hand through dispatch. */
#define MAX_PREFETCH 65536

typedef struct _Conn Conn;

/* What dispatch may still hand a process: messages for anyone up to a
 * window, so that work spreads; messages addressed to it (nobody else
 * wants them) up to a wider one, which only bounds memory.
 *
 * The window for anyone is about WORK_AHEAD_US of the process's own work,
 * as its handlers have been taking (the time they took comes with each
 * ack; without it, the time from hand-over to ack): one message at a time
 * while they take long (nobody sits on tasks others could do), up to its
 * prefetch while they are quick (it never waits for the next). It starts
 * at one. */
typedef struct
{
  gboolean started;
  guint    prefetch;
  guint    pushed;      /* handed by dispatch, not yet done */
  guint    pushed_any;  /* ... of them for anyone */
  gint64   busy_since;  /* since when it has had work for anyone in hand */
  gint64   work_us;     /* what one message takes its handlers, lately */
  guint    done;        /* messages done (0: nothing known yet) */
} Slots;

#define WORK_AHEAD_US 20000

#define ADDRESSED_WINDOW 1024

/* The parent asks the thread for more once it holds no more than this:
 * asking after every message it handles would wake the thread for every
 * message while a backlog drains. */
#define LOCAL_REFILL_AT (ADDRESSED_WINDOW / 4)

/* Messages waiting for one recipient pid; or, for anyone, put by one
 * origin (a process is never handed work for anyone that it put itself). */
typedef struct
{
  gint     key;      /* the recipient pid, or the origin pid */
  gboolean anyone;
  GQueue   entries;  /* Entry, by route_link */
} Route;

/* One message in the queue, or in someone's hand. The line is kept to be
 * forwarded to children as it is; the message, for the parent. */
typedef struct
{
  GList       all_link;    /* in the FIFO, or in a child's hand */
  GList       route_link;  /* in its recipient's list while in the FIFO */
  guint64     seq;
  gint        recipient;
  gint        origin;      /* pid of the process that put it */
  Route      *route;       /* while in the FIFO */
  guint32     tag;         /* while in a child's hand */
  gboolean    pushed;      /* handed by dispatch, not asked for */
  MpqMessage *message;
  gsize       length;
  char        line[];
} Entry;

typedef enum { PENDING_GET, PENDING_WANT, PENDING_JOIN } PendingKind;

/* A request that waits: a child's receive, routed receive or join; or
 * the parent's own blocking receive (@conn NULL, answered in @served). */
typedef struct
{
  Conn        *conn;
  PendingKind  kind;
  gint64       id;
  GSource     *timer;
  Entry       *served;
} Pending;

struct _Conn
{
  MpqQueueServer *server;
  int             fd;
  gint            pid;
  MpqLineReader   reader;
  GIOChannel     *channel;
  GSource        *in_watch;
  GSource        *out_watch;
  GString        *out;        /* not yet written */
  gsize           outpos;
  GQueue          held;       /* Entry in hand, in the order handed out */
  guint32         next_tag;
  Slots           slots;
  GQueue          wants;      /* Pending */
  GQueue          joins;      /* Pending */
  gint            credit;     /* lent and unused; -1 for an unbounded queue */
  gboolean        wants_credit;
  gboolean        dead;
};

struct _MpqQueueServer
{
  GMutex        lock;
  GCond         cond;         /* FIFO, room or unfinished changed */
  guint         waiters;      /* threads waiting on @cond */

  guint         max_size;     /* 0: unbounded */
  gsize         max_message_size;
  gint          pid;

  GQueue        all;          /* Entry waiting, oldest first */
  GPtrArray    *anyone;       /* Route of those addressed to nobody, by origin */
  GHashTable   *by_pid;       /* recipient → Route of those addressed to it */
  guint64       next_seq;
  guint         unfinished;   /* put and not yet taken */
  guint         credit_out;   /* lent to children and not yet used */
  guint         credit_wanted; /* children waiting for credit */

  GPtrArray    *conns;
  guint         turn;         /* where the next round of dispatch starts */

  /* The parent as a participant. */
  GQueue        local_inbox;  /* Entry handed to its dispatch */
  GSource      *local_wake;
  Slots         local;
  GQueue        local_wants;  /* GTask of receive_async */
  GQueue        local_joins;  /* GTask of join_async */
  GQueue        completed;    /* GTask, result (Held or NULL), pairs */
  GQueue        gets;         /* Pending receives, the parent's too, oldest first */
  gint          refs;         /* the queue, and each result in flight */
  gboolean      closed;
  gboolean      room_left;    /* after the last serve someone could take more */
  gboolean      batching;     /* applying what one read brought */
  gboolean      wake_pending; /* ... and a waiter should hear of it */
  GThread      *thread;
  GMainContext *context;
  GSource      *kick;
  gboolean      quit;
  guint64       sync_requested;  /* by the parent: read all there is */
  guint64       sync_done;
};

static void serve_locked (MpqQueueServer *server);
static gboolean wait_locked (MpqQueueServer *server, gint64 deadline);
static void conn_drop (Conn *conn, GError *error);

/* Entries --------------------------------------------------------------- */

/* @message may be NULL: it is decoded from @line when the parent takes
 * the entry (the queue's thread never builds messages). */
static Entry *
entry_new (const char *line,
           gsize       length,
           MpqMessage *message,
           gint        recipient,
           gint        origin)
{
  Entry *entry = g_malloc (sizeof (Entry) + length);

  memset (entry, 0, sizeof (Entry));
  entry->all_link.data = entry;
  entry->route_link.data = entry;
  entry->recipient = recipient;
  entry->origin = origin;
  entry->message = message;
  entry->length = length;
  memcpy (entry->line, line, length);
  return entry;
}

/* The message of an entry that is the caller's alone, decoded now if
 * need be (the line was checked when it came). Transfer full. */
static MpqMessage *
entry_take_message (Entry *entry)
{
  MpqMessage *message = g_steal_pointer (&entry->message);

  if (message == NULL)
    message = _mpq_codec_decode (entry->line, entry->length, NULL);
  g_assert (message != NULL);
  return message;
}

static void
entry_free (Entry *entry)
{
  g_clear_object (&entry->message);
  g_free (entry);
}

static void
slots_take (Slots *slots,
            Entry *entry)
{
  slots->pushed++;
  if (entry->recipient != 0)
    return;
  if (slots->pushed_any++ == 0)
    slots->busy_since = g_get_monotonic_time ();
}

static void
slots_release (Slots *slots,
               gint   recipient)
{
  slots->pushed--;
  if (recipient == 0)
    slots->pushed_any--;
}

/* A message for anyone was handled in @work_us (-1: unknown, then the
 * time since the previous one or since it was handed over counts). The
 * estimate follows the last eight or so: a slow start (code paged in,
 * caches cold) is soon forgotten, and so is a change of pace. */
static void
slots_done (Slots  *slots,
            gint64  work_us)
{
  gint64 now = g_get_monotonic_time ();
  gint64 sample = work_us >= 0 ? work_us : now - slots->busy_since;

  slots->busy_since = now;
  if (slots->done == 0)
    slots->work_us = sample;
  else
    slots->work_us += (sample - slots->work_us) / 8;
  if (slots->done < G_MAXUINT)
    slots->done++;
}

static guint
slots_window (Slots *slots)
{
  gint64 window;

  if (slots->done == 0)
    return 1;
  window = WORK_AHEAD_US / MAX (slots->work_us, 1);
  return (guint) CLAMP (window, 1, (gint64) slots->prefetch);
}

static Route *
route_for (MpqQueueServer *server,
           Entry          *entry)
{
  Route *route;

  if (entry->recipient != 0)
    {
      route = g_hash_table_lookup (server->by_pid, GINT_TO_POINTER (entry->recipient));
      if (route == NULL)
        {
          route = g_new0 (Route, 1);
          route->key = entry->recipient;
          g_hash_table_insert (server->by_pid, GINT_TO_POINTER (route->key), route);
        }
      return route;
    }

  for (guint i = 0; i < server->anyone->len; i++)
    {
      route = g_ptr_array_index (server->anyone, i);
      if (route->key == entry->origin)
        return route;
    }
  route = g_new0 (Route, 1);
  route->key = entry->origin;
  route->anyone = TRUE;
  g_ptr_array_add (server->anyone, route);
  return route;
}

/* Routes live while they hold messages. */
static void
route_release (MpqQueueServer *server,
               Route          *route)
{
  if (route->entries.length > 0)
    return;
  if (route->anyone)
    g_ptr_array_remove_fast (server->anyone, route);
  else
    g_hash_table_remove (server->by_pid, GINT_TO_POINTER (route->key));
  g_free (route);
}

static Entry *
pop_entry_head (GQueue *queue)
{
  GList *link = g_queue_pop_head_link (queue);

  return link != NULL ? link->data : NULL;
}

static Entry *
pop_entry_tail (GQueue *queue)
{
  GList *link = g_queue_pop_tail_link (queue);

  return link != NULL ? link->data : NULL;
}

static void
wake_waiters_locked (MpqQueueServer *server)
{
  /* While a batch of lines is applied, one wake-up at the end does. */
  if (server->batching)
    {
      server->wake_pending = TRUE;
      return;
    }
  if (server->waiters > 0)
    g_cond_broadcast (&server->cond);
}

static void
kick_locked (MpqQueueServer *server)
{
  if (server->kick != NULL)
    g_source_set_ready_time (server->kick, 0);
}

/* Puts @entry at the back, as a new message or a put-back. */
static void
push_tail_locked (MpqQueueServer *server,
                  Entry          *entry)
{
  entry->seq = server->next_seq++;
  entry->route = route_for (server, entry);
  g_queue_push_tail_link (&server->all, &entry->all_link);
  g_queue_push_tail_link (&entry->route->entries, &entry->route_link);
  wake_waiters_locked (server);
}

/* Puts @entry back at the front: it was handed out and not taken. */
static void
push_head_locked (MpqQueueServer *server,
                  Entry          *entry)
{
  entry->route = route_for (server, entry);
  g_queue_push_head_link (&server->all, &entry->all_link);
  g_queue_push_head_link (&entry->route->entries, &entry->route_link);
  wake_waiters_locked (server);
}

static void
unlink_locked (MpqQueueServer *server,
               Entry          *entry)
{
  g_queue_unlink (&server->all, &entry->all_link);
  g_queue_unlink (&entry->route->entries, &entry->route_link);
  route_release (server, g_steal_pointer (&entry->route));
  if (server->max_size > 0)
    {
      /* Room: for a send waiting in the parent, for credit a child asked. */
      wake_waiters_locked (server);
      if (server->credit_wanted > 0)
        kick_locked (server);
    }
}

static Entry *
pop_front_locked (MpqQueueServer *server)
{
  Entry *entry = g_queue_peek_head (&server->all);

  if (entry != NULL)
    unlink_locked (server, entry);
  return entry;
}

/* The oldest message for @pid, or (if @anyone) for nobody and put by
 * someone else. */
static Entry *
candidate_locked (MpqQueueServer *server,
                  gint            pid,
                  gboolean        anyone)
{
  Route *mine = g_hash_table_lookup (server->by_pid, GINT_TO_POINTER (pid));
  Entry *best = mine != NULL ? g_queue_peek_head (&mine->entries) : NULL;

  for (guint i = 0; anyone && i < server->anyone->len; i++)
    {
      Route *route = g_ptr_array_index (server->anyone, i);
      Entry *head;

      if (route->key == pid)
        continue;
      head = g_queue_peek_head (&route->entries);
      if (best == NULL || head->seq < best->seq)
        best = head;
    }
  return best;
}

/* A message handed to the parent's receive_async: in its hand until
 * _mpq_queue_server_finish_want() takes it; back to the front if the
 * result is never taken (cancelled, or nobody called finish). */
typedef struct
{
  MpqQueueServer *server;
  Entry          *entry;
} Held;

static void
complete_later_locked (MpqQueueServer *server,
                       GTask          *task,
                       Entry          *entry)
{
  Held *held = NULL;

  if (entry != NULL)
    {
      held = g_new (Held, 1);
      held->server = server;
      held->entry = entry;
      g_atomic_int_inc (&server->refs);
    }
  g_queue_push_tail (&server->completed, task);
  g_queue_push_tail (&server->completed, held);
}

static void
joined_locked (MpqQueueServer *server)
{
  GTask *task;

  wake_waiters_locked (server);
  while ((task = g_queue_pop_head (&server->local_joins)) != NULL)
    complete_later_locked (server, task, NULL);
  /* Children's joins are answered by the thread. */
  kick_locked (server);
}

/* @entry was taken for good. */
static void
taken_locked (MpqQueueServer *server,
              Entry          *entry)
{
  entry_free (entry);
  g_assert (server->unfinished > 0);
  if (--server->unfinished == 0)
    joined_locked (server);
}

static void held_release (gpointer data);

/* An async result, returned in the caller's main context: the task's last
 * reference, and with it perhaps the queue's, must not go in our thread. */
typedef struct
{
  GTask *task;
  Held  *held;   /* NULL for a join */
} Completion;

static gboolean
complete_cb (gpointer user_data)
{
  Completion *completion = user_data;

  if (completion->held == NULL)
    g_task_return_boolean (completion->task, TRUE);
  else if (g_cancellable_is_cancelled (g_task_get_cancellable (completion->task)))
    {
      /* Cancelled meanwhile: the message goes back now, not whenever a
       * garbage collector drops the result. */
      held_release (completion->held);
      g_task_return_error_if_cancelled (completion->task);
    }
  else
    g_task_return_pointer (completion->task, completion->held, held_release);
  g_object_unref (completion->task);
  g_free (completion);
  return G_SOURCE_REMOVE;
}

/* Returns the async results decided under the lock, without it. */
static void
unlock_and_complete (MpqQueueServer *server)
{
  GQueue completed = server->completed;

  g_queue_init (&server->completed);
  g_mutex_unlock (&server->lock);

  while (completed.length > 0)
    {
      Completion *completion = g_new (Completion, 1);

      completion->task = g_queue_pop_head (&completed);
      completion->held = g_queue_pop_head (&completed);
      g_source_unref (_mpq_source_attach (g_idle_source_new (),
                                          g_task_get_context (completion->task),
                                          "[mpq] queue result", complete_cb, completion));
    }
}

/* Children: writing ----------------------------------------------------- */

static void conn_update_watches (Conn *conn);

/* Writes what the socket takes; the rest waits for the out watch. */
static void
conn_flush (Conn *conn)
{
  GError *error = NULL;

  while (conn->out->len > conn->outpos)
    {
      gssize n = _mpq_write_some (conn->fd, conn->out->str + conn->outpos,
                                  conn->out->len - conn->outpos, &error);
      if (n < 0)
        {
          conn_drop (conn, error);
          return;
        }
      if (n == 0)
        break;
      conn->outpos += n;
    }

  if (conn->outpos == conn->out->len)
    {
      g_string_truncate (conn->out, 0);
      conn->outpos = 0;
    }

  conn_update_watches (conn);
}

static void
flush_all (MpqQueueServer *server)
{
  /* Backwards: a dropped child leaves the array. */
  for (guint i = server->conns->len; i > 0; i--)
    {
      Conn *conn = g_ptr_array_index (server->conns, i - 1);

      if (conn->out->len > conn->outpos)
        conn_flush (conn);
    }
}

/* Hands @entry to @conn: the answer to request @id, or pushed by dispatch
 * when @id is 0. It stays in the child's hand until answered for. */
static void
conn_deliver (Conn   *conn,
              Entry  *entry,
              gint64  id)
{
  entry->tag = ++conn->next_tag;
  entry->pushed = (id == 0);
  if (entry->pushed)
    slots_take (&conn->slots, entry);
  g_queue_push_tail_link (&conn->held, &entry->all_link);
  _mpq_frame_append_msg (conn->out, entry->tag, id, entry->line, entry->length);
}

static void
pending_free (Pending *pending)
{
  if (pending->timer != NULL)
    {
      g_source_destroy (pending->timer);
      g_source_unref (pending->timer);
    }
  g_free (pending);
}

static void
answer_pending (Pending *pending)
{
  Conn *conn = pending->conn;

  if (pending->kind == PENDING_JOIN)
    _mpq_frame_append (conn->out, "joined", "id", pending->id);
  else
    _mpq_frame_append (conn->out, "none", "id", pending->id);
}

/* Children: the queue's logic ------------------------------------------- */

/* The next message for a process with @wants routed receives waiting and
 * dispatch @slots, or NULL. */
static Entry *
pick_locked (MpqQueueServer *server,
             gint            pid,
             guint           wants,
             Slots          *slots)
{
  Entry *entry;

  if (wants > 0)
    return candidate_locked (server, pid, TRUE);
  if (!slots->started || slots->pushed >= ADDRESSED_WINDOW)
    return NULL;
  /* Oldest first, always: a message for anyone past the prefetch holds
   * back the newer ones addressed to this process too. */
  entry = candidate_locked (server, pid, TRUE);
  if (entry != NULL && entry->recipient == 0 && slots->pushed_any >= slots_window (slots))
    return NULL;
  return entry;
}

static gboolean
has_room (guint  wants,
          Slots *slots)
{
  return wants > 0 || (slots->started && slots->pushed_any < slots_window (slots) &&
                       slots->pushed < ADDRESSED_WINDOW);
}

static void
local_assign (MpqQueueServer *server,
              Entry          *entry)
{
  GTask *task = g_queue_pop_head (&server->local_wants);

  if (task != NULL)
    {
      complete_later_locked (server, task, entry);
      return;
    }

  slots_take (&server->local, entry);
  g_queue_push_tail_link (&server->local_inbox, &entry->all_link);
  g_source_set_ready_time (server->local_wake, 0);
}

static void
conn_assign (Conn  *conn,
             Entry *entry)
{
  Pending *want = g_queue_pop_head (&conn->wants);

  if (want != NULL)
    {
      conn_deliver (conn, entry, want->id);
      pending_free (want);
    }
  else
    conn_deliver (conn, entry, 0);
}

/* Routed delivery: in turns, each process with room gets the oldest
 * message addressed to it or to nobody, one at a time, so work spreads. */
static void
route_locked (MpqQueueServer *server)
{
  guint n = server->conns->len + 1;
  gboolean progress = TRUE;

  while (progress && server->all.length > 0)
    {
      progress = FALSE;

      for (guint k = 0; k < n; k++)
        {
          guint i = (server->turn + k) % n;
          Entry *entry;

          if (i == server->conns->len)
            {
              entry = pick_locked (server, server->pid, server->local_wants.length,
                                   &server->local);
              if (entry == NULL)
                continue;
              unlink_locked (server, entry);
              local_assign (server, entry);
            }
          else
            {
              Conn *conn = g_ptr_array_index (server->conns, i);

              entry = pick_locked (server, conn->pid, conn->wants.length, &conn->slots);
              if (entry == NULL)
                continue;
              unlink_locked (server, entry);
              conn_assign (conn, entry);
            }
          progress = TRUE;
        }

      server->turn = (server->turn + 1) % n;
    }

  /* Whether a new message could be handed out at once: if not, a put
   * need not wake the thread (an answer will). */
  server->room_left = server->gets.length > 0 || has_room (server->local_wants.length, &server->local);
  for (guint i = 0; !server->room_left && i < server->conns->len; i++)
    {
      Conn *conn = g_ptr_array_index (server->conns, i);

      server->room_left = has_room (conn->wants.length, &conn->slots);
    }
}

static void
grant_credit_locked (MpqQueueServer *server)
{
  for (guint i = 0; i < server->conns->len; i++)
    {
      Conn *conn = g_ptr_array_index (server->conns, i);
      guint used = server->all.length + server->credit_out;
      guint share = MAX (1, server->max_size / (2 * (server->conns->len + 1)));
      guint grant;

      if (!conn->wants_credit)
        continue;
      if (used >= server->max_size)
        return;

      grant = MIN (server->max_size - used, MIN (share, 1024));
      conn->credit += grant;
      server->credit_out += grant;
      conn->wants_credit = FALSE;
      server->credit_wanted--;
      _mpq_frame_append (conn->out, "credit", "n", grant);
    }
}

/* Makes every bit of progress the state allows: waiting receives first,
 * then dispatch, then joins and credit. Runs in the thread. */
static void
serve_locked (MpqQueueServer *server)
{
  Pending *get;

  /* Routed first: a message addressed to a process that waits for it
   * goes there, rather than round the receives that put it back. */
  route_locked (server);

  /* Then pymulproc's receives, the front to whoever asked first. */
  while (server->all.length > 0 && (get = g_queue_pop_head (&server->gets)) != NULL)
    {
      Entry *entry = pop_front_locked (server);

      if (get->conn == NULL)
        {
          get->served = entry;
          g_cond_broadcast (&server->cond);
          continue;
        }
      conn_deliver (get->conn, entry, get->id);
      pending_free (get);
    }

  for (guint i = 0; i < server->conns->len; i++)
    {
      Conn *conn = g_ptr_array_index (server->conns, i);
      Pending *join;

      while (server->unfinished == 0 && (join = g_queue_pop_head (&conn->joins)) != NULL)
        {
          _mpq_frame_append_answer (conn->out, "joined", join->id, TRUE);
          pending_free (join);
        }
    }

  if (server->max_size > 0)
    grant_credit_locked (server);
}

/* Children: reading ----------------------------------------------------- */

static gboolean
protocol_violation (GError     **error,
                    const char  *what)
{
  g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL, "Queue child broke the protocol: %s", what);
  return FALSE;
}

static Entry *
take_held (Conn   *conn,
           gint64  tag)
{
  for (GList *l = conn->held.head; l != NULL; l = l->next)
    {
      Entry *entry = l->data;

      if (entry->tag == tag)
        {
          g_queue_unlink (&conn->held, l);
          if (entry->pushed)
            slots_release (&conn->slots, entry->recipient);
          return entry;
        }
    }
  return NULL;
}

static gboolean
pending_timeout_cb (gpointer user_data)
{
  Pending *pending = user_data;
  Conn *conn = pending->conn;
  MpqQueueServer *server = conn->server;
  GQueue *queue = pending->kind == PENDING_JOIN ? &conn->joins : &server->gets;

  g_mutex_lock (&server->lock);
  g_queue_remove (queue, pending);
  if (pending->kind == PENDING_JOIN)
    _mpq_frame_append_answer (conn->out, "joined", pending->id, FALSE);
  else
    answer_pending (pending);
  g_source_unref (g_steal_pointer (&pending->timer));
  g_free (pending);
  unlock_and_complete (server);

  conn_flush (conn);
  return G_SOURCE_REMOVE;
}

static void
add_pending (Conn        *conn,
             GQueue      *queue,
             PendingKind  kind,
             gint64       id,
             gint64       timeout)
{
  Pending *pending = g_new0 (Pending, 1);

  pending->conn = conn;
  pending->kind = kind;
  pending->id = id;
  if (timeout > 0)
    {
      pending->timer = _mpq_source_attach (g_timeout_source_new ((guint) MIN (timeout, G_MAXUINT)),
                                           conn->server->context, "[mpq] queue request time-out",
                                           pending_timeout_cb, pending);
    }
  g_queue_push_tail (queue, pending);
}

static gboolean
cancel_pending (Conn   *conn,
                GQueue *queue,
                gint64  id)
{
  for (GList *l = queue->head; l != NULL; l = l->next)
    {
      Pending *pending = l->data;

      if (pending->conn == conn && pending->id == id)
        {
          g_queue_delete_link (queue, l);
          answer_pending (pending);
          pending_free (pending);
          return TRUE;
        }
    }
  return FALSE;
}

/* Returns what @conn has in hand by dispatch to the front, in order. */
static void
return_pushed_locked (Conn *conn)
{
  MpqQueueServer *server = conn->server;
  GList *l = conn->held.tail;

  while (l != NULL)
    {
      GList *prev = l->prev;
      Entry *entry = l->data;

      if (entry->pushed)
        {
          g_queue_unlink (&conn->held, l);
          push_head_locked (server, entry);
        }
      l = prev;
    }
  conn->slots.pushed = conn->slots.pushed_any = 0;
}

static gboolean
apply_frame_locked (Conn      *conn,
                    MpqFrame  *frame,
                    GError   **error)
{
  MpqQueueServer *server = conn->server;
  Entry *entry;

  switch (frame->op)
    {
    case MPQ_FRAME_HELLO:
      if (frame->pid <= 0 || frame->pid > G_MAXINT)
        return protocol_violation (error, "hello without a pid");
      conn->pid = (gint) frame->pid;
      return TRUE;

    case MPQ_FRAME_GET:
      if (frame->id <= 0)
        return protocol_violation (error, "get without an id");
      if (server->all.length > 0 && server->gets.length == 0)
        conn_deliver (conn, pop_front_locked (server), frame->id);
      else if (frame->timeout == 0)
        _mpq_frame_append (conn->out, "none", "id", frame->id);
      else
        add_pending (conn, &server->gets, PENDING_GET, frame->id, frame->timeout);
      return TRUE;

    case MPQ_FRAME_WANT:
      if (frame->id <= 0)
        return protocol_violation (error, "want without an id");
      add_pending (conn, &conn->wants, PENDING_WANT, frame->id, -1);
      return TRUE;

    case MPQ_FRAME_CANCEL:
      if (!cancel_pending (conn, &conn->wants, frame->id))
        cancel_pending (conn, &server->gets, frame->id);
      return TRUE;

    case MPQ_FRAME_START:
      conn->slots.started = TRUE;
      conn->slots.prefetch = (guint) CLAMP (frame->prefetch, 1, MAX_PREFETCH);
      return TRUE;

    case MPQ_FRAME_STOP:
      conn->slots.started = FALSE;
      return_pushed_locked (conn);
      _mpq_frame_append (conn->out, "stopped", "id", frame->id);
      return TRUE;

    case MPQ_FRAME_ACK:
    case MPQ_FRAME_BACK:
    case MPQ_FRAME_UNDO:
      entry = take_held (conn, frame->tag);
      if (entry == NULL)
        return protocol_violation (error, "answer for a tag it does not hold");
      if (frame->op == MPQ_FRAME_ACK && entry->pushed && entry->recipient == 0)
        slots_done (&conn->slots, frame->us);
      if (frame->op == MPQ_FRAME_ACK)
        taken_locked (server, entry);
      else if (frame->op == MPQ_FRAME_BACK)
        push_tail_locked (server, entry);
      else
        push_head_locked (server, entry);
      return TRUE;

    case MPQ_FRAME_EMPTY:
      _mpq_frame_append_answer (conn->out, "empty", frame->id, server->all.length == 0);
      return TRUE;

    case MPQ_FRAME_JOIN:
      if (server->unfinished == 0)
        _mpq_frame_append_answer (conn->out, "joined", frame->id, TRUE);
      else if (frame->timeout == 0)
        _mpq_frame_append_answer (conn->out, "joined", frame->id, FALSE);
      else
        add_pending (conn, &conn->joins, PENDING_JOIN, frame->id, frame->timeout);
      return TRUE;

    case MPQ_FRAME_CREDIT:
      if (conn->credit >= 0 && !conn->wants_credit)
        {
          conn->wants_credit = TRUE;
          server->credit_wanted++;
        }
      return TRUE;

    case MPQ_FRAME_MSG:
    case MPQ_FRAME_NONE:
    case MPQ_FRAME_JOINED:
    case MPQ_FRAME_STOPPED:
    default:
      return protocol_violation (error, "a frame only the server sends");
    }
}

static gboolean
apply_put_locked (Conn      *conn,
                  Entry     *entry,
                  GError   **error)
{
  MpqQueueServer *server = conn->server;

  if (conn->credit == 0)
    {
      entry_free (entry);
      return protocol_violation (error, "put into a bounded queue without credit");
    }
  if (conn->credit > 0)
    {
      conn->credit--;
      server->credit_out--;
    }

  server->unfinished++;
  push_tail_locked (server, entry);
  return TRUE;
}

/* What one read brought: decoded outside the lock, applied under it. */
typedef struct
{
  Entry    *entry;   /* a put, or NULL for a frame */
  MpqFrame  frame;
} Item;

static void
item_clear (Item *item)
{
  if (item->entry != NULL)
    entry_free (item->entry);
  else
    _mpq_frame_clear (&item->frame);
}

static gboolean
decode_line (Conn        *conn,
             const char  *line,
             gsize        length,
             Item        *item,
             GError     **error)
{
  memset (item, 0, sizeof *item);

  if (length > 0 && line[0] == '{')
    return _mpq_frame_parse (line, length, &item->frame, error);

  if (length > conn->server->max_message_size)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE,
                   "Message line of %" G_GSIZE_FORMAT " bytes is longer than %" G_GSIZE_FORMAT,
                   length, conn->server->max_message_size);
      return FALSE;
    }

  {
    gint recipient;

    if (!_mpq_codec_check (line, length, &recipient, error))
      return FALSE;
    item->entry = entry_new (line, length, NULL, recipient, conn->pid);
  }
  return TRUE;
}

/* Reads once and applies what came. Returns TRUE when there may be more
 * to read right away, FALSE when the socket is empty or the child gone. */
static gboolean
conn_read (Conn *conn)
{
  MpqQueueServer *server = conn->server;
  g_autoptr(GArray) items = g_array_new (FALSE, FALSE, sizeof (Item));
  GError *error = NULL;
  gboolean eof = FALSE;
  const char *line;
  gsize length;

  switch (_mpq_line_reader_fill (&conn->reader, conn->fd, &error))
    {
    case MPQ_READ_DATA:
      break;
    case MPQ_READ_AGAIN:
      return FALSE;
    case MPQ_READ_EOF:
    default:
      eof = TRUE;
      if (error == NULL && _mpq_line_reader_has_partial (&conn->reader))
        g_set_error_literal (&error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                             "The child hung up in the middle of a line");
      break;
    }

  while (error == NULL && _mpq_line_reader_next (&conn->reader, &line, &length, &error))
    {
      Item item;

      MPQ_DEBUG_LINE ("<", line, length);
      if (!decode_line (conn, line, length, &item, &error))
        break;
      g_array_append_val (items, item);
    }

  /* The lines before a bad one count; the bad one drops the child. */
  g_mutex_lock (&server->lock);
  server->batching = TRUE;
  for (guint i = 0; i < items->len; i++)
    {
      Item *item = &g_array_index (items, Item, i);
      GError *apply_error = NULL;
      gboolean ok;

      if (item->entry != NULL)
        ok = apply_put_locked (conn, g_steal_pointer (&item->entry), &apply_error);
      else
        ok = apply_frame_locked (conn, &item->frame, &apply_error);
      item_clear (item);

      if (!ok)
        {
          for (guint j = i + 1; j < items->len; j++)
            item_clear (&g_array_index (items, Item, j));
          g_clear_error (&error);
          error = apply_error;
          break;
        }
    }
  server->batching = FALSE;
  if (server->wake_pending)
    {
      server->wake_pending = FALSE;
      wake_waiters_locked (server);
    }
  serve_locked (server);
  unlock_and_complete (server);

  if (error != NULL || eof)
    {
      conn_drop (conn, error);
      return FALSE;
    }

  /* The caller writes out what this brought (flush_all), which may drop
   * this very child. */
  return conn->in_watch != NULL;
}

static gboolean
in_watch_cb (GIOChannel   *channel,
             GIOCondition  condition,
             gpointer      user_data)
{
  Conn *conn = user_data;
  MpqQueueServer *server = conn->server;

  conn_read (conn);
  flush_all (server);
  return G_SOURCE_CONTINUE;
}

static gboolean
out_watch_cb (GIOChannel   *channel,
              GIOCondition  condition,
              gpointer      user_data)
{
  conn_flush (user_data);
  return G_SOURCE_CONTINUE;
}

static GSource *
add_watch (Conn         *conn,
           GIOCondition  condition,
           GIOFunc       func,
           const char   *name)
{
  GSource *watch = g_io_create_watch (conn->channel, condition);

  /* No user code runs in this thread, so no dispatch nests: a watch that
   * may recurse keeps its fd in the poll set while it dispatches, which
   * spares the context two wake-ups per dispatch. */
  g_source_set_can_recurse (watch, TRUE);
  return _mpq_source_attach (watch, conn->server->context, name, G_SOURCE_FUNC (func), conn);
}

/* Reads while the child's answers do not pile up; watches for room while
 * some are unwritten. */
static void
conn_update_watches (Conn *conn)
{
  gsize unwritten = conn->out->len - conn->outpos;

  if (conn->dead)
    return;

  if (unwritten < OUT_HIGH_WATER)
    {
      if (conn->in_watch == NULL)
        conn->in_watch = add_watch (conn, G_IO_IN | G_IO_HUP | G_IO_ERR, in_watch_cb,
                                    "[mpq] queue child read");
    }
  else
    _mpq_clear_source (&conn->in_watch);

  if (unwritten > 0)
    {
      if (conn->out_watch == NULL)
        conn->out_watch = add_watch (conn, G_IO_OUT | G_IO_HUP | G_IO_ERR, out_watch_cb,
                                     "[mpq] queue child write");
    }
  else
    _mpq_clear_source (&conn->out_watch);
}

static void
conn_free (Conn *conn)
{
  _mpq_clear_source (&conn->in_watch);
  _mpq_clear_source (&conn->out_watch);
  g_queue_clear_full (&conn->wants, (GDestroyNotify) pending_free);
  g_queue_clear_full (&conn->joins, (GDestroyNotify) pending_free);
  while (conn->held.length > 0)
    entry_free (pop_entry_head (&conn->held));
  g_clear_pointer (&conn->channel, g_io_channel_unref);
  _mpq_line_reader_clear (&conn->reader);
  g_string_free (conn->out, TRUE);
  if (conn->fd >= 0)
    close (conn->fd);
  g_free (conn);
}

/* The child hung up or broke the protocol: what it had in hand goes back
 * to the front, in order; what it put stays. */
static void
conn_drop (Conn   *conn,
           GError *error)
{
  MpqQueueServer *server = conn->server;

  if (error != NULL)
    g_debug ("Dropping queue child %d: %s", conn->pid, error->message);
  g_clear_error (&error);

  conn->dead = TRUE;
  _mpq_clear_source (&conn->in_watch);
  _mpq_clear_source (&conn->out_watch);
  /* Hang up at once, even while the child keeps its end open. */
  shutdown (conn->fd, SHUT_RDWR);

  g_mutex_lock (&server->lock);
  while (conn->held.length > 0)
    {
      Entry *entry = pop_entry_tail (&conn->held);

      push_head_locked (server, entry);
    }
  conn->slots.pushed = conn->slots.pushed_any = 0;
  for (GList *l = server->gets.head; l != NULL;)
    {
      GList *next = l->next;
      Pending *get = l->data;

      if (get->conn == conn)
        {
          g_queue_delete_link (&server->gets, l);
          pending_free (get);
        }
      l = next;
    }
  if (conn->credit > 0)
    server->credit_out -= conn->credit;
  if (conn->wants_credit)
    server->credit_wanted--;
  g_ptr_array_remove_fast (server->conns, conn);
  server->turn = 0;
  serve_locked (server);
  unlock_and_complete (server);

  conn_free (conn);
  /* Others may have been handed what it had: the thread writes it out. */
  kick_locked (server);
}

/* The thread ------------------------------------------------------------ */

/* Reads everything the children have written so far. */
static void
drain_all (MpqQueueServer *server)
{
  for (guint i = server->conns->len; i > 0; i--)
    {
      /* Backwards: a child that hung up leaves the array. */
      if (i - 1 < server->conns->len)
        while (conn_read (g_ptr_array_index (server->conns, i - 1)))
          ;
    }
}

static gboolean
kick_cb (gpointer user_data)
{
  MpqQueueServer *server = user_data;
  guint64 sync;

  g_mutex_lock (&server->lock);
  sync = server->sync_requested;
  g_mutex_unlock (&server->lock);

  if (sync > server->sync_done)
    drain_all (server);

  g_mutex_lock (&server->lock);
  serve_locked (server);
  if (sync > server->sync_done)
    {
      server->sync_done = sync;
      g_cond_broadcast (&server->cond);
    }
  unlock_and_complete (server);

  flush_all (server);
  return G_SOURCE_CONTINUE;
}

/* Makes sure that what children wrote before now is in the queue: a child
 * that exited has all it sent in its socket, maybe not yet read. */
static void
sync_locked (MpqQueueServer *server)
{
  guint64 sync = ++server->sync_requested;

  kick_locked (server);
  while (server->sync_done < sync && !server->closed && server->kick != NULL)
    wait_locked (server, -1);
}

static gpointer
server_thread (gpointer user_data)
{
  MpqQueueServer *server = user_data;

  g_main_context_push_thread_default (server->context);

  g_mutex_lock (&server->lock);
  while (!server->quit)
    {
      g_mutex_unlock (&server->lock);
      g_main_context_iteration (server->context, TRUE);
      g_mutex_lock (&server->lock);
    }
  g_mutex_unlock (&server->lock);

  g_main_context_pop_thread_default (server->context);
  return NULL;
}

MpqQueueServer *
_mpq_queue_server_new (guint    max_size,
                       GError **error)
{
  MpqQueueServer *server = g_new0 (MpqQueueServer, 1);

  g_mutex_init (&server->lock);
  g_cond_init (&server->cond);
  server->max_size = max_size;
  server->max_message_size = MPQ_DEFAULT_MAX_MESSAGE_SIZE;
  server->pid = _mpq_own_pid ();
  server->by_pid = g_hash_table_new (NULL, NULL);
  server->anyone = g_ptr_array_new ();
  server->conns = g_ptr_array_new ();
  server->local.prefetch = 1;

  server->context = g_main_context_new ();
  server->kick = _mpq_source_attach (_mpq_wake_source_new (), server->context,
                                     "[mpq] queue kick", kick_cb, server);

  server->refs = 1;
  server->thread = g_thread_try_new ("mpq-queue", server_thread, server, error);
  if (server->thread == NULL)
    {
      _mpq_queue_server_close (server);
      _mpq_queue_server_unref (server);
      return NULL;
    }

  return server;
}

/* Stops the thread, hangs up on every child and drops what is queued.
 * Results still held by async callers keep the rest alive. */
void
_mpq_queue_server_close (MpqQueueServer *server)
{
  GTask *task;

  if (server->thread != NULL)
    {
      g_mutex_lock (&server->lock);
      server->quit = TRUE;
      g_mutex_unlock (&server->lock);
      g_main_context_wakeup (server->context);
      g_thread_join (server->thread);
    }

  /* The thread is gone: everything is ours. */
  g_mutex_lock (&server->lock);
  server->closed = TRUE;
  g_cond_broadcast (&server->cond);
  g_mutex_unlock (&server->lock);

  g_queue_clear_full (&server->gets, (GDestroyNotify) pending_free);
  while (server->conns->len > 0)
    {
      Conn *conn = g_ptr_array_steal_index_fast (server->conns, server->conns->len - 1);

      conn_free (conn);
    }

  while ((task = g_queue_pop_head (&server->local_wants)) != NULL ||
         (task = g_queue_pop_head (&server->local_joins)) != NULL)
    {
      g_task_return_new_error (task, MPQ_ERROR, MPQ_ERROR_CLOSED, "The queue is closed");
      g_object_unref (task);
    }
  g_mutex_lock (&server->lock);
  unlock_and_complete (server);

  while (server->local_inbox.length > 0)
    entry_free (pop_entry_head (&server->local_inbox));
  while (server->all.length > 0)
    entry_free (pop_front_locked (server));
  g_clear_pointer (&server->local_wake, g_source_unref);

  if (server->kick != NULL)
    {
      g_source_destroy (server->kick);
      g_clear_pointer (&server->kick, g_source_unref);
    }
}

void
_mpq_queue_server_unref (MpqQueueServer *server)
{
  if (!g_atomic_int_dec_and_test (&server->refs))
    return;

  g_ptr_array_unref (server->conns);
  g_hash_table_unref (server->by_pid);
  g_ptr_array_unref (server->anyone);
  g_main_context_unref (server->context);
  g_cond_clear (&server->cond);
  g_mutex_clear (&server->lock);
  g_free (server);
}

void
_mpq_queue_server_set_max_message_size (MpqQueueServer *server,
                                        gsize           size)
{
  g_mutex_lock (&server->lock);
  server->max_message_size = size;
  g_mutex_unlock (&server->lock);
}

/* Takes @fd, the parent's end of a child's socket. The hello is written
 * before the child runs, so it finds it waiting. */
gboolean
_mpq_queue_server_add_child (MpqQueueServer  *server,
                             int              fd,
                             gint             pid,
                             GError         **error)
{
  Conn *conn = g_new0 (Conn, 1);
  g_autoptr(GString) hello = g_string_new (NULL);

  conn->server = server;
  conn->fd = fd;
  conn->pid = pid;
  conn->credit = server->max_size > 0 ? 0 : -1;
  conn->out = g_string_new (NULL);
  _mpq_line_reader_init (&conn->reader, server->max_message_size + MPQ_FRAME_OVERHEAD);
  _mpq_fd_set_nonblocking (fd);
  conn->channel = g_io_channel_unix_new (fd);

  g_string_append_printf (hello, "{\"op\":\"hello\",\"pid\":%d,\"credit\":%d}\n",
                          server->pid, conn->credit);
  if (_mpq_write_when_ready (fd, hello->str, hello->len, -1, "", error) != (gssize) hello->len)
    {
      conn_free (conn);
      return FALSE;
    }

  g_mutex_lock (&server->lock);
  g_ptr_array_add (server->conns, conn);
  conn->in_watch = add_watch (conn, G_IO_IN | G_IO_HUP | G_IO_ERR, in_watch_cb,
                              "[mpq] queue child read");
  kick_locked (server);
  g_mutex_unlock (&server->lock);
  return TRUE;
}

/* The parent's own calls ------------------------------------------------ */

static gboolean
wait_locked (MpqQueueServer *server,
             gint64          deadline)
{
  gboolean signalled = TRUE;

  server->waiters++;
  if (deadline < 0)
    g_cond_wait (&server->cond, &server->lock);
  else
    signalled = g_cond_wait_until (&server->cond, &server->lock, deadline);
  server->waiters--;
  return signalled;
}

static gboolean
is_full_locked (MpqQueueServer *server)
{
  return server->max_size > 0 && server->all.length + server->credit_out >= server->max_size;
}

gboolean
_mpq_queue_server_put (MpqQueueServer  *server,
                       MpqMessage      *message,
                       GString         *line,
                       gint             recipient,
                       gint             put_timeout_ms,
                       guint            put_attempts,
                       GError         **error)
{
  Entry *entry;
  guint attempt = 0;

  g_mutex_lock (&server->lock);
  while (is_full_locked (server))
    {
      gint64 deadline;

      if (attempt++ >= put_attempts)
        {
          g_mutex_unlock (&server->lock);
          g_set_error (error, MPQ_ERROR, MPQ_ERROR_FULL,
                       "The queue is full (%u messages); nothing was put", server->max_size);
          return FALSE;
        }

      deadline = g_get_monotonic_time () + (gint64) MAX (put_timeout_ms, 0) * 1000;
      while (is_full_locked (server) && wait_locked (server, deadline))
        ;
    }

  entry = entry_new (line->str, line->len, message != NULL ? g_object_ref (message) : NULL,
                     recipient, server->pid);
  server->unfinished++;
  push_tail_locked (server, entry);
  if (server->room_left)
    kick_locked (server);
  g_mutex_unlock (&server->lock);
  return TRUE;
}

MpqMessage *
_mpq_queue_server_take (MpqQueueServer    *server,
                        gint               timeout_ms,
                        MpqMessageFilter   filter,
                        gpointer           user_data,
                        GError           **error)
{
  gint64 deadline = _mpq_deadline_from_timeout (timeout_ms);
  MpqMessage *message;
  Entry *entry = NULL;

  g_mutex_lock (&server->lock);
  if (server->all.length == 0 && deadline == 0)
    sync_locked (server);
  if (server->all.length > 0 && server->gets.length == 0)
    entry = pop_front_locked (server);
  else if (deadline != 0)
    {
      /* In line behind the receives that came first, children's too. */
      Pending get = { 0, };

      g_queue_push_tail (&server->gets, &get);
      if (server->gets.length > 1)
        kick_locked (server);
      for (;;)
        {
          /* First in line and something came: take it ourselves, without
           * a round trip through the thread. */
          if (get.served == NULL && server->all.length > 0 &&
              g_queue_peek_head (&server->gets) == &get)
            {
              g_queue_pop_head (&server->gets);
              get.served = pop_front_locked (server);
              break;
            }
          if (get.served != NULL || server->closed || !wait_locked (server, deadline))
            break;
        }
      if (get.served == NULL)
        g_queue_remove (&server->gets, &get);
      entry = get.served;
    }
  g_mutex_unlock (&server->lock);

  if (entry == NULL)
    return NULL;

  /* In our hand while the filter, user code, decides; unlocked. */
  message = entry_take_message (entry);
  if (filter != NULL && !filter (message, user_data))
    {
      entry->message = message;
      g_mutex_lock (&server->lock);
      push_tail_locked (server, entry);
      kick_locked (server);
      g_mutex_unlock (&server->lock);
      return NULL;
    }

  g_mutex_lock (&server->lock);
  taken_locked (server, entry);
  unlock_and_complete (server);
  return message;
}

static void
held_release (gpointer data)
{
  Held *held = data;
  MpqQueueServer *server = held->server;

  if (held->entry != NULL)
    {
      g_mutex_lock (&server->lock);
      if (server->closed)
        entry_free (held->entry);
      else
        {
          push_head_locked (server, held->entry);
          kick_locked (server);
        }
      g_mutex_unlock (&server->lock);
    }
  _mpq_queue_server_unref (server);
  g_free (held);
}

/* Takes the message a receive_async was handed: it is taken for good. */
MpqMessage *
_mpq_queue_server_finish_want (GTask   *task,
                               GError **error)
{
  Held *held = g_task_propagate_pointer (task, error);
  MpqQueueServer *server;
  MpqMessage *message;

  if (held == NULL)
    return NULL;

  server = held->server;
  message = entry_take_message (held->entry);
  g_mutex_lock (&server->lock);
  if (server->closed)
    entry_free (held->entry);
  else
    taken_locked (server, held->entry);
  held->entry = NULL;
  unlock_and_complete (server);

  held_release (held);
  return message;
}

gboolean
_mpq_queue_server_is_empty (MpqQueueServer *server)
{
  gboolean empty;

  g_mutex_lock (&server->lock);
  if (server->all.length == 0)
    sync_locked (server);
  empty = server->all.length == 0;
  g_mutex_unlock (&server->lock);
  return empty;
}

gboolean
_mpq_queue_server_join (MpqQueueServer  *server,
                        gint             timeout_ms,
                        GError         **error)
{
  gint64 deadline = _mpq_deadline_from_timeout (timeout_ms);

  g_mutex_lock (&server->lock);
  if (server->unfinished == 0)
    sync_locked (server);
  while (server->unfinished > 0)
    {
      if (deadline == 0 || (!wait_locked (server, deadline) && server->unfinished > 0))
        {
          guint unfinished = server->unfinished;

          g_mutex_unlock (&server->lock);
          g_set_error (error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT,
                       "%u messages were not taken in time", unfinished);
          return FALSE;
        }
    }
  g_mutex_unlock (&server->lock);
  return TRUE;
}

void
_mpq_queue_server_join_async (MpqQueueServer *server,
                              GTask          *task)
{
  g_task_set_source_tag (task, _mpq_queue_server_join_async);

  g_mutex_lock (&server->lock);
  g_queue_push_tail (&server->local_joins, g_object_ref (task));
  if (server->unfinished == 0)
    joined_locked (server);
  unlock_and_complete (server);
}

void
_mpq_queue_server_want_async (MpqQueueServer *server,
                              GTask          *task)
{
  g_mutex_lock (&server->lock);
  g_queue_push_tail (&server->local_wants, g_object_ref (task));
  kick_locked (server);
  g_mutex_unlock (&server->lock);
}

/* Takes @task back if it is still waiting, and with it the reference the
 * server held; FALSE when its result is already decided. */
gboolean
_mpq_queue_server_cancel_task (MpqQueueServer *server,
                               GTask          *task)
{
  gboolean removed;

  g_mutex_lock (&server->lock);
  removed = g_queue_remove (&server->local_wants, task) ||
            g_queue_remove (&server->local_joins, task);
  g_mutex_unlock (&server->lock);

  return removed;
}

void
_mpq_queue_server_start_local (MpqQueueServer *server,
                               GSource        *wake,
                               guint           prefetch)
{
  g_mutex_lock (&server->lock);
  if (server->local_wake != wake)
    {
      g_clear_pointer (&server->local_wake, g_source_unref);
      server->local_wake = g_source_ref (wake);
    }
  server->local.prefetch = MAX (prefetch, 1);
  server->local.started = TRUE;
  if (server->local_inbox.length > 0)
    g_source_set_ready_time (wake, 0);
  kick_locked (server);
  g_mutex_unlock (&server->lock);
}

/* What dispatch handed the parent and it has not handled goes back to the
 * front, in order. */
void
_mpq_queue_server_stop_local (MpqQueueServer *server)
{
  g_mutex_lock (&server->lock);
  server->local.started = FALSE;
  while (server->local_inbox.length > 0)
    {
      Entry *entry = pop_entry_tail (&server->local_inbox);

      slots_release (&server->local, entry->recipient);
      push_head_locked (server, entry);
    }
  kick_locked (server);
  g_mutex_unlock (&server->lock);
}

/* The next message dispatch handed the parent, or NULL; @more tells
 * whether others wait. Until _mpq_queue_server_local_done() it is in the
 * parent's hand. */
MpqMessage *
_mpq_queue_server_pop_local (MpqQueueServer *server,
                             gboolean       *more)
{
  MpqMessage *message = NULL;
  Entry *entry;

  g_mutex_lock (&server->lock);
  entry = server->local.started ? pop_entry_head (&server->local_inbox) : NULL;
  *more = server->local_inbox.length > 0;
  g_mutex_unlock (&server->lock);

  if (entry != NULL)
    {
      message = entry_take_message (entry);
      entry_free (entry);
    }
  return message;
}

void
_mpq_queue_server_local_done (MpqQueueServer *server,
                              gint            recipient,
                              gint64          work_us)
{
  g_mutex_lock (&server->lock);
  slots_release (&server->local, recipient);
  if (recipient == 0)
    slots_done (&server->local, work_us);
  g_assert (server->unfinished > 0);
  if (--server->unfinished == 0)
    joined_locked (server);
  /* Room for one more: worth waking the thread only if one is there, and
   * only once what the parent holds runs low. */
  if (server->local_inbox.length <= LOCAL_REFILL_AT &&
      pick_locked (server, server->pid, 0, &server->local) != NULL)
    kick_locked (server);
  unlock_and_complete (server);
}
