/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-error.h"
#include "mpq-json-private.h"
#include "mpq-pool-private.h"
#include "mpq-protocol.h"
#include "mpq-worker-private.h"

/**
 * MpqInvocation:
 *
 * One task a pool handed an [class@Mpq.Worker]: what it asks, and how to
 * answer it. Answer once, with [method@Mpq.Invocation.return_json] or
 * [method@Mpq.Invocation.return_error]; an invocation dropped unanswered
 * answers itself with an error, so a task is never left hanging.
 *
 * Used from the thread its worker is used from.
 *
 * Since: 1.2
 */

struct _MpqInvocation
{
  GObject       parent_instance;

  MpqWorker    *worker;
  guint64       id;
  char         *request;
  JsonNode     *data;        /* NULL: null, or not built yet */
  char         *data_text;   /* compact JSON, or NULL */
  gsize         data_length;
  guint         n_items;     /* a batch's; 0: a task */
  GBytes       *payload;     /* what came with the task, or NULL */
  GCancellable *cancellable;
  gboolean      answered;
};

G_DEFINE_FINAL_TYPE (MpqInvocation, mpq_invocation, G_TYPE_OBJECT)

static gboolean answer (MpqInvocation  *self,
                        gboolean        finished,
                        const char     *json_or_text,
                        gboolean        compact,
                        GBytes         *payload,
                        GError        **error);

static void
mpq_invocation_finalize (GObject *object)
{
  MpqInvocation *self = MPQ_INVOCATION (object);

  if (!self->answered)
    answer (self, FALSE, "The worker dropped the task without answering it", FALSE, NULL, NULL);
  g_clear_object (&self->worker);
  g_free (self->request);
  g_clear_pointer (&self->data, json_node_unref);
  g_free (self->data_text);
  g_clear_pointer (&self->payload, g_bytes_unref);
  g_clear_object (&self->cancellable);

  G_OBJECT_CLASS (mpq_invocation_parent_class)->finalize (object);
}

static void
mpq_invocation_class_init (MpqInvocationClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = mpq_invocation_finalize;
}

static void
mpq_invocation_init (MpqInvocation *self)
{
}

MpqInvocation *
_mpq_invocation_new (MpqWorker    *worker,
                     guint64       id,
                     const char   *request,
                     GCancellable *cancellable)
{
  MpqInvocation *self = g_object_new (MPQ_TYPE_INVOCATION, NULL);

  self->worker = g_object_ref (worker);
  self->id = id;
  self->request = g_strdup (request);
  self->cancellable = g_object_ref (cancellable);
  return self;
}

/* The data of a batch's item, handed on its own. */
void
_mpq_invocation_set_data (MpqInvocation *self,
                          JsonNode      *data)
{
  if (data != NULL && !JSON_NODE_HOLDS_NULL (data))
    self->data = json_node_ref (data);
}

/* The data as the pool sent it (@data_text NULL: null), built only when
 * asked for; @n_items > 0 for a whole batch. */
void
_mpq_invocation_set_text (MpqInvocation *self,
                          const char    *data_text,
                          gsize          length,
                          guint          n_items)
{
  self->data_text = g_strndup (data_text, length);
  self->data_length = length;
  self->n_items = n_items;
}

/* The bytes that came with the task. */
void
_mpq_invocation_set_payload (MpqInvocation *self,
                             GBytes        *payload)
{
  self->payload = g_bytes_ref (payload);
}

static gboolean
check_unanswered (MpqInvocation  *self,
                  GError        **error)
{
  if (!self->answered)
    return TRUE;
  g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_FAILED, "The task was answered already");
  return FALSE;
}

/* Whether the task is still to answer, and @data_json JSON. */
static gboolean
check_answerable (MpqInvocation  *self,
                  const char     *data_json,
                  GError        **error)
{
  return check_unanswered (self, error) && _mpq_pool_check_json (data_json, error);
}

/* The worker sends it (or adds it to its batch's answer); @compact: the
 * result is known to be compact JSON; @payload (nullable) goes with it. */
