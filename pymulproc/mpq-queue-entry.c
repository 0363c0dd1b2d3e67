/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "mpq-codec-private.h"
#include "mpq-message-private.h"
#include "mpq-queue-state-private.h"

/* One message in the parent's queue, or in someone's hand: its line as it
 * came (forwarded to children as it is), the MpqMessage when the parent
 * has one or the queue thread made it ahead (within a budget), and the
 * memfd of a payload that came by descriptor (counted against the child
 * that put it). An entry is its owner's: the state's under the server's
 * lock, or the caller's once popped; the counters are atomics. */

/* @message may be NULL: it is decoded from @line when the parent takes
 * the entry, or ahead of that by the queue thread
 * (_mpq_queue_entry_decode_ahead()). */
MpqQueueEntry *
_mpq_queue_entry_new (const char *line,
                      gsize       length,
                      MpqMessage *message,
                      gint        recipient,
                      gint        origin)
{
  MpqQueueEntry *entry = g_malloc (sizeof (MpqQueueEntry) + length);

  memset (entry, 0, sizeof (MpqQueueEntry));
  entry->all_link.data = entry;
  entry->route_link.data = entry;
  entry->recipient = recipient;
  entry->origin = origin;
  entry->message = message;
  entry->fd = -1;
  entry->length = length;
  memcpy (entry->line, line, length);
  return entry;
}

/* The message of an entry that is the caller's alone, decoded now if
 * need be (the line was checked when it came). Transfer full. */
static void
forget_ahead (MpqQueueEntry *entry)
{
  if (entry->ahead != NULL)
    _mpq_queue_release_ahead (entry->ahead, entry->length);
  entry->ahead = NULL;
}

/* The queue thread decodes the messages children put ahead of the parent
 * when the parent is likely to take them (docs/performance.md): room for
 * one more, of a line of @length bytes, is reserved here and given back
 * when the entry's message is taken or freed. Any thread. */
gboolean
_mpq_queue_reserve_ahead (MpqQueueServer *server,
                          gsize           length)
{
  gint cost = (gint) (length + MPQ_QUEUE_AHEAD_COST);

  if (g_atomic_int_add (&server->decoded_ahead, cost) + cost <= MPQ_QUEUE_AHEAD_BYTES)
    return TRUE;
  g_atomic_int_add (&server->decoded_ahead, -cost);
  return FALSE;
}

void
_mpq_queue_release_ahead (MpqQueueServer *server,
                          gsize           length)
{
  g_atomic_int_add (&server->decoded_ahead, -(gint) (length + MPQ_QUEUE_AHEAD_COST));
}

/* @entry's message was decoded ahead, in room reserved for it. */
void
_mpq_queue_entry_set_ahead (MpqQueueEntry  *entry,
                            MpqQueueServer *server)
{
  g_assert (entry->message != NULL && entry->ahead == NULL);
  entry->ahead = server;
}

/* @entry's payload came as @fd (taken), @size bytes, counted against
 * @quota (taken; NULL: the parent's, not counted). */
void
_mpq_queue_entry_set_fd (MpqQueueEntry *entry,
                         int            fd,
                         gsize          size,
                         MpqQueueQuota *quota)
{
  g_assert (entry->fd < 0);
  entry->fd = fd;
  entry->fd_size = size;
  entry->quota = quota;
}

static void
forget_fd (MpqQueueEntry *entry)
{
  if (entry->fd < 0)
    return;
  close (entry->fd);
  entry->fd = -1;
  if (entry->quota != NULL)
    {
      g_atomic_int_add (&entry->quota->fds, -1);
      g_atomic_pointer_add (&entry->quota->bytes, -(gssize) entry->fd_size);
      g_clear_pointer (&entry->quota, _mpq_queue_quota_unref);
    }
}

/* The message of @entry, whose payload came by descriptor, decoded with
 * that payload mapped (a copy of the descriptor: the entry keeps its own);
 * NULL with @error set if it cannot be mapped. */
static MpqMessage *
decode_with_fd (MpqQueueEntry  *entry,
                GError        **error)
{
  g_autoptr(GArray) fds = g_array_new (FALSE, FALSE, sizeof (int));
  int fd = fcntl (entry->fd, F_DUPFD_CLOEXEC, 3);

  if (fd >= 0)
    g_array_append_val (fds, fd);
  return _mpq_codec_decode_full (entry->line, entry->length, fds, error);
}

/* Appends @entry's line with its payload inline, for a child that takes
 * no descriptors. What cannot be mapped (out of descriptors or address
 * space) goes as it is, logged. */
void
_mpq_queue_entry_write_inline (MpqQueueEntry *entry,
                               GString       *out)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqMessage) message = decode_with_fd (entry, &error);

  if (message == NULL || !_mpq_codec_encode (message, out, &error))
    {
      g_message ("A queued payload could not be inlined: %s", error->message);
      g_string_append_len (out, entry->line, entry->length);
    }
}

