/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MPQ_INSIDE) && !defined (MPQ_COMPILATION)
# error "Only <pymulproc/pymulproc.h> can be included directly."
#endif

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "mpq-version-macros.h"

G_BEGIN_DECLS

#define MPQ_TYPE_INVOCATION (mpq_invocation_get_type ())

MPQ_AVAILABLE_IN_1_2
G_DECLARE_FINAL_TYPE (MpqInvocation, mpq_invocation, MPQ, INVOCATION, GObject)

#define MPQ_TYPE_WORKER (mpq_worker_get_type ())

MPQ_AVAILABLE_IN_1_2
G_DECLARE_FINAL_TYPE (MpqWorker, mpq_worker, MPQ, WORKER, GObject)

MPQ_AVAILABLE_IN_1_2
MpqWorker    *mpq_worker_new_for_child          (GError        **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_1_2
gboolean      mpq_worker_run                    (MpqWorker      *self,
                                                 GError        **error);
MPQ_AVAILABLE_IN_1_2
void          mpq_worker_start                  (MpqWorker      *self);
MPQ_AVAILABLE_IN_1_2
void          mpq_worker_stop                   (MpqWorker      *self);
MPQ_AVAILABLE_IN_1_2
void          mpq_worker_set_format             (MpqWorker      *self,
                                                 const char     *format);
MPQ_AVAILABLE_IN_1_2
gint          mpq_worker_get_pid                (MpqWorker      *self);

MPQ_AVAILABLE_IN_1_2
const char   *mpq_invocation_get_request        (MpqInvocation  *self);
MPQ_AVAILABLE_IN_1_2
char         *mpq_invocation_dup_data_json      (MpqInvocation  *self) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_1_2
JsonNode     *mpq_invocation_get_data           (MpqInvocation  *self);
MPQ_AVAILABLE_IN_1_2
guint64       mpq_invocation_get_task_id        (MpqInvocation  *self);
MPQ_AVAILABLE_IN_1_2
GCancellable *mpq_invocation_get_cancellable    (MpqInvocation  *self);
MPQ_AVAILABLE_IN_1_2
guint         mpq_invocation_get_n_items        (MpqInvocation  *self);
MPQ_AVAILABLE_IN_1_2
gboolean      mpq_invocation_return_json        (MpqInvocation  *self,
                                                 const char     *data_json,
                                                 GError        **error);
MPQ_AVAILABLE_IN_1_2
gboolean      mpq_invocation_return_bytes       (MpqInvocation  *self,
                                                 const char     *data_json,
                                                 GBytes         *payload,
                                                 GError        **error);
MPQ_AVAILABLE_IN_1_2
GBytes       *mpq_invocation_get_bytes          (MpqInvocation  *self);
MPQ_AVAILABLE_IN_1_2
gboolean      mpq_invocation_return_error       (MpqInvocation  *self,
                                                 const char     *message,
                                                 GError        **error);
MPQ_AVAILABLE_IN_1_2
gboolean      mpq_invocation_send_progress_json (MpqInvocation  *self,
                                                 const char     *data_json,
                                                 GError        **error);

G_END_DECLS
