/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Writes whole lines to a socket, coalescing them under load.
 *
 * A send after a pause is written at once, in the caller's thread. Sends
 * that come fast, one after the other, are gathered and written together
 * by the library's writer thread, as soon as it gets to them: many
 * messages per system call instead of one. What message handlers send
 * during a dispatch goes out together when the dispatch ends (the last
 * message's handlers write it, with their own). The buffer is bounded; a send
 * that finds it full waits for room until its deadline. Everything is
 * written out before the library blocks (receive, join), at close, at
 * mpq_channel_flush() and when the process exits. */
typedef struct _MpqWriter MpqWriter;

MpqWriter *_mpq_writer_new   (int          fd);
void       _mpq_writer_free  (MpqWriter   *writer);
gboolean   _mpq_writer_send  (MpqWriter   *writer,
                              const char  *data,
                              gsize        length,
                              gint         timeout_ms,
                              GError     **error);
gboolean   _mpq_writer_send_fd (MpqWriter *writer,
                                const char *data,
                                gsize       length,
                                int         pass_fd,
                                gint        timeout_ms,
                                GError    **error);
gboolean   _mpq_writer_flush (MpqWriter   *writer,
                              gint         timeout_ms,
                              GError     **error);
void       _mpq_writer_expect_reply (MpqWriter *writer);
MpqWriter *_mpq_writer_hold  (MpqWriter   *writer);
void       _mpq_writer_hold_last (MpqWriter *writer);
void       _mpq_writer_release (MpqWriter *writer);
void       _mpq_writer_write_pending (MpqWriter *writer);

G_END_DECLS
