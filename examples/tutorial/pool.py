# SPDX-License-Identifier: LGPL-2.1-or-later
"""pool.py — tutorial step 4 in Python: an Mpq.Pool.

    /usr/bin/python3 pool.py [WORKER COMMAND LINE]
                             (default: python3 pool_worker.py)

Two workers running the command line; one task submitted and waited for, a
map over ten numbers, a task that fails, then shutdown.
"""

import json
import os
import sys

import gi

gi.require_version('Mpq', '1.0')
from gi.repository import GLib, Mpq  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
worker_argv = sys.argv[1:] or [sys.executable, os.path.join(here, 'pool_worker.py')]

pool = Mpq.Pool.new(worker_argv, 2)

# One task: submit returns at once, wait gives the worker's reply.
task = pool.submit('square', json.dumps(7))
reply = task.wait(-1)
print(f'square of 7: {json.loads(reply.dup_data_json())}')

# A map: the items and the results as one JSON array each, in order.
squares = json.loads(pool.map_json('square', json.dumps(list(range(1, 11))), None))
print(f'map: {json.dumps(squares, separators=(",", ":"))}')

# A worker's error is the task's: MPQ_ERROR_TASK_FAILED.
try:
    pool.submit('square', json.dumps('seven')).wait(-1)
except GLib.Error as error:
    if not error.matches(Mpq.error_quark(), Mpq.Error.TASK_FAILED):
        raise
    print(f'square of "seven" failed: {error.message.splitlines()[0]}')

pool.shutdown(5000)
print('the pool is shut down')
