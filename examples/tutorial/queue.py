# SPDX-License-Identifier: LGPL-2.1-or-later
"""queue.py — tutorial step 2 in Python: pymulproc's README example
"children to parent", on an Mpq.Queue.

Five children each put a value for the parent; once they have exited, the
parent takes whatever is at the front of the queue until it is empty
(receive with a filter that takes anything), then joins the queue.

    /usr/bin/python3 queue.py
"""

import os

import gi

gi.require_version('Mpq', '1.0')
from gi.repository import Mpq  # noqa: E402
from gi.repository.Mpq import mpq_protocol  # noqa: E402


def call_child(child, offset, parent_pid, val):
    child.send(mpq_protocol.REQ_FINISHED, recipient_pid=parent_pid, data=val * offset)


if __name__ == '__main__':
    parent = Mpq.Queue()
    children = [parent.spawn_function(call_child, args=(offset, os.getpid(), 3))
                for offset in range(1, 6)]
    for child in children:
        child.wait_check()

    counter = 0
    data_offset = mpq_protocol.S_PID_OFFSET + 2
    while not parent.queue_empty():
        message = parent.receive(lambda x: True)
        counter += message[data_offset]
    parent.queue_join()
    print(f'the children sent {counter}')  # 3 × (1 + 2 + 3 + 4 + 5) = 45
