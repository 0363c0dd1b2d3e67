#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs the pymulproc benchmark: every workload for every system, several
times, in one go; prints a table of medians with ratios against Mpq and
appends every measurement, as JSON lines, to a results file.

    python3 bench/run.py --build-dir build            # the full benchmark
    python3 bench/run.py --build-dir build --short    # tiny counts, one run

See bench/README.md for the workloads and the peers, docs/performance.md
for the latest table.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"

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
    "jsonrpc": ("jsonrpc-glib", "mpq-bench-jsonrpc", []),
    "gdbus": ("GDBus peer-to-peer", "mpq-bench-gdbus", []),
    "zmq": ("ZeroMQ + json-glib", "mpq-bench-zmq", []),
}

PEERS = ["raw", "raw-json", "mp", "jsonrpc", "gdbus", "zmq"]

# Throughput workloads report "rate"; W2 "median_us" and "p99_us"; W5 the
# peak RSS of both processes too.
RATE = ("rate", "msgs/s", True)
TASKS = ("rate", "tasks/s", True)
MEDIAN = ("median_us", "µs", False)
P99 = ("p99_us", "µs", False)
PARENT_RSS = ("parent_rss_kib", "MiB", False)
CHILD_RSS = ("child_rss_kib", "MiB", False)

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


W2_SIZES = ({"count": 20000, "warmup": 1000}, {"count": 200, "warmup": 50})
W2_LOOP_SYSTEMS = ["mpq", "raw", "raw-json", "jsonrpc", "gdbus", "zmq"]

# W2 runs on one CPU: on this kind of VM a process woken on an idle vCPU
# waits some 20 µs for it, so on an idle machine every round trip between
# two CPUs costs about 50 µs whatever the transport. Sharing a CPU leaves
# the software's own cost (and two context switches); the -2cpu cases show
# what two CPUs give, on that day.
CASES = [
    Case("W1", "w1", "pipe one-way: one child sends, the parent receives",
         [RATE], ["mpq", "mpq-signals", "mpq-decode"] + PEERS, {"count": 200000}, {"count": 2000}),
    Case("W2-sync", "w2", "pipe round trip, blocking receive at both ends, one CPU",
         [MEDIAN, P99], ["mpq"] + PEERS, *W2_SIZES, extra=["--variant=sync"], one_cpu=True),
    Case("W2-loop", "w2", "pipe round trip, both ends in a GMainLoop, one CPU",
         [MEDIAN, P99], W2_LOOP_SYSTEMS, *W2_SIZES, extra=["--variant=loop"], one_cpu=True),
    Case("W2-sync-2cpu", "w2", "W2-sync on two CPUs",
         [MEDIAN, P99], ["mpq", "raw", "raw-json", "mp", "zmq"], *W2_SIZES,
         extra=["--variant=sync"]),
    Case("W2-loop-2cpu", "w2", "W2-loop on two CPUs",
         [MEDIAN, P99], ["mpq", "raw", "raw-json", "zmq"], *W2_SIZES,
         extra=["--variant=loop"]),
    Case("W3", "w3", "fan-in: 4 children send, the parent takes all",
         [RATE], ["mpq"] + PEERS,
         {"count": 50000, "children": 4}, {"count": 500, "children": 4}),
    Case("W4", "w4", "work distribution: 4 children answer the parent's tasks",
         [TASKS], ["mpq"] + PEERS,
         {"count": 100000, "children": 4}, {"count": 1000, "children": 4}),
    Case("W5", "w5", "slow reader: W1, the parent spends 200 µs per message",
         [RATE, PARENT_RSS, CHILD_RSS], ["mpq"] + PEERS,
         {"count": 200000, "spin-us": 200}, {"count": 300, "spin-us": 200}),
    Case("W1-py", "w1", "W1 with the parent in Python (PyGObject)",
         [RATE], ["mpq-py", "mp"], {"count": 200000}, {"count": 2000}, reference="mpq-py"),
    Case("W4-py", "w4", "W4 with the parent in Python (PyGObject)",
         [TASKS], ["mpq-py", "mp"],
         {"count": 100000, "children": 4}, {"count": 1000, "children": 4}, reference="mpq-py"),
]

