/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Splits what a peer writes into lines, holding at most one unfinished line
 * of max_line bytes plus one read's worth of input. */
typedef struct
{
  char  *data;
  gsize  capacity;
  gsize  start;     /* first byte not yet handed out */
  gsize  end;       /* one past the last byte read */
  gsize  scanned;   /* bytes from start known to hold no newline */
  gsize  max_line;
} MpqLineReader;

typedef enum
{
  MPQ_READ_DATA,    /* bytes were read */
  MPQ_READ_AGAIN,   /* nothing to read now */
  MPQ_READ_EOF,     /* the peer hung up */
} MpqReadStatus;

void          _mpq_line_reader_init    (MpqLineReader  *reader,
                                        gsize           max_line);
void          _mpq_line_reader_clear   (MpqLineReader  *reader);
/* The most descriptors one read takes (a peer sends one per line, with
 * the line's first byte; the kernel ends a read after a write that
 * carried some). More at once is the peer's protocol error. */
#define MPQ_READ_MAX_FDS 8

/* The most a reader's owner holds for lines not yet read whole: one
 * read's worth and one for a line still coming. More is a peer that sends
 * descriptors without their lines. */
#define MPQ_MAX_HELD_FDS (MPQ_READ_MAX_FDS * 2)

MpqReadStatus _mpq_line_reader_fill    (MpqLineReader  *reader,
                                        int             fd,
                                        GArray         *fds,
                                        GError        **error);
gboolean      _mpq_line_reader_next    (MpqLineReader  *reader,
                                        const char    **line,
                                        gsize          *length,
                                        GError        **error);
gboolean      _mpq_line_reader_has_partial (MpqLineReader *reader);

/* The descriptors a fill collected (an array of int, oldest first). */
int           _mpq_fds_take_oldest     (GArray         *fds,
                                        GError        **error);
gboolean      _mpq_fds_check_held      (GArray         *fds,
                                        GError        **error);
void          _mpq_fds_close_all       (GArray         *fds);

G_END_DECLS
