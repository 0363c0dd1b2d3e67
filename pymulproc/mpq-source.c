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

/* Ready while its flag is set. Changing the flag costs nothing, unlike
 * g_source_set_ready_time(), which in GLib 2.74 wakes the context (an
 * eventfd write, and a read to clear it) each time it changes. */
typedef struct
{
  GSource  source;
  gboolean ready;
} FlagSource;

static gboolean
flag_prepare (GSource *source,
              gint    *timeout)
{
  *timeout = -1;
  return ((FlagSource *) source)->ready;
}

static gboolean
flag_check (GSource *source)
{
  return ((FlagSource *) source)->ready;
}

static gboolean
flag_dispatch (GSource     *source,
               GSourceFunc  callback,
               gpointer     user_data)
{
  return callback != NULL ? callback (user_data) : G_SOURCE_REMOVE;
}

static GSourceFuncs flag_funcs = {
  .prepare = flag_prepare,
  .check = flag_check,
  .dispatch = flag_dispatch,
};

static void
flag_source_set (GSource      *source,
                 GMainContext *context,
                 gboolean      ready)
{
  FlagSource *flag = (FlagSource *) source;

  if (flag->ready == ready)
    return;
  flag->ready = ready;
  /* The thread that runs the context looks at the flag before it waits
   * again; any other thread must wake it. */
  if (ready && !g_main_context_is_owner (context))
    g_main_context_wakeup (context);
}

/* The socket's GIOChannel watch stays in the poll set while it
 * dispatches. GLib takes a source's fds out of the poll set while its
 * callback runs and puts them back after, and each of those wakes the
 * context (an eventfd write and read): twice per dispatch. The watch may
 * recurse, so GLib leaves it alone; should a handler run a nested main
 * loop, the nested dispatch drops the watch instead, and the outer one
 * puts it back when it returns.
 *
 * Its state outlives the channel while a dispatch is under way: a
 * handler may drop the last reference to the channel. */
struct _MpqWatchState
{
  gint            refs;
  MpqReadSources *sources;   /* NULL once the channel let go */
  GIOChannel     *io;
  GMainContext   *context;
  const char     *name;
  GSourceFunc     func;
  gpointer        data;
  guint           depth;     /* dispatches under way */
  gboolean        dropped;   /* ... and a nested one dropped the watch */
};

static MpqWatchState *
watch_state_ref (MpqWatchState *state)
{
  g_atomic_int_inc (&state->refs);
  return state;
}

static void
watch_state_unref (gpointer data)
{
  MpqWatchState *state = data;

  if (g_atomic_int_dec_and_test (&state->refs))
    g_free (state);
}

static gboolean watch_trampoline (GIOChannel *io, GIOCondition condition, gpointer user_data);

static void
add_watch (MpqWatchState *state)
{
  GSource *watch = g_io_create_watch (state->io, G_IO_IN | G_IO_HUP | G_IO_ERR);

  g_source_set_can_recurse (watch, TRUE);
  g_source_set_static_name (watch, state->name);
  g_source_set_callback (watch, G_SOURCE_FUNC (watch_trampoline), watch_state_ref (state),
                         watch_state_unref);
  g_source_attach (watch, state->context);
  state->sources->watch = watch;
}

static gboolean
watch_trampoline (GIOChannel   *io,
                  GIOCondition  condition,
                  gpointer      user_data)
{
  MpqWatchState *state = user_data;

  if (state->sources == NULL)
    return G_SOURCE_REMOVE;

  if (state->depth > 0)
    {
      _mpq_clear_source (&state->sources->watch);
      state->dropped = TRUE;
      return G_SOURCE_REMOVE;
    }

  watch_state_ref (state);
  state->depth++;
  state->func (state->data);
  state->depth--;

  if (state->dropped && state->sources != NULL)
    {
      state->dropped = FALSE;
      if (state->sources->watch == NULL && state->sources->wanted_watch)
        add_watch (state);
    }
  watch_state_unref (state);
  return G_SOURCE_CONTINUE;
}

void
_mpq_read_sources_update (MpqReadSources *sources,
                          MpqReadState    state,
                          GMainContext   *context,
                          GIOChannel     *io,
                          const char     *name,
                          GSourceFunc     watch_func,
                          GSourceFunc     deliver_func,
                          gpointer        data)
{
  sources->wanted_watch = state.wanted && state.readable;
  if (sources->wanted_watch)
    {
      MpqWatchState *watch_state = sources->watch_state;

      if (watch_state == NULL)
        {
          watch_state = sources->watch_state = g_new0 (MpqWatchState, 1);
          watch_state->refs = 1;
          watch_state->sources = sources;
        }
      watch_state->io = io;
      watch_state->context = context;
      watch_state->name = name;
      watch_state->func = watch_func;
      watch_state->data = data;
      /* Not while a nested dispatch dropped it: the outer one will. */
      if (sources->watch == NULL && !watch_state->dropped)
        add_watch (watch_state);
    }
  else
    _mpq_clear_source (&sources->watch);

  if (state.wanted)
    {
      if (sources->deliver == NULL)
        {
          sources->deliver = g_source_new (&flag_funcs, sizeof (FlagSource));
          g_source_set_priority (sources->deliver, G_PRIORITY_DEFAULT_IDLE);
          _mpq_source_attach (sources->deliver, context, name, deliver_func, data);
        }
      flag_source_set (sources->deliver, context, state.buffered);
    }
  else
    _mpq_clear_source (&sources->deliver);
}

void
_mpq_read_sources_clear (MpqReadSources *sources)
{
  _mpq_clear_source (&sources->watch);
  _mpq_clear_source (&sources->deliver);
  if (sources->watch_state != NULL)
    {
      sources->watch_state->sources = NULL;
      g_clear_pointer (&sources->watch_state, watch_state_unref);
    }
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
