/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MPQ_INSIDE) && !defined (MPQ_COMPILATION)
# error "Only <pymulproc/pymulproc.h> can be included directly."
#endif

#include "mpq-channel.h"

G_BEGIN_DECLS

/**
 * MPQ_DEFAULT_PUT_TIMEOUT:
 *
 * How long, in milliseconds, one attempt to put into a full queue waits
 * for room: the default of [property@Mpq.Queue:put-timeout].
 */
#define MPQ_DEFAULT_PUT_TIMEOUT 100

/**
 * MPQ_DEFAULT_PUT_ATTEMPTS:
 *
 * How many times a put into a full queue waits
 * [property@Mpq.Queue:put-timeout] before it fails with `MPQ_ERROR_FULL`:
 * the default of [property@Mpq.Queue:put-attempts].
 */
#define MPQ_DEFAULT_PUT_ATTEMPTS 10

/**
 * MPQ_DEFAULT_PREFETCH:
 *
 * The most messages for anyone dispatch hands a process ahead of its
 * [signal@Mpq.Channel::message-received] handlers: the default of
 * [property@Mpq.Queue:prefetch]. The queue hands fewer while handlers
 * take long.
 */
#define MPQ_DEFAULT_PREFETCH 256

/**
 * MPQ_DEFAULT_LEASE_TIME:
 *
 * How long, in milliseconds, a message in a participant's hand stays
 * its own on a queue kept on a server without being renewed: the default
 * of [property@Mpq.Queue:lease-time].
 *
 * Since: 1.2
 */
#define MPQ_DEFAULT_LEASE_TIME 10000

#define MPQ_TYPE_QUEUE (mpq_queue_get_type ())

MPQ_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (MpqQueue, mpq_queue, MPQ, QUEUE, GObject)

MPQ_AVAILABLE_IN_ALL
MpqQueue    *mpq_queue_new                 (guint                  max_size,
                                            GError               **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
MpqQueue    *mpq_queue_new_for_child       (GError               **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_1_2
MpqQueue    *mpq_queue_new_for_uri         (const char            *uri,
                                            const char            *name,
                                            guint                  max_size,
                                            GError               **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
GSubprocess *mpq_queue_spawn               (MpqQueue              *self,
                                            const char * const    *argv,
                                            GError               **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
GSubprocess *mpq_queue_spawn_with_launcher (MpqQueue              *self,
                                            GSubprocessLauncher   *launcher,
                                            const char * const    *argv,
                                            GError               **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
gboolean     mpq_queue_is_empty            (MpqQueue              *self,
                                            GError               **error);
MPQ_AVAILABLE_IN_ALL
gboolean     mpq_queue_join                (MpqQueue              *self,
                                            gint                   timeout_ms,
                                            GError               **error);
MPQ_AVAILABLE_IN_ALL
void         mpq_queue_join_async          (MpqQueue              *self,
                                            GCancellable          *cancellable,
                                            GAsyncReadyCallback    callback,
                                            gpointer               user_data);
MPQ_AVAILABLE_IN_ALL
gboolean     mpq_queue_join_finish         (MpqQueue              *self,
                                            GAsyncResult          *result,
                                            GError               **error);
MPQ_AVAILABLE_IN_ALL
guint        mpq_queue_get_max_size        (MpqQueue              *self);
MPQ_AVAILABLE_IN_ALL
gint         mpq_queue_get_parent_pid      (MpqQueue              *self);
MPQ_AVAILABLE_IN_ALL
gint         mpq_queue_get_put_timeout     (MpqQueue              *self);
MPQ_AVAILABLE_IN_ALL
void         mpq_queue_set_put_timeout     (MpqQueue              *self,
                                            gint                   put_timeout_ms);
MPQ_AVAILABLE_IN_ALL
guint        mpq_queue_get_put_attempts    (MpqQueue              *self);
MPQ_AVAILABLE_IN_ALL
void         mpq_queue_set_put_attempts    (MpqQueue              *self,
                                            guint                  put_attempts);
MPQ_AVAILABLE_IN_ALL
guint        mpq_queue_get_prefetch        (MpqQueue              *self);
MPQ_AVAILABLE_IN_ALL
void         mpq_queue_set_prefetch        (MpqQueue              *self,
                                            guint                  prefetch);
MPQ_AVAILABLE_IN_1_2
guint        mpq_queue_get_lease_time      (MpqQueue              *self);
MPQ_AVAILABLE_IN_1_2
void         mpq_queue_set_lease_time      (MpqQueue              *self,
                                            guint                  lease_time_ms);

G_END_DECLS
