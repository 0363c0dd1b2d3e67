/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Payloads by descriptor (pymulproc/mpq-payload.c): what a sender makes,
 * and what a receiver accepts from a peer before it maps it. Linked from
 * the library's objects: these are private. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "mpq-error.h"
#include "mpq-payload-private.h"

static gboolean
fd_is_open (int fd)
{
  return fcntl (fd, F_GETFD) >= 0 || errno != EBADF;
}

static GBytes *
pattern (gsize size)
{
  guint8 *data = g_malloc (size);

  for (gsize i = 0; i < size; i++)
    data[i] = (guint8) (i * 7 + i / 4096);
  return g_bytes_new_take (data, size);
}

static void
test_round_trip_and_no_copy_on (void)
{
  g_autoptr(GBytes) sent = pattern (3 * 1024 * 1024 + 5);
  g_autoptr(GBytes) got = NULL;
  g_autoptr(GError) error = NULL;
  struct stat first, second;
  int fd = _mpq_payload_memfd_new (sent, &error);
  int mapped_fd, again;

  g_assert_no_error (error);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (_mpq_payload_peek_fd (sent), ==, -1);

  got = _mpq_payload_map (fd, g_bytes_get_size (sent), &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (sent, got));

  /* Sent on, it is the same file. */
  mapped_fd = _mpq_payload_peek_fd (got);
  g_assert_cmpint (mapped_fd, ==, fd);
  again = _mpq_payload_memfd_new (got, &error);
  g_assert_no_error (error);
  g_assert_cmpint (again, !=, fd);
  g_assert_no_errno (fstat (fd, &first));
  g_assert_no_errno (fstat (again, &second));
  g_assert_cmpuint (first.st_ino, ==, second.st_ino);
  close (again);

  /* The mapping closes its descriptor when it goes. */
  g_clear_pointer (&got, g_bytes_unref);
  g_assert_false (fd_is_open (fd));
}

/* A memfd sealed with F_SEAL_FUTURE_WRITE instead of F_SEAL_WRITE (what
 * a sender falls back to when the kernel says EBUSY) is taken. */
static void
test_future_write_taken (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) got = NULL;
  static const char text[] = "sealed against future writes";
  int fd = memfd_create ("future", MFD_CLOEXEC | MFD_ALLOW_SEALING);

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (write (fd, text, sizeof text), ==, sizeof text);
  g_assert_no_errno (fcntl (fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW));
  got = _mpq_payload_map (fd, sizeof text, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (got, NULL), g_bytes_get_size (got), text, sizeof text);
}

typedef enum { UNSEALED, WRITE_ONLY_SEAL, WRONG_SIZE, ZERO_SIZE, A_PIPE, A_FILE, SPARSE } Bad;

static int
make_bad (Bad    bad,
          gsize *size)
{
  int fd = -1;

  *size = 4096;
  if (bad == A_PIPE)
    {
      int fds[2];

      g_assert_no_errno (pipe2 (fds, O_CLOEXEC));
      close (fds[1]);
      return fds[0];
    }
  if (bad == A_FILE)
    {
      g_autofree char *path = NULL;

      fd = g_file_open_tmp ("mpq-payload-XXXXXX", &path, NULL);
      g_assert_cmpint (fd, >=, 0);
      g_assert_no_errno (ftruncate (fd, 4096));
      g_unlink (path);
      return fd;
    }

  fd = memfd_create ("bad", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  g_assert_cmpint (fd, >=, 0);
  if (bad == SPARSE)
    {
      /* 64 MiB said, one page written: the rest would be the reader's. */
      static const char page[4096] = { 1 };

      *size = 64 * 1024 * 1024;
      g_assert_no_errno (ftruncate (fd, *size));
      g_assert_cmpint (pwrite (fd, page, sizeof page, 0), ==, sizeof page);
      g_assert_no_errno (fcntl (fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW));
      return fd;
    }
  g_assert_no_errno (ftruncate (fd, 4096));
  if (bad == WRITE_ONLY_SEAL)
    g_assert_no_errno (fcntl (fd, F_ADD_SEALS, F_SEAL_WRITE));
  else if (bad != UNSEALED)
    g_assert_no_errno (fcntl (fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW));
  if (bad == WRONG_SIZE)
    *size = 4097;
  if (bad == ZERO_SIZE)
    *size = 0;
  return fd;
}

/* A peer's descriptor that could change or vanish under a mapping, or is
 * not what its line says, is refused, and closed. */
static void
test_refused (gconstpointer data)
{
  Bad bad = GPOINTER_TO_INT (data);
  g_autoptr(GError) error = NULL;
  gsize size;
  int fd = make_bad (bad, &size);
  GBytes *got = _mpq_payload_map (fd, size, &error);

  g_assert_null (got);
  g_assert_error (error, MPQ_ERROR, MPQ_ERROR_PROTOCOL);
  g_assert_false (fd_is_open (fd));
}

int
main (int   argc,
      char *argv[])
{
  static const struct { const char *name; Bad bad; } refused[] = {
    { "unsealed", UNSEALED },
    { "sealed-against-writing-only", WRITE_ONLY_SEAL },
    { "wrong-size", WRONG_SIZE },
    { "zero-size", ZERO_SIZE },
    { "a-pipe", A_PIPE },
    { "a-file", A_FILE },
    { "sparse", SPARSE },
  };

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/Mpq/Payload/round-trip-and-no-copy-on", test_round_trip_and_no_copy_on);
  g_test_add_func ("/Mpq/Payload/future-write-taken", test_future_write_taken);
  for (guint i = 0; i < G_N_ELEMENTS (refused); i++)
    {
      g_autofree char *path = g_strdup_printf ("/Mpq/Payload/refused/%s", refused[i].name);

      g_test_add_data_func (path, GINT_TO_POINTER (refused[i].bad), test_refused);
    }

  return g_test_run ();
}
