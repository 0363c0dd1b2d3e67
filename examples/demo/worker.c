/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The C worker of the pymulproc demo.
 *
 * Spawned by mpq-demo on the MpqQueue it shares with the other workers. It
 * takes tasks by dispatch, one at a time (prefetch 1), and says READY to the
 * parent once it does. For each DO {"task", "lo", "hi"} it counts the primes
 * in [lo, hi) with a segmented sieve of Eratosthenes and answers FINISHED
 * {"task", "lo", "hi", "primes", "us"} to the parent, "us" being the
 * microseconds it took. The queue counts the task as taken once the handler
 * has returned, so a worker that dies in the middle loses nothing: the task
 * goes back to the queue. DIE ends it.
 * worker.py and worker.js are the same program in Python and JavaScript.
 */

#include <pymulproc/pymulproc.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Numbers sieved in one pass: their flags fit in a typical L2 cache. */
#define BLOCK_SIZE (256 * 1024)

typedef struct
{
  GMainLoop *loop;
  GArray    *base_primes;  /* guint32: every prime <= base_bound, ascending */
  guint64    base_bound;
  guint8    *block;        /* BLOCK_SIZE flags, one per number of the block */
  gint       parent_pid;   /* where FINISHED goes */
  int        status;       /* exit status once the loop quits */
} Worker;

/* Largest r with r * r <= n, by Newton's method: no libm, exact for 64 bits. */
static guint64
isqrt_u64 (guint64 n)
{
  guint64 x = n;
  guint64 y = n / 2 + 1;

  if (n < 2)
    return n;

  while (y < x)
    {
      x = y;
      y = (x + n / x) / 2;
    }

  return x;
}

/* Makes sure every prime up to @bound is known. Grows geometrically, so a
 * run whose tasks climb towards the limit sieves the small primes only a few
 * times. */
static void
ensure_base_primes (Worker  *self,
                    guint64  bound)
{
  g_autofree guint8 *composite = NULL;
  guint64 i;

  if (bound <= self->base_bound)
    return;

  bound = MAX (bound, self->base_bound * 2);
  composite = g_malloc0 (bound + 1);
  g_array_set_size (self->base_primes, 0);

  for (i = 2; i <= bound; i++)
    {
      guint32 p = (guint32) i;
      guint64 m;

      if (composite[i])
        continue;

      g_array_append_val (self->base_primes, p);
      for (m = i * i; m <= bound; m += i)
        composite[m] = 1;
    }

  self->base_bound = bound;
}

/* Counts the primes n with lo <= n < hi, hi - lo <= BLOCK_SIZE. */
static guint64
count_block (Worker  *self,
             guint64  lo,
             guint64  hi)
{
  guint8 *flags = self->block;
  guint64 size = hi - lo;
  guint64 count = 0;
  guint64 n;
  guint i;

  memset (flags, 1, size);

  /* 0 and 1 are not primes. */
  for (n = lo; n < MIN (hi, 2); n++)
    flags[n - lo] = 0;

  for (i = 0; i < self->base_primes->len; i++)
    {
      guint64 p = g_array_index (self->base_primes, guint32, i);
      guint64 m;

      if (p * p >= hi)
        break;

      /* Smaller multiples of p were crossed out by smaller primes. */
      m = MAX (p * p, (lo + p - 1) / p * p);
      for (; m < hi; m += p)
        flags[m - lo] = 0;
    }

  for (n = 0; n < size; n++)
    count += flags[n];

  return count;
}

/* Counts the primes n with lo <= n < hi, a block at a time: flags that stay
 * in the cache make the sieve several times faster than one big array. */
static guint64
count_primes (Worker  *self,
              guint64  lo,
              guint64  hi)
{
  guint64 count = 0;
  guint64 start;

  if (hi > 2)
    ensure_base_primes (self, isqrt_u64 (hi - 1));

  for (start = lo; start < hi; start += BLOCK_SIZE)
    count += count_block (self, start, MIN (hi, start + BLOCK_SIZE));

  return count;
}

static void
fail (Worker     *self,
      const char *message)
{
  g_printerr ("worker.c[%d]: %s\n", getpid (), message);
  self->status = EXIT_FAILURE;
  g_main_loop_quit (self->loop);
}

