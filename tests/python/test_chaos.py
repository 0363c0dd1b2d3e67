# SPDX-License-Identifier: LGPL-2.1-or-later
"""Chaos (issue 15): workers SIGKILLed at random while they work.

- A queue: the parent distributes 100,000 tasks over 6 dispatch workers
  (tests/mpq-queue-test-child worker, in C: each DO answered with FINISHED
  and the same data to the parent), putting them over some 10 s, and
  SIGKILLs a random worker every ~300 ms (a GLib timeout), spawning a
  replacement. At the end no task is
  lost, and the only duplicates are of tasks a killed worker had answered
  but not acknowledged; the parent's peak RSS is printed and bounded.
- A pipe: a child sends bursts of numbered messages, flushes after each
  and says so on stdout; right after such a flush it is SIGKILLed. Nothing
  it had flushed is lost, and what arrives is in order, without holes.

The figures are printed (pytest -s) and written to chaos-queue.txt and
chaos-pipe.txt in the build's tests directory (G_TEST_BUILDDIR).
Set MPQ_CHAOS_SEED to replay a run.
"""

import collections
import json
import os
import random
import time

import pytest
from gi.repository import Gio, GLib, Mpq

from mpq_helpers import (MPQ_CHILD, PROMPT_S, PeakRss, child_argv, pid_of, remember_pid,
                         run_loop, scaled, wait_exit)

C_WORKER = os.path.join(os.environ.get('G_TEST_BUILDDIR', ''), 'mpq-queue-test-child')
SEED = int(os.environ.get('MPQ_CHAOS_SEED', time.time_ns() % 2**32))

