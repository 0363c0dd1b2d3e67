/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "mpq-worker.h"

G_BEGIN_DECLS

/* Between a worker and its invocations (mpq-worker.c, mpq-invocation.c):
 * the thread the worker is used from. */
MpqInvocation *_mpq_invocation_new  (MpqWorker    *worker,
                                     guint64       id,
                                     const char   *request,
                                     JsonNode     *data,
                                     GCancellable *cancellable);
gboolean       _mpq_worker_send     (MpqWorker    *self,
                                     const char   *request,
                                     const char   *frame,
                                     GError      **error);
gboolean       _mpq_worker_answer   (MpqWorker    *self,
                                     guint64       id,
                                     gboolean      finished,
                                     const char   *json_or_text,
                                     GError      **error);

G_END_DECLS
