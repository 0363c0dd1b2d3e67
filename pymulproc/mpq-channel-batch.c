/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-channel.h"
#include "mpq-error.h"

/* Many messages in one call, for bindings: a Python or JavaScript
 * program that takes each message through GI pays more per call than
 * the library spends per message. The caller's thread. */

/**
 * mpq_channel_receive_batch_json:
 * @self: a channel
 * @max_messages: the most messages to take; 0 for no limit
 * @timeout_ms: how long to wait for the first: 0 to poll, -1 to wait
 *   forever, or the longest wait in milliseconds
 * @error: return location for an error
 *
 * Takes the messages addressed to this process or to nobody, as
 * [method@Mpq.Channel.receive_for_me] takes them: the first waiting up
 * to @timeout_ms, then every one already there, up to @max_messages. It
 * returns them as one JSON array of their wire lines,
 * `[[request, sender_pid, recipient_pid, data], ...]` (a message with a
 * payload has it as a fifth element, `{"base64": "..."}`), so that a
 * binding decodes a whole batch at once, from
 * `tests/python/test_receive_for_me.py`:
 *
 * ```python
 *     first = json.loads(queue.receive_batch_json(7, -1))
 * ```
 *
 * An error after some messages were taken returns those; the next call
 * reports it.
 *
 * Returns: (transfer full) (nullable): the messages as a JSON array, `[]`
 *   if none came in time, or %NULL with @error set (`MPQ_ERROR_CLOSED`
 *   once the channel is closed and empty, as for
 *   [method@Mpq.Channel.receive_for_me])
 *
 * Since: 1.2
 */
char *
mpq_channel_receive_batch_json (MpqChannel  *self,
                                guint        max_messages,
                                gint         timeout_ms,
                                GError     **error)
{
  g_autoptr(GString) out = NULL;

  g_return_val_if_fail (MPQ_IS_CHANNEL (self), NULL);
  g_return_val_if_fail (timeout_ms >= -1, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (max_messages == 0)
    max_messages = G_MAXUINT;
  out = g_string_new ("[");
  for (guint n = 0; n < max_messages; n++)
    {
      GError *local_error = NULL;
      g_autoptr(MpqMessage) message = NULL;
      g_autofree char *line = NULL;

      message = mpq_channel_receive_for_me (self, n == 0 ? timeout_ms : 0, &local_error);
      if (message == NULL && local_error != NULL && n == 0)
        {
          g_propagate_error (error, local_error);
          return NULL;
        }
      if (message == NULL)
        {
          /* Nothing more now; an error comes again with the next call. */
          g_clear_error (&local_error);
          break;
        }
      /* A message that came in holds JSON that writes back. */
      line = mpq_message_to_json (message, NULL);
      g_assert (line != NULL);
      if (n > 0)
        g_string_append_c (out, ',');
      g_string_append (out, line);
    }
  g_string_append_c (out, ']');
  return g_string_free (g_steal_pointer (&out), FALSE);
}
