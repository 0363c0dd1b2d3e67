/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MPQ_INSIDE) && !defined (MPQ_COMPILATION)
# error "Only <pymulproc/pymulproc.h> can be included directly."
#endif

#include "mpq-channel.h"

G_BEGIN_DECLS

#define MPQ_TYPE_PIPE (mpq_pipe_get_type ())

MPQ_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (MpqPipe, mpq_pipe, MPQ, PIPE, GObject)

MPQ_AVAILABLE_IN_ALL
MpqPipe     *mpq_pipe_new                 (GError               **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
MpqPipe     *mpq_pipe_new_for_child       (GError               **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
gboolean     mpq_pipe_new_pair            (MpqPipe              **parent,
                                           MpqPipe              **child,
                                           GError               **error);
MPQ_AVAILABLE_IN_ALL
GSubprocess *mpq_pipe_spawn               (MpqPipe               *self,
                                           const char * const    *argv,
                                           GError               **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
GSubprocess *mpq_pipe_spawn_with_launcher (MpqPipe               *self,
                                           GSubprocessLauncher   *launcher,
                                           const char * const    *argv,
                                           GError               **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
gint         mpq_pipe_get_send_timeout    (MpqPipe               *self);
MPQ_AVAILABLE_IN_ALL
void         mpq_pipe_set_send_timeout    (MpqPipe               *self,
                                           gint                   send_timeout_ms);

G_END_DECLS
