/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-glib/json-glib.h>

#include "mpq-json-private.h"
#include "mpq-message.h"

G_BEGIN_DECLS

/* The wire codec: one message is one line of compact JSON, the array
 * [request, sender_pid, recipient_pid, data], without the trailing "\n". */

/* A message to send, without an MpqMessage: @data_text (compact JSON,
 * checked) if set, else @data (NULL for null). */
typedef struct
{
  const char *request;
  gint        sender_pid;     /* > 0 */
  gint        recipient_pid;
  JsonNode   *data;
  const char *data_text;
  gsize       data_length;
  GBytes     *payload;        /* or NULL */
  gboolean    payload_by_fd;  /* {"fd":N}: its memfd goes with the line */
} MpqOutgoing;

gboolean    _mpq_codec_encode_outgoing (const MpqOutgoing  *outgoing,
                                        GString            *out,
                                        GError            **error);

MpqMessage *_mpq_codec_decode (const char  *line,
                               gsize        length,
                               GError     **error);
MpqMessage *_mpq_codec_decode_dropping_payload (const char *line,
                                                gsize       length);
MpqMessage *_mpq_codec_decode_full (const char  *line,
                                    gsize        length,
                                    GArray      *fds,
                                    GError     **error);
MpqMessage *_mpq_codec_read_message (MpqJsonReader  *reader,
                                     GArray         *fds,
                                     GError        **error);
/* Where the parts of a checked message line are, so that it can be
 * decoded later without a second parse (_mpq_codec_decode_checked ()):
 * offsets into the line. @plain is FALSE when that cannot be done (an
 * escaped request, data with whitespace, a payload): decode in full. */
typedef struct
{
  gboolean plain;
  gint     sender_pid;
  gint     recipient_pid;
  guint32  request_start;
  guint32  request_length;
  guint32  data_start;     /* with @data_length 0: null data */
  guint32  data_length;
} MpqLineShape;

gboolean    _mpq_codec_check_full (const char    *line,
                                   gsize          length,
                                   gboolean       fds_ok,
                                   MpqLineShape  *shape,
                                   gsize         *fd_size,
                                   GError       **error);
MpqMessage *_mpq_codec_decode_checked (const char         *line,
                                       gsize               length,
                                       const MpqLineShape *shape);
gboolean    _mpq_codec_check  (const char  *line,
                               gsize        length,
                               gint        *recipient_pid,
                               GError     **error);
gboolean    _mpq_codec_encode (MpqMessage  *message,
                               GString     *out,
                               GError     **error);
gboolean    _mpq_codec_encode_full (MpqMessage  *message,
                                    gboolean     payload_by_fd,
                                    GString     *out,
                                    GError     **error);

G_END_DECLS