static gboolean
answer (MpqInvocation  *self,
        gboolean        finished,
        const char     *json_or_text,
        gboolean        compact,
        GBytes         *payload,
        GError        **error)
{
  self->answered = TRUE;
  return _mpq_worker_answer (self->worker, self->id, self->n_items, finished, json_or_text,
                             compact, payload, error);
}

/**
 * mpq_invocation_get_request:
 * @self: an invocation
 *
 * The task's request.
 *
 * Returns: the task's request
 *
 * Since: 1.2
 */
const char *
mpq_invocation_get_request (MpqInvocation *self)
{
  g_return_val_if_fail (MPQ_IS_INVOCATION (self), NULL);
  return self->request;
}

/**
 * mpq_invocation_get_data:
 * @self: an invocation
 *
 * The task's data (a batch's: the array of its items' data). Data that
 * came as text is built the first time it is asked for.
 *
 * Returns: (transfer none) (nullable): the task's data, or %NULL for null
 *
 * Since: 1.2
 */
JsonNode *
mpq_invocation_get_data (MpqInvocation *self)
{
  g_return_val_if_fail (MPQ_IS_INVOCATION (self), NULL);

  if (self->data == NULL && self->data_text != NULL)
    {
      /* Checked when it came: it parses. */
      self->data = _mpq_json_parse (self->data_text, self->data_length, MPQ_MAX_DEPTH, NULL);
      g_assert (self->data != NULL);
    }
  return self->data;
}

/**
 * mpq_invocation_dup_data_json:
 * @self: an invocation
 *
 * The task's data (a batch's: the array of its items' data), as compact
 * JSON text, as it came: the cheap way for bindings.
 *
 * Returns: (transfer full): the task's data as JSON text (`null` for none)
 *
 * Since: 1.2
 */
