/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <poll.h>
#include <unistd.h>

#include "mpq-channel-private.h"
#include "mpq-error.h"
#include "mpq-frame-private.h"
#include "mpq-protocol.h"
#include "mpq-queue-client-private.h"
#include "mpq-spawn-private.h"

/* A queue child's connection to the parent's server: the hello, the
 * frames read and written, and the blocking calls. The main loop side is
 * in mpq-queue-client-loop.c. Everything here runs in the queue's owner's
 * thread (see the struct in mpq-queue-client-private.h). */

/* The hello is written before the child starts; this is only a bound on
 * a descriptor that is not a queue's at all. */
#define HELLO_TIMEOUT_MS 10000

/* One limit per queue, the parent's: this end may only lower it. */
static gsize
effective_max (MpqQueueClient *client)
{
  return MIN (client->own_max, client->parent_max);
}

/* The endpoint checks message lines against it; a frame line carries a
 * message line and some room around it (MPQ_FRAME_OVERHEAD). */
static void
apply_max (MpqQueueClient *client)
{
  _mpq_endpoint_set_max_message_size (&client->ep, effective_max (client));
}

/* Writing: whole lines, gathered under load (mpq-writer.c), waiting for
 * room as long as it takes: the server is a thread that always reads. */
gboolean
_mpq_queue_client_write_all (MpqQueueClient  *client,
                             const char      *data,
                             gsize            length,
                             GError         **error)
{
  if (client->ep.closed)
    {
      _mpq_endpoint_set_closed_error (&client->ep, error);
      return FALSE;
    }

  if (!_mpq_endpoint_send (&client->ep, data, length, -1, error))
    {
      /* The parent is gone: say so, as a read would. */
      _mpq_endpoint_schedule_closed (&client->ep);
      return FALSE;
    }
  return TRUE;
}

/* Before waiting for the server, what we sent must have reached it. */
static void
flush_before_wait (MpqQueueClient *client)
{
  if (client->ep.writer != NULL)
    _mpq_writer_flush (client->ep.writer, -1, NULL);
}

gboolean
_mpq_queue_client_flush_answers (MpqQueueClient  *client,
                                 GError         **error)
{
  gboolean ok;

  if (client->answers->len == 0)
    return TRUE;
  ok = _mpq_queue_client_write_all (client, client->answers->str, client->answers->len, error);
  g_string_truncate (client->answers, 0);
  return ok;
}

gboolean
_mpq_queue_client_write_frame (MpqQueueClient  *client,
                               GString         *frame,
                               GError         **error)
{
  /* Answers for what was handled go first: the server's count stays true. */
  g_string_prepend_len (frame, client->answers->str, client->answers->len);
  g_string_truncate (client->answers, 0);
  return _mpq_queue_client_write_all (client, frame->str, frame->len, error);
}

void
_mpq_queue_client_answer (MpqQueueClient *client,
                          MpqFrameOp      op,
                          gint64          tag)
{
  _mpq_frame_write (client->answers, op, tag);
}

/* Reading --------------------------------------------------------------- */

static gboolean
take_frame (MpqQueueClient  *client,
            MpqFrame        *frame,
            GError         **error)
{
  switch (frame->op)
    {
    case MPQ_FRAME_MSG:
      if (frame->message == NULL || frame->tag <= 0)
        break;
      if (!_mpq_endpoint_check_size (&client->ep, frame->msg_length, error))
        return FALSE;
      if (frame->id > 0)
        g_queue_push_tail (&client->replies, _mpq_frame_copy (frame));
      else if (client->stops_pending == 0)
        g_queue_push_tail (&client->pushed, _mpq_frame_copy (frame));
      /* else: pushed before our stop reached the server, which took it back. */
      return TRUE;

    case MPQ_FRAME_NONE:
    case MPQ_FRAME_EMPTY:
    case MPQ_FRAME_JOINED:
      if (frame->id <= 0)
        break;
      g_queue_push_tail (&client->replies, _mpq_frame_copy (frame));
      return TRUE;

    case MPQ_FRAME_CREDIT:
      if (frame->n < 0 || client->credit < 0)
        break;
      /* n 0: the queue is full now; credit follows once there is room. */
      client->heard_full = frame->n == 0;
      if (frame->n == 0)
        return TRUE;
      client->credit += (gint) MIN (frame->n, G_MAXINT - client->credit);
      client->asked_credit = FALSE;
      return TRUE;

    case MPQ_FRAME_STOPPED:
      if (client->stops_pending > 0)
        client->stops_pending--;
      return TRUE;

    case MPQ_FRAME_LIMITS:
      if (frame->max <= 0)
        break;
      client->parent_max = MIN ((guint64) frame->max, G_MAXSIZE - MPQ_FRAME_OVERHEAD);
      apply_max (client);
      return TRUE;

    default:
      break;
    }

  g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                       "The queue's server sent an unexpected frame");
  return FALSE;
}

