/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* MPQ_DEBUG=1 prints every line sent (">": messages, and the queue's
 * control frames as they are made) and received ("<"), with the time
 * (UTC, µs), this process's name and pid, to stderr. */
gboolean _mpq_debug_enabled (void);
void     _mpq_debug_line    (const char *direction,
                             const char *line,
                             gsize       length);

#define MPQ_DEBUG_LINE(dir, line, len) \
  G_STMT_START { \
    if (G_UNLIKELY (_mpq_debug_enabled ())) \
      _mpq_debug_line ((dir), (line), (len)); \
  } G_STMT_END

G_END_DECLS
