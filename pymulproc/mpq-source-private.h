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
 * messages: a watch on its socket, and a source that delivers what was
 * read already, ready only then (at idle priority, as an idle would).
 * Both stay attached: adding and removing a socket's watch costs the
 * main loop a wake-up each time. */
typedef struct _MpqWatchState MpqWatchState;

typedef struct
{
  GSource       *watch;        /* while there is something left to read */
  GSource       *deliver;      /* while someone wants messages */
  MpqWatchState *watch_state;
  gboolean       wanted_watch;
} MpqReadSources;

typedef struct
{
  gboolean wanted;
  gboolean readable;
  gboolean buffered;
} MpqReadState;

void     _mpq_read_sources_update (MpqReadSources *sources,
                                   MpqReadState    state,
                                   GMainContext   *context,
                                   GIOChannel     *io,
                                   const char     *name,
                                   GSourceFunc     watch_func,
                                   GSourceFunc     deliver_func,
                                   gpointer        data);
void     _mpq_read_sources_clear  (MpqReadSources *sources);

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
