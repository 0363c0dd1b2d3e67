/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-error.h"
#include "mpq-message-private.h"
#include "mpq-pool-private.h"
#include "mpq-protocol.h"

#include <string.h>

/* map and map_json: items in batches, results in order. */

typedef struct
{
  GPtrArray *tasks;      /* MpqTask (an item, or a batch of them), in input order;
                          * NULL once its results went to @out */
  guint      n_items;
  gboolean   as_text;    /* the replies as one JSON array, not messages */
  GString   *out;        /* as_text: "[r0,r1" of the tasks before @n_out */
  guint      n_out;
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
  text = _mpq_task_peek_results (task, &length);
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

/* @task's reply, or a batch's replies, to @out: "[r0,r1" grows.
 * @n_tasks: how many tasks the map has, to size @out at the first. */
static void
append_results (GString *out,
                MpqTask *task,
                guint    n_tasks)
{
  g_autoptr(MpqMessage) reply = NULL;
  g_autofree char *written = NULL;
  const char *text;
  gsize length;

  if (_mpq_task_get_batch (task) > 0)
    {
      /* "[...]": its elements, without the brackets (compact text). */
      text = _mpq_task_peek_results (task, &length) + 1;
      length -= 2;
    }
  else
    {
      reply = mpq_task_wait (task, 0, NULL);
      text = _mpq_message_peek_data_text (reply, &length);
      if (text == NULL)
        {
          /* null, or built here: written once. */
          written = mpq_message_dup_data_json (reply);
          text = written;
          length = strlen (text);
        }
    }
  if (out->len == 1)
    {
      /* Sized at the first: 100,000 small results make a megabyte,
       * which doubling from nothing would copy and fault in twice.
       * Twice the guess: later results may be longer, and pages never
       * written cost nothing. */
      g_string_set_size (out, 2 * (length + 1) * n_tasks + 2);
      g_string_truncate (out, 1);
    }
  if (length == 0)
    return;
  if (out->len > 1)
    g_string_append_c (out, ',');
  g_string_append_len (out, text, length);
}

/* as_text: the results of the tasks that ended, in order, to @out, as
 * they come (while the workers are still busy with the rest); each task
 * is let go then, and its reply with it. */
static void
append_ended (MapData *data)
{
  while (data->n_out < data->tasks->len)
    {
      MpqTask *task = g_ptr_array_index (data->tasks, data->n_out);

      if (mpq_task_get_state (task) != MPQ_TASK_DONE)
        return;
      append_results (data->out, task, data->tasks->len);
      g_object_unref (task);
      data->tasks->pdata[data->n_out++] = NULL;
    }
}

static void
return_replies (GTask   *map,
                MapData *data)
{
  data->returned = TRUE;
  if (data->as_text)
    {
      append_ended (data);
      g_assert (data->n_out == data->tasks->len);
      g_string_append_c (data->out, ']');
      g_task_return_pointer (map, g_string_free (g_steal_pointer (&data->out), FALSE), g_free);
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
  gsize length;

  g_hash_table_remove (self->splits, batch);
  if (results == NULL)
    {
      _mpq_task_fail (batch, error);
      return;
    }
  length = strlen (results);
  reply = _mpq_message_new_take_text (g_strdup (MPQ_REQ_FINISHED), 0, self->pid,
                                      results, length);
  if (!_mpq_task_is_final (batch))
    _mpq_task_complete_batch (batch, reply, 0, length);
}

/* @batch, taken off the queue, runs as a map of its items, one task each
 * (the workers said they do not take batches); a cancel of @batch cancels
 * that map. */
void
_mpq_pool_split_batch (MpqPool *self,
                       MpqTask *batch)
{
  const char *items_json = _mpq_task_peek_data_json (batch);
  GCancellable *cancellable = g_cancellable_new ();
  g_autoptr(GTask) map = g_task_new (self, cancellable, split_done, g_object_ref (batch));
  g_auto(MpqPoolItems) items = { 0 };

  g_task_set_source_tag (map, _mpq_pool_split_batch);
  g_hash_table_insert (self->splits, batch, cancellable);
  /* The map made it: a JSON array of that many items. */
  _mpq_pool_items_init_text (&items, items_json, strlen (items_json), _mpq_task_get_batch (batch));
  _mpq_pool_run_map (self, map, mpq_task_get_request (batch), &items,
                     _mpq_task_is_compact (batch), TRUE);
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
  guint n_workers = MAX (_mpq_pool_count_live (self, FALSE), 1);
  guint size;

  if (!self->batches || self->task_timeout >= 0)
    return 1;
  size = n_items / (4 * n_workers);
  if (n_items % (4 * n_workers) != 0)
    size++;
  return MAX (size, 1);
}

/* A task of @tasks, or NULL: its results went to @out already. */
static void
unref_task (gpointer task)
{
  if (task != NULL)
    g_object_unref (task);
}

static void
map_data_free (gpointer user_data)
{
  MapData *data = user_data;

  g_ptr_array_unref (data->tasks);
  if (data->out != NULL)
    g_string_free (data->out, TRUE);
  g_free (data);
}

static void
cancel_all (MapData *data)
{
  for (guint i = data->n_out; i < data->tasks->len; i++)
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
  else if (data->as_text)
    append_ended (data);
}

static gboolean
map_cancelled (GCancellable *cancellable,
               gpointer      user_data)
{
  GTask *map = user_data;

  cancel_all (g_task_get_task_data (map));
  return G_SOURCE_REMOVE;
}

/* Appends @length bytes of checked JSON at @text to @batch, compact. */
static void
append_json (GString    *batch,
             const char *text,
             gsize       length,
             gboolean    compact)
{
  if (compact)
    g_string_append_len (batch, text, length);
  else
    _mpq_pool_append_compact (batch, text, length);
}

/* The next batch of @items, from @item (taken already) on: at most
 * @size items and MPQ_POOL_BATCH_BYTES, as one compact JSON array's text;
 * @item becomes the one after it, and FALSE is returned when there is
 * none. @contiguous: the items are the elements of one JSON array's text,
 * in order, and the text between them is theirs; @compact: they are
 * compact already. */
static gboolean
take_batch (MpqPoolItems *items,
            MpqPoolItem  *item,
            guint         size,
            gboolean      contiguous,
            gboolean      compact,
            GString      *batch,
            guint        *n_items)
{
  const char *start = item->text;
  const char *end;
  gsize bytes = item->length;
  gboolean more;
  guint n = 0;

  g_string_append_c (batch, '[');
  for (;;)
    {
      if (!contiguous)
        {
          if (n > 0)
            g_string_append_c (batch, ',');
          append_json (batch, item->text, item->length, compact);
        }
      end = item->text + item->length;
      n++;
      more = _mpq_pool_items_next (items, item);
      if (!more || n >= size || bytes + item->length >= MPQ_POOL_BATCH_BYTES)
        break;
      bytes += item->length + 1;
    }
  if (contiguous)
    append_json (batch, start, end - start, compact);
  g_string_append_c (batch, ']');
  *n_items = n;
  return more;
}

/* Runs @map: @request on each of @items (checked JSON already, and
 * @compact when known to be; with @as_text, the elements of one array's
 * text), in batches when the workers take them; the replies come as
 * messages, or (@as_text) as one JSON array. The map of both map_async ()
 * and map_json_async (). */
void
_mpq_pool_run_map (MpqPool      *self,
                   GTask        *map,
                   const char   *request,
                   MpqPoolItems *items,
                   gboolean      compact,
                   gboolean      as_text)
{
  GCancellable *cancellable = g_task_get_cancellable (map);
  MapData *data = g_new0 (MapData, 1);
  guint size = batch_size (self, items->n_items);
  MpqPoolItem item;
  gboolean more;

  data->tasks = g_ptr_array_new_with_free_func (unref_task);
  data->n_items = items->n_items;
  data->as_text = as_text;
  if (as_text)
    data->out = g_string_new ("[");
  g_task_set_task_data (map, data, map_data_free);

  more = _mpq_pool_items_next (items, &item);
  while (more)
    {
      GError *error = NULL;
      MpqTask *task;

      if (size > 1)
        {
          GString *batch = g_string_new (NULL);
          guint n;

          more = take_batch (items, &item, size, as_text, compact, batch, &n);
          task = _mpq_pool_submit_batch (self, request, g_string_free (batch, FALSE), n,
                                         TRUE, &error);
        }
      else
        {
          task = submit_one (self, request, &item, &error);
          more = _mpq_pool_items_next (items, &item);
        }
      if (task == NULL)
        {
          cancel_all (data);
          data->returned = TRUE;
          g_task_return_error (map, error);
          return;
        }
      g_ptr_array_add (data->tasks, task);
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
  MpqPoolItems spans;
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
  _mpq_pool_items_init_spans (&spans, items, n_items);
  _mpq_pool_run_map (self, map, request, &spans, FALSE, FALSE);
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
