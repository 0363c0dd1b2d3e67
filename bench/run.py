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

import bench_redis
from run_cases import (CASES, REDIS_SYSTEMS, SYSTEMS, add_faster_pipe, advantage, targets,
                       wanted_systems)

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
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
    # The PyGObject override (gi/overrides/Mpq.py) of this source tree,
    # as the tests find it: the Python pool's futures are in it.
    overrides = os.path.join(os.path.dirname(HERE), "python")
    env["PYTHONPATH"] = overrides + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("MPQ_DEBUG", None)
    return env


def pin_to_cpu0():
    os.sched_setaffinity(0, {0})


def measure(args, env, system, case, sizes):
    """Runs one measurement: (status, result or reason). A system on Redis
    gets a server of its own, and its peak RSS is in the result."""
    if system not in REDIS_SYSTEMS:
        return measure_one(args, env, system, case, sizes)
    if not bench_redis.available():
        return "missing", "no redis-server"
    with bench_redis.Server() as server:
        status, result = measure_one(args, env, system, case, sizes, ["--uri=" + server.uri])
        if status == "ok":
            result["server_rss_kib"] = server.peak_rss_kib()
    return status, result


def measure_one(args, env, system, case, sizes, more=()):
    cmd = command(args, system, case, sizes) + list(more)
    if not os.path.exists(cmd[2] if cmd[0] == PYTHON else cmd[0]):
        return "missing", f"{os.path.basename(cmd[0])} is not built"
    if system in ("mpq-py", "mpq-pool-py") and not os.path.exists(
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
    if unit == "GB/s":
        return f"{value:.2f}"
    return f"{value:,.0f}"


def print_case(case, medians, notes, runs, chosen, markdown=False):
    """One case's table; @chosen: {case: multiprocessing's faster pipe}."""
    name, metrics, reference = case.name, case.metrics, case.reference
    heads = ["system"]
    for key, unit, higher in metrics:
        heads += [f"{key.replace('_kib', '')} ({unit}) {'↑' if higher else '↓'}", "Mpq ×"]
    heads.append("runs")
    rows = []
    for system in case.systems:
        if (name, system) not in notes and not runs.get((name, system)):
            continue   # not asked for (--systems)
        label = SYSTEMS[system][0] + (", the faster" if chosen.get(name) == system else "")
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
    first = max([26] + [len(row[0]) + 2 for row in rows])
    widths = [first] + [24, 8] * len(metrics) + [6]
    print("  " + "".join(h.ljust(w) if i == 0 else h.rjust(w)
                         for i, (h, w) in enumerate(zip(heads, widths))))
    for row in rows:
        if len(row) == 2:
            print(f"  {row[0]:<{first}}  {row[1]}")
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
        if r["kind"] == "median" and "faster_of" not in r:   # that one is made again below
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
    chosen = add_faster_pipe(CASES, medians)
    for case in CASES:
        if any(key[0] == case.name for key in list(medians) + list(notes)):
            print_case(case, medians, notes, runs, chosen, markdown=True)
    # Today's targets, read again from the medians: a run from before they
    # changed is judged by them too.
    verdicts = targets(medians)
    if verdicts:
        print()
        print("Targets, from this run's medians:")
        print()
        for text, ok in verdicts:
            print(f"- {'met' if ok else '**not met**'}: {text}")
    return 0


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
    systems_wanted = wanted_systems(args.systems.split(",")) if args.systems else set(SYSTEMS)

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
    chosen = add_faster_pipe(cases, medians)
    print("\nMedians. ↑ higher is better, ↓ lower is better; "
          "Mpq ×: how many times better Mpq did (> 1: Mpq ahead); "
          "\"the faster\": multiprocessing's faster pipe, the one the targets use.")
    for case in cases:
        print_case(case, medians, notes, runs, chosen)

    verdicts = targets(medians)
    if verdicts and not args.short:
        print()
        print("Targets (for information; ratios from this run)")
        for text, ok in verdicts:
            print(f"  [{'met' if ok else 'NOT met'}] {text}")

    for case in cases:
        name = case.name
        # "mp" where it is multiprocessing's faster pipe: that pipe's figures again.
        derived = {"mp": chosen[name]} if name in chosen else {}
        for system in case.systems + list(derived):
            measured = derived.get(system, system)
            if (name, measured) not in runs:
                continue
            summary = {"kind": "median", "run_id": run_id, "case": name, "system": system,
                       "runs": runs[(name, measured)], "one_cpu": case.one_cpu,
                       "sizes": case.short if args.short else case.full}
            if system in derived:
                summary.update(faster_of=[s for s in case.systems if s.startswith("mp-")],
                               pipe=measured)
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
