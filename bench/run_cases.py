# SPDX-License-Identifier: LGPL-2.1-or-later
"""What bench/run.py measures: the systems, the cases (a workload run the
same way for several systems, one table each) and the targets read from a
run's medians. See bench/README.md."""

# key: (label, program, arguments). A program ending in .py runs with
# /usr/bin/python3 from this folder; any other is built in BUILDDIR/bench.
SYSTEMS = {
    "mpq": ("Mpq", "mpq-bench-mpq", []),
    "mpq-signals": ("Mpq, message-received", "mpq-bench-mpq", ["--variant=loop"]),
    # Not a transport: the same lines decoded from memory, the bound any
    # transport leaves one receiving thread (see docs/performance.md).
    "mpq-decode": ("Mpq, decoding only (no I/O)", "mpq-bench-mpq", ["--variant=decode"]),
    "mpq-py": ("Mpq, Python parent", "bench_mpq.py", []),
    "raw": ("socketpair, no decoding", "mpq-bench-raw", ["--decode=none"]),
    "raw-json": ("socketpair + json-glib", "mpq-bench-raw", ["--decode=json-glib"]),
    "mp": ("multiprocessing", "bench_mp.py", []),
    "mp-duplex": ("multiprocessing, Pipe()", "bench_mp.py", ["--pipe=duplex"]),
    "mp-simplex": ("multiprocessing, Pipe(duplex=False)", "bench_mp.py", ["--pipe=simplex"]),
    "jsonrpc": ("jsonrpc-glib", "mpq-bench-jsonrpc", []),
    "gdbus": ("GDBus peer-to-peer", "mpq-bench-gdbus", []),
    "zmq": ("ZeroMQ + json-glib", "mpq-bench-zmq", []),
    # Issue 14: the queue kept in a private redis-server on a unix socket
    # (run.py starts one per measurement and passes --uri).
    "mpq-redis": ("Mpq, queue on Redis", "mpq-bench-mpq", []),
    # The pool (W7, W8; bench-pool.c, bench_pool.py): Mpq's pool against
    # the standard library's, each squaring integers on 4 workers.
    "mpq-pool": ("Mpq pool, C parent and workers", "mpq-bench-pool", []),
    # W8 through mpq_pool_map (): a message per result, for comparison
    # with map_json, which the other Mpq rows of W8 use.
    "mpq-pool-msgs": ("Mpq pool, C, map of messages", "mpq-bench-pool", ["--messages"]),
    "mpq-pool-py": ("Mpq pool, Python parent and workers", "bench_pool.py", ["--system=mpq"]),
    "cf": ("concurrent.futures ProcessPoolExecutor", "bench_pool.py", ["--system=cf"]),
    "mp-pool": ("multiprocessing.Pool", "bench_pool.py", ["--system=mp"]),
}

# multiprocessing offers two pipes: Pipe () is a socketpair, Pipe
# (duplex=False) an os.pipe (one each way where both ways are needed).
# Neither is faster everywhere, so a workload over a pipe measures both,
# and the faster by the case's headline figure is "mp", the
# multiprocessing of the targets (add_faster_pipe). W3 and W4 use queues:
# "mp" there is measured as it is.
MP_PIPES = ["mp-duplex", "mp-simplex"]

# Systems that need a redis-server of their own.
REDIS_SYSTEMS = ["mpq-redis"]

PEERS = ["raw", "raw-json", "mp", "jsonrpc", "gdbus", "zmq"]
PIPE_PEERS = ["raw", "raw-json"] + MP_PIPES + ["jsonrpc", "gdbus", "zmq"]
# Every peer that decodes what it receives: all but the bare socketpair.
DECODING_PEERS = ["raw-json", "mp", "jsonrpc", "gdbus", "zmq"]

# Throughput workloads report "rate"; W2 "median_us" and "p99_us"; W5 and
# W6 the peak RSS of both processes too.
RATE = ("rate", "msgs/s", True)
TASKS = ("rate", "tasks/s", True)
MEDIAN = ("median_us", "µs", False)
P99 = ("p99_us", "µs", False)
PARENT_RSS = ("parent_rss_kib", "MiB", False)
CHILD_RSS = ("child_rss_kib", "MiB", False)
GB_S = ("gb_s", "GB/s", True)
SERVER_RSS = ("server_rss_kib", "MiB", False)


class Case:
    """One table: a workload run the same way for several systems."""

    def __init__(self, name, workload, title, metrics, systems, full, short,
                 extra=(), reference="mpq", one_cpu=False):
        self.name = name
        self.workload = workload
        self.title = title
        self.metrics = metrics          # the first is the headline
        self.systems = systems
        self.full = full                # sizes, as --name=value arguments
        self.short = short
        self.extra = list(extra)
        self.reference = reference      # what "Mpq ×" compares with
        self.one_cpu = one_cpu          # parent and children share CPU 0


