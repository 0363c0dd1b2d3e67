/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pool's synchronous calls (shutdown, map, a task's wait, a worker's
 * run): each waits by running the pool's main context in the calling
 * thread, which must be able to own it. Any thread that owns the
 * context; the waits are the calling thread's. */
#include "config.h"

#include "mpq-error.h"
#include "mpq-pool-private.h"

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
