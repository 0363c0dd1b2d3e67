/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-queue-redis-private.h"

/* Built without hiredis (meson -Dredis=disabled, or libhiredis-dev
 * missing): a queue on a server cannot be made. */
MpqQueueBackend *
_mpq_queue_redis_backend_new (MpqChannel  *channel,
                              const char  *uri,
                              const char  *name,
                              gboolean     creator,
                              guint       *max_size,
                              gsize        max_message_size,
                              guint        lease_time_ms,
                              GError     **error)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
               "Cannot open the queue at %s: this build of pymulproc has no Redis support "
               "(meson feature 'redis', needs hiredis)", uri);
  return NULL;
}

void
_mpq_queue_redis_lease_time_from_env (guint *lease_time_ms)
{
}
