/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-error.h"
#include "mpq-message-private.h"
#include "mpq-pool-private.h"
#include "mpq-protocol.h"

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
  gboolean   as_text;    /* the replies as one JSON array, not messages */
  guint      remaining;  /* waits not called back yet */
  gboolean   returned;
} MapData;

/* @task's reply, or a batch's replies (one per item, as if each had been
 * a task of its own), to @replies. A batch's results stay text until a
 * message's data is asked for. */
static void
add_replies (GPtrArray *replies,
             MpqTask   *task)
{
  g_autoptr(MpqMessage) reply = mpq_task_wait (task, 0, NULL);
  g_autoptr(GArray) results = NULL;
  const char *text;
  gsize length;
  guint n;

  if (_mpq_task_get_batch (task) == 0)
    {
      g_ptr_array_add (replies, g_steal_pointer (&reply));
      return;
    }
  results = g_array_new (FALSE, FALSE, sizeof (MpqPoolItem));
  /* Checked when it came: an array of as many results as items. */
  text = _mpq_message_peek_data_text (reply, &length);
  g_assert (text != NULL);
  _mpq_pool_read_array (text, length, results, &n, NULL, NULL);
  for (guint i = 0; i < results->len; i++)
    {
      MpqPoolItem *result = &g_array_index (results, MpqPoolItem, i);

      g_ptr_array_add (replies, _mpq_pool_message_of_json (MPQ_REQ_FINISHED,
                                                           mpq_message_get_sender_pid (reply),
                                                           mpq_message_get_recipient_pid (reply),
                                                           result->text, result->length));
    }
}

/* @task's reply, or a batch's replies, to @out: "[r0,r1" grows. */
static void
append_results (GString *out,
                MpqTask *task)
{
  g_autoptr(MpqMessage) reply = mpq_task_wait (task, 0, NULL);
  g_autofree char *written = NULL;
  const char *text;
  gsize length;

  text = _mpq_message_peek_data_text (reply, &length);
  if (text == NULL)
    {
      /* null, or built here: written once. */
      written = mpq_message_dup_data_json (reply);
      text = written;
      length = strlen (written);
    }
  if (_mpq_task_get_batch (task) > 0)
    {
      /* "[...]": its elements, without the brackets (compact text). */
      text++;
      length -= 2;
      if (length == 0)
        return;
    }
  if (out->len > 1)
    g_string_append_c (out, ',');
  g_string_append_len (out, text, length);
}

static void
return_replies (GTask   *map,
                MapData *data)
{
  data->returned = TRUE;
  if (data->as_text)
    {
      GString *out = g_string_new ("[");

      for (guint i = 0; i < data->tasks->len; i++)
        append_results (out, g_ptr_array_index (data->tasks, i));
      g_string_append_c (out, ']');
      g_task_return_pointer (map, g_string_free (out, FALSE), g_free);
    }
  else
    {
      GPtrArray *replies = g_ptr_array_new_full (data->n_items, g_object_unref);

      for (guint i = 0; i < data->tasks->len; i++)
        add_replies (replies, g_ptr_array_index (data->tasks, i));
      g_task_return_pointer (map, replies, (GDestroyNotify) g_ptr_array_unref);
    }
}

/* A batch split: its items ran as tasks of a map, which ended. */
static void
split_done (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  MpqPool *self = MPQ_POOL (source);
  g_autoptr(MpqTask) batch = user_data;
  g_autoptr(MpqMessage) reply = NULL;
  GError *error = NULL;
  char *results = g_task_propagate_pointer (G_TASK (result), &error);

  g_hash_table_remove (self->splits, batch);
  if (results == NULL)
    {
      _mpq_task_fail (batch, error);
      return;
    }
  reply = _mpq_message_new_take_text (g_strdup (MPQ_REQ_FINISHED), 0, self->pid,
                                      results, strlen (results));
  if (!_mpq_task_is_final (batch))
    _mpq_task_complete (batch, reply);
}

/* @batch, taken off the queue, runs as a map of its items, one task each
 * (the workers said they do not take batches); a cancel of @batch cancels
 * that map. */
void
_mpq_pool_split_batch (MpqPool *self,
                       MpqTask *batch)
{
  const char *items_json = _mpq_task_peek_data_json (batch);
  g_autoptr(GArray) items = g_array_new (FALSE, FALSE, sizeof (MpqPoolItem));
  GCancellable *cancellable = g_cancellable_new ();
  g_autoptr(GTask) map = g_task_new (self, cancellable, split_done, g_object_ref (batch));
  gboolean compact;
  guint n;

  g_task_set_source_tag (map, _mpq_pool_split_batch);
  g_hash_table_insert (self->splits, batch, cancellable);
  /* The map made it: a JSON array of that many items. */
  _mpq_pool_read_array (items_json, strlen (items_json), items, &n, &compact, NULL);
  _mpq_pool_run_map (self, map, mpq_task_get_request (batch),
                     (MpqPoolItem *) (void *) items->data, n, compact, TRUE);
}

/* Submits @items[@from, @to) as one batch: [x, y, ...]. @contiguous:
 * they are the elements of one JSON array's text, in order. */
