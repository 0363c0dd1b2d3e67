#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Python worker of the pymulproc demo.

Spawned by mpq-demo on the MpqQueue it shares with the other workers. It
takes tasks by dispatch, one at a time (prefetch 1), and says READY to the
parent once it does. For each DO {"task", "lo", "hi"} it counts the primes in
[lo, hi) with a segmented sieve of Eratosthenes and answers FINISHED
{"task", "lo", "hi", "primes", "us"} to the parent, "us" being the
microseconds it took. A task is taken once its handler has returned, so a
worker that dies in the middle loses nothing. DIE ends it.
Same program as worker.c and worker.js.
"""

import json
import math
import os
import sys
import time

import gi

gi.require_version("GLib", "2.0")
gi.require_version("Mpq", "1.0")
from gi.repository import GLib, Mpq  # noqa: E402


# Numbers sieved in one pass. Larger than in worker.c: each pass costs a
# Python loop over the base primes, which is slower than the sieving itself.
BLOCK_SIZE = 1024 * 1024


class PrimeCounter:
    def __init__(self):
        self.base_primes = []
        self.base_bound = 0
        # Crosses out without building a bytes object for every prime.
        self.zeros = memoryview(bytes(BLOCK_SIZE))

    def ensure_base_primes(self, bound):
        """Knows every prime up to bound; grows geometrically so a run whose
        tasks climb towards the limit re-sieves the small primes rarely."""
        if bound <= self.base_bound:
            return
        bound = max(bound, self.base_bound * 2)
        flags = bytearray([1]) * (bound + 1)
        flags[0:2] = b"\0\0"
        for p in range(2, math.isqrt(bound) + 1):
            if flags[p]:
                # Slice assignment crosses out in C: the one loop Python
                # must not run itself.
                flags[p * p :: p] = bytes(len(range(p * p, bound + 1, p)))
        self.base_primes = [p for p in range(bound + 1) if flags[p]]
        self.base_bound = bound

    def count(self, lo, hi):
        """Counts the primes n with lo <= n < hi, a block at a time: flags
        that stay in the cache make the sieve several times faster."""
        if hi > 2:
            self.ensure_base_primes(math.isqrt(hi - 1))
        return sum(
            self.count_block(start, min(start + BLOCK_SIZE, hi))
            for start in range(lo, hi, BLOCK_SIZE)
        )

    def count_block(self, lo, hi):
        size = hi - lo
        flags = bytearray(b"\x01") * size
        for n in range(lo, min(hi, 2)):
            flags[n - lo] = 0
        zeros = self.zeros
        for p in self.base_primes:
            if p * p >= hi:
                break
            # Smaller multiples of p were crossed out by smaller primes.
            start = max(p * p, (lo + p - 1) // p * p) - lo
            flags[start::p] = zeros[: len(range(start, size, p))]
        return flags.count(1)


class Worker:
    def __init__(self):
        self.loop = GLib.MainLoop()
        self.counter = PrimeCounter()
        self.status = 1
        self.queue = Mpq.Queue.new_for_child()
        self.parent_pid = self.queue.get_parent_pid()
        self.handlers = [
            self.queue.connect("message-received::" + Mpq.REQ_DO, self.on_do),
            self.queue.connect("message-received::" + Mpq.REQ_DIE, self.on_die),
            self.queue.connect("closed", self.on_closed),
        ]

    def fail(self, message):
        # Quit first: printing can raise (stderr may be a closed pipe), and
        # an exception in a signal handler would leave the loop running.
        self.status = 1
        self.loop.quit()
        try:
            print(f"worker.py[{os.getpid()}]: {message}", file=sys.stderr)
        except OSError:
            pass

    def on_do(self, queue, message):
        try:
            task = json.loads(message.dup_data_json())
            task_id, lo, hi = task["task"], task["lo"], task["hi"]
        except (TypeError, ValueError, KeyError):
            self.fail("DO without a valid {task, lo, hi}")
            return
        started = time.monotonic_ns()
        primes = self.counter.count(lo, hi)
        reply = {
            "task": task_id,
            "lo": lo,
            "hi": hi,
            "primes": primes,
            "us": (time.monotonic_ns() - started) // 1000,
        }
        try:
            queue.send_json(Mpq.REQ_FINISHED, 0, self.parent_pid, json.dumps(reply))
        except GLib.Error as error:
            self.fail(f"could not answer: {error.message}")

    def on_die(self, queue, message):
        # The queue is closed after the loop: closing it here, before the
        # handler returns, would hand DIE back to the queue as not taken.
        self.status = 0
        self.loop.quit()

    def on_closed(self, queue):
        # The parent went away without saying DIE: nobody is left to work for.
        self.fail("the parent hung up")

    def run(self):
        # One task at a time: the next one stays in the queue for whichever
        # worker is free first.
        self.queue.set_prefetch(1)
        self.queue.start()
        try:
            self.queue.send("READY", 0, self.parent_pid, None)
        except GLib.Error as error:
            self.fail(f"could not say READY: {error.message}")
        else:
            self.loop.run()
        for handler in self.handlers:
            self.queue.disconnect(handler)
        self.queue.close()
        return self.status


if __name__ == "__main__":
    try:
        worker = Worker()
    except GLib.Error as error:
        print(f"worker.py: {error.message}", file=sys.stderr)
        sys.exit(1)
    sys.exit(worker.run())
