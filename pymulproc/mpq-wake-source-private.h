/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A source that runs its callback once each time another thread makes it
 * ready with g_source_set_ready_time (source, 0), which is thread-safe and
 * cheap when it is ready already. */
GSource *_mpq_wake_source_new (const char *name);

G_END_DECLS
