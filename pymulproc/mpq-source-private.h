/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* What the channels and the queue's thread do with GSources, once. */

/* A source that runs its callback once each time another thread makes it
 * ready with g_source_set_ready_time (source, 0), which is thread-safe and
 * cheap when it is ready already. */
GSource *_mpq_wake_source_new (void);

/* What a channel keeps in its consumer's context while someone wants
 * messages: one source that watches its socket, hands out what was read
 * already (ready while @buffered says so) and runs @before_wait each time
 * the context is about to wait. It is dispatched inside its own dispatch
 * when a handler runs a main loop of its own: @read and @deliver must
 * then hand out only what may be (see mpq-source.c). */
typedef struct
{
  void (*read)        (gpointer data);  /* the socket is readable */
  void (*deliver)     (gpointer data);  /* something waits to be handed out */
  void (*before_wait) (gpointer data);  /* or NULL */
} MpqReadFuncs;

typedef struct
{
  GSource *source;   /* while someone wants messages */
} MpqReadSources;

typedef struct
{
  gboolean wanted;    /* someone takes messages through the main loop */
  gboolean readable;  /* the socket may have more */
  gboolean holding;   /* nothing more is read until what was is handed out */
  gboolean buffered;  /* something can be handed out now */
} MpqReadState;

void     _mpq_read_sources_update (MpqReadSources     *sources,
                                   MpqReadState        state,
                                   GMainContext       *context,
                                   int                 fd,
                                   const char         *name,
                                   const MpqReadFuncs *funcs,
                                   gpointer            data);
void     _mpq_read_sources_clear  (MpqReadSources     *sources);

/* Names @source, gives it @func and attaches it to @context; returns it
 * (the caller's reference). */
GSource *_mpq_source_attach (GSource      *source,
                             GMainContext *context,
                             const char   *name,
                             GSourceFunc   func,
                             gpointer      data);

/* A GDestroyNotify for a source one owns a reference to: detaches it from
 * its context and drops the reference. */
void     _mpq_source_destroy_and_unref (gpointer source);

/* Detaches and drops *@source, if any, and sets it to NULL. */
void     _mpq_clear_source (GSource **source);

/* Calls @func (cancellable, @data) in @context when @task's cancellable is
 * cancelled, as long as the task lives; nothing without a cancellable. */
void     _mpq_task_watch_cancel (GTask                 *task,
                                 GMainContext          *context,
                                 GCancellableSourceFunc func,
                                 gpointer               data);

/* Stops that watch, before the task goes. */
void     _mpq_task_unwatch_cancel (GTask *task);

G_END_DECLS
