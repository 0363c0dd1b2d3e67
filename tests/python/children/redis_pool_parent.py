# SPDX-License-Identifier: LGPL-2.1-or-later
"""A parent with a pool over a queue on Redis, for test_pool_redis.py to
kill.

Usage: redis_pool_parent.py URI NAME LEASE_TIME_MS

Makes the queue NAME on URI with that lease-time and an Mpq.Pool over it
that spawns nobody; prints {"parent": pid, "queue": its participant id}
on one line, waits until one worker joined (worker-started), prints
{"worker": its id}, then runs its main loop until it is killed."""

import json
import os
import sys

import gi

gi.require_version('Mpq', '1.0')
from gi.repository import GLib, Mpq  # noqa: E402


def main(uri, name, lease_time):
    queue = Mpq.Queue.new_for_uri(uri, name, 0)
    queue.props.lease_time = lease_time
    pool = Mpq.Pool(queue=queue)
    started = []
    pool.connect('worker-started', lambda _pool, pid: started.append(pid))
    print(json.dumps({'parent': os.getpid(), 'queue': queue.props.pid}), flush=True)
    context = GLib.MainContext.default()
    while not started:
        context.iteration(True)
    print(json.dumps({'worker': started[0]}), flush=True)
    GLib.MainLoop().run()


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
