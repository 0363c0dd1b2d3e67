/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-error.h"
#include "mpq-pool-private.h"

/* map, and the synchronous calls' wait in the pool's context. */

static gboolean
set_flag (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Owns @context for this thread, or says why not. */
gboolean
_mpq_pool_acquire (GMainContext  *context,
                   GError       **error)
{
  if (g_main_context_acquire (context))
    return TRUE;
  g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_FAILED,
                       "A pool's calls wait in its main context: call them from "
                       "the thread that runs it");
  return FALSE;
}

static void
store_result (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static gboolean
have_result (gpointer user_data)
{
  return *(GAsyncResult **) user_data != NULL;
}

/* A synchronous call made of an asynchronous one: @start (@data, callback,
 * user_data) starts it with @context as the thread-default one, and its
 * result is waited for there. NULL with @error when this thread cannot
 * run @context. */
GAsyncResult *
_mpq_pool_call_sync (GMainContext   *context,
                     MpqPoolStartFn  start,
                     gpointer        data,
                     GError        **error)
{
  GAsyncResult *result = NULL;

  /* Owned first: once started, the call must be waited for. */
  if (!_mpq_pool_acquire (context, error))
    return NULL;
  g_main_context_push_thread_default (context);
  start (data, store_result, &result);
  _mpq_pool_iterate_until (context, have_result, &result, -1, NULL);
  g_main_context_pop_thread_default (context);
  g_main_context_release (context);
  return result;
}

gboolean
_mpq_pool_iterate_until (GMainContext  *context,
                         GSourceFunc    done,
                         gpointer       data,
                         gint           timeout_ms,
                         GError       **error)
{
  gboolean timed_out = FALSE;
  GSource *timer = NULL;

  if (done (data) || timeout_ms == 0)
    return TRUE;
  if (!_mpq_pool_acquire (context, error))
    return FALSE;
  if (timeout_ms > 0)
    {
      timer = g_timeout_source_new (timeout_ms);
      g_source_set_callback (timer, set_flag, &timed_out, NULL);
      g_source_set_static_name (timer, "[mpq] pool wait");
      g_source_attach (timer, context);
    }
  while (!done (data) && !timed_out)
    g_main_context_iteration (context, TRUE);
  if (timer != NULL)
    {
      g_source_destroy (timer);
      g_source_unref (timer);
    }
  g_main_context_release (context);
  return TRUE;
}

typedef struct
{
  GPtrArray *tasks;      /* MpqTask, in input order */
  guint      remaining;  /* waits not called back yet */
  gboolean   returned;
} MapData;

static void
map_data_free (gpointer user_data)
{
  MapData *data = user_data;

  g_ptr_array_unref (data->tasks);
  g_free (data);
}

static void
cancel_all (MapData *data)
{
  for (guint i = 0; i < data->tasks->len; i++)
    mpq_task_cancel (g_ptr_array_index (data->tasks, i));
}

static void
item_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(GTask) map = user_data;
  MapData *data = g_task_get_task_data (map);
  g_autoptr(MpqMessage) reply = NULL;
  GError *error = NULL;

  reply = mpq_task_wait_finish (MPQ_TASK (source), result, &error);
  data->remaining--;
  if (data->returned)
    {
      g_clear_error (&error);
      return;
    }
  if (error != NULL)
    {
      /* One failed: the map fails with its error, the rest is cancelled
       * (their callbacks come back here, after @returned). */
      data->returned = TRUE;
      cancel_all (data);
      g_task_return_error (map, error);
      return;
    }
  if (data->remaining == 0)
    {
      GPtrArray *replies = g_ptr_array_new_full (data->tasks->len, g_object_unref);

      for (guint i = 0; i < data->tasks->len; i++)
        g_ptr_array_add (replies, mpq_task_wait (g_ptr_array_index (data->tasks, i), 0, NULL));
      data->returned = TRUE;
      g_task_return_pointer (map, replies, (GDestroyNotify) g_ptr_array_unref);
    }
}

static gboolean
map_cancelled (GCancellable *cancellable,
               gpointer      user_data)
{
  GTask *map = user_data;

  cancel_all (g_task_get_task_data (map));
  return G_SOURCE_REMOVE;
}

