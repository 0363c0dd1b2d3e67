#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The benchmark's multiprocessing peer (Python's standard library).

Messages are the same 4-lists, ["DO", pid, None, {"value", "payload"}],
pickled by multiprocessing and unpickled into Python objects by every
receiver. Children are forked (Linux's default start method).

W1, W5: multiprocessing.Pipe (one-way); W2: Pipe (duplex), echoes;
W3: the children put into one JoinableQueue, the parent gets and task_done()s
every message; W4: tasks in a JoinableQueue, FINISHED back through a second
Queue (multiprocessing's own recipe: a queue has no addressing), one DIE per
child at the end.
"""

import multiprocessing
import os
import tempfile
import time

from bench_common import (PAYLOAD, Check, fail, latency_stats, list_value as value_of, parse_args,
                          peak_rss_kib, print_result, print_throughput, spin_us)


def w1_child(conn, count, rss_file):
    pid = os.getpid()
    for i in range(count):
        conn.send(["DO", pid, None, {"value": i, "payload": PAYLOAD}])
    conn.close()
    if rss_file:
        with open(rss_file, "w") as f:
            f.write(f"{peak_rss_kib()}\n")


def w1(args):
    spin = args.spin_us if args.workload == "w5" else 0
    reader, writer = multiprocessing.Pipe(duplex=False)
    rss_file = tempfile.mktemp(prefix="mpq-bench-rss-") if spin else None
    child = multiprocessing.Process(target=w1_child, args=(writer, args.count, rss_file))
    child.start()
    writer.close()

    check = Check(args.count)
    while not check.done():
        check.add(value_of(reader.recv(), "DO"))
        if spin:
            spin_us(spin)

    child.join()
    if child.exitcode != 0:
        fail(f"the child exited with {child.exitcode}")
    check.finish()
    fields = {}
    if spin:
        with open(rss_file) as f:
            fields = {"parent_rss_kib": peak_rss_kib(), "child_rss_kib": int(f.read())}
        os.unlink(rss_file)
    print_throughput(args, "mp", check, **fields)


def w2_child(conn):
    pid = os.getpid()
    while True:
        message = conn.recv()
        if message[0] == "DIE":
            break
        value_of(message, "DO")
        conn.send(["FINISHED", pid, message[1], message[3]])


def w2(args):
    mine, theirs = multiprocessing.Pipe()
    child = multiprocessing.Process(target=w2_child, args=(theirs,))
    child.start()
    pid = os.getpid()
    samples = []
    clock = time.perf_counter_ns

    for i in range(args.warmup + args.count):
        sent = clock()
        mine.send(["DO", pid, None, {"value": i, "payload": PAYLOAD}])
        if value_of(mine.recv(), "FINISHED") != i:
            fail(f"echo {i} came back wrong")
        if i >= args.warmup:
            samples.append(clock() - sent)

    mine.send(["DIE", pid, None, None])
    child.join()
    median, p99 = latency_stats(samples)
    print_result(args, "mp", count=args.count, warmup=args.warmup, median_us=median, p99_us=p99)


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
        child.join()
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
        child.join()
    check.finish()
    print_throughput(args, "mp", check)


def main():
    args = parse_args(__doc__)
    {"w1": w1, "w2": w2, "w3": w3, "w4": w4, "w5": w1}[args.workload](args)


if __name__ == "__main__":
    main()
