/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MPQ_INSIDE) && !defined (MPQ_COMPILATION)
# error "Only <pymulproc/pymulproc.h> can be included directly."
#endif

#include <gio/gio.h>

#include "mpq-message.h"
#include "mpq-protocol.h"

G_BEGIN_DECLS

/**
 * MPQ_HAVE_PAYLOADS:
 *
 * Defined when [method@Mpq.Channel.send_bytes] and
 * [method@Mpq.Message.get_bytes] exist, for code built against several
 * versions.
 */
#define MPQ_HAVE_PAYLOADS 1

#define MPQ_TYPE_CHANNEL (mpq_channel_get_type ())

MPQ_AVAILABLE_IN_ALL
G_DECLARE_INTERFACE (MpqChannel, mpq_channel, MPQ, CHANNEL, GObject)

/**
 * MpqChannelInterface:
 * @send_message: sends one message
 * @receive: takes one message, waiting at most a timeout
 * @receive_async: waits for the next message for this process
 * @receive_finish: completes @receive_async
 * @start: starts emitting [signal@Mpq.Channel::message-received]
 * @stop: stops emitting [signal@Mpq.Channel::message-received]
 * @close: closes the channel
 * @flush: writes out what was sent and is still buffered
 * @receive_for_me: takes the next message addressed to this process or to
 *   nobody, waiting at most a timeout; the default is @receive without a
 *   filter, right for a channel with one peer (Since: 1.2)
 *
 * The virtual methods of [iface@Mpq.Channel].
 */
struct _MpqChannelInterface
{
  GTypeInterface parent_iface;

  gboolean    (*send_message)   (MpqChannel           *self,
                                 MpqMessage           *message,
                                 GError              **error);
  MpqMessage *(*receive)        (MpqChannel           *self,
                                 gint                  timeout_ms,
                                 MpqMessageFilter      filter,
                                 gpointer              user_data,
                                 GError              **error);
  void        (*receive_async)  (MpqChannel           *self,
                                 GCancellable         *cancellable,
                                 GAsyncReadyCallback   callback,
                                 gpointer              user_data);
  MpqMessage *(*receive_finish) (MpqChannel           *self,
                                 GAsyncResult         *result,
                                 GError              **error);
  void        (*start)          (MpqChannel           *self);
  void        (*stop)           (MpqChannel           *self);
  void        (*close)          (MpqChannel           *self);
  gboolean    (*flush)          (MpqChannel           *self,
                                 gint                  timeout_ms,
                                 GError              **error);
  MpqMessage *(*receive_for_me) (MpqChannel           *self,
                                 gint                  timeout_ms,
                                 GError              **error);
};

MPQ_AVAILABLE_IN_ALL
gboolean    mpq_channel_flush                (MpqChannel           *self,
                                              gint                  timeout_ms,
                                              GError              **error);
MPQ_AVAILABLE_IN_ALL
gboolean    mpq_channel_send                 (MpqChannel           *self,
                                              const char           *request,
                                              gint                  sender_pid,
                                              gint                  recipient_pid,
                                              JsonNode             *data,
                                              GError              **error);
MPQ_AVAILABLE_IN_ALL
gboolean    mpq_channel_send_json            (MpqChannel           *self,
                                              const char           *request,
                                              gint                  sender_pid,
                                              gint                  recipient_pid,
                                              const char           *data_json,
                                              GError              **error);
MPQ_AVAILABLE_IN_ALL
gboolean    mpq_channel_send_message         (MpqChannel           *self,
                                              MpqMessage           *message,
                                              GError              **error);
MPQ_AVAILABLE_IN_ALL
gboolean    mpq_channel_send_bytes           (MpqChannel           *self,
                                              const char           *request,
                                              gint                  sender_pid,
                                              gint                  recipient_pid,
                                              GBytes               *payload,
                                              GError              **error);
MPQ_AVAILABLE_IN_ALL
MpqMessage *mpq_channel_receive              (MpqChannel           *self,
                                              gint                  timeout_ms,
                                              MpqMessageFilter      filter,
                                              gpointer              user_data,
                                              GError              **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
char       *mpq_channel_receive_json         (MpqChannel           *self,
                                              gint                  timeout_ms,
                                              GError              **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_1_2
MpqMessage *mpq_channel_receive_for_me       (MpqChannel           *self,
                                              gint                  timeout_ms,
                                              GError              **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_1_2
char       *mpq_channel_receive_batch_json   (MpqChannel           *self,
                                              guint                 max_messages,
                                              gint                  timeout_ms,
                                              GError              **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
void        mpq_channel_receive_async        (MpqChannel           *self,
                                              GCancellable         *cancellable,
                                              GAsyncReadyCallback   callback,
                                              gpointer              user_data);
MPQ_AVAILABLE_IN_ALL
MpqMessage *mpq_channel_receive_finish       (MpqChannel           *self,
                                              GAsyncResult         *result,
                                              GError              **error) G_GNUC_WARN_UNUSED_RESULT;
MPQ_AVAILABLE_IN_ALL
void        mpq_channel_start                (MpqChannel           *self);
MPQ_AVAILABLE_IN_ALL
void        mpq_channel_stop                 (MpqChannel           *self);
MPQ_AVAILABLE_IN_ALL
void        mpq_channel_close                (MpqChannel           *self);
MPQ_AVAILABLE_IN_ALL
MpqRole     mpq_channel_get_role             (MpqChannel           *self);
MPQ_AVAILABLE_IN_ALL
gint        mpq_channel_get_pid              (MpqChannel           *self);
MPQ_AVAILABLE_IN_ALL
gsize       mpq_channel_get_max_message_size (MpqChannel           *self);
MPQ_AVAILABLE_IN_ALL
void        mpq_channel_set_max_message_size (MpqChannel           *self,
                                              gsize                 max_message_size);

G_END_DECLS
