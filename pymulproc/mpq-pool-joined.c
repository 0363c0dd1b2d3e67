/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-pool-private.h"
#include "mpq-queue-private.h"
#include "mpq-source-private.h"

/* Workers the pool did not spawn. On a queue on a server (docs/redis.md,
 * "A pool on Redis"), any process that joins the queue with
 * MPQ_POOL_WORKER=1 and says READY serves the pool: a worker on another
 * host. The pool has no process to wait for; it asks the queue who is
 * gone: a worker that left (it closed the queue: told to go, or its own
 * choice), or whose lease as a participant ended (a death: SIGKILL, its
 * host down, cut off from the server). Its exit is then judged as a
 * spawned worker's (mpq-pool-deaths.c), with wait status -1. The pool's
 * context only. */

/* How often the pool asks who is gone: often enough that a worker that
 * left is seen at once, for a shutdown; a dead one is seen only after
 * its lease (lease-time) anyway. */
#define MPQ_POOL_WATCH_MAX_MS 250

static gboolean watch_cb (gpointer user_data);

static void
ensure_watch (MpqPool *pool)
{
  guint interval;

  if (pool->watch != NULL)
    return;
  interval = CLAMP (mpq_queue_get_lease_time (pool->queue) / 4, 1, MPQ_POOL_WATCH_MAX_MS);
  pool->watch = g_timeout_source_new (interval);
  g_source_set_callback (pool->watch, watch_cb, pool, NULL);
  g_source_set_static_name (pool->watch, "[mpq] pool joined workers");
  g_source_attach (pool->watch, pool->context);
}

/* A READY from @pid, a participant the pool did not spawn: a worker from
 * now on, or NULL when the pool takes none (a local queue, where only
 * its children can write; a pool shut down). */
MpqPoolWorker *
_mpq_pool_join_worker (MpqPool *pool,
                       gint     pid)
{
  g_autoptr(GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint));
  g_autoptr(GError) error = NULL;
  MpqPoolWorker *worker;

  if (pid <= 0 || pid == pool->pid || !_mpq_queue_tells_gone (pool->queue) ||
      pool->shutting_down || pool->closed)
    return NULL;
  /* Only a participant there now: a sender field is anyone's to write,
   * and a READY in the name of an id nobody holds would have tasks
   * handed to nobody, each counted a death when it is found gone. */
  g_array_append_val (ids, pid);
  if (!_mpq_queue_find_gone (pool->queue, ids, &error) || ids->len > 0)
    {
      g_debug ("Pool: READY from %d, not a participant now%s%s", pid,
               error != NULL ? ": " : "", error != NULL ? error->message : "");
      return NULL;
    }

  worker = g_new0 (MpqPoolWorker, 1);
  worker->pool = pool;
  worker->pid = pid;
  worker->joined = TRUE;
  worker->state = MPQ_POOL_WORKER_STARTING;
  g_queue_init (&worker->window);
  g_hash_table_insert (pool->workers, GINT_TO_POINTER (pid), worker);
  ensure_watch (pool);
  g_debug ("Pool: participant %d joined as a worker", pid);
  return worker;
}

/* "Killing" a joined worker (a task past task-timeout, a broken rule, a
 * shutdown's time-out): the pool cannot; it tells it to go, and takes it
 * for gone at the next look, with what it held judged as for a death. A
 * late answer of its is dropped (not a worker any more). */
void
_mpq_pool_drop_joined (MpqPool       *pool,
                       MpqPoolWorker *worker)
{
  worker->state = MPQ_POOL_WORKER_LEAVING;
  if (worker->exited || worker->dropped)
    return;
  worker->dropped = TRUE;
  _mpq_pool_send_die (pool, worker);
  if (pool->watch != NULL)
    g_source_set_ready_time (pool->watch, 0);
}

static gboolean
watch_cb (gpointer user_data)
{
  MpqPool *pool = user_data;
  g_autoptr(MpqPool) hold = g_object_ref (pool);
  g_autoptr(GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint));
  g_autoptr(GPtrArray) gone = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  GHashTableIter iter;
  MpqPoolWorker *worker;

  g_hash_table_iter_init (&iter, pool->workers);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &worker))
    if (worker->joined && !worker->exited)
      {
        if (worker->dropped)
          g_ptr_array_add (gone, worker);
        else
          g_array_append_val (ids, worker->pid);
      }
  if (ids->len == 0 && gone->len == 0)
    {
      /* Nobody to watch: the next joined worker starts it again. */
      g_clear_pointer (&pool->watch, g_source_unref);
      return G_SOURCE_REMOVE;
    }

  if (ids->len > 0 && !_mpq_queue_find_gone (pool->queue, ids, &error))
    g_debug ("Pool: cannot tell which workers are gone now: %s", error->message);
  else
    for (guint i = 0; i < ids->len; i++)
      if ((worker = g_hash_table_lookup (pool->workers,
                                         GINT_TO_POINTER (g_array_index (ids, gint, i)))) != NULL)
        g_ptr_array_add (gone, worker);

  /* Judged after their last answers (the marker), as a spawned one's. */
  for (guint i = 0; i < gone->len; i++)
    _mpq_pool_worker_exited (pool, gone->pdata[i], -1);
  return G_SOURCE_CONTINUE;
}
