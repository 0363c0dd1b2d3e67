/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "mpq-lock-private.h"
#include "mpq-writer-private.h"

G_BEGIN_DECLS

/* Between the writer (mpq-writer.c: one socket's buffer, sends, holds)
 * and its thread (mpq-writer-thread.c: the writers listed for it, and the
 * live ones, flushed at exit and forgotten after fork). */

/* How long lines sent by a handler may wait for their dispatch to end
 * before the writer thread sends them anyway (a handler that computes
 * for long after sending). */
#define MPQ_WRITER_HOLD_US 1000

struct _MpqWriter
{
  /* Every field below is guarded by @lock (@refs is atomic). */
  MpqMutex     lock;
  MpqCond      cond;         /* @writing went FALSE */
  guint      waiting;      /* threads waiting on @cond (a wake costs a syscall) */
  int        fd;
  GString   *buf;          /* unwritten, whole lines */
  GString   *spare;        /* swapped in while @buf is being written */
  gboolean   writing;      /* someone writes outside the lock */
  gsize      writing_len;  /* the bytes of @buf they took out to write */
  gboolean   listed;       /* the writer thread has it to do */
  guint      holds;        /* dispatches under way: they write at the end */
  guint      direct_level; /* @holds at which sends go out at once (0: none) */
  gboolean   closed;
  GError    *error;        /* the peer is gone: every later send fails */
  gint64     last_send;
  gint       refs;         /* the owner, and the writer thread while listed */
};

/* mpq-writer.c: any thread, with the writer's lock where _locked. */
gboolean _mpq_writer_write_out_locked (MpqWriter *writer);
void     _mpq_writer_unref            (MpqWriter *writer);

/* mpq-writer-thread.c: any thread. */
void     _mpq_writer_list_locked      (MpqWriter *writer,
                                       gboolean   later);
void     _mpq_writer_add_live         (MpqWriter *writer);
void     _mpq_writer_remove_live      (MpqWriter *writer);

G_END_DECLS
