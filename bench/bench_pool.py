#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The pool benchmark (W7, W8) in Python: the Mpq pool with a PyGObject
parent and Python workers, and the standard library's pools.

Every task squares an integer: task i is answered i * i, and every result
is checked. W7 submits every task one by one, as futures, then collects
each in order; W8 hands all of them over at once.

  --system=mpq   Mpq.Pool through GI, as users write it: its workers
                 this file run with --worker, Mpq.serve_worker (handler).
                 W7: pool.submit ("square", i) for each (the override's
                 futures), then task.result () each in order. W8:
                 pool.map ("square", range (N)) (the override's: the
                 workers take each batch whole, one call each way).
  --system=cf    concurrent.futures.ProcessPoolExecutor (W7 only):
                 executor.submit (square, i) for each, then .result () each
                 in order.
  --system=mp    multiprocessing.Pool. W7: imap_unordered (square,
                 range (N), chunksize=1), every result taken as it comes.
                 W8: pool.map (square, range (N)), its default chunksize.

Workers are forked where the standard library forks them (Linux's default
start method); Mpq spawns its workers with GSubprocess. Before timing each
pool has all its workers up (Mpq: worker-started from each; the others:
one task per worker that waits for all of them to be running) and runs
--warmup tasks the measured way. The rate runs from the first submit (W8:
the first item made) to the last result.
"""

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import resource
import sys
import time

PY = "/usr/bin/python3"


def fail(message):
    print(f"bench[{os.getpid()}] FAILED: {message}", file=sys.stderr, flush=True)
    os._exit(1)


def square(n):
    """The peers' task; a top-level function, so that it pickles."""
    if type(n) is not int:
        fail("not an integer")
    return n * n


def check(i, value):
    if value != i * i:
        fail(f"task {i} came back as {value!r}")


def cpu_seconds(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# Mpq -----------------------------------------------------------------------

def load_mpq():
    import gi
    gi.require_version("GLib", "2.0")
    gi.require_version("Mpq", "1.0")
    from gi.repository import GLib, Mpq
    if not hasattr(Mpq, "Pool"):
        print(json.dumps({"skipped": "Mpq.Pool is not in this build"}), flush=True)
        sys.exit(77)
    return GLib, Mpq


def serve():
    """--worker: a pool worker as users write one, Mpq.serve_worker ()."""
    _, Mpq = load_mpq()

    def handler(request, n):
        if request != "square":
            fail(f"unknown request {request}")
        return square(n)

    Mpq.serve_worker(handler)


def mpq_one_by_one(pool, n):
    # The override's futures: submit () takes the plain value, result ()
    # gives it (json.dumps / json.loads inside).
    tasks = [pool.submit("square", i) for i in range(n)]
    submitted = time.perf_counter()
    for i, task in enumerate(tasks):
        check(i, task.result())
    return submitted


def mpq_map(pool, n):
    results = pool.map("square", range(n))
    if len(results) != n:
        fail(f"map gave {len(results)} results for {n} items")
    for i, value in enumerate(results):
        check(i, value)


def run_mpq(args):
    GLib, Mpq = load_mpq()
    argv = [PY, "-B", os.path.abspath(__file__), "--worker"]
    pool = Mpq.Pool.new(argv, args.workers)
    started = []
    pool.connect("worker-started", lambda pool, pid: started.append(pid))
    context = GLib.MainContext.default()
    while len(started) < args.workers:
        context.iteration(True)

    measure = mpq_map if args.workload == "w8" else mpq_one_by_one
    if args.warmup:
        measure(pool, args.warmup)
    return pool, measure, lambda: pool.shutdown(-1)


# The standard library's pools ----------------------------------------------

_barrier = None


def _set_barrier(barrier):
    """The workers' initializer."""
    global _barrier
    _barrier = barrier


def all_up(_=None):
    """One per worker before timing: returns once every worker runs one."""
    _barrier.wait()
    return os.getpid()


def cf_one_by_one(executor, n):
    futures = [executor.submit(square, i) for i in range(n)]
    submitted = time.perf_counter()
    for i, future in enumerate(futures):
        check(i, future.result())
    return submitted


def run_cf(args):
    if args.workload != "w7":
        fail("concurrent.futures runs W7 only")
    barrier = multiprocessing.Barrier(args.workers)
    executor = concurrent.futures.ProcessPoolExecutor(
        args.workers, initializer=_set_barrier, initargs=(barrier,))
    pids = {f.result() for f in [executor.submit(all_up) for _ in range(args.workers)]}
    if len(pids) != args.workers:
        fail(f"{len(pids)} workers up, not {args.workers}")
    if args.warmup:
        cf_one_by_one(executor, args.warmup)
    return executor, cf_one_by_one, lambda: executor.shutdown(wait=True)


def mp_imap_unordered(pool, n):
    seen = bytearray(n)
    got = 0
    for value in pool.imap_unordered(square, range(n), chunksize=1):
        i = int(round(value ** 0.5))
        if i >= n or i * i != value or seen[i]:
            fail(f"a wrong or repeated result {value}")
        seen[i] = 1
        got += 1
    if got != n:
        fail(f"{got} results of {n}")


def mp_map(pool, n):
    results = pool.map(square, range(n))
    if len(results) != n:
        fail(f"map gave {len(results)} results for {n} items")
    for i, value in enumerate(results):
        check(i, value)


def run_mp(args):
    barrier = multiprocessing.Barrier(args.workers)
    pool = multiprocessing.Pool(args.workers, initializer=_set_barrier, initargs=(barrier,))
    pids = set(pool.map(all_up, range(args.workers), chunksize=1))
    if len(pids) != args.workers:
        fail(f"{len(pids)} workers up, not {args.workers}")
    measure = mp_map if args.workload == "w8" else mp_imap_unordered
    if args.warmup:
        measure(pool, args.warmup)

    def close():
        pool.close()
        pool.join()
    return pool, measure, close


# ---------------------------------------------------------------------------

def main():
    if sys.argv[1:] == ["--worker"]:
        serve()
        return
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=["w7", "w8"])
    parser.add_argument("--system", choices=["mpq", "cf", "mp"], required=True)
    parser.add_argument("--count", type=int, default=100000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    args = parser.parse_args()

    pool, measure, close = {"mpq": run_mpq, "cf": run_cf, "mp": run_mp}[args.system](args)
    cpu = cpu_seconds(resource.RUSAGE_SELF)
    start = time.perf_counter()
    submitted = measure(pool, args.count)
    seconds = time.perf_counter() - start
    cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu
    close()

    system = {"mpq": "mpq-pool-py", "cf": "cf", "mp": "mp-pool"}[args.system]
    result = {"workload": args.workload, "system": system,
              "variant": "map" if args.workload == "w8" else "submit",
              "count": args.count, "workers": args.workers, "seconds": seconds,
              "rate": args.count / seconds}
    if submitted is not None:
        result["submit_seconds"] = submitted - start
    # The parent's threads included (multiprocessing's and the executor's).
    result["parent_cpu_s"] = cpu
    result["workers_cpu_s"] = cpu_seconds(resource.RUSAGE_CHILDREN)
    print(json.dumps(result, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
