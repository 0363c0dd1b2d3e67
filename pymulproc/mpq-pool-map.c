/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-error.h"
#include "mpq-pool-private.h"

#include <string.h>

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
  GPtrArray *tasks;      /* MpqTask (an item, or a batch of them), in input order */
  guint      n_items;
  guint      remaining;  /* waits not called back yet */
  gboolean   returned;
} MapData;

/* @task's reply, or a batch's replies (one per item, as if each had been
 * a task of its own), to @replies. */
static void
add_replies (GPtrArray *replies,
             MpqTask   *task)
{
  g_autoptr(MpqMessage) reply = mpq_task_wait (task, 0, NULL);
  JsonArray *results;

  if (_mpq_task_get_batch (task) == 0)
    {
      g_ptr_array_add (replies, g_steal_pointer (&reply));
      return;
    }
  /* Its length was checked when it came. */
  results = json_node_get_array (mpq_message_get_data (reply));
  for (guint i = 0; i < json_array_get_length (results); i++)
    g_ptr_array_add (replies, mpq_message_new (mpq_message_get_request (reply),
                                               mpq_message_get_sender_pid (reply),
                                               mpq_message_get_recipient_pid (reply),
                                               json_array_get_element (results, i)));
}

/* Submits @data_json[@from, @to) as one batch: [x, y, ...]. */
static MpqTask *
submit_batch (MpqPool            *self,
              const char         *request,
              const char * const *data_json,
              guint               from,
              guint               to,
              GError            **error)
{
  g_autoptr(GString) items = g_string_new ("[");

  for (guint i = from; i < to; i++)
    {
      if (i > from)
        g_string_append_c (items, ',');
      g_string_append (items, data_json[i]);
    }
  g_string_append_c (items, ']');
  return _mpq_pool_submit_batch (self, request, items->str, to - from, error);
}

/* How many items a batch holds at most, as multiprocessing's Pool.map
 * chooses its chunks: a quarter of each worker's share; 1 (no batches)
 * unless the workers take batches and no task-timeout is set (a time
 * limit is per task). */
static guint
batch_size (MpqPool *self,
            guint    n_items)
{
  guint n_workers = MAX (_mpq_pool_count_live (self), 1);
  guint size;

  if (!self->batches || self->task_timeout >= 0)
    return 1;
  size = n_items / (4 * n_workers);
  if (n_items % (4 * n_workers) != 0)
    size++;
  return MAX (size, 1);
}

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
      GPtrArray *replies = g_ptr_array_new_full (data->n_items, g_object_unref);

      for (guint i = 0; i < data->tasks->len; i++)
        add_replies (replies, g_ptr_array_index (data->tasks, i));
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
 * Runs @request on each item of @data_json and collects the replies in
 * input order. To workers that take them ([class@Mpq.Worker] does), the
 * items go in batches, as `multiprocessing`'s `Pool.map` sends them (a
 * quarter of each worker's share a batch, at most 256 KiB), unless
 * [property@Mpq.Pool:task-timeout] is set; otherwise one task each. If an
 * item fails, the map fails with its error and what did not end is
 * cancelled. From GJS, `Gio._promisify` makes this a
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
  guint size;

  g_return_if_fail (MPQ_IS_POOL (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  map = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (map, mpq_pool_map_async);
  data = g_new0 (MapData, 1);
  data->tasks = g_ptr_array_new_with_free_func (g_object_unref);
  g_task_set_task_data (map, data, map_data_free);

  while (data_json != NULL && data_json[data->n_items] != NULL)
    data->n_items++;
  /* Every item checked first: nothing starts when one is not JSON. */
  for (guint i = 0; i < data->n_items; i++)
    {
      GError *error = NULL;

      if (!_mpq_pool_check_json (data_json[i], &error))
        {
          g_prefix_error (&error, "Item %u: ", i);
          g_task_return_error (map, error);
          return;
        }
    }
  size = batch_size (self, data->n_items);
  for (guint i = 0; i < data->n_items;)
    {
      GError *error = NULL;
      guint end = i + 1;
      gsize bytes = strlen (data_json[i]);
      MpqTask *task;

      while (end < data->n_items && end - i < size &&
             bytes + strlen (data_json[end]) < MPQ_POOL_BATCH_BYTES)
        bytes += strlen (data_json[end++]) + 1;
      if (size > 1)
        task = submit_batch (self, request, data_json, i, end, &error);
      else
        task = mpq_pool_submit (self, request, data_json[i], &error);
      if (task == NULL)
        {
          cancel_all (data);
          g_task_return_error (map, error);
          return;
        }
      g_ptr_array_add (data->tasks, task);
      i = end;
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
