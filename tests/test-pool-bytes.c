/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pool tasks with binary payloads (mpq_pool_submit_bytes (),
 * mpq_invocation_get_bytes () and return_bytes ()) and the format a
 * worker names in its READY (mpq_worker_set_format ()), with real
 * workers (mpq-pool-test-worker). No sleeps. */
#include "pool-test-util.h"

#define KIB 1024
#define MIB (1024 * 1024)

/* @size bytes no pattern of the library's could make up, the same for a
 * @seed on every run. */
static GBytes *
random_bytes (gsize   size,
              guint32 seed)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (seed);
  guint8 *data = g_malloc (MAX (size, 1));

  for (gsize i = 0; i < size; i++)
    data[i] = (guint8) g_rand_int_range (rand, 0, 256);
  return g_bytes_new_take (data, size);
}

static MpqTask *
submit_bytes (MpqPool    *pool,
              const char *request,
              GBytes     *payload)
{
  g_autoptr(GError) error = NULL;
  MpqTask *task = mpq_pool_submit_bytes (pool, request, NULL, payload, &error);

  g_assert_no_error (error);
  g_assert_nonnull (task);
  return task;
}

static MpqMessage *
wait_reply (MpqTask *task)
{
  g_autoptr(GError) error = NULL;
  MpqMessage *reply = mpq_task_wait (task, -1, &error);

  g_assert_no_error (error);
  g_assert_nonnull (reply);
  g_assert_cmpstr (mpq_message_get_request (reply), ==, MPQ_REQ_FINISHED);
  g_assert_cmpint (mpq_task_get_state (task), ==, MPQ_TASK_DONE);
  g_assert_cmpint (mpq_message_get_sender_pid (reply), ==, mpq_task_get_worker_pid (task));
  return reply;
}

/* Whether @bytes is memory mapped from one of the library's memfds: a
 * payload that came by descriptor, not inline. */
static gboolean
is_mapped_memfd (GBytes *bytes)
{
  g_autofree char *maps = NULL;
  g_auto(GStrv) lines = NULL;
  guintptr address = (guintptr) g_bytes_get_data (bytes, NULL);

  g_assert_true (g_file_get_contents ("/proc/self/maps", &maps, NULL, NULL));
  lines = g_strsplit (maps, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      guint64 start, end;
      char *rest;

      start = g_ascii_strtoull (lines[i], &rest, 16);
      if (*rest != '-')
        continue;
      end = g_ascii_strtoull (rest + 1, NULL, 16);
      if (address >= start && address < end)
        return strstr (lines[i], "memfd:mpq-payload") != NULL;
    }
  return FALSE;
}

/* The reply of a bytes-echo task: data the size of @payload, bytes that
 * are @payload XOR 0xFF, byte for byte (the worker read what was sent,
 * not just handed it back). */
static MpqMessage *
wait_xored (MpqTask *task,
            GBytes  *payload)
{
  MpqMessage *reply = wait_reply (task);
  GBytes *got = mpq_message_get_bytes (reply);
  gsize size, got_size;
  const guint8 *sent = g_bytes_get_data (payload, &size);
  const guint8 *back;
  gsize i;

  g_assert_nonnull (mpq_message_get_data (reply));
  g_assert_cmpint (json_node_get_int (mpq_message_get_data (reply)), ==, (gint64) size);
  g_assert_nonnull (got);
  back = g_bytes_get_data (got, &got_size);
  g_assert_cmpuint (got_size, ==, size);
  for (i = 0; i < size && (back[i] ^ sent[i]) == 0xff; i++)
    ;
  g_assert_cmpuint (i, ==, size);
  return reply;
}

/* Each way, a payload of @size: inline up to MPQ_PAYLOAD_INLINE_MAX, by
 * memfd above (the reply's bytes say which: they are mapped from the
 * worker's memfd, or not). */
static void
echo_size (gsize size)
{
  g_autoptr(MpqPool) pool = new_pool (1);
  g_autoptr(GBytes) payload = random_bytes (size, size);
  g_autoptr(MpqTask) task = submit_bytes (pool, "bytes-echo", payload);
  g_autoptr(MpqMessage) reply = wait_xored (task, payload);

  g_assert_cmpint (is_mapped_memfd (mpq_message_get_bytes (reply)), ==,
                   size > MPQ_PAYLOAD_INLINE_MAX);
  g_assert_cmpuint (mpq_task_get_attempts (task), ==, 1);
  shutdown_ok (pool);
}

static void
test_bytes_small (void)
{
  echo_size (KIB);
}

static void
test_bytes_large (void)
{
  echo_size (3 * MIB);
}

/* Either side of the inline limit, and a single byte. */
static void
test_bytes_inline_limit (void)
{
  echo_size (1);
  echo_size (MPQ_PAYLOAD_INLINE_MAX);
  echo_size (MPQ_PAYLOAD_INLINE_MAX + 1);
}

/* A task without a payload has none at the worker, and its reply none,
 * even on the worker that just had one (nothing of the task before is
 * left over); an empty payload goes and comes back as no harm. */
