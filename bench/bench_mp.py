#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The benchmark's multiprocessing peer (Python's standard library).

Messages are the same 4-lists, ["DO", pid, None, {"value", "payload"}],
pickled by multiprocessing and unpickled into Python objects by every
receiver, children included. Children are forked (Linux's default start
method).

W1, W2, W5, W6 run over multiprocessing.Pipe (), a socketpair
(--pipe=duplex, the default), or over Pipe (duplex=False), an os.pipe, one
each way (--pipe=simplex): which is faster depends on the workload, and
run.py measures both. W1, W5: the child sends, the parent receives. W2: the
child echoes each DO as FINISHED. W3: the children put into one
JoinableQueue, the parent gets and task_done()s every message. W4: tasks in
a JoinableQueue, FINISHED back through a second Queue (multiprocessing's own
recipe: a queue has no addressing), one DIE per child at the end. W6: binary
payloads with send_bytes () and recv_bytes (), the child sends each back.
"""

import multiprocessing
import os
import tempfile
import time

from bench_common import (PAYLOAD, Check, fail, latency_stats, list_value as value_of, parse_args,
                          payload_buffer, payload_check, payload_index, payload_stamp,
                          peak_rss_kib, print_result, print_throughput, spin_us)


class Ends:
    """The connections of one parent and its child, over --pipe's kind."""

    def __init__(self, args, both_ways):
        if args.pipe == "duplex":
            mine, theirs = multiprocessing.Pipe()
            self.parent_in = self.parent_out = mine
            self.child_in = self.child_out = theirs
        else:
            self.parent_in, self.child_out = multiprocessing.Pipe(duplex=False)
            self.child_in = self.parent_out = None
            if both_ways:
                self.child_in, self.parent_out = multiprocessing.Pipe(duplex=False)

    def child_ends(self):
        return self.child_in, self.child_out

    def close_child_ends(self):
        """In the parent once the child is forked, so that it sees the child hang up."""
        for end in {self.child_in, self.child_out} - {None}:
            end.close()


def write_rss_file(rss_file):
    if rss_file:
        with open(rss_file, "w") as f:
            f.write(f"{peak_rss_kib()}\n")


def read_rss_file(rss_file):
    with open(rss_file) as f:
        fields = {"parent_rss_kib": peak_rss_kib(), "child_rss_kib": int(f.read())}
    os.unlink(rss_file)
    return fields


def join(child):
    child.join()
    if child.exitcode != 0:
        fail(f"the child exited with {child.exitcode}")


def w1_child(ends, count, rss_file):
    _, conn = ends
    pid = os.getpid()
    for i in range(count):
        conn.send(["DO", pid, None, {"value": i, "payload": PAYLOAD}])
    conn.close()
    write_rss_file(rss_file)


def w1(args):
    spin = args.spin_us if args.workload == "w5" else 0
    ends = Ends(args, both_ways=False)
    rss_file = tempfile.mktemp(prefix="mpq-bench-rss-") if spin else None
    child = multiprocessing.Process(target=w1_child,
                                    args=(ends.child_ends(), args.count, rss_file))
    child.start()
    ends.close_child_ends()

    check = Check(args.count)
    while not check.done():
        check.add(value_of(ends.parent_in.recv(), "DO"))
        if spin:
            spin_us(spin)

    join(child)
    check.finish()
    print_throughput(args, "mp", check, pipe=args.pipe,
                     **(read_rss_file(rss_file) if spin else {}))


def w2_child(ends):
    conn_in, conn_out = ends
    pid = os.getpid()
    while True:
        message = conn_in.recv()
        if message[0] == "DIE":
            break
        value_of(message, "DO")
        conn_out.send(["FINISHED", pid, message[1], message[3]])


def w2(args):
    ends = Ends(args, both_ways=True)
    child = multiprocessing.Process(target=w2_child, args=(ends.child_ends(),))
    child.start()
    ends.close_child_ends()
    pid = os.getpid()
    samples = []
    clock = time.perf_counter_ns

    for i in range(args.warmup + args.count):
        sent = clock()
        ends.parent_out.send(["DO", pid, None, {"value": i, "payload": PAYLOAD}])
        if value_of(ends.parent_in.recv(), "FINISHED") != i:
            fail(f"echo {i} came back wrong")
        if i >= args.warmup:
            samples.append(clock() - sent)

    ends.parent_out.send(["DIE", pid, None, None])
    join(child)
    median, p99 = latency_stats(samples)
    print_result(args, "mp", pipe=args.pipe, count=args.count, warmup=args.warmup,
                 median_us=median, p99_us=p99)


def w3_child(queue, index, count):
    pid = os.getpid()
    base = index * count
    for i in range(count):
        queue.put(["DO", pid, None, {"value": base + i, "payload": PAYLOAD}])
    # The queue's feeder thread is flushed before the process exits.


def w3(args):
    queue = multiprocessing.JoinableQueue()
    children = [multiprocessing.Process(target=w3_child, args=(queue, i, args.count))
                for i in range(args.children)]
    for child in children:
        child.start()

    check = Check(args.count * args.children)
    while not check.done():
        check.add(value_of(queue.get(), "DO"))
        queue.task_done()

    queue.join()
    for child in children:
        join(child)
    check.finish()
    print_throughput(args, "mp", check)


def w4_child(tasks, results, parent_pid):
    pid = os.getpid()
    while True:
        message = tasks.get()
        if message[0] == "DIE":
            tasks.task_done()
            break
        value_of(message, "DO")
        results.put(["FINISHED", pid, parent_pid, message[3]])
        tasks.task_done()


def w4(args):
    tasks = multiprocessing.JoinableQueue()
    results = multiprocessing.Queue()
    pid = os.getpid()
    children = [multiprocessing.Process(target=w4_child, args=(tasks, results, pid))
                for _ in range(args.children)]
    for child in children:
        child.start()

    for i in range(args.count):
        tasks.put(["DO", pid, None, {"value": i, "payload": PAYLOAD}])

    check = Check(args.count)
    while not check.done():
        check.add(value_of(results.get(), "FINISHED"))

    for _ in children:
        tasks.put(["DIE", pid, None, None])
    tasks.join()
    for child in children:
        join(child)
    check.finish()
    print_throughput(args, "mp", check)


def w6_child(ends, count, size, rss_file):
    conn_in, conn_out = ends
    for i in range(count):
        data = conn_in.recv_bytes()
        if payload_index(data, size) != i:
            fail(f"payload {i} arrived as {payload_index(data, size)}")
        conn_out.send_bytes(data)
    write_rss_file(rss_file)


def w6(args):
    """One payload at a time: out, back, checked."""
    ends = Ends(args, both_ways=True)
    rss_file = tempfile.mktemp(prefix="mpq-bench-rss-")
    child = multiprocessing.Process(target=w6_child,
                                    args=(ends.child_ends(), args.count, args.size, rss_file))
    child.start()
    ends.close_child_ends()

    # send_bytes () has written all of it when it returns: one buffer will do.
    buffer = payload_buffer(args.size)
    check = Check(args.count)
    for i in range(args.count):
        payload_stamp(buffer, i)
        ends.parent_out.send_bytes(buffer)
        payload_check(ends.parent_in.recv_bytes(), args.size, i)
        check.add(i)

    join(child)
    check.finish()
    print_throughput(args, "mp", check, pipe=args.pipe, **read_rss_file(rss_file))


def main():
    args = parse_args(__doc__)
    {"w1": w1, "w2": w2, "w3": w3, "w4": w4, "w5": w1, "w6": w6}[args.workload](args)


if __name__ == "__main__":
    main()
