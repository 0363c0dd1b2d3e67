/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* W8's integers as JSON text, both ways, in the C parent and the C worker
 * of the pool benchmark (bench-pool.c, bench-pool-worker.c): what a
 * program that maps integers writes and reads, strictly, without a
 * JsonNode per element (see bench/README.md). */

void     bench_pool_append_int     (GString    *out,
                                    gint64      value);
gboolean bench_pool_read_int_array (const char *text,
                                    gsize       length,
                                    GArray     *values);

G_END_DECLS
