/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "mpq-channel.h"
#include "mpq-codec-private.h"

G_BEGIN_DECLS

/* Property ids every implementation overrides, in this order, from 1. */
enum
{
  MPQ_CHANNEL_PROP_ROLE = 1,
  MPQ_CHANNEL_PROP_PID,
  MPQ_CHANNEL_PROP_MAX_MESSAGE_SIZE,
  MPQ_CHANNEL_N_PROPS,
};

void _mpq_channel_install_properties   (GObjectClass *object_class);
void _mpq_channel_emit_message_received (MpqChannel  *self,
                                         MpqMessage  *message);
void _mpq_channel_emit_closed          (MpqChannel   *self);

/* One dispatch of a queue hands over what is in hand, a batch, and gives
 * the main loop back after DIE (a worker quits on it: the next message
 * may be someone else's), after MPQ_DISPATCH_MAX messages or once
 * MPQ_DISPATCH_US have passed, so that other sources get their turn. */
#define MPQ_DISPATCH_MAX 64
#define MPQ_DISPATCH_US  1000

typedef struct
{
  gint64   started;
  gint64   last;     /* when the last emission returned */
  guint    count;
  gboolean over;
} MpqDispatchBatch;

void     _mpq_dispatch_batch_init (MpqDispatchBatch *batch);
gint64   _mpq_dispatch_batch_emit (MpqDispatchBatch *batch,
                                   MpqChannel       *channel,
                                   MpqMessage       *message);

/* What the library's own channels do beside MpqChannelInterface: send and
 * send_json without building an MpqMessage, and receive_json handing over
 * a line as it came. Private vfuncs, kept out of the public interface
 * struct (no padding there, and MpqOutgoing is private): an implementation
 * registers them from its iface_init. The wrappers in mpq-channel.c call
 * them when a channel has them and go through MpqMessage otherwise; they
 * never test which class they hold. */
typedef struct
{
  gboolean (*send_outgoing) (MpqChannel         *self,
                             const MpqOutgoing  *outgoing,
                             GError            **error);
  char    *(*receive_json)  (MpqChannel         *self,
                             gint                timeout_ms,
                             GError            **error);   /* or NULL */
} MpqChannelPrivateVfuncs;

/* Sends through @self's send_outgoing when it has one: the library's own
 * channels send without building an MpqMessage. NOT_OURS: the caller
 * builds a message (another implementation, or a request that is not
 * UTF-8). The caller's thread. */
typedef enum { MPQ_SEND_SENT, MPQ_SEND_FAILED, MPQ_SEND_NOT_OURS } MpqSendResult;

MpqSendResult _mpq_channel_send_outgoing (MpqChannel  *self,
                                          const char  *request,
                                          gint         sender_pid,
                                          gint         recipient_pid,
                                          JsonNode    *data,
                                          const char  *data_text,
                                          gsize        data_length,
                                          GError     **error);

/* From an implementation's iface_init (GType runs those one at a time);
 * @vfuncs must stay valid for the life of the process. */
void     _mpq_channel_implement_private (MpqChannelInterface           *iface,
                                         const MpqChannelPrivateVfuncs *vfuncs);
/* Any thread. */
const MpqChannelPrivateVfuncs *_mpq_channel_get_private (MpqChannel *self);

/* Whole objects: a channel that needs set-up implements GInitable, and a
 * binding that made it with g_object_new() without g_initable_init()
 * (PyGObject 3.42's Mpq.Pipe()) still gets a whole object: every public
 * call runs the set-up first, once, and gives its error, if any, as a
 * GError each time. GInitable's init vfunc calls the same. */
typedef struct
{
  gboolean  done;
  GError   *error;    /* why the set-up failed, or NULL */
} MpqInitOnce;

typedef gboolean (*MpqInitFunc) (GInitable  *initable,
                                 GError    **error);

gboolean _mpq_init_once       (MpqInitOnce  *once,
                               GInitable    *initable,
                               MpqInitFunc   init,
                               GError      **error);
void     _mpq_init_once_clear (MpqInitOnce  *once);

G_END_DECLS
