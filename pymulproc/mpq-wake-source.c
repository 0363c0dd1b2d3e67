/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-wake-source-private.h"

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
_mpq_wake_source_new (const char *name)
{
  GSource *source = g_source_new (&wake_funcs, sizeof (GSource));

  g_source_set_static_name (source, name);
  return source;
}

void
_mpq_source_destroy_and_unref (gpointer source)
{
  g_source_destroy (source);
  g_source_unref (source);
}
