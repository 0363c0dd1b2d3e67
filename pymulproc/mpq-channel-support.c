/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-channel-private.h"
#include "mpq-protocol.h"
#include "mpq-spawn-private.h"

/* What the channels' implementations share besides the interface: their
 * private vfuncs (and sending through them), a dispatch batch, and making an object whole once
 * (GInitable). The channel's user's thread, but where said. */

/* The private vfuncs of the few types that have them. Written from
 * iface_init, which GType runs one at a time and before any instance of
 * that type exists; read after that, without a lock. */
static struct
{
  GType                          type;
  const MpqChannelPrivateVfuncs *vfuncs;
} private_impls[4];
static gint n_private_impls;

/* Any thread, from an implementation's iface_init. */
void
_mpq_channel_implement_private (MpqChannelInterface           *iface,
                                const MpqChannelPrivateVfuncs *vfuncs)
{
  gint n = g_atomic_int_get (&n_private_impls);

  g_assert (n < (gint) G_N_ELEMENTS (private_impls));
  private_impls[n].type = iface->parent_iface.g_instance_type;
  private_impls[n].vfuncs = vfuncs;
  g_atomic_int_set (&n_private_impls, n + 1);
}

/* The private vfuncs of @self's type, or NULL. Any thread. */
const MpqChannelPrivateVfuncs *
_mpq_channel_get_private (MpqChannel *self)
{
  GType type = G_OBJECT_TYPE (self);
  gint n = g_atomic_int_get (&n_private_impls);

  for (gint i = 0; i < n; i++)
    if (private_impls[i].type == type)
      return private_impls[i].vfuncs;
  return NULL;
}

void
_mpq_channel_install_properties (GObjectClass *object_class)
{
  g_object_class_override_property (object_class, MPQ_CHANNEL_PROP_ROLE, "role");
  g_object_class_override_property (object_class, MPQ_CHANNEL_PROP_PID, "pid");
  g_object_class_override_property (object_class, MPQ_CHANNEL_PROP_MAX_MESSAGE_SIZE,
                                    "max-message-size");
}

MpqSendResult
_mpq_channel_send_outgoing (MpqChannel  *self,
                            const char  *request,
                            gint         sender_pid,
                            gint         recipient_pid,
                            JsonNode    *data,
                            const char  *data_text,
                            gsize        data_length,
                            GError     **error)
{
  MpqOutgoing outgoing = {
    .request = request,
    .sender_pid = sender_pid > 0 ? sender_pid : _mpq_own_pid (),
    .recipient_pid = recipient_pid,
    .data = data,
    .data_text = data_text,
    .data_length = data_length,
  };
  const MpqChannelPrivateVfuncs *vfuncs = _mpq_channel_get_private (self);

  /* @data_text is compact JSON that was checked, or NULL for @data. */
  if (vfuncs == NULL || vfuncs->send_outgoing == NULL || !g_utf8_validate (request, -1, NULL))
    return MPQ_SEND_NOT_OURS;

  return vfuncs->send_outgoing (self, &outgoing, error) ? MPQ_SEND_SENT : MPQ_SEND_FAILED;
}

void
_mpq_dispatch_batch_init (MpqDispatchBatch *batch)
{
  batch->started = batch->last = g_get_monotonic_time ();
  batch->count = 0;
  batch->over = FALSE;
}

/* Emits ::message-received for @message and tells @batch whether that
 * was the last of this dispatch. Returns how long the handlers took, in
 * µs (since the previous emission: one clock read per message). */
gint64
_mpq_dispatch_batch_emit (MpqDispatchBatch *batch,
                          MpqChannel       *channel,
                          MpqMessage       *message)
{
  gint64 before = batch->last;

  _mpq_channel_emit_message_received (channel, message);

  batch->last = g_get_monotonic_time ();
  batch->count++;
  batch->over = batch->count >= MPQ_DISPATCH_MAX ||
                g_strcmp0 (mpq_message_get_request (message), MPQ_REQ_DIE) == 0 ||
                batch->last - batch->started >= MPQ_DISPATCH_US;
  return batch->last - before;
}

/* Runs @init on @initable the first time, and gives its result then and
 * every time after. The object's user's thread (a channel is used from
 * one thread at a time). */
gboolean
_mpq_init_once (MpqInitOnce  *once,
                GInitable    *initable,
                MpqInitFunc   init,
                GError      **error)
{
  if (!once->done)
    {
      once->done = TRUE;
      if (!init (initable, &once->error))
        g_assert (once->error != NULL);
    }

  if (once->error != NULL)
    {
      g_propagate_error (error, g_error_copy (once->error));
      return FALSE;
    }
  return TRUE;
}

void
_mpq_init_once_clear (MpqInitOnce *once)
{
  g_clear_error (&once->error);
}
