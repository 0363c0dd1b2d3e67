# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the benchmark's Python programs share with the C ones
(bench-common.c): the payload, the loss and duplicate check, peak RSS, the
spin of the slow reader, and the one JSON result line."""

import argparse
import json
import os
import sys
import time

PAYLOAD = "0123456789abcdefghijklmnopqrstuv"
assert len(PAYLOAD) == 32

DEFAULT_COUNTS = {"w1": 200000, "w2": 20000, "w3": 50000, "w4": 100000, "w5": 200000}


def fail(message):
    """Fails the run loudly; in a multiprocessing child, exits it with 1."""
    print(f"bench[{os.getpid()}] FAILED: {message}", file=sys.stderr, flush=True)
    os._exit(1)


def parse_args(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("workload", choices=sorted(DEFAULT_COUNTS))
    parser.add_argument("--count", type=int)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--children", type=int, default=4)
    parser.add_argument("--spin-us", type=int, default=200)
    parser.add_argument("--variant", default="sync")
    parser.add_argument("--mode", default="default")
    parser.add_argument("--child-exe", help="the C program whose children serve Mpq")
    args = parser.parse_args()
    if args.count is None:
        args.count = DEFAULT_COUNTS[args.workload]
    return args


def data_value(data):
    """The value of a {"value", "payload"} object; fails on anything else."""
    if not isinstance(data, dict):
        fail("the data is not an object")
    value = data.get("value")
    if type(value) is not int:
        fail('the data has no integer "value"')
    if data.get("payload") != PAYLOAD:
        fail('the data has no right "payload"')
    return value


def list_value(message, request):
    """The value of a pymulproc message as a Python list; fails on anything else."""
    if type(message) is not list or len(message) != 4:
        fail("not a 4-element message")
    if message[0] != request:
        fail(f"expected {request}, got {message[0]}")
    if type(message[1]) is not int or message[1] <= 0:
        fail("no sender pid")
    return data_value(message[3])


class Check:
    """Every value from 0 to expected - 1 must arrive exactly once."""

    def __init__(self, expected):
        self.seen = bytearray(expected)
        self.expected = expected
        self.count = 0
        self.total = 0
        self.first_ns = 0
        self.last_ns = 0

    def add(self, value):
        if not 0 <= value < self.expected:
            fail(f"value {value} out of range [0, {self.expected})")
        if self.seen[value]:
            fail(f"DUPLICATE: value {value} arrived twice")
        self.seen[value] = 1
        self.count += 1
        self.total += value
        if self.count == 1:
            self.first_ns = time.perf_counter_ns()
        if self.count == self.expected:
            self.last_ns = time.perf_counter_ns()

    def done(self):
        return self.count == self.expected

    def finish(self):
        n = self.expected
        if self.count != n:
            fail(f"LOSS: {self.count} of {n} messages arrived")
        if self.total != n * (n - 1) // 2:
            fail(f"wrong sum {self.total}")


def spin_us(us):
    """Busy: the reader is working, not sleeping."""
    until = time.perf_counter_ns() + us * 1000
    while time.perf_counter_ns() < until:
        pass


def peak_rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def print_result(args, system, **fields):
    result = {"workload": args.workload, "system": system, "variant": args.variant}
    result.update(fields)
    print(json.dumps(result, separators=(",", ":")), flush=True)


def print_throughput(args, system, check, **fields):
    seconds = (check.last_ns - check.first_ns) / 1e9
    rate = (check.expected - 1) / seconds if seconds > 0 else 0
    print_result(args, system, count=check.expected, seconds=seconds, rate=rate, **fields)


def latency_stats(samples_ns):
    samples = sorted(samples_ns)
    n = len(samples)
    if n % 2:
        median = samples[n // 2] / 1000
    else:
        median = (samples[n // 2 - 1] + samples[n // 2]) / 2000
    p99 = samples[max((n * 99 + 99) // 100, 1) - 1] / 1000
    return median, p99
