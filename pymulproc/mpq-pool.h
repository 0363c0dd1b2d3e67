/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MPQ_INSIDE) && !defined (MPQ_COMPILATION)
# error "Only <pymulproc/pymulproc.h> can be included directly."
#endif

#include "mpq-message.h"
#include "mpq-queue.h"

G_BEGIN_DECLS

/**
 * MpqTaskState:
 * @MPQ_TASK_QUEUED: submitted, waiting for a worker
 * @MPQ_TASK_RUNNING: handed to a worker
 * @MPQ_TASK_DONE: the worker answered; the reply is there
 * @MPQ_TASK_FAILED: the worker answered with an error, died with it too
 *   often, or it ran past [property@Mpq.Pool:task-timeout]
 * @MPQ_TASK_CANCELLED: cancelled before it ended
 *
 * Where an [class@Mpq.Task] stands. The last three are final.
 *
 * Since: 1.2
 */
typedef enum
{
  MPQ_TASK_QUEUED,
  MPQ_TASK_RUNNING,
  MPQ_TASK_DONE,
  MPQ_TASK_FAILED,
  MPQ_TASK_CANCELLED,
} MpqTaskState;

/**
 * MPQ_POOL_DEFAULT_MAX_ATTEMPTS:
 *
 * The default of [property@Mpq.Pool:max-attempts].
 *
 * Since: 1.2
 */
#define MPQ_POOL_DEFAULT_MAX_ATTEMPTS 3

#define MPQ_TYPE_TASK (mpq_task_get_type ())

MPQ_AVAILABLE_IN_1_2
G_DECLARE_FINAL_TYPE (MpqTask, mpq_task, MPQ, TASK, GObject)

#define MPQ_TYPE_POOL (mpq_pool_get_type ())

MPQ_AVAILABLE_IN_1_2
G_DECLARE_FINAL_TYPE (MpqPool, mpq_pool, MPQ, POOL, GObject)

MPQ_AVAILABLE_IN_1_2
MpqPool      *mpq_pool_new                (const char * const   *argv,
                                           guint                 n_workers,
                                           GError              **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_1_2
MpqPool      *mpq_pool_new_with_launcher  (GSubprocessLauncher  *launcher,
                                           const char * const   *argv,
                                           guint                 n_workers,
                                           GError              **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_1_2
MpqPool      *mpq_pool_new_for_queue      (MpqQueue             *queue,
                                           const char * const   *argv,
                                           guint                 n_workers,
                                           GError              **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_1_2
MpqQueue     *mpq_pool_get_queue          (MpqPool              *self);
MPQ_AVAILABLE_IN_1_2
MpqTask      *mpq_pool_submit             (MpqPool              *self,
                                           const char           *request,
                                           const char           *data_json,
                                           GError              **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_1_2
MpqTask      *mpq_pool_submit_bytes       (MpqPool              *self,
                                           const char           *request,
                                           const char           *data_json,
                                           GBytes               *payload,
                                           GError              **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_1_2
const char   *mpq_pool_get_worker_format  (MpqPool              *self);
MPQ_AVAILABLE_IN_1_2
void          mpq_pool_map_async          (MpqPool              *self,
                                           const char           *request,
                                           const char * const   *data_json,
                                           GCancellable         *cancellable,
                                           GAsyncReadyCallback   callback,
                                           gpointer              user_data);
MPQ_AVAILABLE_IN_1_2
GPtrArray    *mpq_pool_map_finish         (MpqPool              *self,
                                           GAsyncResult         *result,
                                           GError              **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_1_2
GPtrArray    *mpq_pool_map                (MpqPool              *self,
                                           const char           *request,
                                           const char * const   *data_json,
                                           GCancellable         *cancellable,
                                           GError              **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_1_2
void          mpq_pool_map_json_async     (MpqPool              *self,
                                           const char           *request,
                                           const char           *items_json,
                                           GCancellable         *cancellable,
                                           GAsyncReadyCallback   callback,
                                           gpointer              user_data);
MPQ_AVAILABLE_IN_1_2
char         *mpq_pool_map_json_finish    (MpqPool              *self,
                                           GAsyncResult         *result,
                                           GError              **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_1_2
char         *mpq_pool_map_json           (MpqPool              *self,
                                           const char           *request,
                                           const char           *items_json,
                                           GCancellable         *cancellable,
                                           GError              **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_1_2
guint         mpq_pool_broadcast          (MpqPool              *self,
                                           const char           *request,
                                           const char           *data_json,
                                           GError              **error);
MPQ_AVAILABLE_IN_1_2
gboolean      mpq_pool_shutdown           (MpqPool              *self,
                                           gint                  timeout_ms,
                                           GError              **error);
MPQ_AVAILABLE_IN_1_2
void          mpq_pool_shutdown_async     (MpqPool              *self,
                                           gint                  timeout_ms,
                                           GCancellable         *cancellable,
                                           GAsyncReadyCallback   callback,
                                           gpointer              user_data);
MPQ_AVAILABLE_IN_1_2
gboolean      mpq_pool_shutdown_finish    (MpqPool              *self,
                                           GAsyncResult         *result,
                                           GError              **error);
MPQ_AVAILABLE_IN_1_2
guint         mpq_pool_get_n_workers      (MpqPool              *self);
MPQ_AVAILABLE_IN_1_2
void          mpq_pool_set_n_workers      (MpqPool              *self,
                                           guint                 n_workers);
MPQ_AVAILABLE_IN_1_2
guint         mpq_pool_get_max_attempts   (MpqPool              *self);
MPQ_AVAILABLE_IN_1_2
void          mpq_pool_set_max_attempts   (MpqPool              *self,
                                           guint                 max_attempts);
MPQ_AVAILABLE_IN_1_2
gint          mpq_pool_get_task_timeout   (MpqPool              *self);
MPQ_AVAILABLE_IN_1_2
void          mpq_pool_set_task_timeout   (MpqPool              *self,
                                           gint                  task_timeout_ms);
MPQ_AVAILABLE_IN_1_2
GArray       *mpq_pool_dup_worker_pids    (MpqPool              *self);

MPQ_AVAILABLE_IN_1_2
MpqMessage   *mpq_task_wait               (MpqTask              *self,
                                           gint                  timeout_ms,
                                           GError              **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_1_2
void          mpq_task_wait_async         (MpqTask              *self,
                                           GCancellable         *cancellable,
                                           GAsyncReadyCallback   callback,
                                           gpointer              user_data);
MPQ_AVAILABLE_IN_1_2
MpqMessage   *mpq_task_wait_finish        (MpqTask              *self,
                                           GAsyncResult         *result,
                                           GError              **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_1_2
void          mpq_task_cancel             (MpqTask              *self);
MPQ_AVAILABLE_IN_1_2
guint64       mpq_task_get_id             (MpqTask              *self);
MPQ_AVAILABLE_IN_1_2
const char   *mpq_task_get_request        (MpqTask              *self);
MPQ_AVAILABLE_IN_1_2
MpqTaskState  mpq_task_get_state          (MpqTask              *self);
MPQ_AVAILABLE_IN_1_2
guint         mpq_task_get_attempts       (MpqTask              *self);
MPQ_AVAILABLE_IN_1_2
gint          mpq_task_get_worker_pid     (MpqTask              *self);

G_END_DECLS
