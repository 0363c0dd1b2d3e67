/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "mpq-message.h"

G_BEGIN_DECLS

/* Builds a message without property machinery; takes @request and @data. */
MpqMessage *_mpq_message_new_take (char     *request,
                                   gint      sender_pid,
                                   gint      recipient_pid,
                                   JsonNode *data);
MpqMessage *_mpq_message_new_take_text (char     *request,
                                        gint      sender_pid,
                                        gint      recipient_pid,
                                        char     *data_text,
                                        gsize     length);
void        _mpq_message_set_payload (MpqMessage *self,
                                      GBytes     *payload);
gboolean    _mpq_data_json_is_compact (const char *data_json,
                                       gsize       length);
const char *_mpq_message_peek_data_text (MpqMessage *self,
                                         gsize      *length);

void        _mpq_message_set_origin (MpqMessage *self,
                                     gint        origin_pid);
gint        _mpq_message_get_origin (MpqMessage *self);

G_END_DECLS
