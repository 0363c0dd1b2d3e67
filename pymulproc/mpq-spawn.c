/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mpq-error.h"
#include "mpq-protocol.h"
#include "mpq-spawn-private.h"

#define SOCKET_BUFFER_SIZE (4 * 1024 * 1024)

gboolean
_mpq_socketpair (int      fds[2],
                 GError **error)
{
  /* Close-on-exec from birth: only the child we spawn gets its end. */
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_FAILED,
                   "Could not create a socket pair: %s", g_strerror (errno));
      return FALSE;
    }

  /* The kernel charges every write a few hundred bytes of overhead, so the
   * default buffer holds only ~280 short messages. A writer that exits
   * before its reader reads (pymulproc's own examples do) must fit: ask for
   * the most net.core.wmem_max allows. */
  for (int i = 0; i < 2; i++)
    {
      int size = SOCKET_BUFFER_SIZE;

      setsockopt (fds[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    }

  return TRUE;
}

void
_mpq_fd_set_nonblocking (int fd)
{
  int flags = fcntl (fd, F_GETFL);

  if (flags >= 0 && (flags & O_NONBLOCK) == 0)
    fcntl (fd, F_SETFL, flags | O_NONBLOCK);
}

/* A launcher the caller gave keeps one descriptor number for the child's
 * end of the channel, from its first spawn on (GSubprocessLauncher can
 * neither forget a taken descriptor nor spawn again once closed). Between
 * spawns that number holds /dev/null, so that no copy of a child's end
 * stays in this process (the child's death must look like a hang-up at
 * once) and the number is not reused by anything the launcher would close
 * later. */
#define LAUNCHER_SLOT_KEY "mpq-spawn-channel-slot"

static int
launcher_slot (GSubprocessLauncher  *launcher,
               int                   child_fd,
               GError              **error)
{
  int slot = GPOINTER_TO_INT (g_object_get_data (G_OBJECT (launcher), LAUNCHER_SLOT_KEY)) - 1;

  if (slot < 0)
    {
      g_subprocess_launcher_take_fd (launcher, child_fd, child_fd);
      g_object_set_data (G_OBJECT (launcher), LAUNCHER_SLOT_KEY, GINT_TO_POINTER (child_fd + 1));
      return child_fd;
    }
  if (dup3 (child_fd, slot, O_CLOEXEC) < 0)
    {
      int saved = errno;

      close (child_fd);
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_FAILED,
                   "Could not pass the channel to the child: %s", g_strerror (saved));
      return -1;
    }
  close (child_fd);
  return slot;
}

static void
release_slot (int slot)
{
  int devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);

  if (devnull < 0 || dup3 (devnull, slot, O_CLOEXEC) < 0)
    g_warning ("Could not release a child's end of its channel: %s", g_strerror (errno));
  if (devnull >= 0)
    close (devnull);
}

/* Spawns @argv with @child_fd (taken) inherited and named by
 * MPQ_CHANNEL_FD; this process keeps no copy of it. */
GSubprocess *
_mpq_spawn_child (GSubprocessLauncher  *launcher,
                  int                   child_fd,
                  const char           *kind,
                  const char * const   *argv,
                  GError              **error)
{
  g_autoptr(GSubprocessLauncher) own_launcher = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autofree char *fd_text = NULL;
  GSubprocess *subprocess;
  int fd = child_fd;

  if (launcher == NULL)
    {
      launcher = own_launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
      g_subprocess_launcher_take_fd (launcher, child_fd, child_fd);
    }
  else if ((fd = launcher_slot (launcher, child_fd, error)) < 0)
    return NULL;

  fd_text = g_strdup_printf ("%d", fd);
  g_subprocess_launcher_setenv (launcher, MPQ_CHANNEL_FD_ENV, fd_text, TRUE);
  g_subprocess_launcher_setenv (launcher, MPQ_CHANNEL_KIND_ENV, kind, TRUE);
  /* Pipes: this parent takes payloads by descriptor. */
  if (g_str_equal (kind, "pipe"))
    g_subprocess_launcher_setenv (launcher, MPQ_CHANNEL_FDS_ENV, "1", TRUE);
  else
    g_subprocess_launcher_unsetenv (launcher, MPQ_CHANNEL_FDS_ENV);

  subprocess = g_subprocess_launcher_spawnv (launcher, argv, &local_error);
  if (own_launcher != NULL)
    g_subprocess_launcher_close (launcher);
  else
    release_slot (fd);

  if (subprocess == NULL)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_FAILED,
                   "Could not spawn %s: %s", argv[0], local_error->message);
      return NULL;
    }

  return subprocess;
}

/* Each process has one inherited channel: claiming it twice would put two
 * readers on one stream. */
static gint claimed_fd = -1;

