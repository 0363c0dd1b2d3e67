# SPDX-License-Identifier: LGPL-2.1-or-later
"""Mpq.Queue under volume: many producers whose parent reads only after
they exited, and a bounded queue pushing back on a fast child."""

import collections
import time

from gi.repository import Mpq

from mpq_helpers import (PROMPT_MS, QUEUE_CHILD, assert_drained, known_pid, queues, scaled,
                         stop_workers, take_ready, wait_exit)

assert queues   # a fixture, used by name


def test_many_producers_parent_reads_after_exit(queues):
    """8 children each send N numbered messages as fast as they can and
    exit; the parent waits for every child to exit (Gio.Subprocess.wait,
    its main thread blocked while the queue's thread serves the children)
    BEFORE reading; then it reads everything: no loss, no duplicate, and
    each child's numbers arrive in the order it sent them."""
    children, count = 8, scaled(50_000, 2_000)
    q = queues.new()
    procs = [queues.spawn(q, QUEUE_CHILD, 'send-numbered', count) for _ in range(children)]
    # Senders as they come (a child that sends and exits may be gone before
    # spawn returns, its pid unknown to Gio.Subprocess).
    expected = collections.defaultdict(int)
    for proc in procs:
        proc.wait(None)
        assert proc.get_successful()

    receive = q.receive
    for n in range(children * count):
        msg = receive(PROMPT_MS)
        assert msg is not None, f'only {n} of {children * count} messages arrived'
        sender = msg.get_sender_pid()
        i = int(msg.dup_data_json())
        assert i == expected[sender], \
            f'child {sender}: got {i}, expected {expected[sender]} (FIFO per producer)'
        expected[sender] = i + 1
    assert len(expected) == children and all(v == count for v in expected.values()), expected
    assert {known_pid(p) for p in procs} - {None} <= set(expected)
    assert_drained(q)


def test_bounded_queue_back_pressure(queues):
    """Mpq.Queue.new(16): a child sends N messages as fast as it can while
    the parent reads slowly (it pauses now and then, so the queue fills up
    and the child has to wait for credit). Every send of the child succeeds
    (put-timeout x put-attempts is long enough), every message arrives, in
    order."""
    count = scaled(5000, 1000)
    q = queues.new(16)
    proc = queues.spawn(q, QUEUE_CHILD, 'send-numbered', count, 100, 200)
    for i in range(count):
        if i % 250 == 0:
            time.sleep(0.02)    # the slow consumer; no assertion depends on it
        msg = q.receive(PROMPT_MS)
        assert msg is not None, f'only {i} of {count} messages arrived'
        assert int(msg.dup_data_json()) == i
    wait_exit(proc)
    assert proc.get_successful()
    assert_drained(q)


def test_bounded_queue_parent_producer_child_consumers(queues):
    """The other direction: Mpq.Queue.new(8), the parent sends many tasks
    while two dispatch workers take them; the parent's sends wait for room
    (generous put-attempts) and all succeed; join returns; each task is
    handled exactly once."""
    tasks = list(range(scaled(1000, 200)))
    q = queues.new(8, put_timeout=100, put_attempts=200)
    procs = [queues.spawn(q, QUEUE_CHILD, 'worker') for _ in range(2)]
    take_ready(q, procs)
    for t in tasks:
        q.send_json(Mpq.REQ_DO, 0, 0, str(t))
    assert q.join(PROMPT_MS)
    reports = stop_workers(q, procs)
    handled = sorted(d for r in reports.values() for d, _ in r['tasks'])
    assert handled == tasks
    assert_drained(q)
