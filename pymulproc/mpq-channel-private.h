/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "mpq-channel.h"

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
  guint    count;
  gboolean over;
} MpqDispatchBatch;

void     _mpq_dispatch_batch_init (MpqDispatchBatch *batch);
void     _mpq_dispatch_batch_emit (MpqDispatchBatch *batch,
                                   MpqChannel       *channel,
                                   MpqMessage       *message);

G_END_DECLS
