/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "mpq-queue.h"
#include "mpq-worker.h"

G_BEGIN_DECLS

/* A worker is used from one thread (the one that started it); so are its
 * invocations. No locks.
 *
 * - mpq-worker.c: the object, its signals, start/stop/run;
 * - mpq-worker-tasks.c: the frames the pool sends, one task (or batch) at
 *   a time, and the answers;
 * - mpq-invocation.c: one task, or one batch of a map's items. */
struct _MpqWorker
{
  GObject       parent_instance;

  MpqQueue     *queue;          /* NULL: not made by new_for_child () */
  gint          pid;
  gint          parent_pid;
  gint          os_parent;      /* the local pool, its parent (0: none) */
  GQueue        frames;         /* MpqWorkerFrame: tasks not started, in order */
  gboolean      busy;           /* an invocation is out */
  guint64       current_id;
  GCancellable *current_cancellable;
  gboolean      started;
  gboolean      ready_sent;
  gboolean      told_to_die;
  gboolean      closed;
  GMainContext *context;        /* where it was started */
  GSource      *next;           /* emits the next task */
  gboolean      in_turn;        /* next_cb hands tasks out: run_next waits */
  GSource      *watch;          /* a server's queue: is the pool still there? */
  char         *format;         /* of the payloads it reads, said in READY */
};

/* mpq-worker.c */
void           _mpq_worker_emit_task        (MpqWorker     *self,
                                             MpqInvocation *invocation);
gboolean       _mpq_worker_takes_batches    (MpqWorker     *self);
void           _mpq_worker_emit_batch       (MpqWorker     *self,
                                             MpqInvocation *invocation);
void           _mpq_worker_close            (MpqWorker     *self);

/* mpq-worker-tasks.c */
void           _mpq_worker_on_message       (MpqWorker     *self,
                                             MpqMessage    *message);
void           _mpq_worker_run_next         (MpqWorker     *self);
void           _mpq_worker_clear_frames     (MpqWorker     *self);
gboolean       _mpq_worker_send             (MpqWorker     *self,
                                             const char    *request,
                                             const char    *frame,
                                             GError       **error);
gboolean       _mpq_worker_answer           (MpqWorker     *self,
                                             guint64        id,
                                             guint          n_items,
                                             gboolean       finished,
                                             const char    *json_or_text,
                                             gboolean       compact,
                                             GBytes        *payload,
                                             GError       **error);

/* mpq-invocation.c */
MpqInvocation *_mpq_invocation_new          (MpqWorker     *worker,
                                             guint64        id,
                                             const char    *request,
                                             GCancellable  *cancellable);
void           _mpq_invocation_set_data     (MpqInvocation *self,
                                             JsonNode      *data);
void           _mpq_invocation_set_text     (MpqInvocation *self,
                                             const char    *data_text,
                                             gsize          length,
                                             guint          n_items);
void           _mpq_invocation_set_payload  (MpqInvocation *self,
                                             GBytes        *payload);

G_END_DECLS