char *
mpq_invocation_dup_data_json (MpqInvocation *self)
{
  g_autoptr(GString) out = g_string_new (NULL);

  g_return_val_if_fail (MPQ_IS_INVOCATION (self), NULL);

  if (self->data_text != NULL)
    return g_strndup (self->data_text, self->data_length);
  if (self->data == NULL || !_mpq_json_write (out, self->data, MPQ_MAX_DEPTH, NULL))
    return g_strdup ("null");
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/**
 * mpq_invocation_get_n_items:
 * @self: an invocation
 *
 * How many items a batch (see [signal@Mpq.Worker::batch]) holds.
 *
 * Returns: the number of items of a batch, 0 for a task
 *
 * Since: 1.2
 */
guint
mpq_invocation_get_n_items (MpqInvocation *self)
{
  g_return_val_if_fail (MPQ_IS_INVOCATION (self), 0);
  return self->n_items;
}

/**
 * mpq_invocation_get_task_id:
 * @self: an invocation
 *
 * The task's id.
 *
 * Returns: the task's id, as [method@Mpq.Task.get_id] gives it in the
 *   pool
 *
 * Since: 1.2
 */
guint64
mpq_invocation_get_task_id (MpqInvocation *self)
{
  g_return_val_if_fail (MPQ_IS_INVOCATION (self), 0);
  return self->id;
}

/**
 * mpq_invocation_get_cancellable:
 * @self: an invocation
 *
 * What tells the handler that the task was cancelled.
 *
 * Returns: (transfer none): cancelled when the pool cancels the task: stop,
 *   and answer as you like (the pool drops the answer)
 *
 * Since: 1.2
 */
GCancellable *
mpq_invocation_get_cancellable (MpqInvocation *self)
{
  g_return_val_if_fail (MPQ_IS_INVOCATION (self), NULL);
  return self->cancellable;
}

/**
 * mpq_invocation_return_json:
 * @self: an invocation
 * @data_json: (nullable): the result as JSON text, or %NULL for null
 * @error: return location for a #GError
 *
 * Answers the task: its [method@Mpq.Task.wait] returns a message whose
 * data is this result. The worker's next task starts after this. A
 * batch (see [signal@Mpq.Worker::batch]) is answered with an array of
 * [method@Mpq.Invocation.get_n_items] results; anything else fails with
 * `MPQ_ERROR_PROTOCOL` and leaves the batch to answer.
 *
 * Returns: %TRUE when sent; %FALSE with @error set when @data_json is not
 *   JSON (`MPQ_ERROR_PROTOCOL`: the task is still to answer), when it was
 *   answered already, or when the pool is gone
 *
 * Since: 1.2
 */
gboolean
mpq_invocation_return_json (MpqInvocation  *self,
                            const char     *data_json,
                            GError        **error)
{
  g_return_val_if_fail (MPQ_IS_INVOCATION (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  gboolean compact = FALSE;

  /* A batch's answer splits into its items' results in the pool. */
  if (self->n_items > 0)
    return check_unanswered (self, error) &&
           _mpq_pool_check_results (data_json, self->n_items, &compact, error) &&
           answer (self, TRUE, data_json, compact, NULL, error);
  return check_answerable (self, data_json, error) &&
         answer (self, TRUE, data_json, FALSE, NULL, error);
}

/**
 * mpq_invocation_return_bytes:
 * @self: an invocation of a task (not of a batch)
 * @data_json: (nullable): the result as JSON text, or %NULL for null
 * @payload: binary data to go with the result
 * @error: return location for a #GError
 *
 * Answers the task as [method@Mpq.Invocation.return_json] does, with
 * @payload beside the result: the reply's [method@Mpq.Message.get_bytes]
 * gives it (see [method@Mpq.Pool.submit_bytes]).
 *
 * Returns: %TRUE when sent; %FALSE with @error set as
 *   [method@Mpq.Invocation.return_json] says
 *
 * Since: 1.2
 */
gboolean
mpq_invocation_return_bytes (MpqInvocation  *self,
                             const char     *data_json,
                             GBytes         *payload,
                             GError        **error)
{
  g_return_val_if_fail (MPQ_IS_INVOCATION (self), FALSE);
  g_return_val_if_fail (payload != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (self->n_items > 0)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                           "A batch of a map is answered with return_json ()");
      return FALSE;
    }
  return check_answerable (self, data_json, error) &&
         answer (self, TRUE, data_json, FALSE, payload, error);
}

/**
 * mpq_invocation_get_bytes:
 * @self: an invocation
 *
 * The binary payload that came with the task
 * ([method@Mpq.Pool.submit_bytes]).
 *
 * Returns: (transfer none) (nullable): the payload, or %NULL for a task
 *   without one
 *
 * Since: 1.2
 */
GBytes *
mpq_invocation_get_bytes (MpqInvocation *self)
{
  g_return_val_if_fail (MPQ_IS_INVOCATION (self), NULL);
  return self->payload;
}

/**
 * mpq_invocation_return_error:
 * @self: an invocation
 * @message: what went wrong, for the task's error
 * @error: return location for a #GError
 *
 * Fails the task: its [method@Mpq.Task.wait] fails with
 * `MPQ_ERROR_TASK_FAILED` and @message. The task is not tried again.
 *
 * Returns: %TRUE when sent, %FALSE with @error set
 *
 * Since: 1.2
 */
gboolean
mpq_invocation_return_error (MpqInvocation  *self,
                             const char     *message,
                             GError        **error)
{
  g_autofree char *frame = NULL;

  g_return_val_if_fail (MPQ_IS_INVOCATION (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_unanswered (self, error))
    return FALSE;
  if (message == NULL || !g_utf8_validate (message, -1, NULL))
    message = "The task failed";
  return answer (self, FALSE, message, FALSE, NULL, error);
}

/**
 * mpq_invocation_send_progress_json:
 * @self: an invocation
 * @data_json: (nullable): the progress as JSON text, or %NULL for null
 * @error: return location for a #GError
 *
 * Reports progress: the task's [signal@Mpq.Task::progress] gets it, in
 * order, before the answer.
 *
 * Returns: %TRUE when sent, %FALSE with @error set
 *
 * Since: 1.2
 */
gboolean
mpq_invocation_send_progress_json (MpqInvocation  *self,
                                   const char     *data_json,
                                   GError        **error)
{
  g_autofree char *frame = NULL;

  g_return_val_if_fail (MPQ_IS_INVOCATION (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_answerable (self, data_json, error))
    return FALSE;
  frame = _mpq_pool_frame_task (self->id, "progress", data_json);
  return _mpq_worker_send (self->worker, MPQ_REQ_PROGRESS, frame, error);
}