MpqMessage *
_mpq_queue_entry_take_message (MpqQueueEntry *entry)
{
  MpqMessage *message = g_steal_pointer (&entry->message);

  forget_ahead (entry);

  if (message == NULL && entry->fd >= 0)
    {
      GError *error = NULL;

      message = decode_with_fd (entry, &error);
      if (message == NULL)
        {
          /* Out of descriptors, or of address space: the message is
           * delivered without its payload rather than lost. */
          g_message ("A queued payload could not be mapped: %s", error->message);
          g_clear_error (&error);
          message = _mpq_codec_decode_dropping_payload (entry->line, entry->length);
        }
    }
  else if (message == NULL)
    message = _mpq_codec_decode_checked (entry->line, entry->length, &entry->shape);
  g_assert (message != NULL);
  _mpq_message_set_origin (message, entry->origin);
  return message;
}

MpqQueueQuota *
_mpq_queue_quota_new (void)
{
  MpqQueueQuota *quota = g_new0 (MpqQueueQuota, 1);

  quota->refs = 1;
  return quota;
}

void
_mpq_queue_quota_unref (MpqQueueQuota *quota)
{
  if (g_atomic_int_dec_and_test (&quota->refs))
    g_free (quota);
}

/* Counts one more payload of @size bytes against @quota, if both bounds
 * allow; the entry that holds it gives it back (and a reference). */
gboolean
_mpq_queue_quota_take (MpqQueueQuota *quota,
                       gsize          size)
{
  gssize before;

  if (g_atomic_int_add (&quota->fds, 1) >= MPQ_QUEUE_MAX_FDS_PER_CHILD)
    {
      g_atomic_int_add (&quota->fds, -1);
      return FALSE;
    }
  before = g_atomic_pointer_add (&quota->bytes, (gssize) size);
  if (size > (gsize) MPQ_QUEUE_MAX_FD_BYTES_PER_CHILD ||
      before + (gssize) size > MPQ_QUEUE_MAX_FD_BYTES_PER_CHILD)
    {
      g_atomic_pointer_add (&quota->bytes, -(gssize) size);
      g_atomic_int_add (&quota->fds, -1);
      return FALSE;
    }
  g_atomic_int_inc (&quota->refs);
  return TRUE;
}

void
_mpq_queue_entry_free (MpqQueueEntry *entry)
{
  forget_ahead (entry);
  forget_fd (entry);
  g_clear_object (&entry->message);
  g_free (entry);
}

/* An entry the parent's thread is done with goes back to the queue
 * thread, which made it, to be freed there: glibc gives each thread its
 * own malloc arena, and a free into another thread's arena takes that
 * arena's lock while its thread mallocs the next entries. In W3 (four
 * children put, the parent takes) those frees and the page faults of the
 * arena shrinking and growing again were 40% of the parent's time
 * (docs/performance.md). Lock-free: a stack that many threads push and
 * the queue thread empties at once, so a popped entry is never looked
 * at again. Bounded: past MPQ_QUEUE_SPENT_BYTES, or for a long line,
 * the caller frees the entry itself. Any thread. */
void
_mpq_queue_entry_give_back (MpqQueueServer *server,
                            MpqQueueEntry  *entry)
{
  gint cost = (gint) (sizeof (MpqQueueEntry) + entry->length);
  MpqQueueEntry *head;

  forget_ahead (entry);
  forget_fd (entry);
  g_clear_object (&entry->message);
  if (entry->length > MPQ_QUEUE_SPENT_MAX_LINE ||
      g_atomic_int_add (&server->spent_bytes, cost) + cost > MPQ_QUEUE_SPENT_BYTES)
    {
      if (entry->length <= MPQ_QUEUE_SPENT_MAX_LINE)
        g_atomic_int_add (&server->spent_bytes, -cost);
      g_free (entry);
      return;
    }

  do
    {
      head = g_atomic_pointer_get (&server->spent);
      entry->spent_next = head;
    }
  while (!g_atomic_pointer_compare_and_exchange (&server->spent, head, entry));
}

/* Frees what the parent's threads gave back: the queue thread while it
 * runs, then whoever frees the server. */
void
_mpq_queue_free_spent (MpqQueueServer *server)
{
  MpqQueueEntry *entry = g_atomic_pointer_exchange (&server->spent, NULL);
  gint freed = 0;

  while (entry != NULL)
    {
      MpqQueueEntry *next = entry->spent_next;

      freed += (gint) (sizeof (MpqQueueEntry) + entry->length);
      g_free (entry);
      entry = next;
    }
  if (freed > 0)
    g_atomic_int_add (&server->spent_bytes, -freed);
}

MpqQueueEntry *
_mpq_queue_pop_entry_head (GQueue *queue)
{
  GList *link = g_queue_pop_head_link (queue);

  return link != NULL ? link->data : NULL;
}

MpqQueueEntry *
_mpq_queue_pop_entry_tail (GQueue *queue)
{
  GList *link = g_queue_pop_tail_link (queue);

  return link != NULL ? link->data : NULL;
}