/**
 * mpq_pool_map_async:
 * @self: a pool
 * @request: the request of every task
 * @data_json: (array zero-terminated=1): the data of each task, as JSON
 * @cancellable: (nullable): cancels every task of the map
 * @callback: (scope async): called when every task ended, or one failed
 * @user_data: data for @callback
 *
 * Submits one task per item of @data_json and collects the replies in
 * input order. If a task fails, the map fails with its error and the
 * tasks not ended are cancelled. From GJS, `Gio._promisify` makes this a
 * promise.
 *
 * Since: 1.2
 */
void
mpq_pool_map_async (MpqPool             *self,
                    const char          *request,
                    const char * const  *data_json,
                    GCancellable        *cancellable,
                    GAsyncReadyCallback  callback,
                    gpointer             user_data)
{
  g_autoptr(GTask) map = NULL;
  MapData *data;

  g_return_if_fail (MPQ_IS_POOL (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  map = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (map, mpq_pool_map_async);
  data = g_new0 (MapData, 1);
  data->tasks = g_ptr_array_new_with_free_func (g_object_unref);
  g_task_set_task_data (map, data, map_data_free);

  for (guint i = 0; data_json != NULL && data_json[i] != NULL; i++)
    {
      GError *error = NULL;
      MpqTask *task = mpq_pool_submit (self, request, data_json[i], &error);

      if (task == NULL)
        {
          cancel_all (data);
          g_prefix_error (&error, "Item %u: ", i);
          g_task_return_error (map, error);
          return;
        }
      g_ptr_array_add (data->tasks, task);
    }
  if (data->tasks->len == 0)
    {
      g_task_return_pointer (map, g_ptr_array_new_with_free_func (g_object_unref),
                             (GDestroyNotify) g_ptr_array_unref);
      return;
    }

  data->remaining = data->tasks->len;
  for (guint i = 0; i < data->tasks->len; i++)
    mpq_task_wait_async (g_ptr_array_index (data->tasks, i), NULL, item_cb, g_object_ref (map));
  if (cancellable != NULL)
    {
      GSource *source = g_cancellable_source_new (cancellable);

      g_task_attach_source (map, source, (GSourceFunc) (void (*) (void)) map_cancelled);
      g_source_unref (source);
    }
}

/**
 * mpq_pool_map_finish:
 * @self: a pool
 * @result: the result given to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@Mpq.Pool.map_async].
 *
 * Returns: (transfer container) (element-type MpqMessage): the replies, in
 *   input order (the array frees them), or %NULL with @error set to the
 *   first failed task's error
 *
 * Since: 1.2
 */
GPtrArray *
mpq_pool_map_finish (MpqPool       *self,
                     GAsyncResult  *result,
                     GError       **error)
{
  g_return_val_if_fail (MPQ_IS_POOL (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

typedef struct
{
  MpqPool            *pool;
  const char         *request;
  const char * const *data_json;
  GCancellable       *cancellable;
} MapCall;

static void
start_map (gpointer             data,
           GAsyncReadyCallback  callback,
           gpointer             user_data)
{
  MapCall *call = data;

  mpq_pool_map_async (call->pool, call->request, call->data_json, call->cancellable,
                      callback, user_data);
}

/**
 * mpq_pool_map:
 * @self: a pool
 * @request: the request of every task
 * @data_json: (array zero-terminated=1): the data of each task, as JSON
 * @cancellable: (nullable): cancels every task of the map
 * @error: return location for a #GError
 *
 * [method@Mpq.Pool.map_async], waiting in the pool's main context: call
 * it from the thread that runs that context.
 *
 * Returns: (transfer container) (element-type MpqMessage): the replies, in
 *   input order, or %NULL with @error set
 *
 * Since: 1.2
 */
GPtrArray *
mpq_pool_map (MpqPool             *self,
              const char          *request,
              const char * const  *data_json,
              GCancellable        *cancellable,
              GError             **error)
{
  MapCall call = { self, request, data_json, cancellable };
  g_autoptr(GAsyncResult) result = NULL;

  g_return_val_if_fail (MPQ_IS_POOL (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  result = _mpq_pool_call_sync (self->context != NULL ? self->context : g_main_context_default (),
                                start_map, &call, error);
  return result != NULL ? mpq_pool_map_finish (self, result, error) : NULL;
}
