/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "mpq-message.h"

G_BEGIN_DECLS

/* The queue's control frames: one JSON object per line, next to message
 * lines (see docs/protocol.md). A frame has an "op" and a few integer
 * members; "msg" carries a message. */
/* Room for a frame around a message line, {"op":"msg","tag":…,"id":…,"msg":…}:
 * what a queue's reader allows past max-message-size. */
#define MPQ_FRAME_OVERHEAD 256

typedef enum
{
  /* server → child */
  MPQ_FRAME_HELLO,
  MPQ_FRAME_MSG,
  MPQ_FRAME_NONE,
  MPQ_FRAME_EMPTY,
  MPQ_FRAME_JOINED,
  MPQ_FRAME_CREDIT,
  MPQ_FRAME_STOPPED,
  /* child → server (HELLO, EMPTY and CREDIT too) */
  MPQ_FRAME_GET,
  MPQ_FRAME_WANT,
  MPQ_FRAME_CANCEL,
  MPQ_FRAME_START,
  MPQ_FRAME_STOP,
  MPQ_FRAME_ACK,
  MPQ_FRAME_BACK,
  MPQ_FRAME_UNDO,
  MPQ_FRAME_JOIN,
  /* server → child, added later (the order is not on the wire) */
  MPQ_FRAME_LIMITS,
} MpqFrameOp;

typedef struct
{
  MpqFrameOp  op;
  gint64      id;        /* 0 when absent */
  gint64      tag;
  gint64      timeout;   /* -1 when absent */
  gint64      prefetch;
  gint64      n;
  gint64      pid;
  gint64      credit;
  gint64      us;        /* ack: how long the handlers took; -1 when absent */
  gint64      max;       /* hello, limits: the queue's max-message-size; 0 when absent */
  gboolean    value;
  gboolean    fds;       /* hello: this end takes payloads by descriptor */
  MpqMessage *message;   /* "msg", owned, or NULL */
  gsize       msg_length; /* its line's length in the frame, for max-message-size */
} MpqFrame;

gboolean  _mpq_frame_parse   (const char  *line,
                              gsize        length,
                              GArray      *fds,
                              MpqFrame    *frame,
                              GError     **error);
void      _mpq_frame_clear   (MpqFrame    *frame);
MpqFrame *_mpq_frame_copy    (const MpqFrame *frame);
void      _mpq_frame_free    (MpqFrame    *frame);

/* Writers. Each op carries these members, in this order (mpq-frame.c's table):
 *   hello: pid, fds, credit, max limits: max         credit: n
 *   none, stopped, cancel, stop: id                  empty, joined: id, value
 *   get, join, want: id, timeout start: prefetch     ack: tag, us    back, undo: tag
 * _mpq_frame_write (out, op, v1, …) appends the line of @op with its first
 * members set to v1, …; a frame without members (a child's "credit") is
 * _mpq_frame_writev (out, op, NULL, 0). The values are converted to gint64
 * by the array they are put in, not passed through varargs. */
#define _mpq_frame_write(out, op, ...) \
  _mpq_frame_writev ((out), (op), (const gint64[]) { __VA_ARGS__ }, \
                     sizeof ((const gint64[]) { __VA_ARGS__ }) / sizeof (gint64))

void      _mpq_frame_writev     (GString      *out,
                                 MpqFrameOp    op,
                                 const gint64 *values,
                                 guint         n_values);
void      _mpq_frame_write_msg  (GString      *out,
                                 guint32       tag,
                                 gint64        id,
                                 const char   *line,
                                 gsize         length);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MpqFrame, _mpq_frame_free)

G_END_DECLS
