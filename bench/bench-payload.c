/* SPDX-License-Identifier: LGPL-2.1-or-later */

#define _GNU_SOURCE

#include "bench-payload.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAMPLES 16
#define SEALS   (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

typedef struct
{
  guint8 *data;
  gint    held;   /* atomic: set by the taker, cleared by the GBytes' last unref */
} Slot;

struct _BenchPayloadPool
{
  gsize      size;
  GPtrArray *slots;   /* Slot; only the taker's thread touches the array */
};

/* splitmix64's finaliser: cheap, and every output bit depends on every
 * input bit. */
static guint64
mix (guint64 x)
{
  x += G_GUINT64_CONSTANT (0x9E3779B97F4A7C15);
  x = (x ^ (x >> 30)) * G_GUINT64_CONSTANT (0xBF58476D1CE4E5B9);
  x = (x ^ (x >> 27)) * G_GUINT64_CONSTANT (0x94D049BB133111EB);
  return x ^ (x >> 31);
}

/* Where message @index's sample @j lies and what it holds. */
static void
sample (gint64  index,
        gsize   size,
        guint   j,
        gsize  *position,
        guint8 *byte)
{
  gsize stripe = (size - 16) / SAMPLES;
  guint64 m = mix ((guint64) index * SAMPLES + j);

  *position = 8 + j * stripe + m % stripe;
  *byte = m >> 56;
}

/* FNV-1a of the samples, seeded with the index. */
static guint64
checksum (gint64 index,
          gsize  size)
{
  guint64 h = G_GUINT64_CONSTANT (0xCBF29CE484222325) ^ (guint64) index;
  gsize position;
  guint8 byte;
  guint j;

  for (j = 0; j < SAMPLES; j++)
    {
      sample (index, size, j, &position, &byte);
      h = (h ^ byte) * G_GUINT64_CONSTANT (0x100000001B3);
    }

  return h;
}

static guint64
read_le64 (const guint8 *p)
{
  guint64 value;

  memcpy (&value, p, sizeof value);
  return GUINT64_FROM_LE (value);
}

static void
write_le64 (guint8  *p,
            guint64  value)
{
  value = GUINT64_TO_LE (value);
  memcpy (p, &value, sizeof value);
}

static void
stamp (guint8 *data,
       gsize   size,
       gint64  index)
{
  gsize position;
  guint8 byte;
  guint j;

  write_le64 (data, index);
  for (j = 0; j < SAMPLES; j++)
    {
      sample (index, size, j, &position, &byte);
      data[position] = byte;
    }
  write_le64 (data + size - 8, checksum (index, size));
}

BenchPayloadPool *
bench_payload_pool_new (gsize size)
{
  BenchPayloadPool *pool = g_new0 (BenchPayloadPool, 1);

  g_assert (size >= 16 + SAMPLES);
  pool->size = size;
  pool->slots = g_ptr_array_new ();

  return pool;
}

static void
release (gpointer user_data)
{
  Slot *slot = user_data;

  g_atomic_int_set (&slot->held, 0);
}

GBytes *
bench_payload_pool_take (BenchPayloadPool *pool,
                         gint64            index)
{
  Slot *slot = NULL;
  guint i;

  for (i = 0; i < pool->slots->len && slot == NULL; i++)
    if (!g_atomic_int_get (&((Slot *) pool->slots->pdata[i])->held))
      slot = pool->slots->pdata[i];

  if (slot == NULL)
    {
      gsize k;

      /* Every byte written once: real pages, not zero pages. */
      slot = g_new0 (Slot, 1);
      slot->data = g_malloc (pool->size);
      for (k = 0; k < pool->size; k++)
        slot->data[k] = k & 0xff;
      g_ptr_array_add (pool->slots, slot);
    }

  g_atomic_int_set (&slot->held, 1);
  stamp (slot->data, pool->size, index);

  return g_bytes_new_with_free_func (slot->data, pool->size, release, slot);
}

void
bench_payload_pool_free (BenchPayloadPool *pool)
{
  guint i;

  for (i = 0; i < pool->slots->len; i++)
    {
      Slot *slot = pool->slots->pdata[i];

      if (g_atomic_int_get (&slot->held))
        continue;
      g_free (slot->data);
      g_free (slot);
    }

  g_ptr_array_unref (pool->slots);
  g_free (pool);
}

gint64
bench_payload_index (const guint8 *data,
                     gsize         length,
                     gint64        size)
{
  if (data == NULL || (gint64) length != size)
    bench_fail ("a payload of %" G_GSIZE_FORMAT " bytes, not %" G_GINT64_FORMAT,
                data != NULL ? length : 0, size);

  return (gint64) read_le64 (data);
}

void
bench_payload_check (const guint8 *data,
                     gsize         length,
                     gint64        size,
                     gint64        index)
{
  gint64 found = bench_payload_index (data, length, size);
  gsize position;
  guint8 byte;
  guint j;

  if (found != index)
    bench_fail ("payload %" G_GINT64_FORMAT " came back as %" G_GINT64_FORMAT, index, found);

  for (j = 0; j < SAMPLES; j++)
    {
      sample (index, length, j, &position, &byte);
      if (data[position] != byte)
        bench_fail ("payload %" G_GINT64_FORMAT ": byte %" G_GSIZE_FORMAT " is %u, not %u",
                    index, position, data[position], byte);
    }

  if (read_le64 (data + length - 8) != checksum (index, length))
    bench_fail ("payload %" G_GINT64_FORMAT ": wrong checksum", index);
}

int
bench_memfd_new (GBytes *data)
{
  gsize length;
  gconstpointer p = g_bytes_get_data (data, &length);
  int fd;

  fd = memfd_create ("mpq-bench-payload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    bench_fail ("memfd_create: %s", g_strerror (errno));

  bench_write_all (fd, p, length);

  if (fcntl (fd, F_ADD_SEALS, SEALS) != 0)
    bench_fail ("sealing a memfd: %s", g_strerror (errno));

  return fd;
}

const guint8 *
bench_memfd_map (int    fd,
                 gint64 size)
{
  struct stat st = { 0 };
  int seals = fcntl (fd, F_GET_SEALS);
  void *data;

  /* Unsealed, the sender could still change or shrink it under the
   * mapping (a shrink is a SIGBUS here). */
  if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_WRITE)) != (F_SEAL_SHRINK | F_SEAL_WRITE))
    bench_fail ("a payload fd that is not a sealed memfd");
  if (fstat (fd, &st) != 0 || st.st_size != size)
    bench_fail ("a payload memfd of %" G_GINT64_FORMAT " bytes, not %" G_GINT64_FORMAT,
                (gint64) st.st_size, size);

  data = mmap (NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  if (data == MAP_FAILED)
    bench_fail ("mmap: %s", g_strerror (errno));

  return data;
}
