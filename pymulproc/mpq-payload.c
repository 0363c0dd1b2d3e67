/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define _GNU_SOURCE  /* memfd_create, file seals */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpq-error.h"
#include "mpq-lock-private.h"
#include "mpq-payload-private.h"
#include "mpq-protocol.h"

/* What a payload's memfd must be sealed with: no shrinking (a mapping of
 * a shrunk file raises SIGBUS), no growing, and no writing: F_SEAL_WRITE,
 * or F_SEAL_FUTURE_WRITE, which the kernel grants even while it cannot
 * prove that no page is pinned (F_SEAL_WRITE then fails with EBUSY, as
 * seen under memory pressure). */
#define SIZE_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)
#define WRITE_SEALS (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)

/* One mapped payload: the GBytes over it unmaps it and closes the file
 * when its last reference goes. */
typedef struct
{
  gpointer data;
  gsize    size;
  int      fd;
} Mapping;

/* Mapping by its data's address, for _mpq_payload_peek_fd(). */
static MpqMutex    mappings_lock;
static GHashTable *mappings;

static void
mappings_init (void)
{
  static gsize initialized = 0;

  if (g_once_init_enter (&initialized))
    {
      _mpq_mutex_init (&mappings_lock);
      mappings = g_hash_table_new (NULL, NULL);
      g_once_init_leave (&initialized, 1);
    }
}

static void
mapping_free (gpointer data)
{
  Mapping *mapping = data;

  _mpq_mutex_lock (&mappings_lock);
  g_hash_table_remove (mappings, mapping->data);
  _mpq_mutex_unlock (&mappings_lock);

  munmap (mapping->data, mapping->size);
  close (mapping->fd);
  g_free (mapping);
}

static gboolean
fail_errno (GError     **error,
            const char  *what)
{
  int saved = errno;

  g_set_error (error, MPQ_ERROR, MPQ_ERROR_FAILED, "%s: %s", what, g_strerror (saved));
  return FALSE;
}

static gboolean
write_all (int            fd,
           const guint8  *data,
           gsize          size,
           GError       **error)
{
  while (size > 0)
    {
      gssize n = write (fd, data, size);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return fail_errno (error, "Could not fill a payload's memfd");
      data += n;
      size -= n;
    }
  return TRUE;
}

/* About how long a message line is with a payload of @size bytes inline
 * (base64: 4 bytes for 3, and room for the rest of the message). */
gsize
_mpq_payload_inline_length (gsize size)
{
  return size / 3 * 4 + 260;
}

/* Whether a payload of @size bytes goes inline whoever the peer is: it is
 * small (a memfd costs more than the base64), and fits in a line. Larger
 * ones go by descriptor to a peer that takes them. Pipes and queues. */
gboolean
_mpq_payload_goes_inline (gsize size,
                          gsize max_message_size)
{
  return size <= MPQ_PAYLOAD_INLINE_MAX && _mpq_payload_inline_length (size) <= max_message_size;
}

/* A new memfd holding @payload, sealed; or the one @payload came in
 * (a new descriptor for it). -1 with @error set on failure. */
int
_mpq_payload_memfd_new (GBytes  *payload,
                        GError **error)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (payload, &size);
  int fd = _mpq_payload_peek_fd (payload);

  if (fd >= 0)
    {
      fd = fcntl (fd, F_DUPFD_CLOEXEC, 3);
      if (fd < 0)
        fail_errno (error, "Could not duplicate a payload's memfd");
      return fd;
    }

  fd = memfd_create ("mpq-payload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    {
      fail_errno (error, "Could not make a memfd for a payload");
      return -1;
    }
  if (!write_all (fd, data, size, error))
    {
      close (fd);
      return -1;
    }
  if (fcntl (fd, F_ADD_SEALS, SIZE_SEALS | F_SEAL_WRITE | F_SEAL_SEAL) < 0 &&
      (errno != EBUSY ||
       fcntl (fd, F_ADD_SEALS, SIZE_SEALS | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0))
    {
      fail_errno (error, "Could not seal a payload's memfd");
      close (fd);
      return -1;
    }
  return fd;
}

/* Whether @fd, which a peer sent as a payload of @size bytes, may be
 * mapped: a memfd sealed against writing (SEALS above), shrinking and
 * growing, of @size
 * bytes, every page written (a hole read would allocate in the reader).
 * MPQ_ERROR_PROTOCOL if not: the peer broke the rules. Does not take @fd. */
gboolean
_mpq_payload_check_fd (int      fd,
                       gsize    size,
                       GError **error)
{
  struct stat st;
  int seals = fcntl (fd, F_GET_SEALS);

  if (seals < 0 || (seals & SIZE_SEALS) != SIZE_SEALS || (seals & WRITE_SEALS) == 0)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                           "A payload's descriptor is not a sealed memfd");
      return FALSE;
    }
  if (fstat (fd, &st) < 0 || size == 0 || size > MPQ_PAYLOAD_MAX_SIZE ||
      (guint64) st.st_size != (guint64) size)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                   "A payload's memfd does not hold the %" G_GSIZE_FORMAT " bytes its line says",
                   size);
      return FALSE;
    }
  if ((guint64) st.st_blocks * 512 < (guint64) size)
    {
      g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL,
                           "A payload's memfd has holes: its sender did not write it");
      return FALSE;
    }
  return TRUE;
}

/* Maps @fd, which a peer sent as a payload of @size bytes, read-only, and
 * takes it: closed with the returned GBytes, or at once on failure. What
 * _mpq_payload_check_fd() refuses is MPQ_ERROR_PROTOCOL. */
GBytes *
_mpq_payload_map (int      fd,
                  gsize    size,
                  GError **error)
{
  Mapping *mapping;

  if (!_mpq_payload_check_fd (fd, size, error))
    {
      close (fd);
      return NULL;
    }

  mapping = g_new0 (Mapping, 1);
  mapping->data = mmap (NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  if (mapping->data == MAP_FAILED)
    {
      fail_errno (error, "Could not map a payload");
      g_free (mapping);
      close (fd);
      return NULL;
    }
  mapping->size = size;
  mapping->fd = fd;

  mappings_init ();
  _mpq_mutex_lock (&mappings_lock);
  g_hash_table_insert (mappings, mapping->data, mapping);
  _mpq_mutex_unlock (&mappings_lock);

  return g_bytes_new_with_free_func (mapping->data, size, mapping_free, mapping);
}

/* The memfd @payload is a whole mapping of, or -1 (the caller must not
 * close it: it lives as long as @payload). */
int
_mpq_payload_peek_fd (GBytes *payload)
{
  gsize size;
  gconstpointer data = g_bytes_get_data (payload, &size);
  Mapping *mapping;
  int fd = -1;

  if (data == NULL)
    return -1;

  mappings_init ();
  _mpq_mutex_lock (&mappings_lock);
  mapping = g_hash_table_lookup (mappings, data);
  if (mapping != NULL && mapping->size == size)
    fd = mapping->fd;
  _mpq_mutex_unlock (&mappings_lock);
  return fd;
}