TASKS = scaled(100_000, 3_000)
WORKERS = 6
# The tasks are put over some seconds (a batch every 10 ms), not all at
# once: the workers are killed while they work, not after they are done.
FEED_S = scaled(10, 30)
FEED_BATCH = max(1, TASKS // (FEED_S * 100))
# Under valgrind every C worker runs under memcheck too and takes a second
# or two to start: killing one every 300 ms would leave none working.
KILL_EVERY_MS = scaled(300, 3000)
# The whole run normally takes seconds; this only turns a hang into a failure.
RUN_BOUND_S = scaled(240, 2400)
# 100,000 tasks and their answers pass through the queue: a few tens of MiB.
RSS_BOUND_MIB = scaled(256, 1024)


def report(name, figures):
    """Prints @figures, and writes them to NAME.txt in the build's tests
    directory (G_TEST_BUILDDIR) when there is one."""
    text = '\n'.join(f'{key}: {value}' for key, value in figures.items())
    print(f'\n{name}:\n{text}')
    if os.environ.get('G_TEST_BUILDDIR'):
        with open(os.path.join(os.environ['G_TEST_BUILDDIR'], f'{name}.txt'), 'w') as out:
            out.write(text + '\n')


@pytest.mark.watchdog(RUN_BOUND_S + 60)
@pytest.mark.skipif(not os.access(C_WORKER, os.X_OK),
                    reason='tests/mpq-queue-test-child not built (G_TEST_BUILDDIR)')
def test_queue_workers_killed_at_random():
    """Every task is answered at least once, and a task answered more than
    once was answered by a killed worker (which died before it acknowledged
    the task, so the task went to another): of its answers, at most one
    comes from a worker never killed."""
    rng = random.Random(SEED)
    q = Mpq.Queue.new(0)
    peak = PeakRss()
    live = {}           # pid -> subprocess
    killed = {}         # pid -> subprocess, SIGKILLed
    spawned = [0]

    def spawn_worker():
        proc = remember_pid(q.spawn([C_WORKER, 'worker']))
        live[pid_of(proc)] = proc
        spawned[0] += 1

    answers = collections.Counter()
    senders = collections.defaultdict(list)
    loop = GLib.MainLoop()
    state = {'joining': False, 'joined': None}

    def on_joined(source, result):
        state['joined'] = source.join_finish(result)
        loop.quit()

    def on_finished(ch, msg):
        value = json.loads(msg.dup_data_json())['value']
        answers[value] += 1
        senders[value].append(msg.get_sender_pid())
        if len(answers) == TASKS and not state['joining']:
            state['joining'] = True
            q.join_async(None, on_joined)

    def kill_one():
        if state['joining']:
            return GLib.SOURCE_REMOVE
        pid = rng.choice(sorted(live))
        proc = live.pop(pid)
        proc.force_exit()           # SIGKILL
        killed[pid] = proc
        spawn_worker()
        return GLib.SOURCE_CONTINUE

    q.connect('message-received::' + Mpq.REQ_FINISHED, on_finished)
    q.start()
    for _ in range(WORKERS):
        spawn_worker()
    fed = [0]

    def feed():
        first = fed[0]
        fed[0] = min(TASKS, first + FEED_BATCH)
        for i in range(first, fed[0]):
            q.send_json(Mpq.REQ_DO, 0, 0, '{"value":%d}' % i)
        return GLib.SOURCE_CONTINUE if fed[0] < TASKS else GLib.SOURCE_REMOVE

    started = time.monotonic()
    GLib.timeout_add(10, feed)
    GLib.timeout_add(KILL_EVERY_MS, kill_one)
    run_loop(loop, RUN_BOUND_S)
    elapsed = time.monotonic() - started
    q.stop()
    assert state['joined'] is True

    for pid, proc in live.items():
        q.send(Mpq.REQ_DIE, 0, pid, None)
    for proc in live.values():
        wait_exit(proc)
        assert proc.get_successful(), f'worker {pid_of(proc)} did not exit 0'
    for proc in killed.values():
        wait_exit(proc)
    q.close()

    lost = [i for i in range(TASKS) if answers[i] == 0]
    duplicates = {i: senders[i] for i in answers if answers[i] > 1}
    # A task is done again only if the worker that did it died before it
    # acknowledged it: of the answers to one task, at most one comes from a
    # worker that was never killed.
    unexplained = {i: pids for i, pids in duplicates.items()
                   if sum(1 for pid in pids if pid not in killed) > 1}
    report('chaos-queue', {
        'seed': SEED,
        'tasks': TASKS,
        'workers at a time': WORKERS,
        'workers spawned': spawned[0],
        'workers killed': len(killed),
        'kill every (ms)': KILL_EVERY_MS,
        'tasks put per 10 ms': FEED_BATCH,
        'answers': sum(answers.values()),
        'tasks lost': len(lost),
        'tasks done twice or more (a killed worker had answered them)': len(duplicates),
        'extra answers': sum(answers.values()) - len(answers),
        'duplicates not explained by a kill': len(unexplained),
        'seconds': round(elapsed, 1),
        'parent peak RSS (MiB)': round(peak.peak_mib(), 1),
        'parent peak RSS growth (MiB)': round(peak.growth_mib(), 1),
    })
    assert not lost, f'{len(lost)} tasks lost, e.g. {lost[:10]}'
    assert not unexplained, f'tasks done twice by workers never killed: ' \
        f'{dict(list(unexplained.items())[:5])}'
    assert len(killed) > 0, 'no worker was killed: the run was over too soon to test anything'
    peak.check(f'{TASKS} tasks, {len(killed)} workers killed', RSS_BOUND_MIB)


PIPE_ROUNDS = scaled(10, 4)


@pytest.mark.watchdog(PIPE_ROUNDS * PROMPT_S + 60)
def test_pipe_child_killed_right_after_flush():
    """The child (mpq_child.py flush-loop) sends a burst, flushes, prints
    how many it sent so far and waits for a go on stdin. After a random
    100 to 500 ms the parent, instead of the next go, SIGKILLs it: every
    message it had flushed arrives, in order, then the pipe closes."""
    rng = random.Random(SEED)
    rounds = []
    for r in range(PIPE_ROUNDS):
        pipe = Mpq.Pipe.new()
        launcher = Gio.SubprocessLauncher.new(Gio.SubprocessFlags.STDIN_PIPE |
                                              Gio.SubprocessFlags.STDOUT_PIPE)
        proc = pipe.spawn_with_launcher(launcher, child_argv(MPQ_CHILD, 'flush-loop',
                                                             rng.randrange(2**32)))
        lines = Gio.DataInputStream.new(proc.get_stdout_pipe())
        go = proc.get_stdin_pipe()
        loop = GLib.MainLoop()
        got = []
        state = {'armed': False, 'flushed': None, 'holes': [], 'bursts': 0}

        def on_message(ch, msg):
            i = json.loads(msg.dup_data_json())['i']
            if i != len(got):
                state['holes'].append((len(got), i))
            got.append(i)

        def on_line(stream, result):
            text = stream.read_line_finish_utf8(result)[0]
            assert text is not None, 'the child ended before it was killed'
            state['bursts'] += 1
            if state['armed']:
                proc.send_signal(9)         # SIGKILL, right after its flush
                state['flushed'] = int(text)
                return
            go.write_all(b'g', None)
            stream.read_line_async(GLib.PRIORITY_DEFAULT, None, on_line)

        def arm():
            state['armed'] = True
            return GLib.SOURCE_REMOVE

        pipe.connect('message-received', on_message)
        pipe.connect('closed', lambda ch: loop.quit())
        pipe.start()
        lines.read_line_async(GLib.PRIORITY_DEFAULT, None, on_line)
        GLib.timeout_add(rng.randint(100, 500), arm)
        run_loop(loop, PROMPT_S)
        pipe.close()
        wait_exit(proc)
        assert proc.get_if_signaled(), 'the child was not killed'
        assert state['holes'] == [], f'round {r}: out of order or missing: {state["holes"][:5]}'
        assert len(got) == state['flushed'], \
            f'round {r}: {state["flushed"]} flushed before the kill, {len(got)} received'
        rounds.append((state['bursts'], state['flushed'], len(got)))
    report('chaos-pipe', {
        'seed': SEED,
        'rounds': PIPE_ROUNDS,
        'bursts per round': [b for b, _, _ in rounds],
        'flushed before the kill, per round': [f for _, f, _ in rounds],
        'received, per round': [g for _, _, g in rounds],
        'flushed and lost': sum(f - g for _, f, g in rounds),
    })
