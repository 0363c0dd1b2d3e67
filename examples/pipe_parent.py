#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pipe_parent.py — a Python parent handing tasks to a child in any language.

    pipe_parent.py [CHILD COMMAND LINE...]    (default: gjs -m pipe-child.js)

Sends DO with a number (to square) or a text (to count its words), takes each
FINISHED answer {"task": ..., "result": n} with a blocking receive(), sends
DIE and waits for the child. Exits 0 only if every answer was right.
"""
import json
import os
import sys

import gi
gi.require_version("Mpq", "1.0")
from gi.repository import GLib, Mpq  # noqa: E402

TASKS = [7, "the quick brown fox", -12, "naïve café au lait", 1000000]
RESULTS = [49, 4, 144, 4, 10**12]


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    child_argv = argv[1:] or ["gjs", "-m", os.path.join(here, "pipe-child.js")]
    right = 0
    try:
        pipe = Mpq.Pipe.new()
        child = pipe.spawn(child_argv)
        child_pid = int(child.get_identifier())
        for task in TASKS:
            pipe.send_json(Mpq.REQ_DO, 0, 0, json.dumps(task))

        for task, result in zip(TASKS, RESULTS):
            message = pipe.receive(5000, None)  # wait at most 5 s; None on time-out
            if message is None:
                print("no answer within 5 s")
                break
            good = (message.get_request() == Mpq.REQ_FINISHED
                    and message.get_sender_pid() == child_pid
                    and json.loads(message.dup_data_json()) == {"task": task, "result": result})
            print(f"DO {task!r} -> {message.dup_data_json()} {'ok' if good else 'WRONG'}")
            right += good

        pipe.send(Mpq.REQ_DIE, 0, 0, None)
        child.wait_check(None)  # raises if the child failed
        print(f"child {child_pid} exited with 0")
        try:
            pipe.receive(0, None)
        except GLib.Error as e:  # the child is gone: the pipe says so
            if e.matches(Mpq.error_quark(), Mpq.Error.CLOSED):
                print("the pipe is closed")
        pipe.close()
    except GLib.Error as e:
        print(f"pipe_parent.py: {e.message}", file=sys.stderr)
        return 1

    print(f"{right} of {len(TASKS)} answers right")
    return 0 if right == len(TASKS) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
