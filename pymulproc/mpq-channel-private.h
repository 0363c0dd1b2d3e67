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

G_END_DECLS
