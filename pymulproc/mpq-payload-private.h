/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Binary payloads that travel beside a message line as a sealed memfd
 * (docs/design-decisions.md, "Payloads by descriptor"). Any thread: the
 * table of mappings has its own lock.
 *
 * A sender copies a payload into a new memfd and seals it against
 * writing, shrinking and growing; the receiver checks those seals and the
 * size before it maps the file read-only, so that nothing the sender does
 * later can change the bytes or make them vanish under the receiver (a
 * shrunk file raises SIGBUS on access). A payload that came as a memfd
 * keeps it: sent on, it goes as the same file, without a copy. */

/* The most bytes one payload may have: what a 32-bit GJS or Python could
 * not index anyway is refused before it is mapped. */
#define MPQ_PAYLOAD_MAX_SIZE ((gsize) G_MAXINT32 * 2)

gsize    _mpq_payload_inline_length (gsize size);
gboolean _mpq_payload_goes_inline   (gsize size,
                                     gsize max_message_size);
int     _mpq_payload_memfd_new  (GBytes  *payload,
                                 GError **error);
gboolean _mpq_payload_check_fd  (int      fd,
                                 gsize    size,
                                 GError **error);
GBytes *_mpq_payload_map        (int      fd,
                                 gsize    size,
                                 GError **error);
int     _mpq_payload_peek_fd    (GBytes  *payload);

G_END_DECLS
