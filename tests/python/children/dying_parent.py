# SPDX-License-Identifier: LGPL-2.1-or-later
"""A parent that the test kills: it makes a queue or a pipe, spawns one
child through it (queue_child.py or mpq_child.py, in MODE wait STATE),
prints {"parent": pid, "child": pid} on stdout, which the child inherits
and reports on too, and then waits to be killed.

Usage: dying_parent.py queue|pipe STATE

For STATE join the queue holds a message nobody takes; for send-room the
queue holds at most one message.
"""

import json
import os
import signal
import sys

import gi

gi.require_version('Mpq', '1.0')
from gi.repository import Mpq  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv):
    kind, state = argv[1], argv[2]
    if kind == 'queue':
        channel = Mpq.Queue.new(1 if state == 'send-room' else 0)
        if state == 'join':
            channel.send_json('ORPHAN', 0, 2**31 - 1, '"nobody takes this"')
        script = 'queue_child.py'
    else:
        channel = Mpq.Pipe.new()
        script = 'mpq_child.py'
    proc = channel.spawn([sys.executable, os.path.join(HERE, script), 'wait', state])
    print(json.dumps({'parent': os.getpid(), 'child': int(proc.get_identifier())}), flush=True)
    while True:
        signal.pause()


if __name__ == '__main__':
    sys.exit(main(sys.argv))
