#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The benchmark's Mpq parent in Python, through PyGObject (W1 and W4).

The children are the C program's (mpq-bench-mpq --child, given with
--child-exe), so only the parent's language changes. The parent reads
every message as bindings do: W1 takes each as its JSON line with
receive_batch_json () (every message there, up to 4,096, in one call)
and json.loads () of that into pymulproc's lists.

W1: MpqPipe. W4: MpqQueue, as mpq-bench-mpq does it (bench-mpq-queue.c):
tasks addressed to nobody (--mode=children: to the children in turn),
then the FINISHED answers collected, as multiprocessing's W4 does.
"""

import json
import os
import sys

import gi

gi.require_version("Mpq", "1.0")
from gi.repository import Mpq  # noqa: E402

from bench_common import (PAYLOAD, Check, data_value, fail, list_value, parse_args,  # noqa: E402
                          print_result, print_throughput)


# The most messages one receive_batch_json () takes.
BATCH = 4096


def child_argv(args, workload):
    return [args.child_exe, workload, "--child", f"--count={args.count}",
            f"--children={args.children}"]


def w1(args):
    pipe = Mpq.Pipe.new()
    child = pipe.spawn(child_argv(args, "w1"))
    check = Check(args.count)
    while not check.done():
        # Every message there, in one call through GI and one json.loads.
        for message in json.loads(pipe.receive_batch_json(BATCH, -1)):
            check.add(list_value(message, "DO"))
    child.wait_check()
    pipe.close()
    check.finish()
    print_throughput(args, "mpq-py", check)


def w4(args):
    if not hasattr(Mpq, "Queue"):
        print_result(args, "mpq-py", skipped="MpqQueue is not in this build yet")
        sys.exit(77)

    queue = Mpq.Queue.new(0)
    children = [queue.spawn(child_argv(args, "w4") + [f"--index={i}"])
                for i in range(args.children)]
    pids = [int(child.get_identifier()) for child in children]
    check = Check(args.count)
    by_child = args.mode == "children"
    for i in range(args.count):
        queue.send_json(Mpq.REQ_DO, 0, pids[i % len(pids)] if by_child else 0,
                        json.dumps({"value": i, "payload": PAYLOAD}))
    while not check.done():
        # The answers there, in one call through GI and one json.loads.
        for message in json.loads(queue.receive_batch_json(BATCH, -1)):
            check.add(list_value(message, "FINISHED"))

    for pid in pids:
        queue.send(Mpq.REQ_DIE, 0, pid, None)
    for child in children:
        child.wait_check()
    queue.close()
    check.finish()
    print_throughput(args, "mpq-py", check)


def main():
    args = parse_args(__doc__)
    if not args.child_exe or not os.access(args.child_exe, os.X_OK):
        fail("--child-exe must name mpq-bench-mpq")
    {"w1": w1, "w4": w4}[args.workload](args)


if __name__ == "__main__":
    main()
