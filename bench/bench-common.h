/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What every C benchmark program shares: its command line, the message it
 * sends, the check that nothing was lost or duplicated, clocks, peak RSS,
 * spawning itself as a child, and the one JSON result line it prints.
 *
 * Each program is both the parent (what the driver, run.py, starts) and its
 * own children (started with --child). */

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* 32 ASCII characters: every message carries them as "payload". */
#define BENCH_PAYLOAD     "0123456789abcdefghijklmnopqrstuv"
#define BENCH_PAYLOAD_LEN 32

/* The descriptor a spawned child finds its end of the socketpair on. */
#define BENCH_CHILD_FD 3

typedef enum
{
  BENCH_W1,   /* pipe one-way */
  BENCH_W2,   /* pipe round trip */
  BENCH_W3,   /* fan-in: N children into one parent */
  BENCH_W4,   /* work distribution */
  BENCH_W5,   /* W1 with a slow reader */
  BENCH_W6,   /* binary payloads, parent to child and back */
} BenchWorkload;

/* W6's default payload: 16 MiB. */
#define BENCH_PAYLOAD_SIZE (16 * 1024 * 1024)

typedef struct
{
  BenchWorkload workload;
  const char   *workload_name;
  gboolean      child;
  gint64        count;        /* W1, W5, W6: messages; W2: timed echoes; W3: per child; W4: tasks */
  gint64        warmup;       /* W2 */
  gint          children;     /* W3, W4 */
  gint          index;        /* child: which one, from 0 */
  gint64        spin_us;      /* W5: the reader's work per message */
  gint64        size;         /* W6: bytes in each payload */
  char         *variant;      /* W1, W2: "sync" or "loop" */
  char         *decode;       /* raw socketpair: "none" or "json-glib" */
  char         *endpoint;     /* ZeroMQ: where the parent bound */
  char         *rss_file;     /* child: where to write its peak RSS */
  char         *mode;         /* Mpq W4: how tasks are addressed */
  char         *data;         /* Mpq senders: "json" text or a JsonNode ("node") */
  gint          parent_pid;   /* child: the parent's pid, when it needs it */
  char         *uri;          /* Mpq W3, W4: the queue is on Redis there */
} BenchArgs;

gboolean  bench_is_loop         (const BenchArgs *args);

/* Fails the run loudly: prints what went wrong and exits with status 1. */
G_NORETURN void bench_fail      (const char   *format,
                                 ...) G_GNUC_PRINTF (1, 2);

/* The message line `["DO",pid,null,{"value":v,"payload":"..."}]` + "\n". */
void      bench_format_line     (GString      *out,
                                 const char   *request,
                                 gint          pid,
                                 gint64        value);
/* The data object {"value":v,"payload":"..."} as JSON text in @buffer. */
const char *bench_data_json     (char         *buffer,
                                 gsize         size,
                                 gint64        value);
/* The same as a JsonNode. */
JsonNode *bench_data_node       (gint64        value);
/* Reads value and payload out of a data object; fails the run on anything
 * else. */
gint64    bench_data_value      (JsonNode     *data);
/* Decodes a whole message line with json-glib: the request, and the value
 * of its data. */
gint64    bench_decode_json_glib (JsonParser  *parser,
                                  const char  *line,
                                  gssize       length,
                                  const char  *request);
/* Finds "value": in a line without decoding it: the transport limit. */
gint64    bench_scan_value      (const char   *line,
                                 gsize         length);

/* Every value from 0 to expected - 1 must arrive exactly once. */
typedef struct
{
  guint8 *seen;
  gint64  expected;
  gint64  count;
  gint64  sum;
  gint64  first_ns;
  gint64  last_ns;
} BenchCheck;

void      bench_check_init      (BenchCheck   *check,
                                 gint64        expected);
void      bench_check_add       (BenchCheck   *check,
                                 gint64        value);
gboolean  bench_check_done      (BenchCheck   *check);
void      bench_check_finish    (BenchCheck   *check);

/* How a reader takes each value: checks it and, in W5, works on it for
 * --spin-us so that the writer runs ahead. TRUE once every value came. */
gboolean  bench_receive         (BenchCheck      *check,
                                 const BenchArgs *args,
                                 gint64           value);

/* How many children the parent starts (W3 and W4: --children, else one),
 * and how many values it must then see (W3: --count from each). */