int
_mpq_claim_child_fd (const char  *kind,
                     GError     **error)
{
  const char *fd_text = g_getenv (MPQ_CHANNEL_FD_ENV);
  const char *kind_text = g_getenv (MPQ_CHANNEL_KIND_ENV);
  gint64 fd;
  char *end = NULL;
  int type = 0;
  socklen_t len = sizeof type;

  if (fd_text == NULL || fd_text[0] == '\0')
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD,
                   "This process was not spawned with a channel (%s is not set)",
                   MPQ_CHANNEL_FD_ENV);
      return -1;
    }

  if (kind_text != NULL && g_strcmp0 (kind_text, kind) != 0)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD,
                   "This process was spawned with a %s, not a %s", kind_text, kind);
      return -1;
    }

  fd = g_ascii_strtoll (fd_text, &end, 10);
  if (end == fd_text || *end != '\0' || fd < 0 || fd > G_MAXINT
      || getsockopt ((int) fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0
      || type != SOCK_STREAM)
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_NOT_A_CHILD,
                   "%s=%s does not name an inherited stream socket",
                   MPQ_CHANNEL_FD_ENV, fd_text);
      return -1;
    }

  if (!g_atomic_int_compare_and_exchange (&claimed_fd, -1, (gint) fd))
    {
      g_set_error (error, MPQ_ERROR, MPQ_ERROR_FAILED,
                   "The inherited channel %s=%s is already in use in this process",
                   MPQ_CHANNEL_FD_ENV, fd_text);
      return -1;
    }

  /* Our own children must not hold the parent's channel open. */
  fcntl ((int) fd, F_SETFD, FD_CLOEXEC);
  _mpq_fd_set_nonblocking ((int) fd);

  return (int) fd;
}

/* Waits until @fd has one of @events, or until @deadline (monotonic µs,
 * -1 for never). Returns FALSE on time-out. */
gboolean
_mpq_wait_fd (int    fd,
              short  events,
              gint64 deadline)
{
  struct pollfd pfd = { .fd = fd, .events = events };

  for (;;)
    {
      int timeout = -1;
      int r;

      if (deadline >= 0)
        {
          gint64 now = g_get_monotonic_time ();

          if (now >= deadline)
            timeout = 0;
          else
            timeout = (int) MIN ((deadline - now + 999) / 1000, G_MAXINT);
        }

      r = poll (&pfd, 1, timeout);
      if (r > 0)
        return TRUE;
      if (r == 0)
        {
          if (deadline < 0 || g_get_monotonic_time () >= deadline)
            return FALSE;
          continue;
        }
      if (errno != EINTR)
        return TRUE; /* let the caller's read or write report it */
    }
}

/* Writes what it can without blocking. Returns the bytes written, or -1 with
 * @error set if the peer is gone (MPQ_ERROR_CLOSED) or the write failed. */
gssize
_mpq_write_some (int          fd,
                 const char  *data,
                 gsize        length,
                 GError     **error)
{
  return _mpq_write_some_with_fd (fd, data, length, -1, error);
}

/* As _mpq_write_some(), passing @pass_fd (unless -1) with the first byte
 * written: a reader gets it with the read that returns that byte. */
gssize
_mpq_write_some_with_fd (int          fd,
                         const char  *data,
                         gsize        length,
                         int          pass_fd,
                         GError     **error)
{
  union
  {
    struct cmsghdr align;
    char           buf[CMSG_SPACE (sizeof (int))];
  } control;
  struct iovec iov = { (char *) data, length };
  struct msghdr msg = { 0 };
  gssize n;

  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (pass_fd >= 0)
    {
      struct cmsghdr *cmsg;

      memset (&control, 0, sizeof control);
      msg.msg_control = control.buf;
      msg.msg_controllen = sizeof control.buf;
      cmsg = CMSG_FIRSTHDR (&msg);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN (sizeof (int));
      memcpy (CMSG_DATA (cmsg), &pass_fd, sizeof (int));
    }

  /* send () where nothing goes with the bytes: the common case, cheaper. */
  do
    n = pass_fd >= 0 ? sendmsg (fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT)
                     : send (fd, data, length, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);

  if (n >= 0)
    return n;

  if (errno == EAGAIN || errno == EWOULDBLOCK)
    return 0;

  if (errno == EPIPE || errno == ECONNRESET)
    g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_CLOSED, "The peer hung up");
  else
    g_set_error (error, MPQ_ERROR, MPQ_ERROR_FAILED,
                 "Could not write to peer: %s", g_strerror (errno));
  return -1;
}

/* Writes some of @data, waiting for room until @deadline (monotonic µs;
 * -1 forever, 0 not at all). Returns the bytes written, always some, or -1
 * with @error set: MPQ_ERROR_TIMED_OUT when no room came in time. */
gssize
_mpq_write_when_ready (int          fd,
                       const char  *data,
                       gsize        length,
                       gint64       deadline,
                       const char  *timed_out_message,
                       GError     **error)
{
  for (;;)
    {
      gssize n = _mpq_write_some (fd, data, length, error);

      if (n != 0)
        return n;

      if (deadline == 0 || !_mpq_wait_fd (fd, POLLOUT, deadline))
        {
          g_set_error_literal (error, MPQ_ERROR, MPQ_ERROR_TIMED_OUT, timed_out_message);
          return -1;
        }
    }
}

gint64
_mpq_deadline_from_timeout (gint timeout_ms)
{
  if (timeout_ms < 0)
    return -1;
  if (timeout_ms == 0)
    return 0;
  return g_get_monotonic_time () + (gint64) timeout_ms * 1000;
}

/* getpid() is a system call each time; messages ask for it often. The
 * cache is forgotten in a forked child. */
static gint own_pid;

static void
forget_own_pid (void)
{
  own_pid = 0;
}

gint
_mpq_own_pid (void)
{
  static gsize registered = 0;

  if (g_once_init_enter (&registered))
    {
      pthread_atfork (NULL, NULL, forget_own_pid);
      g_once_init_leave (&registered, 1);
    }
  if (G_UNLIKELY (own_pid == 0))
    own_pid = getpid ();
  return own_pid;
}
