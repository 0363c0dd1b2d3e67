/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include "mpq-error.h"
#include "mpq-line-reader-private.h"

/* One read takes at most this much; a burst of small messages is split into
 * lines in one go, and memory per peer stays max_line + READ_CHUNK. */
#define READ_CHUNK (64 * 1024)

void
_mpq_line_reader_init (MpqLineReader *reader,
                       gsize          max_line)
{
  memset (reader, 0, sizeof *reader);
  reader->max_line = max_line;
}

void
_mpq_line_reader_clear (MpqLineReader *reader)
{
  g_clear_pointer (&reader->data, g_free);
  reader->capacity = reader->start = reader->end = reader->scanned = 0;
}

gboolean
_mpq_line_reader_has_partial (MpqLineReader *reader)
{
  return reader->end > reader->start;
}

/* Makes room for one more read at the end, moving the unfinished line to the
 * front rather than growing when it can. */
static void
make_room (MpqLineReader *reader)
{
  gsize pending = reader->end - reader->start;

  if (reader->start > 0 && (reader->capacity - reader->end < READ_CHUNK))
    {
      memmove (reader->data, reader->data + reader->start, pending);
      reader->start = 0;
      reader->end = pending;
    }

  if (reader->capacity - reader->end < READ_CHUNK)
    {
      reader->capacity = MAX (reader->end + READ_CHUNK, reader->capacity * 2);
      reader->capacity = MIN (reader->capacity, reader->max_line + 1 + READ_CHUNK);
      /* Never less than what is held, and always room to read into. */
      reader->capacity = MAX (reader->capacity, reader->end + 4096);
      reader->data = g_realloc (reader->data, reader->capacity);
    }
}

/* recvmsg() for a reader that takes descriptors: those that came are
 * appended to @fds (close-on-exec). */
static gssize
read_with_fds (MpqLineReader  *reader,
               int             fd,
               GArray         *fds,
               GError        **error)
{
  union
  {
    struct cmsghdr align;
    char           buf[CMSG_SPACE (sizeof (int) * MPQ_READ_MAX_FDS)];
  } control;
  struct iovec iov = { reader->data + reader->end, reader->capacity - reader->end };
  struct msghdr msg = { 0 };
  guint held = fds->len;
  gssize n;

  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;

  n = recvmsg (fd, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0)
    return n;

  for (struct cmsghdr *cmsg = CMSG_FIRSTHDR (&msg); cmsg != NULL; cmsg = CMSG_NXTHDR (&msg, cmsg))
    if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS)
      g_array_append_vals (fds, CMSG_DATA (cmsg),
                           (cmsg->cmsg_len - CMSG_LEN (0)) / sizeof (int));

  /* The kernel closed what did not fit, so this write's descriptors are
   * all dropped: the lines before it still count, a line that wanted one
   * fails, and the caller stops reading after them (@error). */
  if (msg.msg_flags & MSG_CTRUNC)
    {
      for (guint i = held; i < fds->len; i++)
        close (g_array_index (fds, int, i));
      g_array_set_size (fds, held);
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                   "The peer sent more than %d descriptors at once", MPQ_READ_MAX_FDS);
    }
  return n;
}

/* Reads what came, and with @fds (not NULL) the descriptors that came
 * with it; without, any that a peer sends are closed by the kernel. Data
 * may come with @error set (too many descriptors): take its lines, then
 * stop reading. */
MpqReadStatus
_mpq_line_reader_fill (MpqLineReader  *reader,
                       int             fd,
                       GArray         *fds,
                       GError        **error)
{
  gssize n;

  make_room (reader);

  do
    n = fds != NULL ? read_with_fds (reader, fd, fds, error)
                    : read (fd, reader->data + reader->end, reader->capacity - reader->end);
  while (n < 0 && errno == EINTR);


  if (n > 0)
    {
      reader->end += n;
      return MPQ_READ_DATA;
    }

  if (n == 0)
    return MPQ_READ_EOF;

  if (errno == EAGAIN || errno == EWOULDBLOCK)
    return MPQ_READ_AGAIN;

  if (errno == ECONNRESET)
    return MPQ_READ_EOF;

  g_set_error (error, MPQ_ERROR, MPQ_ERROR_FAILED,
               "Could not read from peer: %s", g_strerror (errno));
  return MPQ_READ_EOF;
}

/* Hands out the next complete line, without its newline. The pointer stays
 * valid until the next fill. Returns FALSE when no whole line is buffered,
 * with @error set if the unfinished line is already too long. */
gboolean
_mpq_line_reader_next (MpqLineReader  *reader,
                       const char    **line,
                       gsize          *length,
                       GError        **error)
{
  const char *begin;
  gsize avail = reader->end - reader->start;
  const char *nl;

  /* Nothing buffered: before the first read data is still NULL, and even
   * NULL + 0 is undefined behaviour. */
  if (avail == 0)
    {
      reader->scanned = 0;
      return FALSE;
    }

  begin = reader->data + reader->start;
  nl = avail > reader->scanned
         ? memchr (begin + reader->scanned, '\n', avail - reader->scanned)
         : NULL;

  if (nl == NULL)
    {
      reader->scanned = avail;
      if (avail > reader->max_line)
        g_set_error (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE,
                     "Message line is longer than %" G_GSIZE_FORMAT " bytes",
                     reader->max_line);
      return FALSE;
    }

  *line = begin;
  *length = nl - begin;
  reader->start += *length + 1;
  reader->scanned = 0;

  if (*length > reader->max_line)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE,
                   "Message line of %" G_GSIZE_FORMAT " bytes is longer than %"
                   G_GSIZE_FORMAT, *length, reader->max_line);
      return FALSE;
    }

  if (reader->start == reader->end)
    reader->start = reader->end = 0;

  return TRUE;
}

/* The oldest descriptor that came, for the line that says it has one; -1
 * with MPQ_ERROR_PROTOCOL if none came (@fds NULL: none may). */
int
_mpq_fds_take_oldest (GArray  *fds,
                      GError **error)
{
  int fd;

  if (fds == NULL || fds->len == 0)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                           "A payload's descriptor did not come with its message");
      return -1;
    }
  fd = g_array_index (fds, int, 0);
  g_array_remove_index (fds, 0);
  return fd;
}

/* After the lines of a read took theirs: FALSE with MPQ_ERROR_PROTOCOL if
 * more are left than MPQ_MAX_HELD_FDS. */
gboolean
_mpq_fds_check_held (GArray  *fds,
                     GError **error)
{
  if (fds == NULL || fds->len <= MPQ_MAX_HELD_FDS)
    return TRUE;
  g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
               "The peer sent %u descriptors without their messages", fds->len);
  return FALSE;
}

void
_mpq_fds_close_all (GArray *fds)
{
  for (guint i = 0; fds != NULL && i < fds->len; i++)
    close (g_array_index (fds, int, i));
  if (fds != NULL)
    g_array_set_size (fds, 0);
}
