#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""queue_parent.py — a Python parent spreading tasks over workers in any language.

    queue_parent.py [WORKER COMMAND LINE [-- WORKER COMMAND LINE]...]
                    (default: three of /usr/bin/python3 queue_worker.py)

One worker is spawned for each command line, all on one Mpq.Queue. The
parent puts 20 tasks DO {"value": n}, addressed to nobody: whichever worker
has room takes the next one. Each worker answers FINISHED {"value": n * n}
to the parent, which collects the answers through message-received::FINISHED
in a GLib main loop. Then it sends the poison pills, one DIE addressed to
each worker, joins the queue (every message put has been taken) and waits
for the workers. Exits 0 only if the sum of the answers is right and every
worker exited with 0.
"""
import json
import os
import sys

import gi
gi.require_version("Mpq", "1.0")
from gi.repository import GLib, Mpq  # noqa: E402

N_TASKS = 20
TIMEOUT_SECONDS = 30


def worker_commands(args):
    """Splits the arguments at each "--" into command lines."""
    commands = [[]]
    for arg in args:
        if arg == "--":
            commands.append([])
        else:
            commands[-1].append(arg)
    return [command for command in commands if command]


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    commands = worker_commands(argv[1:]) or \
        3 * [["/usr/bin/python3", os.path.join(here, "queue_worker.py")]]
    workers = {}  # pid: {"name", "process", "tasks"}
    answers = []
    loop = GLib.MainLoop()
    status = 0

    def on_finished(channel, message):
        answers.append(json.loads(message.dup_data_json())["value"])
        workers[message.get_sender_pid()]["tasks"] += 1
        if len(answers) == N_TASKS:
            channel.stop()
            loop.quit()

    def on_timeout():
        loop.quit()
        return GLib.SOURCE_REMOVE

    queue = Mpq.Queue.new(0)  # 0: no bound on its size
    try:
        for command in commands:
            process = queue.spawn(command)
            name = " ".join(os.path.basename(word) for word in command)
            workers[int(process.get_identifier())] = \
                {"name": name, "process": process, "tasks": 0}
            print(f"worker {process.get_identifier()}: {name}")

        # The tasks, for anybody (but never handed back to the parent that put them).
        for n in range(1, N_TASKS + 1):
            queue.send_json(Mpq.REQ_DO, 0, 0, json.dumps({"value": n}))
        print(f"put {N_TASKS} tasks")

        # The answers are addressed to the parent: its own dispatch gets them,
        # while a thread of the library serves the workers.
        queue.connect("message-received::FINISHED", on_finished)
        queue.start()
        timeout_id = GLib.timeout_add_seconds(TIMEOUT_SECONDS, on_timeout)
        loop.run()
        if len(answers) < N_TASKS:
            raise RuntimeError(f"{len(answers)} answers of {N_TASKS} after {TIMEOUT_SECONDS} s")
        GLib.source_remove(timeout_id)

        # The pills, one for each worker, addressed to it.
        for pid in workers:
            queue.send(Mpq.REQ_DIE, 0, pid, None)

        # join: every message ever put has been taken, the pills included.
        queue.join(TIMEOUT_SECONDS * 1000)
        print("joined: every message was taken")
    except (GLib.Error, RuntimeError) as e:
        print(f"queue_parent.py: {e}", file=sys.stderr)
        status = 1
        for worker in workers.values():
            worker["process"].force_exit()

    for pid, worker in workers.items():
        try:
            worker["process"].wait_check(None)
        except GLib.Error as e:
            print(f"queue_parent.py: worker {pid}: {e.message}", file=sys.stderr)
            status = 1
        print(f"worker {pid} ({worker['name']}) did {worker['tasks']} tasks")
    queue.close()

    expected = sum(n * n for n in range(1, N_TASKS + 1))
    print(f"sum of the squares of 1 to {N_TASKS}: {sum(answers)} "
          f"({'right' if sum(answers) == expected else 'WRONG'})")
    return status if sum(answers) == expected else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
