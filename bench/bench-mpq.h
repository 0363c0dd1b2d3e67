/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <pymulproc/pymulproc.h>

#include "bench-common.h"

G_BEGIN_DECLS

/* The value of a message's data, after checking its request, sender and
 * payload: the run fails on anything unexpected. */
gint64 bench_mpq_value     (MpqMessage *message,
                            const char *request);
void   bench_mpq_send      (MpqChannel *channel,
                            const char *request,
                            gint        recipient,
                            JsonNode   *data);
/* Sends {"value":v,"payload":...} as --data says: JSON text through
 * mpq_channel_send_json () (the default), or a JsonNode built with
 * json-glib through mpq_channel_send (). */
void   bench_mpq_send_value (MpqChannel      *channel,
                             const BenchArgs *args,
                             const char      *request,
                             gint             recipient,
                             gint64           value);
/* A blocking receive (-1) that fails the run on an error. */
MpqMessage *bench_mpq_receive (MpqChannel *channel);
/* A pipe with this program started as its child, given --rss-file=@rss. */
MpqPipe    *bench_mpq_pipe_spawn (const BenchArgs  *args,
                                  BenchRssFile     *rss,
                                  GSubprocess     **child);
/* The child's end of its pipe. */
MpqPipe    *bench_mpq_pipe_for_child (void);
/* A "closed" handler: the peer hung up before the work was done. */
void   bench_mpq_on_closed (MpqChannel *channel,
                            gpointer    user_data);

/* W3 and W4 over an MpqQueue, parent or child: the exit status. 77 (and a
 * {"skipped": ...} line) when this build has no MpqQueue yet. */
int bench_mpq_queue (BenchArgs *args);

/* W6 over an MpqPipe, parent or child: the exit status. 77 (and a
 * {"skipped": ...} line) when this build has no payload API yet. */
int bench_mpq_payload (BenchArgs *args);

G_END_DECLS
