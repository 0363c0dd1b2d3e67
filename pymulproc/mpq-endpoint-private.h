/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "mpq-debug-idle-private.h"
#include "mpq-line-reader-private.h"
#include "mpq-source-private.h"
#include "mpq-writer-private.h"

G_BEGIN_DECLS

/* One end of a socket that carries lines, as MpqPipe and a queue child
 * (mpq-queue-client.c) use it: the descriptor, the line reader, the writer
 * (mpq-writer.c), the consumer's main context with its read sources, the
 * closed idle, the end of the stream and the size rule. It reports to its
 * owner through MpqEndpointClass; the owner keeps what it read and emits
 * its own signals.
 *
 * Threads: an endpoint is used from its owner's thread (the one using the
 * channel; one at a time), and its sources run in @context, which the
 * channel's rules put in that same thread. The writer's own thread never
 * touches it. */

typedef struct
{
  const char *source_name;   /* of the read sources, e.g. "[mpq] pipe read" */
  const char *type_name;     /* in messages: "MpqPipe" */
  const char *closed_text;   /* MPQ_ERROR_CLOSED's message */
  gsize       line_overhead; /* what a line may carry past max-message-size */
  const char *idle_what;     /* MPQ_DEBUG: "pipe" to say when messages wait
                              * unread in the socket (mpq-debug-idle.c), or NULL */

  /* A whole line came, without its newline. FALSE with @error set: a bad
   * line, and reading stops there. */
  gboolean (*line)    (gpointer     owner,
                       const char  *line,
                       gsize        length,
                       GError     **error);
  /* TRUE while lines already read wait to be handed out: the read source
   * reads no more until then, so memory stays bounded (and, while a
   * dispatch is under way, leaves the socket out of its poll set). NULL:
   * never. */
  gboolean (*holding) (gpointer     owner);
  /* The read source ran (mpq-source.c): hand out what is buffered. */
  void     (*deliver) (gpointer     owner);
  /* Emit ::closed; called once, from an idle or a deliver. */
  void     (*closed)  (gpointer     owner);
} MpqEndpointClass;

typedef struct
{
  const MpqEndpointClass *klass;
  gpointer        owner;

  int             fd;              /* -1 before open and once closed */
  MpqWriter      *writer;          /* NULL before open and once closed */
  MpqLineReader   reader;
  gsize           max_message_size;
  GError         *read_error;      /* why reading stopped, or NULL */
  GArray         *fds;             /* int: payloads' descriptors read and not yet
                                    * claimed by their lines, oldest first; NULL
                                    * when this end takes none */

  GMainContext   *context;         /* the consumer's, or NULL */
  MpqReadSources  sources;         /* on @context while someone wants lines;
                                    * writes out before @context waits */
  GSource        *closed_idle;     /* emits ::closed, or NULL */
  MpqDebugIdle   *idle;            /* MPQ_DEBUG, until the owner reads or starts */

  guint           read_done : 1;   /* EOF or a bad line: nothing more to read */
  guint           closed : 1;      /* closed by the owner */
  guint           closed_emitted : 1;
} MpqEndpoint;

void     _mpq_endpoint_init        (MpqEndpoint            *ep,
                                    const MpqEndpointClass *klass,
                                    gpointer                owner,
                                    gsize                   max_message_size);
void     _mpq_endpoint_open        (MpqEndpoint            *ep,
                                    int                     fd);
void     _mpq_endpoint_close       (MpqEndpoint            *ep,
                                    gint                    flush_timeout_ms);
void     _mpq_endpoint_clear       (MpqEndpoint            *ep);

/* Reading */
void     _mpq_endpoint_take_fds    (MpqEndpoint            *ep);
gboolean _mpq_endpoint_read_some   (MpqEndpoint            *ep);
void     _mpq_endpoint_take_lines  (MpqEndpoint            *ep);
void     _mpq_endpoint_stop_reading (MpqEndpoint           *ep,
                                    GError                 *error);

/* Writing and the size rule */
void     _mpq_endpoint_set_max_message_size (MpqEndpoint   *ep,
                                             gsize          size);
gboolean _mpq_endpoint_check_size  (MpqEndpoint            *ep,
                                    gsize                   length,
                                    GError                **error);
gboolean _mpq_endpoint_send        (MpqEndpoint            *ep,
                                    const char             *data,
                                    gsize                   length,
                                    gint                    timeout_ms,
                                    GError                **error);
gboolean _mpq_endpoint_send_fd     (MpqEndpoint            *ep,
                                    const char             *data,
                                    gsize                   length,
                                    int                     pass_fd,
                                    gint                    timeout_ms,
                                    GError                **error);
gboolean _mpq_endpoint_flush       (MpqEndpoint            *ep,
                                    gint                    timeout_ms,
                                    GError                **error);
void     _mpq_endpoint_set_closed_error (MpqEndpoint       *ep,
                                         GError           **error);

/* The main loop side */
gboolean _mpq_endpoint_acquire_context (MpqEndpoint        *ep);
void     _mpq_endpoint_update_sources  (MpqEndpoint        *ep,
                                        gboolean            wanted,
                                        gboolean            buffered);
void     _mpq_endpoint_schedule_closed (MpqEndpoint        *ep);
void     _mpq_endpoint_emit_closed     (MpqEndpoint        *ep);
void     _mpq_endpoint_forget_closed   (MpqEndpoint        *ep);

G_END_DECLS
