# SPDX-License-Identifier: LGPL-2.1-or-later
"""A parent with a pool, for test_pool.py to kill.

Usage: pool_parent.py WORKER_SCRIPT N [REQUEST]

Makes an Mpq.Pool of N workers running children/WORKER_SCRIPT, waits
until each said it is ready, submits N tasks REQUEST (data null) when
given, prints {"parent": pid, "workers": [pids]} on one line, then runs
its main loop until it is killed."""

import json
import os
import sys

import gi

gi.require_version('Mpq', '1.0')
from gi.repository import GLib, Mpq  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main(script, n, request=None):
    pool = Mpq.Pool.new([sys.executable, os.path.join(HERE, script)], n)
    started = []
    pool.connect('worker-started', lambda _pool, pid: started.append(pid))
    context = GLib.MainContext.default()
    while len(started) < n:
        context.iteration(True)
    # Kept, as a user would: the tasks live until the parent dies.
    tasks = [pool.submit_json(request, None) for _ in range(n if request else 0)]  # noqa: F841
    print(json.dumps({'parent': os.getpid(), 'workers': started}), flush=True)
    GLib.MainLoop().run()


if __name__ == '__main__':
    main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:4])
