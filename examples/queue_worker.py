#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""queue_worker.py — a Python worker for any of the queue-parent examples.

Spawned through Mpq.Queue.spawn(), it takes its tasks by dispatch: it starts
the queue and runs a GLib main loop, and the queue emits message-received for
each message addressed to it or to nobody. DO {"value": n} is answered
FINISHED {"value": n * n} to the parent; DIE ends it with status 0.
"""
import json
import sys

import gi
gi.require_version("Mpq", "1.0")
from gi.repository import GLib, Mpq  # noqa: E402


def main():
    queue = Mpq.Queue.new_for_child()  # the socket MPQ_CHANNEL_FD names
    loop = GLib.MainLoop()
    status = 0

    def fail(why):
        nonlocal status
        print(f"queue_worker.py: {why}", file=sys.stderr)
        status = 1
        loop.quit()

    def on_do(channel, message):
        try:
            n = json.loads(message.dup_data_json())["value"]
            # The parent's pid comes from the queue's server: answers go there.
            channel.send_json(Mpq.REQ_FINISHED, 0, channel.get_parent_pid(),
                              json.dumps({"value": n * n}))
        except (KeyError, TypeError, GLib.Error) as e:
            fail(f"cannot do {message.to_json()}: {e}")

    handlers = [
        queue.connect("message-received::DO", on_do),
        queue.connect("message-received::DIE", lambda channel, message: loop.quit()),
        queue.connect("closed", lambda channel: fail("the queue closed before DIE")),
    ]
    queue.start()
    loop.run()

    # Whatever was handed to us and not handled goes back to the queue.
    for handler in handlers:
        queue.disconnect(handler)
    queue.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
