/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <pymulproc/pymulproc.h>

#include <string.h>

typedef struct
{
  guint     started;
  guint     exited_expected;
  guint     exited_unexpected;
  GArray   *progress;   /* gint64 */
} Counts;

MpqPool *new_pool_full    (guint        n_workers,
                           const char  *arg,
                           const char  *log_dir,
                           Counts      *counts);
MpqPool *new_pool         (guint        n_workers);
void     counts_connect   (MpqPool     *pool,
                           Counts      *counts);
MpqTask *submit_int       (MpqPool     *pool,
                           const char  *request,
                           gint64       n);
gint64   wait_int         (MpqTask     *task);
void     wait_error       (MpqTask     *task,
                           GQuark       domain,
                           gint         code,
                           const char  *text);
void     shutdown_ok      (MpqPool     *pool);
void     run_until_counts (Counts      *counts,
                           guint        started,
                           guint        exited);
MpqTask *submit_until_cancel (MpqPool  *pool);
char    *int_array        (guint        n);
void     remove_dir       (const char  *dir);
void     test_pool_add_supervision_tests (void);
void     test_pool_add_map_tests         (void);
void     test_pool_add_bytes_tests       (void);