SKIPPED = 77


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default=os.path.join(HERE, "..", "build"),
                        help="the meson build directory (default: ./build)")
    parser.add_argument("--short", action="store_true",
                        help="tiny counts, one run: proves it works, measures nothing")
    parser.add_argument("--runs", type=int, help="runs of each measurement (default 5)")
    parser.add_argument("--w5-runs", type=int,
                        help="runs of W5, 40 s each per system at full size (default 1)")
    parser.add_argument("--cases", help="comma-separated: " + ",".join(c.name for c in CASES))
    parser.add_argument("--systems", help="comma-separated: " + ",".join(SYSTEMS))
    parser.add_argument("--output", default=os.path.join(HERE, "results", "results.jsonl"),
                        help="JSON lines appended here (default: bench/results/results.jsonl)")
    parser.add_argument("--timeout", type=float,
                        help="seconds one measurement may take (default 600, 60 with --short)")
    parser.add_argument("--note", help="a note kept with the results (what was measured)")
    parser.add_argument("--report", action="store_true",
                        help="measure nothing: print the last full run of --output "
                             "(or --run-id) as Markdown tables")
    parser.add_argument("--run-id", help="with --report: which run")
    args = parser.parse_args()
    if args.timeout is None:
        args.timeout = 60 if args.short else 600
    if args.runs is None:
        args.runs = 1 if args.short else 5
    if args.w5_runs is None:
        args.w5_runs = 1
    args.build_dir = os.path.abspath(args.build_dir)
    return args


def read_first_line(path, prefix=""):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
    except OSError:
        pass
    return None


def package_version(name):
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def source_version():
    """The commit the benchmark runs from, "+dirty" when the tree has changes."""
    try:
        top = os.path.join(HERE, "..")
        head = subprocess.run(["git", "-C", top, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", top, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine():
    mem_kib = read_first_line("/proc/meminfo", "MemTotal:")
    return {
        "cpu": read_first_line("/proc/cpuinfo", "model name\t:"),
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem_kib.split()[0]) / 2**20, 1) if mem_kib else None,
        "kernel": platform.release(),
        "debian": read_first_line("/etc/debian_version"),
        "python": platform.python_version(),
        "packages": {name: package_version(name) for name in [
            "libglib2.0-0", "libjson-glib-1.0-0", "libjsonrpc-glib-1.0-1", "libzmq5",
            "python3-gi", "gcc"]},
        "load_average": os.getloadavg(),
    }


def command(args, system, case, sizes):
    _, program, system_args = SYSTEMS[system]
    if program.endswith(".py"):
        cmd = [PYTHON, "-B", os.path.join(HERE, program)]
    else:
        cmd = [os.path.join(args.build_dir, "bench", program)]
    cmd += [case.workload] + system_args + case.extra
    cmd += [f"--{name}={value}" for name, value in sizes.items()]
    if system == "mpq-py":
        cmd.append("--child-exe=" + os.path.join(args.build_dir, "bench", "mpq-bench-mpq"))
    return cmd


def environment(args):
    env = dict(os.environ)
    lib = os.path.join(args.build_dir, "pymulproc")
    for name in ("GI_TYPELIB_PATH", "LD_LIBRARY_PATH"):
        env[name] = lib + (":" + env[name] if env.get(name) else "")
    env.pop("MPQ_DEBUG", None)
    return env


def pin_to_cpu0():
    os.sched_setaffinity(0, {0})