POOL_SYSTEMS = ["mpq-pool", "mpq-pool-py", "cf", "mp-pool"]
POOL_SIZES = ({"count": 100000, "workers": 4}, {"count": 300, "workers": 4, "warmup": 20})
W2_SIZES = ({"count": 20000, "warmup": 1000}, {"count": 200, "warmup": 50})
W2_LOOP_SYSTEMS = ["mpq", "raw", "raw-json", "jsonrpc", "gdbus", "zmq"]

# W2 runs on one CPU: on this kind of VM a process woken on an idle vCPU
# waits some 20 µs for it, so on an idle machine every round trip between
# two CPUs costs about 50 µs whatever the transport. Sharing a CPU leaves
# the software's own cost (and two context switches); the -2cpu cases show
# what two CPUs give, on that day.
CASES = [
    Case("W1", "w1", "pipe one-way: one child sends, the parent receives",
         [RATE], ["mpq", "mpq-signals", "mpq-decode"] + PIPE_PEERS,
         {"count": 200000}, {"count": 2000}),
    Case("W2-sync", "w2", "pipe round trip, blocking receive at both ends, one CPU",
         [MEDIAN, P99], ["mpq"] + PIPE_PEERS, *W2_SIZES, extra=["--variant=sync"], one_cpu=True),
    Case("W2-loop", "w2", "pipe round trip, both ends in a GMainLoop, one CPU",
         [MEDIAN, P99], W2_LOOP_SYSTEMS, *W2_SIZES, extra=["--variant=loop"], one_cpu=True),
    Case("W2-sync-2cpu", "w2", "W2-sync on two CPUs",
         [MEDIAN, P99], ["mpq", "raw", "raw-json"] + MP_PIPES + ["zmq"], *W2_SIZES,
         extra=["--variant=sync"]),
    Case("W2-loop-2cpu", "w2", "W2-loop on two CPUs",
         [MEDIAN, P99], ["mpq", "raw", "raw-json", "zmq"], *W2_SIZES,
         extra=["--variant=loop"]),
    Case("W3", "w3", "fan-in: 4 children send, the parent takes all",
         [RATE, SERVER_RSS], ["mpq"] + PEERS + REDIS_SYSTEMS,
         {"count": 50000, "children": 4}, {"count": 500, "children": 4}),
    Case("W4", "w4", "work distribution: 4 children answer the parent's tasks",
         [TASKS, SERVER_RSS], ["mpq"] + PEERS + REDIS_SYSTEMS,
         {"count": 100000, "children": 4}, {"count": 1000, "children": 4}),
    Case("W5", "w5", "slow reader: W1, the parent spends 200 µs per message",
         [RATE, PARENT_RSS, CHILD_RSS], ["mpq"] + PIPE_PEERS,
         {"count": 200000, "spin-us": 200}, {"count": 300, "spin-us": 200}),
    Case("W6", "w6", "binary payloads of 16 MiB, to the child and back one at a time",
         [GB_S, PARENT_RSS, CHILD_RSS], ["mpq"] + MP_PIPES + ["zmq", "gdbus"],
         {"count": 1000, "size": 16 * 2**20}, {"count": 20, "size": 2**20}),
    Case("W1-py", "w1", "W1 with the parent in Python (PyGObject)",
         [RATE], ["mpq-py"] + MP_PIPES, {"count": 200000}, {"count": 2000}, reference="mpq-py"),
    Case("W4-py", "w4", "W4 with the parent in Python (PyGObject)",
         [TASKS], ["mpq-py", "mp"],
         {"count": 100000, "children": 4}, {"count": 1000, "children": 4}, reference="mpq-py"),
    # Issue 12. W7: submit every task as a future, then wait for each in
    # order (concurrent.futures: submit + result (); multiprocessing.Pool:
    # imap_unordered, chunksize 1). W8: one map (Pool.map: its default
    # chunksize). "Mpq ×" is against the C pool; the targets give the
    # Python pool's ratios too.
    Case("W7", "w7", "pool: squares on 4 workers, submitted one by one, collected in order",
         [TASKS], POOL_SYSTEMS, *POOL_SIZES, reference="mpq-pool"),
    Case("W8", "w8", "pool map: the same squares as one map",
         [TASKS], ["mpq-pool", "mpq-pool-msgs", "mpq-pool-py", "mp-pool"], *POOL_SIZES,
         reference="mpq-pool"),
]


def wanted_systems(names):
    """--systems: "mp" stands for multiprocessing's queues and both its pipes."""
    wanted = set(names)
    if "mp" in wanted:
        wanted.update(MP_PIPES)
    return wanted


def advantage(ref, value, higher_better):
    """How many times better Mpq did: > 1 means Mpq ahead."""
    if ref is None or value is None or ref <= 0 or value <= 0:
        return None
    return ref / value if higher_better else value / ref


