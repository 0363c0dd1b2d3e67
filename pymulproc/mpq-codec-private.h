/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-glib/json-glib.h>

#include "mpq-message.h"

G_BEGIN_DECLS

/* The wire codec: one message is one line of compact JSON, the array
 * [request, sender_pid, recipient_pid, data], without the trailing "\n". */

gboolean    _mpq_codec_check_depth (const char  *text,
                                    gsize        length,
                                    guint        max_depth,
                                    GError     **error);
MpqMessage *_mpq_codec_decode      (JsonParser  *parser,
                                    const char  *line,
                                    gsize        length,
                                    GError     **error);
void        _mpq_codec_encode      (MpqMessage  *message,
                                    GString     *out);
void        _mpq_codec_append_string (GString   *out,
                                      const char *str);

G_END_DECLS
