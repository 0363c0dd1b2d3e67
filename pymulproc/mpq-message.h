/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MPQ_INSIDE) && !defined (MPQ_COMPILATION)
# error "Only <pymulproc/pymulproc.h> can be included directly."
#endif

#include <glib-object.h>
#include <json-glib/json-glib.h>

#include "mpq-version-macros.h"

G_BEGIN_DECLS

#define MPQ_TYPE_MESSAGE (mpq_message_get_type ())

MPQ_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (MpqMessage, mpq_message, MPQ, MESSAGE, GObject)

MPQ_AVAILABLE_IN_ALL
MpqMessage  *mpq_message_new                (const char   *request,
                                             gint          sender_pid,
                                             gint          recipient_pid,
                                             JsonNode     *data) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
MpqMessage  *mpq_message_new_with_data_json (const char   *request,
                                             gint          sender_pid,
                                             gint          recipient_pid,
                                             const char   *data_json,
                                             GError      **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
MpqMessage  *mpq_message_new_with_bytes     (const char   *request,
                                             gint          sender_pid,
                                             gint          recipient_pid,
                                             JsonNode     *data,
                                             GBytes       *payload) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
MpqMessage  *mpq_message_new_from_json      (const char   *text,
                                             gssize        length,
                                             GError      **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
char        *mpq_message_to_json            (MpqMessage   *self,
                                             gsize        *length) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
const char  *mpq_message_get_request        (MpqMessage   *self);
MPQ_AVAILABLE_IN_ALL
gint         mpq_message_get_sender_pid     (MpqMessage   *self);
MPQ_AVAILABLE_IN_ALL
gint         mpq_message_get_recipient_pid  (MpqMessage   *self);
MPQ_AVAILABLE_IN_ALL
JsonNode    *mpq_message_get_data           (MpqMessage   *self);
MPQ_AVAILABLE_IN_ALL
char        *mpq_message_dup_data_json      (MpqMessage   *self) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
GBytes      *mpq_message_get_bytes          (MpqMessage   *self);
MPQ_AVAILABLE_IN_ALL
gboolean     mpq_message_is_for             (MpqMessage   *self,
                                             gint          pid);

/**
 * MpqMessageFilter:
 * @message: the message at the front of the channel
 * @user_data: data given with the filter
 *
 * Decides whether the caller of [method@Mpq.Channel.receive] takes @message.
 *
 * Returns: %TRUE to take @message
 */
typedef gboolean (*MpqMessageFilter) (MpqMessage *message,
                                      gpointer    user_data);

G_END_DECLS