static gboolean
parse_task (JsonNode *data,
            gint64   *task,
            gint64   *lo,
            gint64   *hi)
{
  JsonObject *object;

  if (data == NULL || !JSON_NODE_HOLDS_OBJECT (data))
    return FALSE;

  object = json_node_get_object (data);
  if (!json_object_has_member (object, "task")
      || !json_object_has_member (object, "lo")
      || !json_object_has_member (object, "hi"))
    return FALSE;

  *task = json_object_get_int_member (object, "task");
  *lo = json_object_get_int_member (object, "lo");
  *hi = json_object_get_int_member (object, "hi");

  return *lo >= 0 && *lo <= *hi;
}

static JsonNode *
build_reply (gint64  task,
             gint64  lo,
             gint64  hi,
             guint64 primes,
             gint64  us)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "task");
  json_builder_add_int_value (builder, task);
  json_builder_set_member_name (builder, "lo");
  json_builder_add_int_value (builder, lo);
  json_builder_set_member_name (builder, "hi");
  json_builder_add_int_value (builder, hi);
  json_builder_set_member_name (builder, "primes");
  json_builder_add_int_value (builder, (gint64) primes);
  json_builder_set_member_name (builder, "us");
  json_builder_add_int_value (builder, us);
  json_builder_end_object (builder);

  return json_builder_get_root (builder);
}

static void
on_do (MpqChannel *channel,
       MpqMessage *message,
       gpointer    user_data)
{
  Worker *self = user_data;
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  gint64 task, lo, hi, started;
  guint64 primes;

  if (!parse_task (mpq_message_get_data (message), &task, &lo, &hi))
    {
      fail (self, "DO without a valid {task, lo, hi}");
      return;
    }

  started = g_get_monotonic_time ();
  primes = count_primes (self, lo, hi);
  reply = build_reply (task, lo, hi, primes, g_get_monotonic_time () - started);

  if (!mpq_channel_send (channel, MPQ_REQ_FINISHED, 0, self->parent_pid, reply, &error))
    {
      g_autofree char *message_text = g_strdup_printf ("could not answer: %s", error->message);

      fail (self, message_text);
    }
}

static void
on_die (MpqChannel *channel,
        MpqMessage *message,
        gpointer    user_data)
{
  Worker *self = user_data;

  /* The queue is closed after the loop: closing it here, before the handler
   * returns, would hand DIE back to the queue as not taken. */
  self->status = EXIT_SUCCESS;
  g_main_loop_quit (self->loop);
}

/* The parent went away without saying DIE: nobody is left to work for. */
static void
on_closed (MpqChannel *channel,
           gpointer    user_data)
{
  fail (user_data, "the parent hung up");
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autoptr(MpqQueue) queue = NULL;
  Worker self = { 0 };

  queue = mpq_queue_new_for_child (&error);
  if (queue == NULL)
    {
      g_printerr ("worker.c: %s\n", error->message);
      return EXIT_FAILURE;
    }

  self.loop = g_main_loop_new (NULL, FALSE);
  self.base_primes = g_array_new (FALSE, FALSE, sizeof (guint32));
  self.block = g_malloc (BLOCK_SIZE);
  self.parent_pid = mpq_queue_get_parent_pid (queue);
  self.status = EXIT_FAILURE;

  g_signal_connect (queue, "message-received::" MPQ_REQ_DO, G_CALLBACK (on_do), &self);
  g_signal_connect (queue, "message-received::" MPQ_REQ_DIE, G_CALLBACK (on_die), &self);
  g_signal_connect (queue, "closed", G_CALLBACK (on_closed), &self);

  /* One task at a time: the next one stays in the queue for whichever
   * worker is free first. */
  mpq_queue_set_prefetch (queue, 1);
  mpq_channel_start (MPQ_CHANNEL (queue));

  if (mpq_channel_send (MPQ_CHANNEL (queue), "READY", 0, self.parent_pid, NULL, &error))
    g_main_loop_run (self.loop);
  else
    g_printerr ("worker.c[%d]: could not say READY: %s\n", getpid (), error->message);

  g_signal_handlers_disconnect_by_data (queue, &self);
  mpq_channel_close (MPQ_CHANNEL (queue));
  g_main_loop_unref (self.loop);
  g_array_unref (self.base_primes);
  g_free (self.block);

  return self.status;
}
