/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "mpq-error.h"
#include "mpq-json-private.h"
#include "mpq-pool-private.h"
#include "mpq-protocol.h"

/* The frames a pool and its workers exchange over the queue: the data of
 * ordinary messages, so that a worker with only a JSON library can serve
 * (docs/protocol.md, "Pools"):
 *
 *   parent → worker  [request, parent, worker, {"task": id, "data": x}]
 *                    ["CANCEL", parent, worker, {"task": id}]
 *                    ["DIE", parent, worker, null]
 *   worker → parent  ["READY", worker, parent, null]
 *                    ["FINISHED", worker, parent, {"task": id, "result": x}]
 *                    ["FAILED", worker, parent, {"task": id, "error": "text"}]
 *                    ["PROGRESS", worker, parent, {"task": id, "progress": x}]
 *
 * Any thread: these only build and read values. */

/* Whether @data_json (nullable: null) is one JSON value. Checked before it
 * is spliced into a frame: "1,\"task\":2" would make a valid frame that
 * says something else. */
gboolean
_mpq_pool_check_json (const char  *data_json,
                      GError     **error)
{
  MpqJsonReader reader;
  GError *local_error = NULL;
  gsize length;
  gboolean ok;

  if (data_json == NULL)
    return TRUE;
  length = strlen (data_json);
  if (!_mpq_utf8_validate_len (data_json, length))
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                           "The data is not valid UTF-8");
      return FALSE;
    }
  _mpq_json_reader_init (&reader, data_json, length, MPQ_MAX_DEPTH - 2, &local_error);
  ok = _mpq_json_skip_value (&reader) && _mpq_json_at_end (&reader);
  _mpq_json_reader_clear (&reader);
  if (!ok)
    {
      if (local_error != NULL)
        g_propagate_prefixed_error (error, local_error, "The data is not JSON: ");
      else
        g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                             "The data is not one JSON value");
      return FALSE;
    }
  return TRUE;
}

/* {"task": @id, @field: @value_json}; @value_json (nullable: null) must
 * have passed _mpq_pool_check_json (). */
char *
_mpq_pool_frame_task (guint64     id,
                      const char *field,
                      const char *value_json)
{
  return g_strdup_printf ("{\"task\":%" G_GUINT64_FORMAT ",\"%s\":%s}",
                          id, field, value_json != NULL ? value_json : "null");
}

/* {"task": @id, "error": @text}, or {"task": @id} without @text. */
char *
_mpq_pool_frame_error (guint64     id,
                       const char *text)
{
  GString *out = g_string_new (NULL);

  g_string_append_printf (out, "{\"task\":%" G_GUINT64_FORMAT, id);
  if (text != NULL)
    {
      g_string_append (out, ",\"error\":");
      _mpq_json_write_string (out, text);
    }
  g_string_append_c (out, '}');
  return g_string_free (out, FALSE);
}

/* The task id of a frame's @data (nullable): a non-negative integer. */
gboolean
_mpq_pool_frame_get_id (JsonNode *data,
                        guint64  *id)
{
  JsonNode *node;

  node = _mpq_pool_frame_get_member (data, "task");
  if (node == NULL || JSON_NODE_TYPE (node) != JSON_NODE_VALUE ||
      json_node_get_value_type (node) != G_TYPE_INT64 ||
      json_node_get_int (node) < 0)
    return FALSE;
  *id = (guint64) json_node_get_int (node);
  return TRUE;
}

/* @data's member @field (transfer none), or NULL when @data is not an
 * object or has no such member. */
JsonNode *
_mpq_pool_frame_get_member (JsonNode   *data,
                            const char *field)
{
  JsonObject *object;

  if (data == NULL || !JSON_NODE_HOLDS_OBJECT (data))
    return NULL;
  object = json_node_get_object (data);
  return json_object_get_member (object, field);
}
