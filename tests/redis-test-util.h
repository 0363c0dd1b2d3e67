/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>
#include <pymulproc/pymulproc.h>

G_BEGIN_DECLS

/* A redis-server of the test's own: a plain child process on a unix
 * socket in a fresh temporary directory, no TCP port, no snapshots,
 * stopped by pid. Never a system service. */
typedef struct _RedisTestServer RedisTestServer;

/* NULL with @error set when redis-server could not start. Returns once it
 * said it accepts connections (its log line: no polling, no sleep). */
RedisTestServer *redis_test_server_start (const char       *program,
                                          GError          **error);
/* The same with an append-only file fsynced at every write, so that a
 * restart keeps what the server acknowledged. */
RedisTestServer *redis_test_server_start_persistent (const char  *program,
                                                     GError     **error);
/* SIGKILLs it and starts it again on the same socket and directory;
 * returns once it is ready again (its data loaded). */
void             redis_test_server_restart (RedisTestServer  *server,
                                            GError          **error);
/* The two halves of a restart: SIGKILLed (its files stay), then started
 * again; returns once it is ready. */
void             redis_test_server_kill     (RedisTestServer  *server);
void             redis_test_server_relaunch (RedisTestServer  *server,
                                             GError          **error);
/* "redis+unix:///TMPDIR/redis.sock" */
const char      *redis_test_server_uri   (RedisTestServer  *server);
/* Runs one command on a connection of its own (as a hostile peer
 * would), asserting that the server answered; the reply is dropped. */
void             redis_test_server_run   (RedisTestServer  *server,
                                          const char       *format,
                                          ...);
/* Runs one command as redis_test_server_run () does and returns its
 * reply, asserting that it is an integer. */
long long        redis_test_server_int   (RedisTestServer  *server,
                                          const char       *format,
                                          ...);
/* Stops it (SIGTERM, then waits), removes the directory, frees. */
void             redis_test_server_stop  (RedisTestServer  *server);

/* g_test_init (); FALSE (having said why) when this build has no Redis
 * support or no redis-server: main () then returns 77, skipped. */
gboolean         redis_test_init         (int              *argc,
                                          char           ***argv);
/* Starts the server (into *@server, for the tests), runs the tests
 * added, stops it: main ()'s status. */
int              redis_test_run          (RedisTestServer **server);

/* A queue name of its own per call: the test's path and a counter. */
char            *redis_test_queue_name   (void);
/* The queue @name on @server, of at most @max_size messages (0: no
 * bound), asserting that it opened. */
MpqQueue        *redis_test_open_queue   (RedisTestServer  *server,
                                          const char       *name,
                                          guint             max_size);

G_END_DECLS
