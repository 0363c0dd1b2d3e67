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

void
_mpq_read_sources_update (MpqReadSources *sources,
                          MpqReadState    state,
                          GMainContext   *context,
                          GIOChannel     *io,
                          const char     *name,
                          GIOFunc         watch_func,
                          GSourceFunc     deliver_func,
                          gpointer        data)
{
  if (state.wanted && state.readable)
    {
      if (sources->watch == NULL)
        sources->watch = _mpq_source_attach (g_io_create_watch (io, G_IO_IN | G_IO_HUP | G_IO_ERR),
                                             context, name, G_SOURCE_FUNC (watch_func), data);
    }
  else
    _mpq_clear_source (&sources->watch);

  if (state.wanted)
    {
      if (sources->deliver == NULL)
        {
          sources->deliver = _mpq_wake_source_new ();
          g_source_set_priority (sources->deliver, G_PRIORITY_DEFAULT_IDLE);
          _mpq_source_attach (sources->deliver, context, name, deliver_func, data);
        }
      g_source_set_ready_time (sources->deliver, state.buffered ? 0 : -1);
    }
  else
    _mpq_clear_source (&sources->deliver);
}

void
_mpq_read_sources_clear (MpqReadSources *sources)
{
  _mpq_clear_source (&sources->watch);
  _mpq_clear_source (&sources->deliver);
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
