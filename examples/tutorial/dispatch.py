# SPDX-License-Identifier: LGPL-2.1-or-later
"""dispatch.py — tutorial step 3 in Python: messages as signals in a
GLib.MainLoop, on both sides of an Mpq.Queue.

    /usr/bin/python3 dispatch.py
"""

import gi

gi.require_version('Mpq', '1.0')
from gi.repository import GLib, Mpq  # noqa: E402

N_WORKERS = 2
N_TASKS = 10


def worker(queue):
    """A worker: answers each DO in a handler until its DIE."""
    loop = GLib.MainLoop()

    def on_do(queue, message):
        n = message.data
        queue.send(Mpq.REQ_FINISHED, recipient_pid=queue.get_parent_pid(), data=n * n)

    queue.connect('message-received::DO', on_do)
    queue.connect('message-received::DIE', lambda *_: loop.quit())
    queue.connect('closed', lambda *_: loop.quit())
    queue.start()
    loop.run()


if __name__ == '__main__':
    queue = Mpq.Queue()
    workers = [queue.spawn_function(worker) for _ in range(N_WORKERS)]
    loop = GLib.MainLoop()
    answers = []

    def on_finished(queue, message):
        answers.append(message.data)
        if len(answers) == N_TASKS:
            loop.quit()

    queue.connect('message-received::FINISHED', on_finished)
    queue.start()
    for n in range(1, N_TASKS + 1):
        queue.send(Mpq.REQ_DO, data=n)
    loop.run()
    print(f'{len(answers)} answers, their sum is {sum(answers)}')

    for process in workers:
        queue.send(Mpq.REQ_DIE, recipient_pid=int(process.get_identifier()))
    for process in workers:
        process.wait_check()
    print('the workers exited')
