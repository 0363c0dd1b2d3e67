/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* W6's binary payloads: how the parent makes each one and checks what
 * comes back (bench_common.py does the same in Python).
 *
 * Bytes 0-7 are the message's index, the last 8 a checksum of 16 bytes set
 * at places that depend on the index, one in each of 16 stripes of the
 * body (two never fall on the same byte); the rest is a fixed pattern
 * written once per buffer. Checking those few bytes finds a wrong, stale,
 * reordered or cut payload without reading 16 MiB, so the check costs next
 * to nothing beside the transfer. */

#include "bench-common.h"

G_BEGIN_DECLS

/* Buffers for payloads that leave as GBytes: a buffer comes back to the
 * pool when the last reference to its GBytes is dropped, from any thread,
 * so a transport may hold one as long as it likes. */
typedef struct _BenchPayloadPool BenchPayloadPool;

BenchPayloadPool *bench_payload_pool_new  (gsize              size);
/* Message @index's payload, in a buffer nobody else holds. One thread
 * only takes. */
GBytes           *bench_payload_pool_take (BenchPayloadPool  *pool,
                                           gint64             index);
/* Frees the buffers that came back; a buffer still held is left to its
 * holder (never freed under it). */
void              bench_payload_pool_free (BenchPayloadPool  *pool);

/* The index a payload says it is (a child's check); fails the run unless
 * it is @size bytes. */
gint64            bench_payload_index     (const guint8      *data,
                                           gsize              length,
                                           gint64             size);
/* Fails the run unless @data is message @index's payload of @size bytes. */
void              bench_payload_check     (const guint8      *data,
                                           gsize              length,
                                           gint64             size,
                                           gint64             index);

/* A sealed memfd (nothing may write, shrink or grow it) with @data in it;
 * GDBus passes it. */
int               bench_memfd_new         (GBytes            *data);
/* Maps a memfd read-only after checking that it is sealed and @size
 * bytes; fails the run on anything else. Undo with munmap (). */
const guint8     *bench_memfd_map         (int                fd,
                                           gint64             size);

G_END_DECLS
