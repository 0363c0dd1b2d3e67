/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "mpq-error.h"
#include "mpq-json-private.h"
#include "mpq-pool-private.h"

/* map_json: a map whose items and results are each one JSON array, for
 * many small items: no object per item in the parent (Python's
 * json.dumps / json.loads, or one JsonArray, at each end). */

/**
 * mpq_pool_map_json_async:
 * @self: a pool
 * @request: the request of every task
 * @items_json: a JSON array: the data of each task
 * @cancellable: (nullable): cancels every task of the map
 * @callback: (scope async): called when every task ended, or one failed
 * @user_data: data for @callback
 *
 * Runs @request on each element of @items_json, as
 * [method@Mpq.Pool.map_async] does, and gives the results as one JSON
 * array, in input order: the fast way for many small items, where a
 * message per item would cost more than the work (workers that connect
 * to [signal@Mpq.Worker::batch] take whole batches too). If an item
 * fails, the map fails with its error and what did not end is cancelled.
 *
 * Since: 1.2
 */
void
mpq_pool_map_json_async (MpqPool             *self,
                         const char          *request,
                         const char          *items_json,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  g_autoptr(GTask) map = NULL;
  g_auto(MpqPoolItems) items = { 0 };
  GError *error = NULL;
  gboolean compact;
  gsize length;
  guint n_items;

  g_return_if_fail (MPQ_IS_POOL (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  map = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (map, mpq_pool_map_json_async);

  /* Checked whole first: nothing starts when it is not an array. Where
   * each item is, is found again as the batches are cut. */
  length = items_json != NULL ? strlen (items_json) : 0;
  if (items_json == NULL || !_mpq_utf8_validate_len (items_json, length))
    {
      g_task_return_new_error (map, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                               "The items are not a JSON array: not valid UTF-8");
      return;
    }
  if (!_mpq_pool_read_array (items_json, length, NULL, &n_items, &compact, &error))
    {
      g_prefix_error (&error, "The items are not a JSON array: ");
      g_task_return_error (map, error);
      return;
    }
  _mpq_pool_items_init_text (&items, items_json, length, n_items);
  _mpq_pool_run_map (self, map, request, &items, compact, TRUE);
}

/**
 * mpq_pool_map_json_finish:
 * @self: a pool
 * @result: the result given to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@Mpq.Pool.map_json_async].
 *
 * Returns: (transfer full): the results as one compact JSON array, in
 *   input order, or %NULL with @error set to the first failed task's
 *   error
 *
 * Since: 1.2
 */
char *
mpq_pool_map_json_finish (MpqPool       *self,
                          GAsyncResult  *result,
                          GError       **error)
{
  g_return_val_if_fail (MPQ_IS_POOL (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * mpq_pool_map_json:
 * @self: a pool
 * @request: the request of every task
 * @items_json: a JSON array: the data of each task
 * @cancellable: (nullable): cancels every task of the map
 * @error: return location for a #GError
 *
 * [method@Mpq.Pool.map_json_async], waiting in the pool's main context:
 * call it from the thread that runs that context.
 *
 * From `tests/python/test_pool.py`:
 *
 * ```python
 *     results = json.loads(pool.map_json('echo', json.dumps(items), None))
 * ```
 *
 * Returns: (transfer full): the results as one compact JSON array, in
 *   input order, or %NULL with @error set
 *
 * Since: 1.2
 */
char *
mpq_pool_map_json (MpqPool       *self,
                   const char    *request,
                   const char    *items_json,
                   GCancellable  *cancellable,
                   GError       **error)
{
  g_autoptr(GAsyncResult) result = NULL;

  g_return_val_if_fail (MPQ_IS_POOL (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  result = _mpq_pool_map_sync (self, request, NULL, items_json, cancellable, error);
  return result != NULL ? mpq_pool_map_json_finish (self, result, error) : NULL;
}