static void
test_bytes_no_payload (void)
{
  g_autoptr(MpqPool) pool = new_pool (1);
  g_autoptr(GBytes) payload = random_bytes (KIB, 1);
  g_autoptr(GBytes) empty = g_bytes_new (NULL, 0);
  g_autoptr(MpqTask) with = submit_bytes (pool, "bytes-echo", payload);
  g_autoptr(MpqTask) without = submit_int (pool, "bytes-echo", 5);
  g_autoptr(MpqTask) with_empty = submit_bytes (pool, "bytes-echo", empty);
  g_autoptr(MpqTask) after = submit_int (pool, "bytes-echo", 6);
  g_autoptr(MpqMessage) xored = wait_xored (with, payload);
  MpqTask *nothing[] = { without, with_empty, after };

  for (guint i = 0; i < G_N_ELEMENTS (nothing); i++)
    {
      g_autoptr(MpqMessage) reply = wait_reply (nothing[i]);

      g_assert_null (mpq_message_get_data (reply));
      g_assert_null (mpq_message_get_bytes (reply));
    }
  /* One worker did them all, in turn. */
  g_assert_cmpint (mpq_task_get_worker_pid (after), ==, mpq_task_get_worker_pid (with));
  shutdown_ok (pool);
}

static void
lost_pid_cb (MpqPool  *pool,
             gint      pid,
             gint      wait_status,
             gboolean  expected,
             gint     *lost)
{
  if (!expected)
    *lost = pid;
}

/* The first worker to get the task dies of it; handed to the other, it
 * goes with the same payload, inline or by memfd (the memfd the pool
 * sent the first time was the dead worker's to read, not used up). */
static void
test_bytes_retry_keeps_payload (void)
{
  const gsize sizes[] = { KIB, 200 * KIB };

  for (guint k = 0; k < G_N_ELEMENTS (sizes); k++)
    {
      g_autofree char *dir = g_dir_make_tmp ("mpq-pool-bytes-XXXXXX", NULL);
      Counts counts = { 0, };
      g_autoptr(MpqPool) pool = new_pool_full (2, NULL, dir, &counts);
      g_autoptr(GBytes) payload = random_bytes (sizes[k], k + 1);
      g_autoptr(MpqTask) task = NULL;
      g_autoptr(MpqMessage) reply = NULL;
      g_autofree char *seen_path = g_build_filename (dir, "bytes-seen", NULL);
      g_autofree char *seen = NULL;
      g_autofree char *size = g_strdup_printf ("%" G_GSIZE_FORMAT, sizes[k]);
      gint lost = 0;

      g_assert_nonnull (dir);
      g_signal_connect (pool, "worker-exited", G_CALLBACK (lost_pid_cb), &lost);
      mpq_pool_set_max_attempts (pool, 2);
      task = submit_bytes (pool, "crash-unless-bytes-seen", payload);
      reply = wait_xored (task, payload);
      g_assert_cmpuint (mpq_task_get_attempts (task), ==, 2);
      g_assert_cmpuint (counts.exited_unexpected, ==, 1);
      g_assert_cmpint (lost, >, 0);
      g_assert_cmpint (mpq_message_get_sender_pid (reply), !=, lost);
      /* The one that died had the payload, whole, too. */
      g_assert_true (g_file_get_contents (seen_path, &seen, NULL, NULL));
      g_assert_cmpstr (seen, ==, size);
      shutdown_ok (pool);
      remove_dir (dir);
    }
}

static void
format_seen_cb (MpqPool    *pool,
                gint        pid,
                GPtrArray  *formats)
{
  g_ptr_array_add (formats, g_strdup (mpq_pool_get_worker_format (pool)));
}

/* The format a worker names is the pool's once its READY came (already
 * when worker-started is emitted), and not before; a worker that names
 * none gives NULL. The name goes as a JSON string: quotes, backslashes
 * and what is not ASCII come through as they were. */
static void
test_bytes_worker_format (void)
{
  const char *formats[] = { "python-pickle", "a \"quoted\" \\ f\xc3\xb6rmat", NULL };

  for (guint k = 0; k < G_N_ELEMENTS (formats); k++)
    {
      g_autofree char *arg = formats[k] != NULL ? g_strdup_printf ("--format=%s", formats[k])
                                                : NULL;
      Counts counts = { 0, };
      g_autoptr(MpqPool) pool = new_pool_full (2, arg, NULL, &counts);
      g_autoptr(GPtrArray) seen = g_ptr_array_new_with_free_func (g_free);
      g_autoptr(MpqTask) task = NULL;

      g_signal_connect (pool, "worker-started", G_CALLBACK (format_seen_cb), seen);
      g_assert_cmpuint (counts.started, ==, 0);
      g_assert_null (mpq_pool_get_worker_format (pool));
      /* A READY the pool cannot read is a death at start-up: seen at
       * once, not waited for ever. */
      while (counts.started < 2 && counts.exited_unexpected == 0)
        g_main_context_iteration (NULL, TRUE);
      g_assert_cmpuint (counts.exited_unexpected, ==, 0);
      g_assert_cmpuint (seen->len, ==, 2);
      for (guint i = 0; i < seen->len; i++)
        g_assert_cmpstr (g_ptr_array_index (seen, i), ==, formats[k]);
      g_assert_cmpstr (mpq_pool_get_worker_format (pool), ==, formats[k]);

      /* Workers that name a format serve tasks as any other. */
      task = submit_int (pool, "square", 4);
      g_assert_cmpint (wait_int (task), ==, 16);
      g_assert_cmpstr (mpq_pool_get_worker_format (pool), ==, formats[k]);
      shutdown_ok (pool);
    }
}