def measure(args, env, system, case, sizes):
    """Runs one measurement: (status, result or reason)."""
    cmd = command(args, system, case, sizes)
    if not os.path.exists(cmd[2] if cmd[0] == PYTHON else cmd[0]):
        return "missing", f"{os.path.basename(cmd[0])} is not built"
    if system == "mpq-py" and not os.path.exists(
            os.path.join(args.build_dir, "pymulproc", "Mpq-1.0.typelib")):
        return "missing", "no Mpq-1.0.typelib (introspection is off)"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=args.timeout,
                              preexec_fn=pin_to_cpu0 if case.one_cpu else None)
    except subprocess.TimeoutExpired:
        return "failed", f"timed out after {args.timeout:.0f} s: {' '.join(cmd)}"

    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    result = None
    if lines:
        try:
            result = json.loads(lines[-1])
        except ValueError:
            pass
    if proc.returncode == SKIPPED and result is not None and "skipped" in result:
        return "skipped", result["skipped"]
    if proc.returncode != 0 or result is None:
        return "failed", (f"exit status {proc.returncode}: {' '.join(cmd)}\n"
                          + proc.stderr.strip())
    if proc.stderr.strip():
        # Criticals and warnings are failures too: nothing should complain.
        return "failed", f"it printed to stderr: {' '.join(cmd)}\n{proc.stderr.strip()}"
    return "ok", result


def fmt(value, unit):
    if value is None:
        return "-"
    if unit == "MiB":
        return f"{value / 1024:.1f}"
    if unit == "µs":
        return f"{value:.1f}"
    return f"{value:,.0f}"


def advantage(ref, value, higher_better):
    """How many times better Mpq did: > 1 means Mpq is ahead."""
    if ref is None or value is None or ref <= 0 or value <= 0:
        return None
    return ref / value if higher_better else value / ref


def print_case(case, medians, notes, runs, markdown=False):
    name, metrics, reference = case.name, case.metrics, case.reference
    heads = ["system"]
    for key, unit, higher in metrics:
        heads += [f"{key.replace('_kib', '')} ({unit}) {'↑' if higher else '↓'}", "Mpq ×"]
    heads.append("runs")
    rows = []
    for system in case.systems:
        label = SYSTEMS[system][0]
        if (name, system) in notes:
            rows.append([label, notes[(name, system)]])
            continue
        row = [label]
        for key, unit, higher in metrics:
            value = medians.get((name, system, key))
            ratio = advantage(medians.get((name, reference, key)), value, higher)
            row += [fmt(value, unit), "" if ratio is None else f"{ratio:.2f}"]
        rows.append(row + [str(runs.get((name, system), 0))])

    print()
    if markdown:
        print(f"**{name}**: {case.title}")
        print()
        print("| " + " | ".join(heads) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(heads) - 1)) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    print(f"{name}  {case.title}")
    widths = [26] + [24, 8] * len(metrics) + [6]
    print("  " + "".join(h.ljust(w) if i == 0 else h.rjust(w)
                         for i, (h, w) in enumerate(zip(heads, widths))))
    for row in rows:
        if len(row) == 2:
            print(f"  {row[0]:<26}  {row[1]}")
        else:
            print("  " + "".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(row, widths))))