/* The endpoint read a line from the server: a frame, sorted. */
gboolean
_mpq_queue_client_take_line (gpointer     owner,
                             const char  *line,
                             gsize        length,
                             GError     **error)
{
  MpqFrame frame;
  gboolean ok;

  if (!_mpq_frame_parse (line, length, ((MpqQueueClient *) owner)->ep.fds, &frame, error))
    return FALSE;
  ok = take_frame (owner, &frame, error);
  _mpq_frame_clear (&frame);
  return ok;
}

MpqFrame *
_mpq_queue_client_claim_reply (MpqQueueClient *client,
                               gint64          id)
{
  for (GList *l = client->replies.head; l != NULL; l = l->next)
    {
      MpqFrame *frame = l->data;

      if (frame->id == id)
        {
          g_queue_delete_link (&client->replies, l);
          return frame;
        }
    }
  return NULL;
}

void
_mpq_queue_client_closed_error (MpqQueueClient  *client,
                                GError         **error)
{
  if (client->ep.read_done)
    _mpq_endpoint_schedule_closed (&client->ep);
  if (client->ep.read_error != NULL)
    g_propagate_error (error, g_error_copy (client->ep.read_error));
  else
    _mpq_endpoint_set_closed_error (&client->ep, error);
}

/* Blocks until the answer to request @id comes. What else comes is kept
 * for the main loop. */
static MpqFrame *
wait_reply (MpqQueueClient  *client,
            gint64           id,
            GError         **error)
{
  MpqFrame *frame;

  while ((frame = _mpq_queue_client_claim_reply (client, id)) == NULL)
    {
      if (client->ep.read_done)
        {
          _mpq_queue_client_closed_error (client, error);
          _mpq_queue_client_update_sources (client);
          return NULL;
        }
      if (!_mpq_endpoint_read_some (&client->ep))
        {
          flush_before_wait (client);
          _mpq_wait_fd (client->ep.fd, POLLIN, -1);
        }
    }

  _mpq_queue_client_update_sources (client);
  return frame;
}

static MpqFrame *
request (MpqQueueClient  *client,
         MpqFrameOp       op,
         gint64           timeout,
         GError         **error)
{
  g_autoptr(GString) frame = g_string_new (NULL);
  gint64 id = ++client->next_id;

  /* get, join and want carry a time-out; empty has none. */
  _mpq_frame_writev (frame, op, (const gint64[]) { id, timeout }, op == MPQ_FRAME_EMPTY ? 1 : 2);
  if (!_mpq_queue_client_write_frame (client, frame, error))
    return NULL;
  return wait_reply (client, id, error);
}

/* Calls ----------------------------------------------------------------- */

MpqQueueClient *
_mpq_queue_client_new (MpqChannel  *channel,
                       int          fd,
                       gsize        max_message_size,
                       GError     **error)
{
  MpqQueueClient *client = g_new0 (MpqQueueClient, 1);
  gint64 deadline = _mpq_deadline_from_timeout (HELLO_TIMEOUT_MS);
  g_autoptr(GString) hello = g_string_new (NULL);
  GError *local_error = NULL;
  MpqFrame frame;
  const char *line;
  gsize length;

  client->refs = 1;
  client->channel = channel;
  client->answers = g_string_new (NULL);
  client->scratch = g_string_new (NULL);
  client->own_max = MIN (max_message_size, G_MAXSIZE - MPQ_FRAME_OVERHEAD);
  client->parent_max = G_MAXSIZE - MPQ_FRAME_OVERHEAD;
  _mpq_endpoint_init (&client->ep, &_mpq_queue_client_endpoint_class, client,
                      effective_max (client));
  _mpq_endpoint_open (&client->ep, fd);
  _mpq_endpoint_take_fds (&client->ep);

  /* The server's hello says who the parent is and whether puts need credit.
   * A first line that never ends, or is too long, fails at the reader's
   * bound (one line); one that comes too slowly, at the deadline. */
  while (!_mpq_line_reader_next (&client->ep.reader, &line, &length, &local_error))
    {
      MpqReadStatus status;

      if (local_error != NULL)
        goto bad_hello;
      status = _mpq_line_reader_fill (&client->ep.reader, fd, client->ep.fds, &local_error);
      if (status == MPQ_READ_EOF)
        goto not_a_queue;
      if (status == MPQ_READ_AGAIN && !_mpq_wait_fd (fd, POLLIN, deadline))
        goto not_a_queue;
      if (g_get_monotonic_time () >= deadline)
        goto not_a_queue;
    }
  if (!_mpq_frame_parse (line, length, NULL, &frame, NULL))
    goto not_a_queue;
  _mpq_frame_clear (&frame);
  if (frame.op != MPQ_FRAME_HELLO || frame.pid <= 0 || frame.pid > G_MAXINT)
    goto not_a_queue;

  client->parent_pid = (gint) frame.pid;
  client->server_fds = frame.fds;
  client->credit = frame.credit < 0 ? -1 : (gint) MIN (frame.credit, G_MAXINT);
  if (frame.max > 0)
    {
      client->parent_max = MIN ((guint64) frame.max, G_MAXSIZE - MPQ_FRAME_OVERHEAD);
      apply_max (client);
    }

  /* What came with the hello (a limits frame, say) is not left waiting
   * for more to read. */
  _mpq_endpoint_take_lines (&client->ep);

  /* We take payloads by descriptor too. */
  _mpq_frame_write (hello, MPQ_FRAME_HELLO, _mpq_own_pid (), TRUE);
  if (!_mpq_queue_client_write_all (client, hello->str, hello->len, error))
    goto fail;
  return client;

bad_hello:
  g_propagate_prefixed_error (error, g_steal_pointer (&local_error), "The queue's hello: ");
  goto fail;

not_a_queue:
  g_clear_error (&local_error);
  g_set_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD,
               "Descriptor %d does not lead to a queue's parent", fd);