def add_faster_pipe(cases, medians):
    """Gives each case that measured multiprocessing's pipes an "mp": the
    faster pipe's figures, by the case's headline. Returns {case name:
    the system chosen}."""
    chosen = {}
    for case in cases:
        key, _, higher = case.metrics[0]
        found = {s: medians[(case.name, s, key)] for s in MP_PIPES
                 if s in case.systems and (case.name, s, key) in medians}
        if not found:
            continue
        best = (max if higher else min)(found, key=found.get)
        chosen[case.name] = best
        for metric, _, _ in case.metrics:
            if (case.name, best, metric) in medians:
                medians[(case.name, "mp", metric)] = medians[(case.name, best, metric)]
    return chosen


def targets(medians):
    """The targets, from a run's medians: [(text, met)]. Issue 11's first,
    then issue 12's (the pool), then the earlier ones that still say
    something of their own."""
    out = []

    def get(case, system, key="rate"):
        return medians.get((case, system, key))

    def label(system):
        return SYSTEMS[system][0]

    mpq = get("W1", "mpq")
    ratios = {p: advantage(mpq, get("W1", p), True) for p in DECODING_PEERS}
    known = {p: r for p, r in ratios.items() if r is not None}
    if known:
        closest = min(known, key=known.get)
        text = (f"W1: >= 1.5x every decoding peer (closest: {label(closest)} "
                f"{known[closest]:.2f}x, of {len(known)})")
        bound = get("W1", "mpq-decode")
        if bound:
            text += (f"; decoding alone, without I/O, is {bound / get('W1', closest):.2f}x "
                     f"{label(closest)}")
        out.append((text, all(r >= 1.5 for r in known.values())))

    for case in ("W3", "W4"):
        parts, ok = [], True
        for peer, need in (("zmq", 1.3), ("mp", 4)):
            ratio = advantage(get(case, "mpq"), get(case, peer), True)
            if ratio is not None:
                parts.append(f">= {need}x {label(peer)} ({ratio:.2f}x)")
                ok = ok and ratio >= need
        if parts:
            out.append((f"{case}: " + " and ".join(parts), ok))

    loop_median, loop_p99 = get("W2-loop", "mpq", "median_us"), get("W2-loop", "mpq", "p99_us")
    sync_median, sync_p99 = get("W2-sync", "mpq", "median_us"), get("W2-sync", "mpq", "p99_us")
    if loop_median and sync_median:
        out.append((f"W2 in a main loop: median {loop_median:.1f} µs <= 1.1x Mpq's blocking "
                    f"{sync_median:.1f} µs ({loop_median / sync_median:.2f}x), p99 "
                    f"{loop_p99:.1f} µs <= 1.3x {sync_p99:.1f} µs ({loop_p99 / sync_p99:.2f}x)",
                    loop_median <= 1.1 * sync_median and loop_p99 <= 1.3 * sync_p99))

    parent, child = get("W5", "mpq", "parent_rss_kib"), get("W5", "mpq", "child_rss_kib")
    if parent and child:
        out.append((f"W5: peak RSS parent {parent / 1024:.1f} MiB, child {child / 1024:.1f} MiB, "
                    "each < 32 MiB", parent < 32768 and child < 32768))

    # Issue 12: the pool, from C and from Python, against the standard
    # library's one-by-one pools (>= 2x) and Pool.map (ahead).
    for case, peers, need in (("W7", ("cf", "mp-pool"), 2), ("W8", ("mp-pool",), 1)):
        for mine in ("mpq-pool", "mpq-pool-py"):
            parts, ok = [], True
            for peer in peers:
                ratio = advantage(get(case, mine), get(case, peer), True)
                if ratio is not None:
                    parts.append(f"{label(peer)} ({ratio:.2f}x)")
                    ok = ok and (ratio >= need if need > 1 else ratio > 1)
            if parts:
                goal = f">= {need}x" if need > 1 else "ahead of"
                out.append((f"{case}: {label(mine)} {goal} " + " and ".join(parts), ok))

    # Earlier targets: no issue 11 target compares the blocking round trip
    # with a peer's, nor the Python parents with multiprocessing.
    ref = get("W2-sync", "raw-json", "median_us")
    if ref and sync_median:
        out.append((f"W2 blocking (earlier target): median {sync_median:.1f} µs <= socketpair + "
                    f"json-glib {ref:.1f} µs", sync_median <= ref))
    for case in ("W1-py", "W4-py"):
        py, mp = get(case, "mpq-py"), get(case, "mp")
        if py and mp:
            out.append((f"{case} (earlier target): PyGObject parent {py:,.0f}/s beats "
                        f"multiprocessing {mp:,.0f}/s ({py / mp:.2f}x)", py > mp))
    return out