guint     bench_n_children      (const BenchArgs *args);
gint64    bench_expected        (const BenchArgs *args);
/* The first of a sending child's --count values: W3's children send
 * ranges of their own so that the parent can tell a loss from a repeat. */
gint64    bench_first_value     (const BenchArgs *args);

gint64    bench_now_ns          (void);
void      bench_spin_us         (gint64        us);
/* The child: writes its peak RSS where --rss-file says, if it does. */
void      bench_write_rss_file  (const char   *path);

/* W2's round trips, each timed from the send to the arrival of its echo. */
typedef struct
{
  const BenchArgs *args;
  GArray          *latencies;   /* ns of every echo after the warm-up */
  gint64           sent;        /* echoes sent so far */
  gint64           sent_ns;     /* when the last one was sent */
} BenchEcho;

void      bench_echo_init       (BenchEcho       *echo,
                                 const BenchArgs *args);
/* Stamps the send time: the value the next echo carries. */
gint64    bench_echo_next       (BenchEcho       *echo);
/* @arrived_ns is taken before the reply is decoded, which is part of the
 * round trip. Fails the run unless @value is the one sent last; TRUE once
 * every echo is back. */
gboolean  bench_echo_take       (BenchEcho       *echo,
                                 gint64           arrived_ns,
                                 gint64           value);
/* Prints W2's result line and frees the latencies. */
void      bench_echo_print      (BenchEcho       *echo,
                                 const char      *system);

/* Starts this program again as a child: `--child WORKLOAD` then @extra. */
char       **bench_child_argv   (const BenchArgs    *args,
                                 const char * const *extra);
void         bench_wait_child   (GSubprocess        *child);

/* Where a W5 child writes its peak RSS; @arg is the option that says so. */
typedef struct
{
  char *path;
  char *arg;
} BenchRssFile;

void         bench_rss_file_init  (BenchRssFile *rss);
/* Removes the file and frees @rss. */
void         bench_rss_file_clear (BenchRssFile *rss);

/* A parent's children, each on its own socketpair (raw, GDBus,
 * jsonrpc-glib), given `--index=I` and the RSS file. */
typedef struct
{
  GPtrArray    *processes;   /* GSubprocess */
  int          *fds;         /* the parent's ends, the caller's to close or hand on */
  guint         n;
  BenchRssFile  rss;
} BenchChildren;

void         bench_children_spawn (BenchChildren   *children,
                                   const BenchArgs *args);
/* Fails the run if any child failed. */
void         bench_children_wait  (BenchChildren   *children);
void         bench_children_clear (BenchChildren   *children);

/* Blocks until all of @data is written; fails the run on an error. */
void         bench_write_all     (int            fd,
                                  gconstpointer  data,
                                  gsize          length);

/* A GIOStream on a socket descriptor (GDBus, jsonrpc-glib). */
GIOStream   *bench_stream_for_fd (int fd);

/* The one result line on stdout: a JSON object. */
typedef struct _BenchResult BenchResult;

BenchResult *bench_result_new    (const BenchArgs *args,
                                  const char      *system);
void         bench_result_int    (BenchResult     *result,
                                  const char      *name,
                                  gint64           value);
void         bench_result_double (BenchResult     *result,
                                  const char      *name,
                                  double           value);
void         bench_result_string (BenchResult     *result,
                                  const char      *name,
                                  const char      *value);
/* Prints it and frees it. */
void         bench_result_print  (BenchResult     *result);

/* Ends a throughput workload (W1, W3, W4, W5, W6): fails the run on a loss
 * or a wrong sum, else prints the rate from the first to the last message
 * @check saw; in W5 and W6 also the peak RSS of this process and, from
 * @rss_file, of the child; in W6 the payload bytes moved both ways per
 * second, "gb_s". */
void         bench_finish_throughput (const BenchArgs *args,
                                      const char      *system,
                                      BenchCheck      *check,
                                      const char      *rss_file);

/* What every main () does: parses the command line (status 2 when it is
 * wrong), runs @func, frees the options; @func's result is the exit
 * status. */
typedef int (*BenchMainFunc) (BenchArgs *args,
                              gpointer   user_data);

int          bench_main          (int            argc,
                                  char         **argv,
                                  GOptionEntry  *extra,
                                  BenchMainFunc  func,
                                  gpointer       user_data);

G_END_DECLS
