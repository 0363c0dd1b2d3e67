/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* What parents and children of every channel kind share: the socketpair,
 * handing one end to a spawned child, and claiming it in the child. */

gboolean     _mpq_socketpair        (int                   fds[2],
                                     GError              **error);
void         _mpq_fd_set_nonblocking (int                  fd);
GSubprocess *_mpq_spawn_child       (GSubprocessLauncher  *launcher,
                                     int                   child_fd,
                                     const char           *kind,
                                     const char * const   *argv,
                                     GError              **error);
int          _mpq_claim_child_fd    (const char           *kind,
                                     GError              **error);
gboolean     _mpq_wait_fd           (int                   fd,
                                     short                 events,
                                     gint64                deadline);

gssize       _mpq_write_some        (int                   fd,
                                     const char           *data,
                                     gsize                 length,
                                     GError              **error);
gssize       _mpq_write_some_with_fd (int                  fd,
                                     const char          *data,
                                     gsize                length,
                                     int                  pass_fd,
                                     GError             **error);
gssize       _mpq_write_when_ready  (int                   fd,
                                     const char           *data,
                                     gsize                 length,
                                     gint64                deadline,
                                     const char           *timed_out_message,
                                     GError              **error);
gint64       _mpq_deadline_from_timeout (gint              timeout_ms);
gint         _mpq_own_pid           (void);

G_END_DECLS