fail:
  /* The caller closes @fd. */
  client->ep.fd = -1;
  _mpq_queue_client_detach (client);
  _mpq_queue_client_unref (client);
  return NULL;
}

void
_mpq_queue_client_close (MpqQueueClient *client)
{
  if (client->ep.closed)
    return;

  /* Closing in a handler: that message was handled. */
  if (client->in_hand_tag != 0)
    {
      _mpq_queue_client_answer (client, MPQ_FRAME_ACK, client->in_hand_tag);
      client->in_hand_tag = 0;
    }
  if (client->ep.fd >= 0)
    _mpq_queue_client_flush_answers (client, NULL);
  _mpq_endpoint_close (&client->ep, client->ep.fd >= 0 ? -1 : 0);
  client->started = FALSE;
  _mpq_queue_client_fail_ops (client);
  g_queue_clear_full (&client->replies, (GDestroyNotify) _mpq_frame_free);
  g_queue_clear_full (&client->pushed, (GDestroyNotify) _mpq_frame_free);
  _mpq_queue_client_update_sources (client);
  _mpq_endpoint_schedule_closed (&client->ep);
}

/* The queue object goes: no signal may reach it any more. */
void
_mpq_queue_client_detach (MpqQueueClient *client)
{
  _mpq_endpoint_forget_closed (&client->ep);
  _mpq_queue_client_close (client);
  client->channel = NULL;
}

void
_mpq_queue_client_unref (MpqQueueClient *client)
{
  if (!g_atomic_int_dec_and_test (&client->refs))
    return;

  g_assert (client->ep.closed && client->channel == NULL);
  _mpq_endpoint_clear (&client->ep);
  g_string_free (client->answers, TRUE);
  g_string_free (client->scratch, TRUE);
  g_free (client);
}

gboolean
_mpq_queue_client_is_closed (MpqQueueClient *client)
{
  return client->ep.closed;
}

gint
_mpq_queue_client_get_parent_pid (MpqQueueClient *client)
{
  return client->parent_pid;
}

/* Sets this end's own limit; the parent's still bounds it. */
void
_mpq_queue_client_set_max_message_size (MpqQueueClient *client,
                                        gsize           size)
{
  client->own_max = MIN (size, G_MAXSIZE - MPQ_FRAME_OVERHEAD);
  apply_max (client);
}

/* The limit in force: the lower of this end's and the parent's. */
gsize
_mpq_queue_client_get_max_message_size (MpqQueueClient *client)
{
  return effective_max (client);
}

/* Waits for credit to put into a bounded queue: @attempts times
 * @timeout_ms, then MPQ_ERROR_FULL if the server said the queue is full.
 * The server answers every request for credit at once, with credit or
 * with "full" (n 0): a server slow to answer (a loaded machine) is waited
 * for, so FULL always means the queue held max-size messages. */
