/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-glib/json-glib.h>

#include "mpq-json-private.h"
#include "mpq-message.h"

G_BEGIN_DECLS

/* The wire codec: one message is one line of compact JSON, the array
 * [request, sender_pid, recipient_pid, data], without the trailing "\n". */

MpqMessage *_mpq_codec_decode (const char  *line,
                               gsize        length,
                               GError     **error);
MpqMessage *_mpq_codec_read_message (MpqJsonReader  *reader,
                                     GError        **error);
gboolean    _mpq_codec_encode (MpqMessage  *message,
                               GString     *out,
                               GError     **error);

G_END_DECLS
