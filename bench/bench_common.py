# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the benchmark's Python programs share with the C ones
(bench-common.c, bench-payload.c): the payload, the loss and duplicate
check, peak RSS, the spin of the slow reader, W6's binary payloads and the
one JSON result line."""

import argparse
import json
import os
import sys
import time

PAYLOAD = "0123456789abcdefghijklmnopqrstuv"
assert len(PAYLOAD) == 32

DEFAULT_COUNTS = {"w1": 200000, "w2": 20000, "w3": 50000, "w4": 100000, "w5": 200000,
                  "w6": 1000}
W6_SIZE = 16 * 2**20


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
    parser.add_argument("--pipe", choices=["duplex", "simplex"], default="duplex",
                        help="multiprocessing: Pipe() or Pipe(duplex=False) (W1, W2, W5, W6)")
    parser.add_argument("--size", type=int, default=W6_SIZE, help="W6: payload bytes")
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
    if args.workload == "w6":
        # Each message's payload went out and came back.
        fields.update(size=args.size, gb_s=rate * 2 * args.size / 1e9)
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


# W6's payloads, as bench-payload.c makes and checks them: the first 8
# bytes are the message's index, the last 8 a checksum of SAMPLES bytes set
# at places that depend on the index, one in each of SAMPLES stripes of the
# body (so two never fall on the same byte). Checking those few bytes finds
# a wrong, stale, reordered or cut payload without reading 16 MiB.
SAMPLES = 16
MASK = 2**64 - 1


def _mix(x):
    """splitmix64's finaliser: cheap, and every output bit depends on every input bit."""
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def payload_samples(index, size):
    """[(position, byte)] that message index carries."""
    stripe = (size - 16) // SAMPLES
    samples = []
    for j in range(SAMPLES):
        m = _mix(index * SAMPLES + j)
        samples.append((8 + j * stripe + m % stripe, m >> 56))
    return samples


def payload_checksum(index, samples):
    """FNV-1a of the sampled bytes, seeded with the index."""
    h = 0xCBF29CE484222325 ^ index
    for _, byte in samples:
        h = ((h ^ byte) * 0x100000001B3) & MASK
    return h


def payload_buffer(size):
    """A buffer for payload_stamp (): every byte written once, not zero pages."""
    if size < 16 + SAMPLES:
        fail(f"a payload of {size} bytes is too small")
    return bytearray((bytes(range(256)) * (size // 256 + 1))[:size])


def payload_stamp(buffer, index):
    samples = payload_samples(index, len(buffer))
    buffer[0:8] = index.to_bytes(8, "little")
    for position, byte in samples:
        buffer[position] = byte
    buffer[-8:] = payload_checksum(index, samples).to_bytes(8, "little")


def payload_index(data, size):
    """The index a payload says it is; fails on a payload of the wrong size."""
    if len(data) != size:
        fail(f"a payload of {len(data)} bytes, not {size}")
    return int.from_bytes(data[0:8], "little")


def payload_check(data, size, index):
    """Fails the run unless data is message index's payload."""
    if payload_index(data, size) != index:
        fail(f"payload {index} came back as {payload_index(data, size)}")
    samples = payload_samples(index, size)
    for position, byte in samples:
        if data[position] != byte:
            fail(f"payload {index}: byte {position} is {data[position]}, not {byte}")
    if int.from_bytes(data[-8:], "little") != payload_checksum(index, samples):
        fail(f"payload {index}: wrong checksum")