/* Many payloads by memfd at once, two workers, all of them handed out
 * before the first answer: each reply carries its own task's bytes. */
static void
test_bytes_many_in_flight (void)
{
  g_autoptr(MpqPool) pool = new_pool (2);
  g_autoptr(GPtrArray) payloads = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GPtrArray) tasks = g_ptr_array_new_with_free_func (g_object_unref);

  for (guint i = 0; i < 40; i++)
    {
      g_autoptr(GBytes) random = random_bytes (100 * KIB, 1000 + i);
      gsize size;
      guint8 *data = g_bytes_unref_to_data (g_steal_pointer (&random), &size);

      /* Told apart by their first byte too, whatever the random ones. */
      data[0] = (guint8) i;
      g_ptr_array_add (payloads, g_bytes_new_take (data, size));
      g_ptr_array_add (tasks, submit_bytes (pool, "bytes-echo", g_ptr_array_index (payloads, i)));
    }
  for (guint i = 0; i < tasks->len; i++)
    {
      g_autoptr(MpqMessage) reply = wait_xored (g_ptr_array_index (tasks, i),
                                                g_ptr_array_index (payloads, i));
      const guint8 *back = g_bytes_get_data (mpq_message_get_bytes (reply), NULL);

      g_assert_cmpuint (back[0], ==, i ^ 0xff);
      g_assert_true (is_mapped_memfd (mpq_message_get_bytes (reply)));
    }
  shutdown_ok (pool);
}

/* How many lines of the workers' logs in @dir are @line. */
static guint
count_logged (const char *dir,
              const char *line)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;
  guint n = 0;

  g_assert_nonnull (d);
  while ((name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);
      g_autofree char *text = NULL;
      g_auto(GStrv) lines = NULL;

      g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
      lines = g_strsplit (text, "\n", -1);
      for (guint i = 0; lines[i] != NULL; i++)
        n += g_str_equal (lines[i], line);
    }
  return n;
}

/* return_bytes on a map's batch is refused with MPQ_ERROR_PROTOCOL and
 * leaves the batch to answer (the worker asserts both: had it been sent,
 * or crashed, the worker would die and the map fail WORKER_LOST). */
static void
test_bytes_on_batch (void)
{
  g_autofree char *dir = g_dir_make_tmp ("mpq-pool-bytes-XXXXXX", NULL);
  Counts counts = { 0, };
  g_autoptr(MpqPool) pool = NULL;
  g_autofree char *items = int_array (100);
  g_autofree char *results = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) payload = random_bytes (KIB, 7);
  g_autoptr(MpqTask) after = NULL;
  g_autoptr(MpqMessage) reply = NULL;

  g_assert_nonnull (dir);
  pool = new_pool_full (2, "--batches", dir, &counts);
  run_until_counts (&counts, 2, 0);
  results = mpq_pool_map_json (pool, "bytes-on-batch", items, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (results, ==, items);

  /* The workers go on, and answer with bytes what is no batch. */
  after = submit_bytes (pool, "bytes-echo", payload);
  reply = wait_xored (after, payload);
  shutdown_ok (pool);
  g_assert_cmpuint (counts.exited_unexpected, ==, 0);
  /* By batches: the handler that tried return_bytes is what answered. */
  g_assert_cmpuint (count_logged (dir, "batch bytes-on-batch"), >, 0);
  g_assert_cmpuint (count_logged (dir, "bytes-on-batch"), ==, 0);
  remove_dir (dir);
}

void
test_pool_add_bytes_tests (void)
{
  g_test_add_func ("/Mpq/Pool/bytes/small", test_bytes_small);
  g_test_add_func ("/Mpq/Pool/bytes/large", test_bytes_large);
  g_test_add_func ("/Mpq/Pool/bytes/inline-limit", test_bytes_inline_limit);
  g_test_add_func ("/Mpq/Pool/bytes/no-payload", test_bytes_no_payload);
  g_test_add_func ("/Mpq/Pool/bytes/retry-keeps-payload", test_bytes_retry_keeps_payload);
  g_test_add_func ("/Mpq/Pool/bytes/worker-format", test_bytes_worker_format);
  g_test_add_func ("/Mpq/Pool/bytes/many-in-flight", test_bytes_many_in_flight);
  g_test_add_func ("/Mpq/Pool/bytes/on-batch", test_bytes_on_batch);
}
