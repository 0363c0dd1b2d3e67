#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pipe_child.py — a Python child for any of the pipe-parent examples.

Spawned through Mpq.Pipe.spawn(), it serves messages through signals in a
GLib main loop: DO 7 is answered FINISHED {"task": 7, "result": 49}, DO "a text"
with its number of words, and DIE ends it with status 0.
"""
import json
import sys

import gi
gi.require_version("Mpq", "1.0")
from gi.repository import GLib, Mpq  # noqa: E402


def work(task):
    if isinstance(task, str):
        return len(task.split())
    if isinstance(task, int) and not isinstance(task, bool):
        return task * task
    raise ValueError(f"cannot do {task!r}")


def main():
    pipe = Mpq.Pipe.new_for_child()  # the end MPQ_CHANNEL_FD names
    loop = GLib.MainLoop()
    status = 0

    def fail(why):
        nonlocal status
        print(f"pipe_child.py: {why}", file=sys.stderr)
        status = 1
        loop.quit()

    def on_do(channel, message):
        try:
            task = json.loads(message.dup_data_json())
            answer = {"task": task, "result": work(task)}
            # Answer whoever asked: the recipient is the sender of the task.
            channel.send_json(Mpq.REQ_FINISHED, 0, message.get_sender_pid(),
                              json.dumps(answer, ensure_ascii=False))
        except (ValueError, GLib.Error) as e:
            fail(e)

    pipe.connect("message-received::DO", on_do)
    pipe.connect("message-received::DIE", lambda channel, message: loop.quit())
    pipe.connect("closed", lambda channel: fail("the parent hung up before DIE"))
    pipe.start()
    loop.run()
    pipe.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
