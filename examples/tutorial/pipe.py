# SPDX-License-Identifier: LGPL-2.1-or-later
"""pipe.py — tutorial step 1 in Python: a parent and a child on an Mpq.Pipe,
in pymulproc's own words (send, receive, mpq_protocol), the child started
from a function as multiprocessing.Process(target=...) would.

    /usr/bin/python3 pipe.py
"""

import gi

gi.require_version('Mpq', '1.0')
from gi.repository import Mpq  # noqa: E402
from gi.repository.Mpq import mpq_protocol  # noqa: E402


def call_child(child):
    """The child: its end of the pipe comes first, as a target's argument."""
    while True:
        request, sender_pid, _recipient, data = child.receive(block=True)
        if request == mpq_protocol.REQ_DIE:
            break
        child.send(mpq_protocol.REQ_FINISHED, recipient_pid=sender_pid, data=data ** 2)


if __name__ == '__main__':
    parent = Mpq.Pipe()
    child_process = parent.spawn_function(call_child)

    for n in (1, 2, 3):
        parent.send(mpq_protocol.REQ_DO, data=n)
        message = parent.receive(block=True, timeout=30)  # False after 30 s
        print(f'{n} squared is {message.data}')

    parent.send(mpq_protocol.REQ_DIE)
    child_process.wait_check()
    print('the child exited')
