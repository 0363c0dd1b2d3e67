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

with Mpq.Pool(worker_argv, 2) as pool:
    # One task: submit returns at once, result () waits for it.
    task = pool.submit('square', 7)
    print(f'square of 7: {task.result()}')

    # A map: the results in order (the items go to the workers in batches).
    squares = pool.map('square', range(1, 11))
    print(f'map: {json.dumps(squares, separators=(",", ":"))}')

    # A worker's error is the task's: MPQ_ERROR_TASK_FAILED.
    try:
        pool.submit('square', 'seven').result()
    except GLib.Error as error:
        if not error.matches(Mpq.error_quark(), Mpq.Error.TASK_FAILED):
            raise
        print(f'square of "seven" failed: {error.message.splitlines()[0]}')

# Leaving the with block shut the pool down: its tasks ended, its workers
# were told to go and reaped.
print('the pool is shut down')