def report(path, run_id=None):
    """Prints the tables of one run of a results file in Markdown (for
    docs/performance.md): the given run, or the last full one."""
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    runs_seen = [r for r in records if r["kind"] == "run" and (run_id or not r["short"])]
    if run_id:
        runs_seen = [r for r in runs_seen if r["run_id"] == run_id]
    if not runs_seen:
        sys.exit(f"no such run in {path}")
    run = runs_seen[-1]
    mine = [r for r in records if r.get("run_id") == run["run_id"]]
    medians, notes, runs = {}, {}, {}
    for r in mine:
        if r["kind"] == "median":
            runs[(r["case"], r["system"])] = r["runs"]
            for key, value in r.items():
                if not key.startswith("mpq_advantage_") and isinstance(value, (int, float)):
                    medians[(r["case"], r["system"], key)] = value
        elif r["kind"] == "measurement" and r["status"] != "ok":
            notes[(r["case"], r["system"])] = f"{r['status']}: {r['reason'].splitlines()[0]}"
    m = run["machine"]
    print(f"Run `{run['run_id']}`, {run['time']}"
          + (f", source {run['source']}" if run.get("source") else "")
          + (f" ({run['note']})" if run.get("note") else "") + ".")
    print(f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, "
          f"Debian {m['debian']}, load average {m['load_average'][0]:.2f} at the start; "
          f"{run['runs']} runs (W5: {run['w5_runs']}), medians. "
          "↑ higher is better, ↓ lower is better; Mpq ×: how many times better Mpq did "
          "(> 1: Mpq ahead).")
    for case in CASES:
        if any(key[0] == case.name for key in list(medians) + list(notes)):
            print_case(case, medians, notes, runs, markdown=True)
    for r in mine:
        if r["kind"] == "targets" and r["targets"]:
            print()
            print("Targets, from this run's ratios:")
            print()
            for t in r["targets"]:
                print(f"- {'met' if t['met'] else '**not met**'}: {t['target']}")
    return 0


def targets(medians):
    """The issue's targets, from this run's medians: (text, verdict)."""
    out = []

    def get(case, system, key="rate"):
        return medians.get((case, system, key))

    for case in ("W1", "W3", "W4"):
        mpq = get(case, "mpq")
        ratios = {p: advantage(mpq, get(case, p), True) for p in PEERS}
        known = {p: r for p, r in ratios.items() if r is not None}
        if mpq is None or not known:
            continue
        worst = min(known, key=known.get)
        ok = all(r >= 1 for r in known.values()) and (known.get("mp") or 0) >= 3
        text = (f"{case}: ahead of every peer (closest: {SYSTEMS[worst][0]} "
                f"{known[worst]:.2f}x) and >= 3x multiprocessing "
                f"({known.get('mp', 0):.2f}x)")
        bound, mp = get(case, "mpq-decode"), get(case, "mp")
        if bound and mp:
            text += f"; decoding alone, without I/O, is {bound / mp:.2f}x multiprocessing"
        out.append((text, ok))
    ref = get("W2-sync", "raw-json", "median_us")
    mpq = get("W2-sync", "mpq", "median_us")
    if ref and mpq:
        out.append((f"W2 sync: median {mpq:.1f} µs <= socketpair + json-glib {ref:.1f} µs",
                    mpq <= ref))
    mpq = get("W2-loop", "mpq", "median_us")
    for case, what in (("W2-loop", "in the main loop"), ("W2-sync", "blocking")):
        ref = get(case, "raw-json", "median_us")
        if ref and mpq:
            out.append((f"W2 loop: median {mpq:.1f} µs <= 1.3 x socketpair + json-glib {what} "
                        f"{ref:.1f} µs ({mpq / ref:.2f}x)", mpq <= 1.3 * ref))
    parent = get("W5", "mpq", "parent_rss_kib")
    child = get("W5", "mpq", "child_rss_kib")
    if parent and child:
        out.append((f"W5: peak RSS parent {parent / 1024:.1f} MiB, child {child / 1024:.1f} MiB, "
                    "each < 32 MiB", parent < 32768 and child < 32768))
    for case in ("W1-py", "W4-py"):
        py, mp = get(case, "mpq-py"), get(case, "mp")
        if py and mp:
            out.append((f"{case}: PyGObject parent {py:,.0f}/s beats multiprocessing "
                        f"{mp:,.0f}/s ({py / mp:.2f}x)", py > mp))
    return out


