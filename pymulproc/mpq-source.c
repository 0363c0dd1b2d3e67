/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-source-private.h"

#define CANCEL_SOURCE_KEY "mpq-cancel-source"

static gboolean
wake_dispatch (GSource     *source,
               GSourceFunc  callback,
               gpointer     user_data)
{
  /* Not ready again until someone says so; a wake-up that comes while the
   * callback runs makes it run once more. */
  g_source_set_ready_time (source, -1);

  return callback != NULL ? callback (user_data) : G_SOURCE_REMOVE;
}

static GSourceFuncs wake_funcs = {
  .dispatch = wake_dispatch,
};

GSource *
_mpq_wake_source_new (void)
{
  return g_source_new (&wake_funcs, sizeof (GSource));
}

/* A channel's one source in its consumer's context: the socket's poll
 * record, a flag for "something read waits to be handed out", and a hook
 * that runs before the context waits (the endpoint writes out what
 * handlers sent). One source rather than a watch, a deliver source and a
 * flush source: each source costs every main loop iteration a prepare
 * and a check, each between an unlock and a lock of the context's mutex
 * (W2 in a main loop, docs/performance.md).
 *
 * The flag costs nothing to change, unlike g_source_set_ready_time(),
 * which in GLib 2.74 wakes the context (an eventfd write, and a read to
 * clear it) each time it changes.
 *
 * The source may recurse: GLib would otherwise take its fd out of the
 * poll set while it dispatches and put it back after, each a wake-up of
 * the context. So a handler that runs a main loop of its own (a dialog,
 * a sync call) gets it dispatched inside its own dispatch: the socket is
 * read, and what the owner hands out there is up to the owner (replies
 * to receive_async, never the next ::message-received). While a dispatch
 * is under way and the owner holds what it read (@holding: it reads no
 * more until that is handed out), the socket is out of the poll set, so
 * such a loop sleeps rather than spins; the outermost dispatch puts it
 * back when it returns.
 *
 * Everything here runs in the context's thread, but for a flag set from
 * another thread, which wakes the context. */
typedef struct
{
  GSource              source;
  const MpqReadFuncs  *funcs;
  gpointer             data;
  int                  fd;
  gpointer             tag;        /* the socket's poll record, or NULL */
  gboolean             readable;   /* the owner reads from the socket */
  gboolean             holding;    /* ... but not before it hands out what it has */
  gboolean             buffered;   /* something waits to be handed out */
  guint                depth;      /* dispatches under way */
} ReadSource;

/* Watches the socket as the owner's state and the dispatches under way
 * call for. */
static void
read_source_update_watch (ReadSource *rs)
{
  gboolean watch = rs->readable && !(rs->holding && rs->depth > 0);

  if (watch && rs->tag == NULL)
    rs->tag = g_source_add_unix_fd (&rs->source, rs->fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
  else if (!watch && rs->tag != NULL)
    {
      g_source_remove_unix_fd (&rs->source, rs->tag);
      rs->tag = NULL;
    }
}

static gboolean
read_source_readable (ReadSource *rs)
{
  return rs->tag != NULL && g_source_query_unix_fd (&rs->source, rs->tag) != 0;
}

static gboolean
read_source_prepare (GSource *source,
                     gint    *timeout)
{
  ReadSource *rs = (ReadSource *) source;

  *timeout = -1;
  if (rs->funcs->before_wait != NULL)
    rs->funcs->before_wait (rs->data);
  return rs->buffered;
}

static gboolean
read_source_check (GSource *source)
{
  ReadSource *rs = (ReadSource *) source;

  return rs->buffered || read_source_readable (rs);
}

static gboolean
read_source_dispatch (GSource     *source,
                      GSourceFunc  callback,
                      gpointer     user_data)
{
  ReadSource *rs = (ReadSource *) source;

  /* The owner may drop the last reference to the channel in a handler,
   * and with it this source: GLib keeps it alive until we return. */
  rs->depth++;
  if (read_source_readable (rs))
    rs->funcs->read (rs->data);
  else
    rs->funcs->deliver (rs->data);
  rs->depth--;

  if (rs->depth == 0 && !g_source_is_destroyed (source))
    read_source_update_watch (rs);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs read_source_funcs = {
  .prepare = read_source_prepare,
  .check = read_source_check,
  .dispatch = read_source_dispatch,
};

void
_mpq_read_sources_update (MpqReadSources     *sources,
                          MpqReadState        state,
                          GMainContext       *context,
                          int                 fd,
                          const char         *name,
                          const MpqReadFuncs *funcs,
                          gpointer            data)
{
  ReadSource *rs;

  if (!state.wanted)
    {
      _mpq_clear_source (&sources->source);
      return;
    }

  if (sources->source == NULL)
    {
      sources->source = g_source_new (&read_source_funcs, sizeof (ReadSource));
      rs = (ReadSource *) sources->source;
      rs->funcs = funcs;
      rs->data = data;
      rs->fd = fd;
      g_source_set_can_recurse (sources->source, TRUE);
      g_source_set_static_name (sources->source, name);
      g_source_attach (sources->source, context);
    }
  rs = (ReadSource *) sources->source;

  rs->readable = state.readable;
  rs->holding = state.holding;
  read_source_update_watch (rs);

  if (rs->buffered != state.buffered)
    {
      rs->buffered = state.buffered;
      /* The thread that runs the context looks at the flag before it
       * waits again; any other thread must wake it. */
      if (state.buffered && !g_main_context_is_owner (context))
        g_main_context_wakeup (context);
    }
}

void
_mpq_read_sources_clear (MpqReadSources *sources)
{
  _mpq_clear_source (&sources->source);
}

GSource *
_mpq_source_attach (GSource      *source,
                    GMainContext *context,
                    const char   *name,
                    GSourceFunc   func,
                    gpointer      data)
{
  g_source_set_static_name (source, name);
  g_source_set_callback (source, func, data, NULL);
  g_source_attach (source, context);
  return source;
}

void
_mpq_source_destroy_and_unref (gpointer source)
{
  g_source_destroy (source);
  g_source_unref (source);
}

void
_mpq_clear_source (GSource **source)
{
  if (*source != NULL)
    _mpq_source_destroy_and_unref (g_steal_pointer (source));
}

void
_mpq_task_watch_cancel (GTask                 *task,
                        GMainContext          *context,
                        GCancellableSourceFunc func,
                        gpointer               data)
{
  GCancellable *cancellable = g_task_get_cancellable (task);
  GSource *source;

  if (cancellable == NULL)
    return;

  source = _mpq_source_attach (g_cancellable_source_new (cancellable), context,
                               "[mpq] request cancelled", G_SOURCE_FUNC (func), data);
  /* Destroyed with the task, whichever way it ends. */
  g_object_set_data_full (G_OBJECT (task), CANCEL_SOURCE_KEY, source,
                          _mpq_source_destroy_and_unref);
}

void
_mpq_task_unwatch_cancel (GTask *task)
{
  g_object_set_data (G_OBJECT (task), CANCEL_SOURCE_KEY, NULL);
}