static gboolean
wait_credit (MpqQueueClient  *client,
             gint             timeout_ms,
             guint            attempts,
             GError         **error)
{
  for (guint attempt = 0; client->credit == 0; attempt++)
    {
      gint64 deadline;

      if (attempt >= attempts && client->heard_full)
        {
          g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_FULL,
                               "The queue is full; nothing was put");
          return FALSE;
        }

      if (!client->asked_credit)
        {
          g_autoptr(GString) frame = g_string_new (NULL);

          _mpq_frame_writev (frame, MPQ_FRAME_CREDIT, NULL, 0);
          if (!_mpq_queue_client_write_frame (client, frame, error))
            return FALSE;
          client->asked_credit = TRUE;
          client->heard_full = FALSE;
        }

      /* Out of attempts with no answer yet: wait for the server's. */
      deadline = attempt >= attempts ? -1 : _mpq_deadline_from_timeout (MAX (timeout_ms, 0));
      while (client->credit == 0 && !(attempt >= attempts && client->heard_full))
        {
          if (client->ep.read_done)
            {
              _mpq_queue_client_closed_error (client, error);
              return FALSE;
            }
          if (_mpq_endpoint_read_some (&client->ep))
            continue;
          flush_before_wait (client);
          if (deadline == 0 || !_mpq_wait_fd (client->ep.fd, POLLIN, deadline))
            break;
        }
    }

  _mpq_queue_client_update_sources (client);
  return TRUE;
}

gboolean
_mpq_queue_client_put (MpqQueueClient  *client,
                       GString         *line,
                       int              pass_fd,
                       gint             put_timeout_ms,
                       guint            put_attempts,
                       GError         **error)
{
  gboolean ok = FALSE;

  if (client->ep.closed || client->ep.read_done)
    _mpq_queue_client_closed_error (client, error);
  /* Over the limit, the parent would drop us: refuse it here. The line
   * ends with its newline. */
  else if (_mpq_endpoint_check_size (&client->ep, line->len - 1, error) &&
           (client->credit != 0 || wait_credit (client, put_timeout_ms, put_attempts, error)))
    ok = pass_fd >= 0
      ? _mpq_endpoint_send_fd (&client->ep, line->str, line->len, pass_fd, -1, error)
      : _mpq_queue_client_write_all (client, line->str, line->len, error);

  /* The descriptor was ours to close, whatever happened. */
  if (pass_fd >= 0)
    close (pass_fd);
  if (ok && client->credit > 0)
    client->credit--;
  return ok;
}

MpqMessage *
_mpq_queue_client_take (MpqQueueClient    *client,
                        gint               timeout_ms,
                        MpqMessageFilter   filter,
                        gpointer           user_data,
                        GError           **error)
{
  g_autoptr(MpqFrame) reply = NULL;
  g_autoptr(MpqMessage) message = NULL;
  g_autoptr(GString) frame = g_string_new (NULL);
  gboolean wanted;

  reply = request (client, MPQ_FRAME_GET, MAX (timeout_ms, -1), error);
  if (reply == NULL || reply->op != MPQ_FRAME_MSG)
    return NULL;

  message = g_steal_pointer (&reply->message);
  wanted = filter == NULL || filter (message, user_data);
  _mpq_frame_write (frame, wanted ? MPQ_FRAME_ACK : MPQ_FRAME_BACK, reply->tag);
  if (!_mpq_queue_client_write_frame (client, frame, error))
    return NULL;

  return wanted ? g_steal_pointer (&message) : NULL;
}

/* receive_for_me: the routed request receive_async makes (want), with a
 * time-out (since 1.2; see docs/protocol.md); what it is handed is taken
 * at once, and nothing goes back. */
MpqMessage *
_mpq_queue_client_take_for_me (MpqQueueClient  *client,
                               gint             timeout_ms,
                               GError         **error)
{
  g_autoptr(MpqFrame) reply = NULL;
  g_autoptr(GString) frame = g_string_new (NULL);

  reply = request (client, MPQ_FRAME_WANT, MAX (timeout_ms, -1), error);
  if (reply == NULL || reply->op != MPQ_FRAME_MSG)
    return NULL;

  _mpq_frame_write (frame, MPQ_FRAME_ACK, reply->tag);
  if (!_mpq_queue_client_write_frame (client, frame, error))
    return NULL;
  return g_steal_pointer (&reply->message);
}

gboolean
_mpq_queue_client_is_empty (MpqQueueClient  *client,
                            GError         **error)
{
  g_autoptr(MpqFrame) reply = request (client, MPQ_FRAME_EMPTY, -1, error);

  return reply != NULL && reply->value;
}

gboolean
_mpq_queue_client_join (MpqQueueClient  *client,
                        gint             timeout_ms,
                        GError         **error)
{
  g_autoptr(MpqFrame) reply = request (client, MPQ_FRAME_JOIN, MAX (timeout_ms, -1), error);

  if (reply == NULL)
    return FALSE;
  if (!reply->value)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT,
                           "Not every message was taken in time");
      return FALSE;
    }
  return TRUE;
}

gboolean
_mpq_queue_client_flush (MpqQueueClient  *client,
                         gint             timeout_ms,
                         GError         **error)
{
  if (!_mpq_queue_client_flush_answers (client, error))
    return FALSE;
  return _mpq_endpoint_flush (&client->ep, timeout_ms, error);
}
