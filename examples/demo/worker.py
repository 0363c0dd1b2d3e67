#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Python worker of the pymulproc demo: an Mpq.Worker through PyGObject.

One of the processes of mpq-demo's Python pool. It serves tasks with
Mpq.Worker (plain GObject introspection, no override), one at a time,
until the pool tells it to die:

  count {"lo", "hi"}  counts the primes in [lo, hi) with a segmented sieve
                      of Eratosthenes, reporting progress {"done", "primes"}
                      at every tenth of the range, and answers
                      {"primes", "us"}, "us" being the microseconds it took;
  crash               the poison task of --poison-task: the worker crashes
                      with os.abort() (SIGABRT), as a worker with a bug
                      would. The pool replaces it and hands the task to
                      another worker, until it gave up on it.

The pool matches each answer to its task: the worker never names the task
it answers. Same program as worker.c and worker.js.
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

    def count(self, lo, hi, progress):
        """Counts the primes n with lo <= n < hi, a block at a time (flags
        that stay in the cache make the sieve several times faster), and
        calls progress(done, primes) at every tenth of the range but the
        last."""
        if hi > 2:
            self.ensure_base_primes(math.isqrt(hi - 1))
        count = 0
        tenths = 0
        for start in range(lo, hi, BLOCK_SIZE):
            end = min(start + BLOCK_SIZE, hi)
            count += self.count_block(start, end)
            now = (end - lo) * 10 // (hi - lo)
            if end < hi and now > tenths:
                tenths = now
                progress(end - lo, count)
        return count

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


def on_task(worker, invocation, counter):
    request = invocation.get_request()
    if request == "crash":
        # What a bug would do. The demo's parent turned core dumps off.
        os.abort()
    try:
        task = json.loads(invocation.dup_data_json())
        lo, hi = int(task["lo"]), int(task["hi"])
    except (TypeError, ValueError, KeyError):
        lo = hi = None
    if request != "count" or lo is None or not 0 <= lo <= hi:
        # The task fails with this text: MPQ_ERROR_TASK_FAILED.
        invocation.return_error(
            f"worker.py does not know {request} {invocation.dup_data_json()}"
        )
        return

    def progress(done, primes):
        # Progress is a courtesy: a pool that is gone will not read the
        # answer either, and run() returns.
        try:
            invocation.send_progress_json(json.dumps({"done": done, "primes": primes}))
        except GLib.Error:
            pass

    started = time.monotonic_ns()
    primes = counter.count(lo, hi, progress)
    reply = {"primes": primes, "us": (time.monotonic_ns() - started) // 1000}
    invocation.return_json(json.dumps(reply))


def main():
    try:
        worker = Mpq.Worker.new_for_child()
    except GLib.Error as error:
        print(f"worker.py: {error.message}", file=sys.stderr)
        return 1
    worker.connect("task", on_task, PrimeCounter())
    try:
        # Serves until the pool says DIE, or is gone (an error).
        worker.run()
    except GLib.Error as error:
        print(f"worker.py[{os.getpid()}]: {error.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
