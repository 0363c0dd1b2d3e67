# SPDX-License-Identifier: LGPL-2.1-or-later
"""A pool worker (Mpq.serve_worker) for test_pool_redis.py's killed worker:
children/pool_worker.py's requests, and

  block-once  data {"marker": PATH, "fifo": PATH, "value": n}: the first
              worker to take it (it creates PATH marker, O_EXCL) reports
              progress {"pid": its OS pid} and then blocks opening the
              FIFO for reading, which nobody ever writes: it holds the
              task until it is killed. Any later attempt (the marker
              exists) -> {"result": n * n, "pid": its OS pid}.

Exits 0 when serve_worker returns (serve_worker's return value goes to
$MPQ_TEST_LOG_DIR/<pid>.end, as pool_worker.py writes it)."""

import os
import sys

import gi

gi.require_version('Mpq', '1.0')
from gi.repository import Mpq  # noqa: E402

import pool_worker  # noqa: E402  (this script's folder is on sys.path)


def handler(request, data, progress):
    if request != 'block-once':
        return pool_worker.handler(request, data, progress)
    pool_worker.log(request)
    try:
        os.close(os.open(data['marker'], os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return {'result': data['value'] ** 2, 'pid': os.getpid()}
    progress({'pid': os.getpid()})
    with open(data['fifo'], 'rb') as fifo:    # blocks: no writer ever comes
        fifo.read()
    raise RuntimeError('the FIFO was opened for writing: nobody should')


if __name__ == '__main__':
    told_to_die = Mpq.serve_worker(handler)
    pool_worker.log(f'told to die: {told_to_die}', '.end')
    sys.exit(0)