def main():
    args = parse_args()
    if args.report:
        return report(args.output, args.run_id)
    if os.environ.get("MPQ_VALGRIND"):
        print("The benchmark does not run under valgrind.")
        return SKIPPED

    cases = CASES
    if args.cases:
        wanted = args.cases.split(",")
        unknown = set(wanted) - {c.name for c in CASES}
        if unknown:
            sys.exit(f"unknown case(s): {', '.join(sorted(unknown))}")
        cases = [c for c in CASES if c.name in wanted]
    systems_wanted = set(args.systems.split(",")) if args.systems else set(SYSTEMS)

    run_id = uuid.uuid4().hex[:12]
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    env = environment(args)
    info = machine()
    version = source_version()
    records = [{"kind": "run", "run_id": run_id, "time": started, "short": args.short,
                "runs": args.runs, "w5_runs": args.w5_runs, "source": version,
                "note": args.note, "machine": info}]

    print(f"pymulproc benchmark {run_id} ({'short' if args.short else 'full'}), {started}"
          + (f", source {version}" if version else "") + (f", {args.note}" if args.note else ""))
    print(f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, "
          f"Linux {info['kernel']}, Debian {info['debian']}; "
          f"load {info['load_average'][0]:.2f}")
    if info["load_average"][0] > 0.5 and not args.short:
        print("Warning: the machine is busy; compare ratios, not absolute figures.")

    samples = {}      # (case, system, metric) -> [values]
    notes = {}        # (case, system) -> why there is no figure
    runs = {}         # (case, system) -> measurements that succeeded
    failures = []

    for case in cases:
        name, metrics = case.name, case.metrics
        sizes = case.short if args.short else case.full
        systems = [s for s in case.systems if s in systems_wanted]
        n_runs = args.w5_runs if name == "W5" and not args.short else args.runs
        for run in range(n_runs):
            # A different system starts each round, so none is always first.
            order = systems[run % len(systems):] + systems[:run % len(systems)] if systems else []
            for system in order:
                if (name, system) in notes:
                    continue
                print(f"  {name} {system} run {run + 1}/{n_runs} …", end="", flush=True,
                      file=sys.stderr)
                began = time.monotonic()
                status, result = measure(args, env, system, case, sizes)
                print(f" {status} ({time.monotonic() - began:.1f} s)", file=sys.stderr)
                record = {"kind": "measurement", "run_id": run_id, "case": name,
                          "system": system, "run": run + 1, "status": status}
                if status == "ok":
                    record["result"] = result
                    runs[(name, system)] = runs.get((name, system), 0) + 1
                    for key, _, _ in metrics:
                        if key in result:
                            samples.setdefault((name, system, key), []).append(result[key])
                else:
                    record["reason"] = result
                    notes[(name, system)] = f"{status}: {result.splitlines()[0]}"
                    if status == "failed":
                        failures.append(f"{name} {system}: {result}")
                records.append(record)

    medians = {key: statistics.median(values) for key, values in samples.items()}
    print("\nMedians. ↑ higher is better, ↓ lower is better; "
          "Mpq ×: how many times better Mpq did (> 1: Mpq ahead).")
    for case in cases:
        print_case(case, medians, notes, runs)

    verdicts = targets(medians)
    if verdicts and not args.short:
        print()
        print("Targets (for information; ratios from this run)")
        for text, ok in verdicts:
            print(f"  [{'met' if ok else 'NOT met'}] {text}")

    for case in cases:
        name = case.name
        for system in case.systems:
            if (name, system) not in runs:
                continue
            summary = {"kind": "median", "run_id": run_id, "case": name, "system": system,
                       "runs": runs[(name, system)], "one_cpu": case.one_cpu,
                       "sizes": case.short if args.short else case.full}
            for key, _, higher in case.metrics:
                value = medians.get((name, system, key))
                summary[key] = value
                summary["mpq_advantage_" + key] = advantage(
                    medians.get((name, case.reference, key)), value, higher)
            records.append(summary)
    records.append({"kind": "targets", "run_id": run_id,
                    "targets": [{"target": t, "met": ok} for t, ok in verdicts],
                    "load_average_after": os.getloadavg()})

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "a") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"\nResults appended to {args.output} (run {run_id}).")

    if failures:
        print("\nFAILED:", file=sys.stderr)
        for failure in failures:
            print("  " + failure.replace("\n", "\n    "), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
