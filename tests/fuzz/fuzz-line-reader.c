/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The line reader fed a peer's bytes in arbitrary chunks, read the way the
 * pipe and the queue read them: one fill per readable event, then every
 * whole line taken.
 *
 * Input: one byte for max_line (1 … 256, or 64 KiB and more to cross the
 * reader's read size), then chunks, each a length byte and that many bytes.
 * What the reader hands out must be the stream split at its newlines, in
 * order; it reports a line too long exactly when the line it stands on is
 * longer than max_line; at the end of the stream, what is left unfinished
 * is exactly the bytes after the last newline; and it never holds more
 * than max_line + 1 plus one read's worth of bytes. */

#include "config.h"

#include <pymulproc/pymulproc.h>

#include <fcntl.h>
#include <glib-unix.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz-common.h"
#include "mpq-line-reader-private.h"

/* mpq-line-reader.c's READ_CHUNK, and the room it always keeps to read. */
#define READ_CHUNK (64 * 1024)
#define BOUND(max_line) ((max_line) + 1 + READ_CHUNK + 4096)

typedef struct
{
  MpqLineReader reader;
  GString      *stream;    /* every byte written so far */
  gsize         taken;     /* bytes of stream handed out as lines, newlines included */
  gboolean      failed;    /* a line was too long: a real reader drops the peer */
} Harness;

/* The next line of the stream from @h->taken, as a model would cut it:
 * its length, and whether its newline has arrived. */
static gsize
model_line (Harness  *h,
            gboolean *whole)
{
  const char *begin = h->stream->str + h->taken;
  const char *nl = memchr (begin, '\n', h->stream->len - h->taken);

  *whole = nl != NULL;
  return nl != NULL ? (gsize) (nl - begin) : h->stream->len - h->taken;
}

static void
take_lines (Harness *h)
{
  while (!h->failed)
    {
      g_autoptr(GError) error = NULL;
      const char *line = NULL;
      gsize length = 0;
      gboolean whole;
      gsize expected = model_line (h, &whole);

      if (_mpq_line_reader_next (&h->reader, &line, &length, &error))
        {
          FUZZ_CHECK (error == NULL && whole);
          FUZZ_CHECK (length == expected && length <= h->reader.max_line);
          FUZZ_CHECK (memcmp (line, h->stream->str + h->taken, length) == 0);
          h->taken += length + 1;
          continue;
        }

      if (error != NULL)
        {
          FUZZ_CHECK (g_error_matches (error, MPQ_ERROR, MPQ_ERROR_TOO_LARGE));
          FUZZ_CHECK (expected > h->reader.max_line);
          h->failed = TRUE;
        }
      else
        {
          FUZZ_CHECK (!whole);
          FUZZ_CHECK (expected <= h->reader.max_line);
        }
      return;
    }
}

/* One readable event: one fill, then the lines. */
static MpqReadStatus
fill_once (Harness *h,
           int      fd)
{
  g_autoptr(GError) error = NULL;
  MpqReadStatus status;

  status = _mpq_line_reader_fill (&h->reader, fd, NULL, &error);
  FUZZ_CHECK (error == NULL);
  FUZZ_CHECK (h->reader.capacity <= BOUND (h->reader.max_line));
  take_lines (h);
  return status;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(GError) error = NULL;
  Harness h = { 0, };
  gsize max_line;
  size_t i;
  int fds[2];

  if (size < 1)
    return 0;

  /* Small bounds, where the input reaches them, and a few past a read. */
  max_line = data[0] < 0xf0 ? 1 + data[0] : READ_CHUNK + (data[0] - 0xf0) * 4096;
  _mpq_line_reader_init (&h.reader, max_line);
  h.stream = g_string_new (NULL);

  FUZZ_CHECK (g_unix_open_pipe (fds, FD_CLOEXEC, &error));
  FUZZ_CHECK (g_unix_set_fd_nonblocking (fds[0], TRUE, &error));

  /* Asked before anything was read, as a queue child's hello loop does. */
  take_lines (&h);

  for (i = 1; i < size && !h.failed;)
    {
      size_t length = MIN ((size_t) data[i] + 1, size - i - 1);
      const uint8_t *chunk = data + i + 1;

      i += 1 + length;
      if (length == 0)
        break;

      /* Up to 256 bytes at a time: the pipe never fills. */
      FUZZ_CHECK (write (fds[1], chunk, length) == (ssize_t) length);
      g_string_append_len (h.stream, (const char *) chunk, length);

      while (!h.failed && fill_once (&h, fds[0]) == MPQ_READ_DATA)
        ;
    }

  /* The peer hangs up: what is left is the line it did not finish. */
  close (fds[1]);
  if (!h.failed)
    {
      gboolean whole;
      gsize rest;

      while (fill_once (&h, fds[0]) == MPQ_READ_DATA && !h.failed)
        ;
      if (!h.failed)
        {
          rest = model_line (&h, &whole);
          FUZZ_CHECK (!whole);
          FUZZ_CHECK (_mpq_line_reader_has_partial (&h.reader) == (rest > 0));
        }
    }

  close (fds[0]);
  _mpq_line_reader_clear (&h.reader);
  g_string_free (h.stream, TRUE);
  return 0;
}
