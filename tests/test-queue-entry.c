/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The queue's spent entries (pymulproc/mpq-queue-entry.c): what the
 * parent's threads give back for the queue thread to free stays bounded,
 * and none is lost or freed twice however many threads give back while
 * another frees. Linked from the library's objects: these are private. */
#include "mpq-queue-state-private.h"

#define LINE "[\"DO\",1,null,{\"value\":1}]"

static MpqQueueEntry *
entry_of (gsize length)
{
  g_autofree char *line = g_strnfill (length, 'x');

  return _mpq_queue_entry_new (line, length, NULL, 0, 1);
}

static guint
stacked (MpqQueueServer *server)
{
  guint n = 0;

  for (MpqQueueEntry *e = g_atomic_pointer_get (&server->spent); e != NULL; e = e->spent_next)
    n++;
  return n;
}

static void
test_given_back_until_freed (void)
{
  MpqQueueServer *server = g_new0 (MpqQueueServer, 1);

  for (guint i = 0; i < 10; i++)
    _mpq_queue_entry_give_back (server, entry_of (sizeof LINE));
  g_assert_cmpuint (stacked (server), ==, 10);
  g_assert_cmpint (g_atomic_int_get (&server->spent_bytes), ==,
                   10 * (gint) (sizeof (MpqQueueEntry) + sizeof LINE));

  _mpq_queue_free_spent (server);
  g_assert_null (g_atomic_pointer_get (&server->spent));
  g_assert_cmpint (g_atomic_int_get (&server->spent_bytes), ==, 0);
  g_free (server);
}

/* Past the bound, or for a long line, the giver frees the entry itself:
 * a parent that drains a backlog while the queue thread sleeps does not
 * keep it all. */
static void
test_bounded (void)
{
  MpqQueueServer *server = g_new0 (MpqQueueServer, 1);
  gint cost = (gint) (sizeof (MpqQueueEntry) + 1000);
  guint fits = MPQ_QUEUE_SPENT_BYTES / cost;

  for (guint i = 0; i < 3 * fits; i++)
    _mpq_queue_entry_give_back (server, entry_of (1000));
  g_assert_cmpuint (stacked (server), ==, fits);
  g_assert_cmpint (g_atomic_int_get (&server->spent_bytes), <=, MPQ_QUEUE_SPENT_BYTES);

  _mpq_queue_entry_give_back (server, entry_of (MPQ_QUEUE_SPENT_MAX_LINE + 1));
  g_assert_cmpuint (stacked (server), ==, fits);

  _mpq_queue_free_spent (server);
  _mpq_queue_entry_give_back (server, entry_of (MPQ_QUEUE_SPENT_MAX_LINE + 1));
  g_assert_cmpint (g_atomic_int_get (&server->spent_bytes), ==, 0);
  g_assert_null (g_atomic_pointer_get (&server->spent));
  g_free (server);
}

#define GIVERS 3
#define PER_GIVER 20000

typedef struct
{
  MpqQueueServer *server;
  gint            givers_left;
} Race;

static gpointer
giver (gpointer data)
{
  Race *race = data;

  for (guint i = 0; i < PER_GIVER; i++)
    _mpq_queue_entry_give_back (race->server, entry_of (i % 64));
  g_atomic_int_add (&race->givers_left, -1);
  return NULL;
}

/* Three threads give back while this one frees, as the parent's threads
 * and the queue thread do: every entry is freed once (valgrind and ASan
 * tell a leak or a double free; TSan a race). */
static void
test_givers_race_the_freer (void)
{
  Race race = { g_new0 (MpqQueueServer, 1), GIVERS };
  GThread *threads[GIVERS];

  for (guint i = 0; i < GIVERS; i++)
    threads[i] = g_thread_new ("giver", giver, &race);
  while (g_atomic_int_get (&race.givers_left) > 0)
    _mpq_queue_free_spent (race.server);
  for (guint i = 0; i < GIVERS; i++)
    g_thread_join (threads[i]);

  _mpq_queue_free_spent (race.server);
  g_assert_cmpint (g_atomic_int_get (&race.server->spent_bytes), ==, 0);
  g_assert_null (g_atomic_pointer_get (&race.server->spent));
  g_free (race.server);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/Mpq/QueueEntry/given-back-until-freed", test_given_back_until_freed);
  g_test_add_func ("/Mpq/QueueEntry/bounded", test_bounded);
  g_test_add_func ("/Mpq/QueueEntry/givers-race-the-freer", test_givers_race_the_freer);
  return g_test_run ();
}
