/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A source that runs its callback once each time another thread makes it
 * ready with g_source_set_ready_time (source, 0), which is thread-safe and
 * cheap when it is ready already. */
GSource *_mpq_wake_source_new (const char *name);

/* A GDestroyNotify for a source one owns a reference to: detaches it from
 * its context and drops the reference. */
void     _mpq_source_destroy_and_unref (gpointer source);

G_END_DECLS