static MpqTask *
submit_batch (MpqPool            *self,
              const char         *request,
              const MpqPoolItem  *items,
              guint               from,
              guint               to,
              gboolean            contiguous,
              gboolean            compact,
              GError            **error)
{
  const char *start = items[from].text;
  const char *end = items[to - 1].text + items[to - 1].length;
  g_autoptr(GString) batch = NULL;

  if (contiguous)
    {
      /* Elements of one JSON array: the text between them is theirs. */
      batch = g_string_sized_new (end - start + 2);
      g_string_append_c (batch, '[');
      g_string_append_len (batch, start, end - start);
    }
  else
    {
      batch = g_string_new ("[");
      for (guint i = from; i < to; i++)
        {
          if (i > from)
            g_string_append_c (batch, ',');
          g_string_append_len (batch, items[i].text, items[i].length);
        }
    }
  g_string_append_c (batch, ']');
  return _mpq_pool_submit_batch (self, request, batch->str, to - from, compact, error);
}

static MpqTask *
submit_one (MpqPool           *self,
            const char        *request,
            const MpqPoolItem *item,
            GError           **error)
{
  g_autofree char *data_json = g_strndup (item->text, item->length);

  return mpq_pool_submit (self, request, data_json, error);
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
    return_replies (map, data);
}

static gboolean
map_cancelled (GCancellable *cancellable,
               gpointer      user_data)
{
  GTask *map = user_data;

  cancel_all (g_task_get_task_data (map));
  return G_SOURCE_REMOVE;
}

/* Runs @map: @request on each of @items (checked JSON already, and
 * @compact when known to be; with @as_text, the elements of one array's
 * text), in batches when the workers take them; the replies come as messages, or
 * (@as_text) as one JSON array. The map of both map_async () and
 * map_json_async (). */
void
_mpq_pool_run_map (MpqPool           *self,
                   GTask             *map,
                   const char        *request,
                   const MpqPoolItem *items,
                   guint              n_items,
                   gboolean           compact,
                   gboolean           as_text)
{
  GCancellable *cancellable = g_task_get_cancellable (map);
  MapData *data = g_new0 (MapData, 1);
  guint size = batch_size (self, n_items);

  data->tasks = g_ptr_array_new_with_free_func (g_object_unref);
  data->n_items = n_items;
  data->as_text = as_text;
  g_task_set_task_data (map, data, map_data_free);

  for (guint i = 0; i < n_items;)
    {
      GError *error = NULL;
      guint end = i + 1;
      gsize bytes = items[i].length;
      MpqTask *task;

      while (end < n_items && end - i < size &&
             bytes + items[end].length < MPQ_POOL_BATCH_BYTES)
        bytes += items[end++].length + 1;
      if (size > 1)
        task = submit_batch (self, request, items, i, end, as_text, compact, &error);
      else
        task = submit_one (self, request, &items[i], &error);
      if (task == NULL)
        {
          cancel_all (data);
          data->returned = TRUE;
          g_task_return_error (map, error);
          return;
        }
      g_ptr_array_add (data->tasks, task);
      i = end;
    }
  if (data->tasks->len == 0)
    {
      return_replies (map, data);
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
  g_autofree MpqPoolItem *items = NULL;
  guint n_items = 0;

  g_return_if_fail (MPQ_IS_POOL (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  map = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (map, mpq_pool_map_async);

  while (data_json != NULL && data_json[n_items] != NULL)
    n_items++;
  items = g_new (MpqPoolItem, MAX (n_items, 1));
  /* Every item checked first: nothing starts when one is not JSON. */
  for (guint i = 0; i < n_items; i++)
    {
      GError *error = NULL;

      if (!_mpq_pool_check_json (data_json[i], &error))
        {
          g_prefix_error (&error, "Item %u: ", i);
          g_task_return_error (map, error);
          return;
        }
      items[i].text = data_json[i];
      items[i].length = strlen (data_json[i]);
    }
  _mpq_pool_run_map (self, map, request, items, n_items, FALSE, FALSE);
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

/* A synchronous map's call: of map_async () with @data_json, or of
 * map_json_async () with @items_json. */
typedef struct
{
  MpqPool            *pool;
  const char         *request;
  const char * const *data_json;
  const char         *items_json;
  GCancellable       *cancellable;
} MapCall;

static void
start_map (gpointer             data,
           GAsyncReadyCallback  callback,
           gpointer             user_data)
{
  MapCall *call = data;

  if (call->items_json != NULL)
    mpq_pool_map_json_async (call->pool, call->request, call->items_json, call->cancellable,
                             callback, user_data);
  else
    mpq_pool_map_async (call->pool, call->request, call->data_json, call->cancellable,
                        callback, user_data);
}

/* Runs a map, waiting in the pool's context; the result for its _finish (). */
GAsyncResult *
_mpq_pool_map_sync (MpqPool             *self,
                    const char          *request,
                    const char * const  *data_json,
                    const char          *items_json,
                    GCancellable        *cancellable,
                    GError             **error)
{
  MapCall call = { self, request, data_json, items_json, cancellable };

  return _mpq_pool_call_sync (self->context != NULL ? self->context : g_main_context_default (),
                              start_map, &call, error);
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
  g_autoptr(GAsyncResult) result = NULL;

  g_return_val_if_fail (MPQ_IS_POOL (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  result = _mpq_pool_map_sync (self, request, data_json, NULL, cancellable, error);
  return result != NULL ? mpq_pool_map_finish (self, result, error) : NULL;
}
